"""Object- and stack-level rules: pure functions over rendered Kubernetes objects.

These are the rules CrossGuard runs too, so they may only read the object (or, for stack
rules, all objects) and an ObjectContext: never the spec. Each returns its violations; an
empty list is a pass. The registry maps a rule id of policies/rules.yaml to its function.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

from pyagent_compile.load.document import PathT
from pyagent_compile.policy.model import ObjectContext, Violation

ObjectRule = Callable[[dict[str, Any], ObjectContext], list[Violation]]
StackRule = Callable[[list[dict[str, Any]], ObjectContext], list[tuple[dict[str, Any], Violation]]]

WORKLOAD_KINDS = ("StatefulSet", "Deployment", "DaemonSet", "Job", "Pod")
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----|\b(?:ed25519|x25519)-(?:priv|secret|sk):", re.I)
SECRET_NAME = re.compile(r"(?:KEY|SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL|SOUL)", re.I)


# -- helpers -----------------------------------------------------------------------------------
def _map(value: Any) -> dict[str, Any]:
    """The value if it is a mapping, else empty: rules also see objects pyagent did not render."""
    return value if isinstance(value, dict) else {}


def _items(value: Any) -> list[dict[str, Any]]:
    """The mappings of a list (anything else is not a valid entry and is skipped)."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def pod_spec(obj: dict[str, Any]) -> dict[str, Any] | None:
    if obj.get("kind") not in WORKLOAD_KINDS:
        return None
    template = obj if obj.get("kind") == "Pod" else _map(_map(obj.get("spec")).get("template"))
    spec = template.get("spec")
    return spec if isinstance(spec, dict) else None


def _pod_field(obj: dict[str, Any]) -> str:
    return "spec" if obj.get("kind") == "Pod" else "spec.template.spec"


def containers(obj: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    spec = pod_spec(obj)
    if spec is None:
        return
    base = _pod_field(obj)
    for group in ("initContainers", "containers"):
        for index, container in enumerate(_items(spec.get(group))):
            yield f"{base}.{group}[{index}]", container


def _strings(value: Any, where: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, f"{where}[{index}]")


def _network(cidr: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return None


def _is_everywhere(cidr: str) -> bool:
    net = _network(cidr)
    return net is not None and net.prefixlen == 0


def _is_too_wide(cidr: str) -> bool:
    net = _network(cidr)
    return net is not None and net.prefixlen < (8 if net.version == 4 else 16)


# -- data sovereignty -------------------------------------------------------------------------------
def no_plaintext_secrets(obj: dict[str, Any], ctx: ObjectContext) -> list[Violation]:
    out = []
    if obj.get("kind") == "Secret":
        for key in ("data", "stringData"):
            if obj.get(key):
                out.append(
                    Violation("PA501", f"Secret carries `{key}` in plaintext; render a reference instead", field=key)
                )
    for where, text in _strings(obj, ""):
        if PRIVATE_KEY.search(text):
            out.append(Violation("PA501", "private key material in a rendered object", field=where))
    for where, container in containers(obj):
        for index, env in enumerate(_items(container.get("env"))):
            if SECRET_NAME.search(str(env.get("name", ""))) and "value" in env:
                out.append(
                    Violation(
                        "PA501",
                        f"environment variable {env.get('name')!r} has a literal value; use `valueFrom.secretKeyRef`",
                        field=f"{where}.env[{index}]",
                    )
                )
    return out


JURISDICTION_LABEL = "pyagent.dev/jurisdiction"


def personal_data_jurisdiction(obj: dict[str, Any], ctx: ObjectContext) -> list[Violation]:
    """Every swarm pod may hold personal data (memory, the KV cache of the owner's sessions), so
    its `pyagent.dev/jurisdiction` label must name an allowed jurisdiction."""
    if not ctx.jurisdictions or pod_spec(obj) is None:
        return []
    template = obj if obj.get("kind") == "Pod" else _map(_map(obj.get("spec")).get("template"))
    pod_labels = _map(_map(template.get("metadata")).get("labels"))
    name = pod_labels.get("pyagent.dev/pool") or _map(obj.get("metadata")).get("name", "?")
    field = "metadata.labels" if obj.get("kind") == "Pod" else "spec.template.metadata.labels"
    allowed = ", ".join(sorted(ctx.jurisdictions))
    where = pod_labels.get(JURISDICTION_LABEL)
    if where is None:
        message = f"pool {name!r} declares no jurisdiction, but may hold personal data allowed only in {allowed}"
        return [Violation("PA502", message, field=field, subpath=("placement",))]
    if where not in ctx.jurisdictions:
        message = f"pool {name!r} is in {where}, outside the allowed jurisdictions ({allowed})"
        return [Violation("PA502", message, field=field, subpath=("placement", "jurisdiction"))]
    return []


def peers_work_payloads_only(obj: dict[str, Any], ctx: ObjectContext) -> list[Violation]:
    if obj.get("kind") != "ConfigMap":
        return []
    raw = _map(obj.get("data")).get("node.json")
    if not isinstance(raw, str):
        return []
    try:
        config = json.loads(raw)
    except ValueError:
        return [
            Violation("PA504", "node.json is not valid JSON; cannot show what peers receive", field="data.node.json")
        ]
    share = _map(_map(config).get("sovereignty")).get("peerShare")
    if share != "work-payloads":
        return [
            Violation(
                "PA504",
                f"peers receive {share!r}, not only work payloads",
                field="data.node.json",
                spec_path=("sovereignty", "peers", "share"),
            )
        ]
    return []


def memory_volume_encrypted(obj: dict[str, Any], ctx: ObjectContext) -> list[Violation]:
    if obj.get("kind") != "StatefulSet":
        return []
    out = []
    for index, claim in enumerate(_items(_map(obj.get("spec")).get("volumeClaimTemplates"))):
        if not _map(claim.get("spec")).get("storageClassName"):
            name = _map(claim.get("metadata")).get("name", index)
            out.append(
                Violation(
                    "PA505",
                    f"volume {name!r} uses the cluster's default storage class, which may not encrypt at rest",
                    field=f"spec.volumeClaimTemplates[{index}]",
                    subpath=("hardware",),
                )
            )
    return out


def image_pinned(obj: dict[str, Any], ctx: ObjectContext) -> list[Violation]:
    out = []
    for where, container in containers(obj):
        image = str(container.get("image", ""))
        if not DIGEST.search(image):
            out.append(
                Violation(
                    "PA506", f"image {image!r} is not pinned by digest", field=f"{where}.image", spec_path=("image",)
                )
            )
    return out


# -- zero-trust firewall ------------------------------------------------------------------------------
def _rules(obj: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    if obj.get("kind") != "NetworkPolicy":
        return
    spec = _map(obj.get("spec"))
    for direction, peers_key in (("ingress", "from"), ("egress", "to")):
        for index, rule in enumerate(_items(spec.get(direction))):
            yield f"spec.{direction}[{index}]", peers_key, rule if isinstance(rule, dict) else {}


def _policy_types(obj: dict[str, Any]) -> list[str]:
    spec = _map(obj.get("spec"))
    types = spec.get("policyTypes")
    if isinstance(types, list) and types:
        return [str(t) for t in types]
    return ["Ingress", "Egress"] if spec.get("egress") else ["Ingress"]


def default_deny_per_namespace(
    objects: list[dict[str, Any]], ctx: ObjectContext
) -> list[tuple[dict[str, Any], Violation]]:
    """Violations are reported on the Namespace object that lacks the policy."""
    namespaces = [
        o for o in objects if o.get("kind") == "Namespace" and isinstance(_map(o.get("metadata")).get("name"), str)
    ]
    covered = set()
    for obj in objects:
        spec = _map(obj.get("spec"))
        if (
            obj.get("kind") == "NetworkPolicy"
            and not _map(spec.get("podSelector"))
            and {"Ingress", "Egress"} <= set(_policy_types(obj))
            and not spec.get("ingress")
            and not spec.get("egress")
        ):
            covered.add(_map(obj.get("metadata")).get("namespace"))
    return [
        (
            ns,
            Violation(
                "PA510",
                f"namespace {ns['metadata']['name']!r} has no default-deny NetworkPolicy "
                "(all pods, Ingress and Egress, no rules)",
                spec_path=("firewall",),
            ),
        )
        for ns in namespaces
        if ns["metadata"]["name"] not in covered
    ]


def concrete_allow_rules(obj: dict[str, Any], ctx: ObjectContext) -> list[Violation]:
    out = []
    for where, peers_key, rule in _rules(obj):
        if not rule.get(peers_key):
            out.append(Violation("PA511", f"allow rule has no `{peers_key}`: it allows every peer", field=where))
        if not rule.get("ports"):
            out.append(Violation("PA511", "allow rule has no `ports`: it allows every port", field=where))
        if peers_key == "from":
            for index, peer in enumerate(_items(rule.get("from"))):
                cidr = str(_map(peer.get("ipBlock")).get("cidr", ""))
                if _is_everywhere(cidr):
                    out.append(
                        Violation(
                            "PA511",
                            f"ingress from {cidr} (the whole internet)",
                            field=f"{where}.from[{index}].ipBlock.cidr",
                            subpath=("from", "cidrs"),
                        )
                    )
    return out


def _is_swarm_pod_peer(peer: dict[str, Any]) -> bool:
    selector = peer.get("podSelector")
    if "ipBlock" in peer or "namespaceSelector" in peer or not isinstance(selector, dict):
        return False
    return "pyagent.dev/swarm" in _map(selector.get("matchLabels"))


def internal_ports_swarm_only(obj: dict[str, Any], ctx: ObjectContext) -> list[Violation]:
    out = []
    for where, peers_key, rule in _rules(obj):
        ports = [p.get("port") for p in _items(rule.get("ports"))]
        opened = sorted(p for p in ports if isinstance(p, int) and p in ctx.internal_ports)
        if not rule.get("ports"):
            opened = sorted(ctx.internal_ports)
        peers = _items(rule.get(peers_key)) or [{}]
        if opened and not all(_is_swarm_pod_peer(peer) for peer in peers):
            listed = ", ".join(str(p) for p in opened)
            out.append(
                Violation("PA512", f"mesh/Raft port(s) {listed} open to peers outside the swarm's pods", field=where)
            )
    return out


def egress_restricted(obj: dict[str, Any], ctx: ObjectContext) -> list[Violation]:
    out = []
    for where, peers_key, rule in _rules(obj):
        if peers_key != "to":
            continue
        for index, peer in enumerate(_items(rule.get("to"))):
            cidr = str(_map(peer.get("ipBlock")).get("cidr", ""))
            if _is_too_wide(cidr):
                out.append(
                    Violation(
                        "PA513",
                        f"egress to {cidr}: wider than any service the swarm needs",
                        field=f"{where}.to[{index}].ipBlock.cidr",
                        subpath=("to", "cidrs"),
                    )
                )
    return out


# -- hygiene ------------------------------------------------------------------------------------------
def resources_set(obj: dict[str, Any], ctx: ObjectContext) -> list[Violation]:
    out = []
    for where, container in containers(obj):
        resources = _map(container.get("resources"))
        missing = [
            f"{kind}.{res}"
            for kind in ("requests", "limits")
            for res in ("cpu", "memory")
            if not _map(resources.get(kind)).get(res)
        ]
        if missing:
            out.append(
                Violation(
                    "PA520",
                    f"container {container.get('name')!r} sets no {', '.join(missing)}",
                    field=f"{where}.resources",
                    subpath=("hardware",),
                )
            )
    return out


def no_privileged(obj: dict[str, Any], ctx: ObjectContext) -> list[Violation]:
    spec = pod_spec(obj)
    if spec is None:
        return []
    out = [
        Violation("PA521", f"pod shares the host's {key[4:]} namespace", field=f"{_pod_field(obj)}.{key}")
        for key in ("hostNetwork", "hostPID", "hostIPC")
        if spec.get(key)
    ]
    for where, container in containers(obj):
        sc = _map(container.get("securityContext"))
        name = container.get("name")
        if sc.get("privileged"):
            out.append(Violation("PA521", f"container {name!r} is privileged", field=f"{where}.securityContext"))
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append(
                Violation(
                    "PA521",
                    f"container {name!r} may escalate privileges (`allowPrivilegeEscalation` is not false)",
                    field=f"{where}.securityContext",
                )
            )
        if _map(sc.get("capabilities")).get("add"):
            out.append(Violation("PA521", f"container {name!r} adds capabilities", field=f"{where}.securityContext"))
    return out


def read_only_root(obj: dict[str, Any], ctx: ObjectContext) -> list[Violation]:
    return [
        Violation(
            "PA522", f"container {c.get('name')!r} has a writable root file system", field=f"{where}.securityContext"
        )
        for where, c in containers(obj)
        if _map(c.get("securityContext")).get("readOnlyRootFilesystem") is not True
    ]


def non_root(obj: dict[str, Any], ctx: ObjectContext) -> list[Violation]:
    spec = pod_spec(obj)
    if spec is None:
        return []
    pod_sc = _map(spec.get("securityContext"))
    out = []
    for where, container in containers(obj):
        sc = {**pod_sc, **_map(container.get("securityContext"))}
        if sc.get("runAsNonRoot") is not True:
            out.append(
                Violation(
                    "PA523",
                    f"container {container.get('name')!r} does not set `runAsNonRoot: true`",
                    field=f"{where}.securityContext",
                )
            )
        elif sc.get("runAsUser") == 0:
            out.append(
                Violation(
                    "PA523", f"container {container.get('name')!r} runs as user 0", field=f"{where}.securityContext"
                )
            )
    return out


def no_token_automount(obj: dict[str, Any], ctx: ObjectContext) -> list[Violation]:
    if obj.get("kind") == "ServiceAccount":
        if obj.get("automountServiceAccountToken") is not False:
            return [
                Violation("PA524", "the ServiceAccount auto-mounts its API token", field="automountServiceAccountToken")
            ]
        return []
    spec = pod_spec(obj)
    if spec is not None and spec.get("automountServiceAccountToken") is not False:
        return [
            Violation(
                "PA524",
                "the pod auto-mounts the service account's API token",
                field=f"{_pod_field(obj)}.automountServiceAccountToken",
            )
        ]
    return []


OBJECT_RULES: dict[str, ObjectRule] = {
    "PA501": no_plaintext_secrets,
    "PA502": personal_data_jurisdiction,
    "PA504": peers_work_payloads_only,
    "PA505": memory_volume_encrypted,
    "PA506": image_pinned,
    "PA511": concrete_allow_rules,
    "PA512": internal_ports_swarm_only,
    "PA513": egress_restricted,
    "PA520": resources_set,
    "PA521": no_privileged,
    "PA522": read_only_root,
    "PA523": non_root,
    "PA524": no_token_automount,
}
STACK_RULES: dict[str, StackRule] = {"PA510": default_deny_per_namespace}

__all__ = ["OBJECT_RULES", "STACK_RULES", "ObjectRule", "PathT", "StackRule"]

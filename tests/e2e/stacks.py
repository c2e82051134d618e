"""Compiled stacks on the test cluster (tests/e2e/cluster): fitted to it, with what their operator
provides (the Secrets they refer to, the CRDs of their custom kinds), and deployed the two ways users
deploy them: `kubectl apply` of `manifests/` and `pulumi up` by the real engine (tests/e2e/pulumi).

What a single 2-core node cannot offer is adapted, and only that (`fit_to_cluster`): the pods'
CPU, memory and GPU requests are scaled down, their placement (regions, zones, GPU models) is
dropped, every pod runs the node image built here (the examples' production references name
registries that do not exist), and the voters' egress to the API server names this cluster's
API server (`firewall.kubernetesApi`, which an operator sets to their cluster's: here it is the VM's
own address and a port chosen at start). For `pulumi up` the same is done to the copy's plan.json,
which the stack's program registers.
"""

from __future__ import annotations

import copy
import json
import re
import secrets
import subprocess
import sys
import time
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import ROOT
from tests.e2e.cluster import kube
from tests.e2e.cluster.layout import Paths
from tests.e2e.pulumi import runtime, tools
from tests.e2e.pulumi.engine import Engine, Result

POLICY_PACK = ROOT / "policies" / "pulumi"
# What the engine says when it starts the language host built here (an ambient plugin, on PATH).
LANGUAGE_HOST_RAN = "using pulumi-language-python from $PATH"
SMALL = {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}}
# What a Secret's value starts with in these tests: the state files are searched for it.
CANARY = "pyagent-canary-"


def kubectl(paths: Paths, *args: str, input: str | None = None) -> str:
    done = kube.kubectl(paths, *args, input=input, check=False)
    assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
    return done.stdout


def kubectl_json(paths: Paths, *args: str) -> Any:
    return json.loads(kubectl(paths, *args, "-o", "json"))


@dataclass(frozen=True)
class ApiServer:
    """The API server's address and port as pods reach it (behind the `kubernetes` Service)."""

    ip: str
    port: int


NO_API = ApiServer("", 0)  # for objects that are not the API server's egress rule


def api_server(paths: Paths) -> ApiServer:
    slices = kubectl_json(
        paths, "get", "endpointslices", "-n", "default", "-l", "kubernetes.io/service-name=kubernetes"
    )
    endpoint = slices["items"][0]
    return ApiServer(endpoint["endpoints"][0]["addresses"][0], endpoint["ports"][0]["port"])


def fit_to_cluster(obj: dict[str, Any], image: str, api: ApiServer) -> dict[str, Any]:
    """The compiled object, with what one 2-core node without GPUs or regions cannot offer adapted,
    and the API server's egress rule pointed at this cluster's API server."""
    obj = copy.deepcopy(obj)
    if (
        obj["kind"] == "NetworkPolicy"
        and obj["metadata"]["annotations"]["pyagent.dev/source"] == "firewall.kubernetesApi"
    ):
        (rule,) = obj["spec"]["egress"]
        rule["to"] = [{"ipBlock": {"cidr": f"{api.ip}/32"}}]
        rule["ports"] = [{"port": api.port, "protocol": "TCP"}]
        return obj
    if obj["kind"] != "StatefulSet":
        return obj
    pod = obj["spec"]["template"]["spec"]
    for key in ("affinity", "nodeSelector", "topologySpreadConstraints", "tolerations"):
        pod.pop(key, None)
    for container in pod["containers"]:
        container["image"] = image
        container["imagePullPolicy"] = "IfNotPresent"
        container["resources"] = copy.deepcopy(SMALL)
    return obj


def node_config_map(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == "ConfigMap" and "node.json" in o.get("data", {}))


def stack_objects(stack: Path) -> list[dict[str, Any]]:
    return [yaml.safe_load(f.read_text()) for f in sorted((stack / "manifests").glob("*.yaml"))]


def _secret_sources(volume: dict[str, Any]) -> list[tuple[str, list[dict[str, str]]]]:
    """(Secret name, its items) of a volume: a secret volume, or the secrets of a projected one."""
    if "secret" in volume:
        return [(volume["secret"]["secretName"], volume["secret"].get("items", []))]
    sources = volume.get("projected", {}).get("sources", [])
    return [(src["secret"]["name"], src["secret"].get("items", [])) for src in sources if "secret" in src]


def operator_secrets(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Secrets a stack refers to and never renders (the soul's key, `sovereignty.soul.secretRef`;
    the model endpoints' API keys, `cores.<core>.model.apiKey`): made here as their operator would,
    each value a fresh random canary (`CANARY` + 32 hex digits) that no state file may hold."""
    namespace = next(o["metadata"]["name"] for o in objects if o["kind"] == "Namespace")
    wanted: dict[str, set[str]] = {}
    for obj in objects:
        if obj["kind"] == "StatefulSet":
            for volume in obj["spec"]["template"]["spec"]["volumes"]:
                for name, items in _secret_sources(volume):
                    wanted.setdefault(name, set()).update(item["key"] for item in items)
    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace},
            "stringData": {key: CANARY + secrets.token_hex(16) for key in sorted(keys)},
        }
        for name, keys in sorted(wanted.items())
    ]


# The PodMonitor CRD as the Prometheus Operator ships it (tests/data/crds/): a stack with
# `observability.podMonitors` needs it, and the API server then checks the PodMonitor against it.
POD_MONITOR_CRD = ROOT / "tests" / "data" / "crds" / "monitoring.coreos.com_podmonitors.yaml"


def install_custom_resource_definitions(paths: Paths, objects: list[dict[str, Any]]) -> None:
    if not any(o["kind"] == "PodMonitor" for o in objects):
        return
    crd = yaml.safe_load(POD_MONITOR_CRD.read_text())
    kube.apply(paths, [crd], manager="e2e-operator")
    name = crd["metadata"]["name"]
    kubectl(paths, "wait", "--for=condition=Established", f"crd/{name}", "--timeout=120s")


@dataclass(frozen=True)
class Deployed:
    """What a test needs of a deployed stack: its objects as deployed, and its swarm's facts."""

    objects: list[dict[str, Any]]
    namespace: str
    swarm: str
    grpc_port: int
    replicas: int
    secrets: list[dict[str, Any]]

    @classmethod
    def of(cls, objects: list[dict[str, Any]], secrets_made: list[dict[str, Any]]) -> Deployed:
        namespace = next(o["metadata"]["name"] for o in objects if o["kind"] == "Namespace")
        config = json.loads(node_config_map(objects)["data"]["node.json"])
        replicas = sum(o["spec"]["replicas"] for o in objects if o["kind"] == "StatefulSet")
        return cls(objects, namespace, config["swarm"], config["ports"]["grpc"], replicas, secrets_made)


def apply_manifests(paths: Paths, stack: Path, image: str) -> Deployed:
    """`kubectl apply` (server-side) of the stack's manifests/, fitted, then its operator's Secrets."""
    objects = [fit_to_cluster(o, image, api_server(paths)) for o in stack_objects(stack)]
    install_custom_resource_definitions(paths, objects)
    kube.apply(paths, objects, manager="pyagent")
    made = operator_secrets(objects)
    if made:
        kube.apply(paths, made, manager="e2e-operator")
    return Deployed.of(objects, made)


def delete_manifests(paths: Paths, stack: Path) -> None:
    for obj in stack_objects(stack):
        if obj["kind"] in ("Namespace", "ClusterRoleBinding"):
            name = obj["metadata"]["name"]
            kube.kubectl(paths, "delete", obj["kind"].lower(), name, "--wait=true", "--timeout=300s", check=False)


@dataclass
class PulumiStack:
    """A compiled stack deployed to the test cluster by the real engine (tests/e2e/pulumi): a copy of
    its folder whose plan.json is fitted to the cluster, one Pulumi stack of it in the engine's file
    backend, the program started by the real language host in the stack's virtualenv, `pulumi up`
    with no await skipped (the provider waits for every StatefulSet's pods to be ready). Every
    preview and update runs the CrossGuard pack (`--policy-pack policies/pulumi`, configured by
    `pyagent policy pack-config` of the stack's spec), as CI and operators run it, and fails on any
    mandatory finding."""

    engine: Engine
    folder: Path
    env: str
    paths: Paths
    image: str
    spec: Path

    @classmethod
    def init(cls, engine: Engine, paths: Paths, compiled: Path, image: str, spec: Path) -> PulumiStack:
        env = compiled.name
        folder = engine.copy_stack(compiled, f"{compiled.parent.name}-{env}")
        stack = cls(engine, folder, env, paths, image, spec)
        stack._fit_plan()
        # the stack's `virtualenv: venv`, made from its requirements.txt as `pulumi install` makes it
        (folder / "venv").symlink_to(tools.stack_venv(folder / "requirements.txt"), target_is_directory=True)
        engine.python_env = folder / "venv"
        engine.stack = env
        engine.pulumi(folder, "stack", "init", env)
        return stack

    def _policy_args(self) -> list[str]:
        """`--policy-pack` (policies/pulumi, started as the language host would, runtime.policy_shim)
        and `--policy-pack-config` for the stack's spec as it is now."""
        folder = self.engine.work / "policy"
        argv = [sys.executable, "-m", "pyagent_compile", "policy", "pack-config", str(self.spec), "--env", self.env]
        done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        config = folder / f"pack-config-{self.env}.json"
        folder.mkdir(parents=True, exist_ok=True)
        config.write_text(done.stdout)
        return ["--policy-pack", str(runtime.policy_shim(folder, POLICY_PACK)), "--policy-pack-config", str(config)]

    def _with_policies(self, *args: str) -> Result:
        result = self.engine.pulumi(self.folder, *args, *self._policy_args())
        # (--json output does not name the packs that ran; a mandatory violation fails the command)
        assert "--json" in args or "pyagent@v0.1.0" in result.output, f"no policy pack ran:\n{result.output}"
        assert LANGUAGE_HOST_RAN in result.output, f"the language host did not run the program:\n{result.output}"
        assert not mandatory_violations(result.output), result.output
        return result

    def plan(self) -> dict[str, Any]:
        plan: dict[str, Any] = json.loads((self.folder / "plan.json").read_text())
        return plan

    def objects(self) -> list[dict[str, Any]]:
        return [entry["object"] for entry in self.plan()["objects"]]

    def _fit_plan(self) -> None:
        plan = self.plan()
        api = api_server(self.paths)
        for entry in plan["objects"]:
            entry["object"] = fit_to_cluster(entry["object"], self.image, api)
        (self.folder / "plan.json").write_text(json.dumps(plan, indent=2, sort_keys=True) + "\n")

    def recompiled(self, compiled: Path, spec: Path) -> None:
        """Takes the stack compiled from a changed spec in place of the copy's files, as a GitOps
        checkout would; the copy's Pulumi.<env>.yaml stays (it holds the stack's secrets salt)."""
        self.spec = spec
        settings = f"Pulumi.{self.env}.yaml"
        for src in compiled.rglob("*"):
            rel = src.relative_to(compiled)
            if src.is_file() and rel.as_posix() != settings:
                (self.folder / rel).parent.mkdir(parents=True, exist_ok=True)
                (self.folder / rel).write_bytes(src.read_bytes())
        self._fit_plan()

    def up(self) -> tuple[Deployed, Result]:
        """`pulumi up --yes`. The Secrets that the pods mount and their operator provides are made
        as soon as the stack's namespace exists, while the update runs: the kubelet retries a
        mount until its Secret exists, and the provider waits for the pods. (Making the namespace
        first with `pulumi up --target` is what the policy pack refuses: PA510, the namespace would
        stand without its default-deny policy.)"""
        objects = self.objects()
        install_custom_resource_definitions(self.paths, objects)
        made = operator_secrets(objects)
        with futures.ThreadPoolExecutor(max_workers=1) as pool:
            update = pool.submit(self._with_policies, "up", "--yes")
            if made:
                while not update.done() and not self._namespace_exists(objects):
                    time.sleep(0.2)
                if not update.done():
                    kube.apply(self.paths, made, manager="e2e-operator")
            result = update.result()
        return Deployed.of(objects, made), result

    def _namespace_exists(self, objects: list[dict[str, Any]]) -> bool:
        name = next(o["metadata"]["name"] for o in objects if o["kind"] == "Namespace")
        return kube.kubectl(self.paths, "get", "namespace", name, check=False).returncode == 0

    def changes(self) -> dict[str, set[str]]:
        """What `pulumi preview` would do, by logical name: {"create", "update", "replace", "delete"}."""
        preview = json.loads(self._with_policies("preview", "--json").stdout)
        ops: dict[str, set[str]] = {}
        for step in preview.get("steps", []):
            urn, op = step["urn"], step["op"]
            if op == "same" or "::pulumi:" in urn:
                continue
            op = "replace" if op in ("create-replacement", "delete-replaced", "replace") else op
            ops.setdefault(op, set()).add(urn.rsplit("::", 1)[1])
        return ops

    def destroy(self) -> None:
        self.engine.pulumi(self.folder, "destroy", "--yes")
        self.engine.pulumi(self.folder, "stack", "rm", "--yes", self.env)

    def state_files(self) -> list[Path]:
        return sorted(p for p in self.engine.backend.rglob("*") if p.is_file())


def mandatory_violations(output: str) -> set[str]:
    """Rule ids (PA5xx) of the mandatory policy violations the engine printed."""
    return {m.upper() for m in re.findall(r"\b(pa5\d\d)-[a-z-]+", output, flags=re.I)}

"""Every compiled Kubernetes stack of the examples on the real test cluster (tests/e2e/cluster),
run from the real node image (native/image), deployed the two ways users deploy them: `pulumi up` by
the real Pulumi engine (tests/e2e/pulumi: the CLI and the Kubernetes provider built here, a local file
backend) and `kubectl apply` of manifests/. Each swarm forms by itself, elects a leader, commits
writes, survives deleting the leader pod with no acknowledged write lost, and refuses pods that are
not its own; a spec change, compiled and deployed again, changes what `pyagent diff` said and nothing
else. Runs only with PYAGENT_E2E=1 (`make e2e`), as root.

What a single 2-core node cannot offer is adapted, and only that (tests/e2e/stacks.py says what).
Every other field is deployed as compiled: namespaces enforcing the `restricted` Pod Security
Standard, RBAC, projected tokens, ConfigMaps, Services, disruption budgets and NetworkPolicies,
enforced by kube-router's firewall (docs/cluster.md): every swarm forms through its own policies, and
the firewall test shows a connection they deny refused.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

if os.environ.get("PYAGENT_E2E") != "1":
    pytest.skip("end-to-end tests run only with PYAGENT_E2E=1 (make e2e)", allow_module_level=True)

from pyagent_compile.runtime.nodeapi import node_pb2 as pb
from pyagent_compile.runtime.nodeapi.client import NodeClient, Signer, put_command
from tests.conftest import ROOT
from tests.e2e.cluster import images, kube, versions
from tests.e2e.cluster.layout import Paths
from tests.e2e.pulumi import tools
from tests.e2e.pulumi.engine import Engine
from tests.e2e.stacks import (
    CANARY,
    NO_API,
    Deployed,
    PulumiStack,
    apply_manifests,
    delete_manifests,
    fit_to_cluster,
    kubectl,
    kubectl_json,
    stack_objects,
)

LOCK = ROOT / "native/image/pyagent-node.lock.json"
ARCHIVE = ROOT / "native/target/image/pyagent-node.oci.tar"
STACKS = sorted(p.parent for p in (ROOT / "stacks").glob("*/*/manifests"))
READY_SECONDS = 600.0  # 2 loaded cores; a swarm of ten pods starts in a minute or two
WRITES = 20

T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T | None], seconds: float = READY_SECONDS) -> T:
    deadline = time.monotonic() + seconds
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = probe()
        except Exception as error:  # a probe of a pod that is restarting fails; keep polling
            last = error
            value = None
        if value is not None:
            return value
        time.sleep(1.0)
    raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what} (last error: {last})")


@pytest.fixture(scope="module")
def node_image(cluster: Paths) -> str:
    """The node image, built (`native/image/build.py --check`: it must be the image the committed
    lock and the dev stacks pin) and imported; its reference by digest."""
    build = subprocess.run([sys.executable, str(ROOT / "native/image/build.py"), "--check"], check=False)
    assert build.returncode == 0, "the node image does not build as the lock says: run `make image` and `make golden`"
    lock = json.loads(LOCK.read_text())
    # --digests also names the image `repository@sha256:...`, what a pull by digest records: the
    # CRI plugin finds an image by the names containerd holds.
    argv = [*images.ctr(cluster), "images", "import", "--base-name", lock["repository"], "--digests", str(ARCHIVE)]
    subprocess.run(argv, check=True, timeout=300, capture_output=True)
    return f"{lock['repository']}@{lock['digest']}"


@dataclass
class Pod:
    name: str
    ip: str
    pv_path: Path

    def client(self, grpc_port: int) -> NodeClient:
        return NodeClient(f"{self.ip}:{grpc_port}")


@dataclass
class Swarm:
    paths: Paths
    name: str
    namespace: str
    grpc_port: int
    replicas: int

    @classmethod
    def of(cls, paths: Paths, deployed: Deployed) -> Swarm:
        return cls(paths, deployed.swarm, deployed.namespace, deployed.grpc_port, deployed.replicas)

    def pods(self) -> dict[str, Pod]:
        # The pools' pods (a stranger in the test carries the swarm's label, not a pool's).
        selector = f"pyagent.dev/swarm={self.name},pyagent.dev/pool"
        listed = kubectl_json(self.paths, "get", "pods", "-n", self.namespace, "-l", selector)
        volumes = self._volumes()
        pods = {}
        for item in listed["items"]:
            name, ip = item["metadata"]["name"], item["status"].get("podIP")
            if ip:
                pods[name] = Pod(name, ip, volumes.get(name, Path("/nonexistent")))
        return pods

    def _volumes(self) -> dict[str, Path]:
        """pod name -> the host folder of its data volume (local-path provisioner's hostPath)."""
        pvs = kubectl_json(self.paths, "get", "pv")["items"]
        out = {}
        for pv in pvs:
            claim = pv["spec"].get("claimRef", {})
            if claim.get("namespace") != self.namespace or not claim.get("name", "").startswith("data-"):
                continue
            where = pv["spec"].get("hostPath", pv["spec"].get("local", {})).get("path")
            if where:
                out[claim["name"].removeprefix("data-")] = Path(where)
        return out

    def statuses(self) -> dict[str, pb.StatusResponse]:
        out = {}
        for name, pod in self.pods().items():
            client = pod.client(self.grpc_port)
            try:
                out[name] = client.status(timeout=2.0)
            except Exception:
                continue
            finally:
                client.close()
        return out

    def settled_leader(self) -> tuple[str, pb.StatusResponse] | None:
        """(pod, its status) once every pod answers, names the same leader in the same term,
        that leader leads, and its membership lists every replica."""
        statuses = self.statuses()
        if len(statuses) != self.replicas:
            return None
        views = {(s.leader_id, s.term) for s in statuses.values()}
        if len(views) != 1:
            return None
        leader_id, _ = views.pop()
        leader = next(((n, s) for n, s in statuses.items() if s.node_id == leader_id and s.role == "Leader"), None)
        if leader is None or len(leader[1].members) != self.replicas:
            return None
        return leader

    def signer(self, pod: Pod, node_id: int) -> Signer:
        return Signer.from_file(self.name, node_id, pod.pv_path / "identity.key")

    def put(self, signer: Signer, key: str, value: bytes) -> pb.CommandResult:
        name, _ = wait_for(f"{self.name}: a settled leader", self.settled_leader)
        client = self.pods()[name].client(self.grpc_port)
        try:
            return client.submit(signer.sign(put_command(key, value)), timeout=30.0)
        finally:
            client.close()

    def get(self, key: str) -> pb.GetResponse:
        name, _ = wait_for(f"{self.name}: a settled leader", self.settled_leader)
        client = self.pods()[name].client(self.grpc_port)
        try:
            return client.get(key, timeout=10.0)
        finally:
            client.close()


def ready(paths: Paths, namespace: str) -> bool | None:
    sets = kubectl_json(paths, "get", "statefulsets", "-n", namespace)["items"]
    done = all(s["status"].get("readyReplicas", 0) == s["spec"]["replicas"] for s in sets)
    return True if sets and done else None


def leader_pod(swarm: Swarm) -> tuple[Pod, int]:
    name, status = wait_for(f"{swarm.name}: a settled leader", swarm.settled_leader)
    return swarm.pods()[name], status.node_id


@pytest.fixture(scope="module")
def pulumi_tools() -> None:
    """The Pulumi CLI and the Kubernetes provider, built from the Go module proxy (tests/e2e/pulumi/
    tools.py, `make pulumi-tools`): cached in .tools/, 15-30 minutes on 2 cores the first time."""
    tools.build_all()


def engine_on(cluster: Paths, work: Path) -> Engine:
    """The real engine on this cluster (its admin kubeconfig): nothing skips the provider's await."""
    return Engine(work / "pulumi", cluster.kubeconfig, skip_await=())


def _get_args(obj: dict[str, Any]) -> list[str]:
    meta = obj["metadata"]
    where = ["-n", meta["namespace"]] if "namespace" in meta else []
    return ["get", f"{obj['kind']}/{meta['name']}", *where]


def _exists(paths: Paths, obj: dict[str, Any]) -> bool:
    return kube.kubectl(paths, *_get_args(obj), check=False).returncode == 0


def assert_exactly_the_plan_is_live(paths: Paths, stack: PulumiStack) -> None:
    """Each object of plan.json, as the API server has it (labels, a ConfigMap's data, a StatefulSet's
    replicas and image), and, of each planned kind, no other object of the stack's in its namespace."""
    planned: dict[str, set[str]] = {}
    for obj in stack.objects():
        live = kubectl_json(paths, *_get_args(obj))
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        assert obj["metadata"].get("labels", {}).items() <= live["metadata"].get("labels", {}).items(), name
        if obj["kind"] == "ConfigMap":
            assert live.get("data") == obj.get("data"), name
        if obj["kind"] == "StatefulSet":
            assert live["spec"]["replicas"] == obj["spec"]["replicas"], name
            images = [c["image"] for c in live["spec"]["template"]["spec"]["containers"]]
            assert images == [c["image"] for c in obj["spec"]["template"]["spec"]["containers"]], name
        if "namespace" in obj["metadata"]:
            planned.setdefault(obj["kind"], set()).add(obj["metadata"]["name"])
    namespace = stack.plan()["namespace"]
    for kind, names in sorted(planned.items()):
        listed = kubectl_json(paths, "get", kind, "-n", namespace, "-l", "app.kubernetes.io/managed-by=pyagent")
        assert {item["metadata"]["name"] for item in listed["items"]} == names, kind
    outputs = json.loads(stack.engine.pulumi(stack.folder, "stack", "output", "--json").stdout)
    assert outputs["objects"] == sorted(entry["logicalName"] for entry in stack.plan()["objects"])


def assert_no_secret_in_the_state(stack: PulumiStack, deployed: Deployed) -> None:
    """After `pulumi refresh` (the state re-read from the live objects), no file of the backend holds
    a value of the Secrets the stack's pods mount (their canaries), and the state still names each
    Secret: a reference, never its value."""
    stack.engine.pulumi(stack.folder, "refresh", "--yes")
    exported = stack.engine.pulumi(stack.folder, "stack", "export", "--show-secrets").stdout
    state = [exported, *(f.read_text(errors="replace") for f in stack.state_files())]
    values = [value for secret in deployed.secrets for value in secret["stringData"].values()]
    assert all(value.startswith(CANARY) for value in values)
    assert not [value for value in values if any(value in text for text in state)]
    for secret in deployed.secrets:
        assert secret["metadata"]["name"] in exported, f"the state does not refer to {secret['metadata']['name']}"


def destroy_and_check(paths: Paths, stack: PulumiStack) -> None:
    objects = stack.objects()
    stack.destroy()
    assert [o["metadata"]["name"] for o in objects if _exists(paths, o)] == []


@pytest.mark.parametrize("stack", STACKS, ids=[str(s.relative_to(ROOT / "stacks")) for s in STACKS])
def test_pulumi_up_deploys_a_swarm_that_forms_commits_and_survives_its_leader(
    cluster: Paths, node_image: str, pulumi_tools: None, stack: Path, tmp_path: Path
) -> None:
    """`pulumi up` of the compiled stack creates exactly plan.json's objects and returns once the
    provider has seen every pod ready; the swarm forms, commits, and keeps its writes when its leader
    pod is deleted; a second preview shows no change; the state holds no Secret's value; `pulumi
    destroy` removes everything."""
    name = str(stack.relative_to(ROOT / "stacks"))
    spec = ROOT / "examples" / stack.parent.name / "swarm.yaml"
    deployment = PulumiStack.init(engine_on(cluster, tmp_path), cluster, stack, node_image, spec)
    try:
        deployed, up = deployment.up()
        swarm = Swarm.of(cluster, deployed)
        assert ready(cluster, swarm.namespace), "pulumi up returned before every StatefulSet was ready"
        assert_exactly_the_plan_is_live(cluster, deployment)
        leader, leader_id = leader_pod(swarm)
        print(f"{name}: pulumi up {up.seconds:.0f} s ({swarm.replicas} pods ready), one leader")
        _survives_its_leader(cluster, swarm, name, leader, leader_id)
        deployment.engine.pulumi(deployment.folder, "preview", "--expect-no-changes")
        assert_no_secret_in_the_state(deployment, deployed)
        destroy_and_check(cluster, deployment)
    finally:
        delete_manifests(cluster, stack)  # what a failed test left; nothing after a destroy


def _survives_its_leader(cluster: Paths, swarm: Swarm, name: str, leader: Pod, leader_id: int) -> None:
    signer = swarm.signer(leader, leader_id)
    written = {f"e2e/{i}": f"value-{i}".encode() for i in range(WRITES)}
    for key, value in written.items():
        assert swarm.put(signer, key, value).applied
    _, before = wait_for(f"{name}: a settled leader", swarm.settled_leader)
    kubectl(cluster, "delete", "pod", leader.name, "-n", swarm.namespace, "--wait=false")
    # A leader of a later term: another voter's, or, when the StatefulSet brings the pod
    # back within an election timeout, the deleted pod's own (sovereign, 500-1000 ms).
    new_leader = wait_for(f"{name}: a leader after the deleted one", lambda: _later_leader(swarm, before.term))
    for key, value in written.items():
        got = swarm.get(key)
        assert got.found and got.value == value, f"{key} lost after deleting the leader pod"
    assert swarm.put(signer, "e2e/after", b"after").applied
    wait_for(f"{name}: the deleted pod back and ready", lambda: ready(cluster, swarm.namespace))
    wait_for(f"{name}: the deleted pod back in the swarm", swarm.settled_leader)
    print(f"{name}: new leader {new_leader} after deleting {leader.name}; {WRITES} writes kept")


def _later_leader(swarm: Swarm, term: int) -> str | None:
    settled = swarm.settled_leader()
    return settled[0] if settled is not None and settled[1].term > term else None


def test_a_stranger_pod_is_refused(cluster: Paths, node_image: str) -> None:
    """Pods that look like laptop's but are not its StatefulSet's: one in its namespace named like
    a replica beyond the count, one in another namespace under a service account of the same
    name and a replica's name. Each runs the real daemon with the swarm's node.json and its own
    key and asks to join: the first, which the swarm's NetworkPolicies let through (it carries the
    swarm's label), is refused by admission; the second never reaches the swarm (the policies
    admit peers from the swarm's own namespace only). The membership stays the StatefulSet's pods."""
    stack = ROOT / "stacks/laptop/dev"
    swarm = Swarm.of(cluster, apply_manifests(cluster, stack, node_image))
    objects = stack_objects(stack)
    template = next(o for o in objects if o["kind"] == "StatefulSet")["spec"]["template"]
    config_maps = [o for o in objects if o["kind"] == "ConfigMap"]
    try:
        wait_for("laptop ready", lambda: ready(cluster, swarm.namespace))
        wait_for("laptop settled", swarm.settled_leader)
        kubectl(cluster, "create", "namespace", "stranger")
        kubectl(cluster, "label", "namespace", "stranger", "pod-security.kubernetes.io/enforce=restricted")
        kubectl(cluster, "create", "serviceaccount", "laptop-node", "-n", "stranger")
        strangers = [("laptop-agents-3", swarm.namespace), ("laptop-agents-1", "stranger")]
        for name, namespace in strangers:
            kube.apply(cluster, _stranger(name, namespace, template, config_maps, node_image), manager="e2e-stranger")
        in_namespace, elsewhere = strangers
        # A new pod's first packets can meet the firewall before kube-router has added its address
        # to the policies' sets ("transport error"); the daemon asks again, and then admission answers.
        log = wait_for(f"{in_namespace[0]} refused by admission", _log_with(cluster, *in_namespace, "join refused"))
        assert "PermissionDenied" in log and "is not controlled by StatefulSet laptop-agents" in log, log
        log = wait_for(f"{elsewhere[0]} in {elsewhere[1]} asking to join", _log_with(cluster, *elsewhere, "join not"))
        assert "PermissionDenied" not in log and "admitted" not in log, log
        _, status = wait_for("laptop settled", swarm.settled_leader)
        assert sorted(m.name for m in status.members) == ["laptop-agents-0", "laptop-agents-1", "laptop-agents-2"]
    finally:
        kube.kubectl(cluster, "delete", "namespace", "stranger", "--wait=true", "--timeout=300s", check=False)
        delete_manifests(cluster, stack)


def _log_with(paths: Paths, name: str, namespace: str, text: str) -> Callable[[], str | None]:
    """A probe: the pod's log once it contains `text`."""

    def probe() -> str | None:
        done = kube.kubectl(paths, "logs", name, "-n", namespace, check=False)
        return done.stdout if text in done.stdout else None

    return probe


def _stranger(
    name: str, namespace: str, template: dict[str, Any], config_maps: list[dict[str, Any]], image: str
) -> list[dict[str, Any]]:
    """A bare pod with the StatefulSet's pod spec (so its own key, in an emptyDir) and, in another
    namespace, copies of the swarm's ConfigMaps; labelled with the swarm, owned by nothing."""
    shaped = fit_to_cluster({"kind": "StatefulSet", "spec": {"template": copy.deepcopy(template)}}, image, NO_API)
    spec = shaped["spec"]["template"]["spec"]
    spec["volumes"].append({"name": "data", "emptyDir": {}})
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        # Not the pool's selector: the StatefulSet would adopt a pod that matches it (and delete
        # one beyond its count); a stranger is one it does not own.
        "metadata": {"name": name, "namespace": namespace, "labels": {"pyagent.dev/swarm": "laptop"}},
        "spec": spec,
    }
    if namespace != "stranger":
        return [pod]
    copies = [{**c, "metadata": {"name": c["metadata"]["name"], "namespace": namespace}} for c in config_maps]
    return [*copies, pod]


TOOLBOX_SECURITY = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "runAsUser": 65534,
    "runAsGroup": 65534,
    "seccompProfile": {"type": "RuntimeDefault"},
}


def _toolbox(name: str, namespace: str, labels: dict[str, str]) -> dict[str, Any]:
    """A pod with busybox (nc, timeout) that only waits, to connect from."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 0,
            "containers": [
                {
                    "name": "toolbox",
                    "image": versions.TEST_IMAGE,
                    "imagePullPolicy": "Never",
                    "command": ["sleep", "3600"],
                    "securityContext": TOOLBOX_SECURITY,
                }
            ],
        },
    }


def _connects(paths: Paths, namespace: str, pod: str, ip: str, port: int) -> bool:
    """Whether a TCP connection from the pod to ip:port is established. nc gives up connecting after
    5 s ("timed out", exit 1); a connection it made stays open until `timeout` stops it (exit 143)."""
    script = f"timeout 10 nc -w 5 {ip} {port} </dev/null; echo exit=$?"
    done = kube.kubectl(paths, "-n", namespace, "exec", pod, "--", "sh", "-c", script, check=False)
    out = done.stdout + done.stderr
    assert "exit=" in out, out
    return "exit=143" in out or "exit=0" in out


def test_the_firewall_refuses_what_the_policies_deny(cluster: Paths, node_image: str) -> None:
    """The stacks' NetworkPolicies, enforced by kube-router: laptop forms through its own policies
    (DNS, peer ports, the voters' API server egress), and then, towards a member's gRPC port, a pod
    with the swarm's label in its namespace connects, while a pod there without it (default deny,
    egress) and a pod in another namespace (ingress from the swarm's namespace only) are refused."""
    stack = ROOT / "stacks/laptop/dev"
    swarm = Swarm.of(cluster, apply_manifests(cluster, stack, node_image))
    try:
        wait_for("laptop ready", lambda: ready(cluster, swarm.namespace))
        leader, _ = leader_pod(swarm)
        kubectl(cluster, "create", "namespace", "outsider")
        kubectl(cluster, "label", "namespace", "outsider", "pod-security.kubernetes.io/enforce=restricted")
        probes = {
            "peer": (swarm.namespace, {"pyagent.dev/swarm": swarm.name}),
            "unlabelled": (swarm.namespace, {}),
            "outsider": ("outsider", {}),
        }
        kube.apply(cluster, [_toolbox(n, ns, labels) for n, (ns, labels) in probes.items()], manager="e2e-firewall")
        for name, (namespace, _) in probes.items():
            kubectl(cluster, "-n", namespace, "wait", "--for=condition=Ready", f"pod/{name}", "--timeout=300s")
        reached = {name: _connects(cluster, ns, name, leader.ip, swarm.grpc_port) for name, (ns, _) in probes.items()}
        assert reached == {"peer": True, "unlabelled": False, "outsider": False}
        # the host (the kubelet's probes, this test's gRPC client) stays allowed, as on any node
        wait_for("laptop settled", swarm.settled_leader)
    finally:
        for name, (namespace, _) in probes.items():
            kube.kubectl(cluster, "-n", namespace, "delete", "pod", name, "--wait=false", check=False)
        kube.kubectl(cluster, "delete", "namespace", "outsider", "--wait=true", "--timeout=300s", check=False)
        delete_manifests(cluster, stack)


# A firewall rule the laptop example does not have: its researchers' egress to an internal service.
SEARCH_EGRESS = {
    "name": "search-egress",
    "from": {"core": "researcher"},
    "to": {"cidrs": ["10.20.0.0/16"]},
    "ports": [{"port": 443}],
    "reason": "the internal search service",
}


def _laptop_spec(tmp: Path, replicas: int, rules: list[dict[str, Any]]) -> Path:
    """What an operator does: edit laptop's spec (the pool's `replicas`, `firewall.rules`) and compile
    it again. Returns the spec file; its stack is in `<spec folder>/stacks/laptop/dev`."""
    spec_dir = tmp / f"laptop-{replicas}-{len(rules)}"
    shutil.copytree(ROOT / "examples/laptop", spec_dir)
    spec = spec_dir / "swarm.yaml"
    text = spec.read_text()
    assert text.count("replicas: 3\n") == 1, "the laptop example's one pool is expected at 3 replicas"
    assert "\nfirewall:" not in text, "the laptop example is expected without firewall rules"
    text = text.replace("replicas: 3\n", f"replicas: {replicas}\n")
    if rules:
        text += "\n" + yaml.safe_dump({"firewall": {"rules": rules}}, sort_keys=False)
    spec.write_text(text)
    out = spec_dir / "stacks"
    argv = [str(ROOT / ".venv/bin/pyagent"), "compile", str(spec), "--env", "dev", "--out", str(out)]
    subprocess.run(argv, check=True, capture_output=True, timeout=300)
    return spec


def _diff(base: Path, head: Path) -> dict[str, set[str]]:
    """`pyagent diff` of two specs (dev): logical names added, changed, removed."""
    argv = [str(ROOT / ".venv/bin/pyagent"), "diff", str(base), str(head), "--env", "dev", "--format", "json"]
    done = subprocess.run(argv, check=True, capture_output=True, text=True, timeout=300)
    (env,) = json.loads(done.stdout)["environments"]
    return {what: {o["logicalName"] for o in env[what]} for what in ("added", "changed", "removed")}


def _members(swarm: Swarm) -> list[str] | None:
    settled = swarm.settled_leader()
    return sorted(m.name for m in settled[1].members) if settled is not None else None


def _views(swarm: Swarm) -> dict[str, str]:
    return {
        name: f"{s.role} of term {s.term}, leader {s.leader_id}, members {[m.name for m in s.members]}"
        for name, s in swarm.statuses().items()
    }


def _deploy_change(cluster: Paths, deployment: PulumiStack, base: Path, head: Path, replicas: int) -> Swarm:
    """The GitOps step: the spec changed from `base` to `head`; `pulumi preview` of the recompiled
    stack plans exactly what `pyagent diff` says (added objects created, changed ones updated or
    replaced, removed ones deleted, nothing else touched); `pulumi up`; the membership follows."""
    said = _diff(base, head)
    deployment.recompiled(head.parent / "stacks" / "laptop" / "dev", head)
    planned = deployment.changes()
    assert planned.get("create", set()) == said["added"], planned
    assert planned.get("update", set()) | planned.get("replace", set()) == said["changed"], planned
    assert planned.get("delete", set()) == said["removed"], planned
    deployed, up = deployment.up()
    swarm = Swarm.of(cluster, deployed)
    assert ready(cluster, swarm.namespace), "pulumi up returned before the StatefulSet was ready"
    expected = [f"laptop-agents-{i}" for i in range(replicas)]
    try:
        wait_for(f"the membership at {expected}", lambda: True if _members(swarm) == expected else None)
    except AssertionError as timed_out:
        raise AssertionError(f"{timed_out}; each pod's view: {_views(swarm)}") from None
    ops = ", ".join(f"{op} {sorted(names)}" for op, names in sorted(planned.items()))
    print(f"laptop/dev: pulumi up of {replicas} replicas ({ops}) {up.seconds:.0f} s; members {expected}")
    return swarm


def test_a_spec_change_deployed_by_pulumi_changes_what_pyagent_diff_said(
    cluster: Paths, node_image: str, pulumi_tools: None, tmp_path: Path
) -> None:
    """laptop's pool at 3 replicas, then 5 with a new firewall rule, then 2 without it, each spec
    compiled and deployed with `pulumi up` as an operator would: the engine changes exactly the
    objects `pyagent diff` named, the new pods join the Raft membership by themselves, the leader
    removes the members the scale-down took away, and no acknowledged write is lost on the way."""
    specs = [
        _laptop_spec(tmp_path, 3, []),
        _laptop_spec(tmp_path, 5, [SEARCH_EGRESS]),
        _laptop_spec(tmp_path, 2, []),
    ]
    first_stack = specs[0].parent / "stacks" / "laptop" / "dev"
    assert (first_stack / "plan.json").read_bytes() == (ROOT / "stacks/laptop/dev/plan.json").read_bytes()
    deployment = PulumiStack.init(engine_on(cluster, tmp_path), cluster, first_stack, node_image, specs[0])
    try:
        deployed, _ = deployment.up()
        swarm = Swarm.of(cluster, deployed)
        wait_for("laptop settled", swarm.settled_leader)
        # commands are signed by a member's key: laptop-agents-0 stays a member throughout
        first = "laptop-agents-0"
        signer = swarm.signer(swarm.pods()[first], swarm.statuses()[first].node_id)
        written: dict[str, bytes] = {}
        for base, head, replicas in ((specs[0], specs[1], 5), (specs[1], specs[2], 2)):
            key = f"e2e/before-{replicas}"
            assert swarm.put(signer, key, key.encode()).applied
            written[key] = key.encode()
            swarm = _deploy_change(cluster, deployment, base, head, replicas)
            for key, value in written.items():
                got = swarm.get(key)
                assert got.found and got.value == value, f"{key} lost when scaling to {replicas}"
        # a write commits with the two voters left
        assert swarm.put(signer, "e2e/after", b"after").applied
        deployment.engine.pulumi(deployment.folder, "preview", "--expect-no-changes")
        destroy_and_check(cluster, deployment)
    finally:
        delete_manifests(cluster, first_stack)

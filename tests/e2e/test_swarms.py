"""Every compiled Kubernetes stack of the examples, applied to the real test cluster
(tests/e2e/cluster) and run from the real node image (native/image): each swarm forms by itself,
elects a leader, commits writes, survives deleting the leader pod with no acknowledged write
lost, and refuses pods that are not its own. Runs only with PYAGENT_E2E=1 (`make e2e`), as root.

What a single 2-core node cannot offer is adapted, and only that (`fit_to_cluster`): the pods'
CPU, memory and GPU requests are scaled down, their placement (regions, zones, GPU models) is
dropped, every pod runs the node image built here (the examples' production references name
registries that do not exist), and the voters' egress to the API server names this cluster's
API server (`firewall.kubernetesApi`, which an operator sets to their cluster's: here it is the VM's
own address and a port chosen at start). Every other field is applied as compiled, with
server-side apply: namespaces enforcing the `restricted` Pod Security Standard, RBAC, projected
tokens, ConfigMaps, Services, disruption budgets and NetworkPolicies, enforced by kube-router's
firewall (docs/cluster.md): every swarm forms through its own policies, and the firewall test
shows a connection they deny refused.
"""

from __future__ import annotations

import copy
import json
import os
import secrets
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

LOCK = ROOT / "native/image/pyagent-node.lock.json"
ARCHIVE = ROOT / "native/target/image/pyagent-node.oci.tar"
STACKS = sorted(p.parent for p in (ROOT / "stacks").glob("*/*/manifests"))
SMALL = {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}}
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


def kubectl(paths: Paths, *args: str, input: str | None = None) -> str:
    done = kube.kubectl(paths, *args, input=input, check=False)
    assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
    return done.stdout


def kubectl_json(paths: Paths, *args: str) -> Any:
    return json.loads(kubectl(paths, *args, "-o", "json"))


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


@dataclass(frozen=True)
class ApiServer:
    """The API server's address and port as pods reach it (behind the `kubernetes` Service)."""

    ip: str
    port: int


def api_server(paths: Paths) -> ApiServer:
    slices = kubectl_json(
        paths, "get", "endpointslices", "-n", "default", "-l", "kubernetes.io/service-name=kubernetes"
    )
    endpoint = slices["items"][0]
    return ApiServer(endpoint["endpoints"][0]["addresses"][0], endpoint["ports"][0]["port"])


def _source(obj: dict[str, Any]) -> str | None:
    """The spec field an object was rendered from (pyagent's annotation)."""
    annotations: dict[str, str] = obj.get("metadata", {}).get("annotations", {})
    return annotations.get("pyagent.dev/source")


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


def _secret_sources(volume: dict[str, Any]) -> list[tuple[str, list[dict[str, str]]]]:
    """(Secret name, its items) of a volume: a secret volume, or the secrets of a projected one."""
    if "secret" in volume:
        return [(volume["secret"]["secretName"], volume["secret"].get("items", []))]
    sources = volume.get("projected", {}).get("sources", [])
    return [(src["secret"]["name"], src["secret"].get("items", [])) for src in sources if "secret" in src]


def operator_secrets(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Secrets a stack refers to and never renders (the soul's key, `sovereignty.soul.secretRef`;
    the model endpoints' API keys, `cores.<core>.model.apiKey`): made here as their operator would,
    with a fresh random value."""
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
            "stringData": {key: secrets.token_hex(32) for key in sorted(keys)},
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
    kube.kubectl(paths, "wait", "--for=condition=Established", f"crd/{name}", "--timeout=120s")


def apply_stack(paths: Paths, stack: Path, image: str) -> Swarm:
    api = api_server(paths)
    objects = [fit_to_cluster(o, image, api) for o in stack_objects(stack)]
    install_custom_resource_definitions(paths, objects)
    kube.apply(paths, objects, manager="pyagent")
    if secrets_needed := operator_secrets(objects):
        kube.apply(paths, secrets_needed, manager="e2e-operator")
    namespace = next(o["metadata"]["name"] for o in objects if o["kind"] == "Namespace")
    sets = [o for o in objects if o["kind"] == "StatefulSet"]
    config = json.loads(node_config_map(objects)["data"]["node.json"])
    replicas = sum(s["spec"]["replicas"] for s in sets)
    return Swarm(paths, config["swarm"], namespace, config["ports"]["grpc"], replicas)


def remove_stack(paths: Paths, stack: Path) -> None:
    for obj in stack_objects(stack):
        if obj["kind"] in ("Namespace", "ClusterRoleBinding"):
            name = obj["metadata"]["name"]
            kube.kubectl(paths, "delete", obj["kind"].lower(), name, "--wait=true", "--timeout=300s", check=False)


def leader_pod(swarm: Swarm) -> tuple[Pod, int]:
    name, status = wait_for(f"{swarm.name}: a settled leader", swarm.settled_leader)
    return swarm.pods()[name], status.node_id


@pytest.mark.parametrize("stack", STACKS, ids=[str(s.relative_to(ROOT / "stacks")) for s in STACKS])
def test_the_swarm_forms_commits_and_survives_its_leader(cluster: Paths, node_image: str, stack: Path) -> None:
    started = time.monotonic()
    swarm = apply_stack(cluster, stack, node_image)
    try:
        wait_for(f"{stack}: every StatefulSet ready", lambda: ready(cluster, swarm.namespace))
        leader, leader_id = leader_pod(swarm)
        took = time.monotonic() - started
        print(f"{stack.relative_to(ROOT)}: {swarm.replicas} pods ready, one leader, {took:.0f} s after apply")
        signer = swarm.signer(leader, leader_id)
        written = {f"e2e/{i}": f"value-{i}".encode() for i in range(WRITES)}
        for key, value in written.items():
            assert swarm.put(signer, key, value).applied
        _, before = wait_for(f"{stack}: a settled leader", swarm.settled_leader)
        kubectl(cluster, "delete", "pod", leader.name, "-n", swarm.namespace, "--wait=false")
        # A leader of a later term: another voter's, or, when the StatefulSet brings the pod
        # back within an election timeout, the deleted pod's own (sovereign, 500-1000 ms).
        new_leader = wait_for(f"{stack}: a leader after the deleted one", lambda: _later_leader(swarm, before.term))
        for key, value in written.items():
            got = swarm.get(key)
            assert got.found and got.value == value, f"{key} lost after deleting the leader pod"
        assert swarm.put(signer, "e2e/after", b"after").applied
        wait_for(f"{stack}: the deleted pod back and ready", lambda: ready(cluster, swarm.namespace))
        wait_for(f"{stack}: the deleted pod back in the swarm", swarm.settled_leader)
        print(f"{stack.relative_to(ROOT)}: new leader {new_leader} after deleting {leader.name}; {WRITES} writes kept")
    finally:
        remove_stack(cluster, stack)


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
    swarm = apply_stack(cluster, stack, node_image)
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
        remove_stack(cluster, stack)


def _log_with(paths: Paths, name: str, namespace: str, text: str) -> Callable[[], str | None]:
    """A probe: the pod's log once it contains `text`."""

    def probe() -> str | None:
        done = kube.kubectl(paths, "logs", name, "-n", namespace, check=False)
        return done.stdout if text in done.stdout else None

    return probe


NO_API = ApiServer("", 0)  # for objects that are not the API server's egress rule


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
    swarm = apply_stack(cluster, stack, node_image)
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
        remove_stack(cluster, stack)


def _compile_with_replicas(tmp: Path, replicas: int) -> Path:
    """What an operator does to scale: edit the pool's `replicas` in the spec and compile again."""
    spec_dir = tmp / f"laptop-{replicas}"
    shutil.copytree(ROOT / "examples/laptop", spec_dir)
    spec = spec_dir / "swarm.yaml"
    text = spec.read_text()
    assert text.count("replicas: 3\n") == 1, "the laptop example's one pool is expected at 3 replicas"
    spec.write_text(text.replace("replicas: 3\n", f"replicas: {replicas}\n"))
    argv = [str(ROOT / ".venv/bin/pyagent"), "compile", str(spec), "--env", "dev", "--out", str(tmp / "stacks")]
    subprocess.run(argv, check=True, capture_output=True, timeout=300)
    return tmp / "stacks" / "laptop" / "dev"


def _members(swarm: Swarm) -> list[str] | None:
    settled = swarm.settled_leader()
    return sorted(m.name for m in settled[1].members) if settled is not None else None


def _views(swarm: Swarm) -> dict[str, str]:
    return {
        name: f"{s.role} of term {s.term}, leader {s.leader_id}, members {[m.name for m in s.members]}"
        for name, s in swarm.statuses().items()
    }


def _scale(cluster: Paths, tmp: Path, replicas: int, image: str) -> Swarm:
    started = time.monotonic()
    swarm = apply_stack(cluster, _compile_with_replicas(tmp, replicas), image)
    expected = [f"laptop-agents-{i}" for i in range(replicas)]
    wait_for(f"laptop at {replicas} replicas", lambda: ready(cluster, swarm.namespace))
    try:
        wait_for(f"the membership at {expected}", lambda: True if _members(swarm) == expected else None)
    except AssertionError as timed_out:
        raise AssertionError(f"{timed_out}; each pod's view: {_views(swarm)}") from None
    print(f"laptop/dev: {replicas} members {time.monotonic() - started:.0f} s after applying the new spec")
    return swarm


def test_scaling_the_spec_changes_the_membership(cluster: Paths, node_image: str, tmp_path: Path) -> None:
    """laptop's pool at 3, then 5, then 2 replicas in its spec, each compiled and applied as an
    operator would: the new pods join the Raft membership by themselves, the leader removes the
    members the scale-down took away, and no acknowledged write is lost on the way."""
    stack = ROOT / "stacks/laptop/dev"
    swarm = apply_stack(cluster, stack, node_image)
    try:
        wait_for("laptop ready", lambda: ready(cluster, swarm.namespace))
        wait_for("laptop settled", swarm.settled_leader)
        # commands are signed by a member's key: laptop-agents-0 stays a member throughout
        first = "laptop-agents-0"
        signer = swarm.signer(swarm.pods()[first], swarm.statuses()[first].node_id)
        written: dict[str, bytes] = {}
        for replicas in (5, 2):
            key = f"e2e/before-{replicas}"
            assert swarm.put(signer, key, key.encode()).applied
            written[key] = key.encode()
            swarm = _scale(cluster, tmp_path, replicas, node_image)
            for key, value in written.items():
                got = swarm.get(key)
                assert got.found and got.value == value, f"{key} lost when scaling to {replicas}"
        # a write commits with the two voters left
        assert swarm.put(signer, "e2e/after", b"after").applied
    finally:
        remove_stack(cluster, stack)

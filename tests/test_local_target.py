"""The `local` target the compiler renders: deterministic loopback ports, node configs, data
dirs that are git-ignored and never make `pyagent compile --check` stale."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pyagent_compile.commands import local as local_cmd
from pyagent_compile.contracts.work import read_work_file
from pyagent_compile.pipeline import compile_spec
from pyagent_compile.plan.local import PORT_BASE, SLOT_WIDTH, SLOTS, port_slot
from pyagent_compile.render.local import render_local
from pyagent_compile.runtime.local import daemon, swarm
from pyagent_compile.runtime.local.stack import LocalStack, StackNode, load_stack
from pyagent_compile.runtime.local.swarm import NodeView
from tests.conftest import EXAMPLES, ROOT, Run
from tests.integration import harness


def _local(example: str) -> dict[str, str]:
    spec = ROOT / "examples" / example / "swarm.yaml"
    result = compile_spec(spec, f"examples/{example}/swarm.yaml")
    assert result.ok and result.local is not None
    return render_local(result.local)


def test_examples_get_disjoint_port_ranges() -> None:
    ranges = []
    for example in EXAMPLES:
        files = _local(example)
        ports = [p for n in json.loads(files["local.json"])["nodes"] for p in n["ports"].values()]
        assert len(set(ports)) == len(ports), f"{example}: two listeners share a port"
        assert all(PORT_BASE <= p < PORT_BASE + SLOTS * SLOT_WIDTH < 32768 for p in ports)
        ranges.append(set(ports))
    for i, a in enumerate(ranges):
        for b in ranges[i + 1 :]:
            assert not a & b, "two examples' local targets would collide"


def test_ports_are_a_documented_function_of_the_name() -> None:
    assert port_slot("laptop") == 20000  # docs/local-and-raft.md shows the laptop's ports
    files = _local("laptop")
    nodes = json.loads(files["local.json"])["nodes"]
    assert [n["ports"]["raft"] for n in nodes] == [20000, 20004, 20008]
    assert [n["ports"]["grpc"] for n in nodes] == [20001, 20005, 20009]


def test_rendering_is_deterministic() -> None:
    assert _local("research") == _local("research")


def test_node_config_is_the_daemon_contract() -> None:
    files = _local("laptop")
    assert sorted(files) == [
        ".gitignore",
        "README.md",
        "dashboards/pyagent-laptop-local.json",
        "local.json",
        "nodes/agents-0.json",
        "nodes/agents-1.json",
        "nodes/agents-2.json",
        "prometheus.yml",
        "work.json",
    ]
    config = json.loads(files["nodes/agents-1.json"])
    # Every node of the pool (voter, worker) runs tasks, with work.json beside local.json.
    assert config["work"]["file"] == "../work.json" and config["work"]["maxTasks"] == 2
    assert config["work"]["capacity"] == {"cpuMillis": 1000, "memoryBytes": 2 * 2**30, "gpuMemoryBytes": 0}
    work = json.loads(files["work.json"])
    assert work["apiVersion"] == "pyagent.dev/work/v1alpha1"
    assert work["manifests"]["triage"]["steps"][0]["timeoutMs"] == 60_000
    # Each core's MCP servers, for the node's `mcp` steps (read by pyagent-mcp's ToolServer).
    assert work["tools"] == {
        "coder": [
            {
                "name": "git",
                "transport": "stdio",
                "command": ["mcp-server-git", "--repository", "/workspace"],
                "url": None,
                "port": None,
            }
        ],
        "researcher": [
            {"name": "fetch", "transport": "stdio", "command": ["mcp-server-fetch"], "url": None, "port": None}
        ],
    }
    assert read_work_file(files["work.json"]).tools["coder"][0].command[0] == "mcp-server-git"
    membership = config["membership"]
    assert membership["mode"] == "static" and membership["nodeId"] == 2 and membership["name"] == "agents-1"
    assert config["dataDir"] == "../data/agents-1"  # relative to the config file's folder
    assert config["listen"] == {
        "grpc": "127.0.0.1:20005",
        "metrics": "127.0.0.1:20006",
        "raft": "127.0.0.1:20004",
        "mesh": "127.0.0.1:20007",
    }
    # The mesh dials the other members first (docs/mesh.md).
    assert config["discovery"] == {
        "mode": "static",
        "dns": None,
        "seeds": ["127.0.0.1:20003", "127.0.0.1:20011"],
        "neighbours": 8,
    }
    assert [m["nodeId"] for m in membership["members"]] == [1, 2, 3]
    assert all(m["voter"] and m["publicKey"] is None for m in membership["members"])
    assert files[".gitignore"].endswith("/data/\n")


def test_local_uses_dev_values_else_the_base() -> None:
    laptop = compile_spec(ROOT / "examples/laptop/swarm.yaml", "x")
    assert laptop.local is not None and laptop.local.source_environment == "dev"
    sovereign = compile_spec(ROOT / "examples/sovereign/swarm.yaml", "x")  # staging and prod only
    assert sovereign.local is not None and sovereign.local.source_environment == "default"
    # Kubernetes-only settings are dropped: no jurisdiction, no DNS discovery
    config = render_local(sovereign.local)["nodes/frankfurt-0.json"]
    assert '"jurisdiction": null' in config and '"mode": "static"' in config


def test_only_local(pyagent: Callable[..., Run], tmp_path: Path) -> None:
    run = pyagent("compile", str(ROOT / "examples/laptop/swarm.yaml"), "--env", "local", "--out", str(tmp_path))
    assert run.code == 0, run.err
    assert sorted(p.name for p in tmp_path.joinpath("laptop").iterdir()) == ["local"]


def test_data_dir_does_not_make_check_stale(pyagent: Callable[..., Run], tmp_path: Path) -> None:
    spec = str(ROOT / "examples/laptop/swarm.yaml")
    assert pyagent("compile", spec, "--out", str(tmp_path)).code == 0
    data = tmp_path / "laptop/local/data/agents-0"
    data.mkdir(parents=True)
    (data / "identity.key").write_text("secret\n")
    (data / "node.log").write_text("log\n")
    run = pyagent("compile", spec, "--out", str(tmp_path), "--check")
    assert run.code == 0, run.err
    assert pyagent("compile", spec, "--out", str(tmp_path)).code == 0
    assert (data / "identity.key").exists(), "compile never deletes runtime files"


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_data_dirs_are_git_ignored() -> None:
    path = "stacks/laptop/local/data/agents-0/identity.key"
    done = subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT, check=False)
    assert done.returncode == 0


def test_reserved_and_too_large(tmp_path: Path) -> None:
    base = (ROOT / "examples/laptop/swarm.yaml").read_text()
    # Beside the example's scenarios and the files they read, which its verify step names.
    tmp_path = tmp_path / "laptop"
    shutil.copytree(ROOT / "examples/laptop", tmp_path)
    reserved = tmp_path / "reserved.yaml"
    reserved.write_text(base.replace("  dev: {}", "  local: {}"))
    result = compile_spec(reserved, "reserved.yaml")
    assert [d.code for d in result.diagnostics] == ["PA602"]
    assert result.diagnostics[0].span is not None and result.diagnostics[0].span.line > 1
    large = tmp_path / "large.yaml"
    large.write_text(base.replace("replicas: 3", "replicas: 51"))
    result = compile_spec(large, "large.yaml")
    assert [(d.code, d.severity.value) for d in result.diagnostics] == [("PA601", "warning")]
    assert result.ok and result.local is None  # the Kubernetes stacks still compile
    assert all(env.plan is not None for env in result.environments)


def test_up_status_down_report_coded_diagnostics(pyagent: Callable[..., Run], tmp_path: Path) -> None:
    for command in (["up", "--local"], ["status"], ["down"]):
        run = pyagent(*command, str(tmp_path))
        assert run.code == 2 and "PA610" in run.err and "Traceback" not in run.err


@pytest.fixture
def own_stack(tmp_path: Path) -> Iterator[LocalStack]:
    """A compiled 3-node local stack on ports that no other test, suite or running swarm (such as
    the demo's, which the README leaves running) holds."""
    name = harness.unique_name("own", 3)
    try:
        yield harness.compile_local(tmp_path, name, 3)
    finally:
        harness.release_name(name)


def test_up_reports_a_missing_daemon(
    pyagent: Callable[..., Run], own_stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYAGENT_NODE_BIN", str(own_stack.folder / "nope"))
    run = pyagent("up", "--local", str(own_stack.folder))
    assert run.code == 1 and "PA611" in run.err, run.err


def test_up_reports_a_port_in_use(pyagent: Callable[..., Run], own_stack: LocalStack) -> None:
    """A port of the swarm held by another process: PA612 names the node, the port and how to find
    the holder, and nothing is started."""
    node = own_stack.nodes[1]
    port = node.ports["grpc"]
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        run = pyagent("up", "--local", str(own_stack.folder))
    assert run.code == 1, run.err
    assert f"error[PA612]: node {node.name}: grpc port 127.0.0.1:{port} is in use" in run.err
    assert f"ss -ltnp 'sport = :{port}'" in run.err and "Traceback" not in run.err
    assert not (own_stack.data_root / "members.json").exists(), "nothing is prepared or started"


def test_the_local_build_is_where_find_daemon_looks() -> None:
    """native/.cargo/config.toml decides where `cargo build` (run in native/) puts the daemon."""
    config = tomllib.loads((ROOT / "native/.cargo/config.toml").read_text())
    built = Path("native") / config["build"]["target-dir"] / "release" / "pyagent-node"
    assert built == daemon.RELEASE_BIN
    assert "--release" in daemon.BUILD_COMMAND and "--manifest-path" not in daemon.BUILD_COMMAND


def test_a_relative_daemon_path_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The nodes start in their stack folder, so a relative $PYAGENT_NODE_BIN must not reach them."""
    binary = tmp_path / "bin" / "pyagent-node"
    binary.parent.mkdir()
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYAGENT_NODE_BIN", "bin/pyagent-node")
    found, diag = daemon.find_daemon(build=False)
    assert diag is None and found == binary.resolve() and found.is_absolute()


def test_the_daemon_build_shows_progress(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """cargo's `Compiling` lines are passed on as they come, and a quiet stretch (the daemon's own
    crate linking) still gives a line: the fake cargo waits until it has been reported on."""
    flag = tmp_path / "reported"
    cargo = tmp_path / "cargo"
    cargo.write_text(
        "#!/bin/sh\n"
        "echo '   Compiling serde v1.0.0' >&2\n"
        f"while [ ! -e {flag} ]; do sleep 0.01; done\n"
        "echo '   Compiling pyagent-node v0.1.0' >&2\n"
        "echo 'error: linking failed' >&2\n"
        "exit 101\n"
    )
    cargo.chmod(0o755)
    monkeypatch.setattr(daemon, "QUIET_SECONDS", 0.05)
    said: list[str] = []

    def report(line: str) -> None:
        said.append(line)
        if "still building" in line:
            flag.touch()

    code, tail = daemon.run_build([str(cargo)], tmp_path, report)
    assert code == 101 and tail.endswith("error: linking failed")
    compiling = [line.strip() for line in said if "Compiling" in line]
    assert compiling == ["Compiling serde v1.0.0", "Compiling pyagent-node v0.1.0"]
    first_quiet = next(i for i, line in enumerate(said) if "still building pyagent-node" in line)
    assert said.index("  Compiling serde v1.0.0") < first_quiet


def _view(node: StackNode, applied: int, commit: int, role: str = "Follower") -> NodeView:
    return NodeView(node.name, node.id, 100 + node.id, role, 3, 1, commit, applied)


def test_a_node_that_does_not_catch_up_is_lagging_and_one_that_does_is_not(own_stack: LocalStack) -> None:
    """`status` looks again at nodes that trail the leader's commit index: one that reaches the
    index of the first look (a follower under load) is fine, one that stays below it (a node the
    leader cannot bring back) is reported with how far behind it is."""
    lead, slow, stuck = own_stack.nodes
    views = [_view(lead, 500, 500, "Leader"), _view(slow, 480, 480), _view(stuck, 0, 0)]
    looks: dict[str, list[int]] = {slow.name: [490, 505], stuck.name: [0, 0, 0]}

    def look(node: StackNode) -> NodeView:
        applied = looks[node.name].pop(0) if len(looks[node.name]) > 1 else looks[node.name][0]
        return _view(node, applied, applied)

    assert swarm.lagging_nodes(own_stack, views, lead.id, look, timeout=0.5) == {stuck.name: 500}
    assert swarm.lagging_nodes(own_stack, views[:1], lead.id, look) == {}, "nobody behind: no second look"


def test_status_says_degraded_for_a_lagging_or_unready_node() -> None:
    views = [NodeView("a-0", 1, 10, "Leader", 2, 1, 9, 9, 1), NodeView("a-1", 2, 11, "Follower", 2, 1, 0, 0, 1)]
    text = local_cmd.status_table(views, 1, {"a-1": 9})
    assert text.splitlines()[-1] == "swarm DEGRADED: a-1 9 entries behind, not catching up"
    assert text.splitlines()[0].split()[-1] == "MESH" and text.splitlines()[1].split()[-1] == "1"
    assert local_cmd.status_table(views, 1, {}).splitlines()[-1] == "swarm healthy"
    # A node rejoining after damage answers and applies, and says it is not ready yet.
    rejoining = NodeView("a-1", 2, 11, "Follower", 2, 1, 9, 9, 1, "recovering: log corrupt after index 4")
    text = local_cmd.status_table([views[0], rejoining], 1, {})
    assert text.splitlines()[-1] == "swarm DEGRADED: a-1 recovering: log corrupt after index 4"


def test_every_rendered_local_json_is_read_back_by_the_runtime() -> None:
    """The contract between compiler and runtime: every local stack the examples compile to is
    read by the runtime's own loader into the same nodes the plan had."""
    for example in EXAMPLES:
        result = compile_spec(ROOT / "examples" / example / "swarm.yaml", f"examples/{example}/swarm.yaml")
        assert result.local is not None
        folder = ROOT / "stacks" / result.local.swarm / "local"
        stack, diag = load_stack(folder)
        assert stack is not None, diag
        assert [n.entry for n in stack.nodes] == list(result.local.nodes)
        assert all(n.config.is_file() and n.config.parent == folder / "nodes" for n in stack.nodes)


def test_a_local_json_that_breaks_the_contract_is_pa610(tmp_path: Path) -> None:
    good = json.loads((ROOT / "stacks/laptop/local/local.json").read_text())
    for broken in (
        {**good, "apiVersion": "pyagent.dev/local/v2"},
        {**good, "nodes": [{**good["nodes"][0], "dataDir": "/etc"}]},
        {**good, "nodes": [{**good["nodes"][0], "ports": [1, 2]}]},
        [good],
    ):
        (tmp_path / "local.json").write_text(json.dumps(broken))
        stack, diag = load_stack(tmp_path)
        assert stack is None and diag is not None and diag.code == "PA610", broken

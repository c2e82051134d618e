"""`pyagent tools lock` against real MCP servers from PyPI (mcp-server-time, mcp-server-git,
installed by .ci/install-mcp-servers.sh), and `validate` checking mcp steps against the lock."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jsonschema.validators import Draft202012Validator

from pyagent_compile.check.tools import JSON_TYPE_OF_VALUE, schema_types, type_accepted
from pyagent_compile.model.tools_lock import canonical_sha256
from tests.conftest import CLI, ROOT

SERVERS = ROOT / ".tools" / "mcp-venv" / "bin"
TEMPLATE = (ROOT / "tests" / "data" / "tools" / "swarm.yaml").read_text()
INSTALL = (ROOT / ".ci" / "install-mcp-servers.sh").read_text()


def pinned(name: str) -> str:
    match = re.search(rf"^{name}=(\S+)$", INSTALL, re.MULTILINE)
    assert match is not None
    return match.group(1)


@pytest.fixture(scope="module")
def servers() -> dict[str, str]:
    found = {name: SERVERS / f"mcp-server-{name}" for name in ("time", "git")}
    if not all(p.is_file() for p in found.values()):
        pytest.fail("the MCP servers are not installed: run `bash .ci/install-mcp-servers.sh` (make setup does)")
    return {name: str(p) for name, p in found.items()}


def write_spec(folder: Path, servers: dict[str, str], text: str = TEMPLATE) -> Path:
    spec = folder / "swarm.yaml"
    spec.write_text(text.replace("TIME_SERVER", servers["time"]).replace("GIT_SERVER", servers["git"]))
    return spec


def diagnostics(run_out: str) -> list[tuple[str, str, int, int]]:
    document = json.loads(run_out)
    return sorted(
        (d["code"], d["severity"], d["location"]["line"], d["location"]["col"])
        for d in document["diagnostics"]
        if d["location"]
    )


def line_col(text: str, needle: str, occurrence: int = 0) -> tuple[int, int]:
    """1-based line and column of a needle in a spec's text (the expected positions, computed)."""
    offset = -1
    for _ in range(occurrence + 1):
        offset = text.index(needle, offset + 1)
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def test_lock_records_both_servers_deterministically(tmp_path: Path, servers: dict[str, str], pyagent: CLI) -> None:
    spec = write_spec(tmp_path, servers)
    run = pyagent("tools", "lock", str(spec))
    assert run.code == 0, run.err
    lock_file = tmp_path / "swarm.tools.lock.json"
    first = lock_file.read_bytes()
    lock = json.loads(first)
    assert lock["lockVersion"] == 1
    by_tool = {s["tool"]: s for s in lock["servers"]}
    assert sorted(by_tool) == ["git", "time"]
    assert by_tool["time"]["server"] == {"name": "mcp-time", "version": pinned("MCP_SERVER_TIME_VERSION")}
    assert by_tool["git"]["server"] == {"name": "mcp-git", "version": pinned("MCP_SERVER_GIT_VERSION")}
    assert {"get_current_time", "convert_time"} == set(by_tool["time"]["tools"])
    assert {"git_status", "git_log", "git_commit", "git_diff"} <= set(by_tool["git"]["tools"])
    assert by_tool["time"]["source"] == {"transport": "stdio", "command": [servers["time"]]}
    for server in lock["servers"]:
        for tool in server["tools"].values():
            assert tool["inputSchemaSha256"] == canonical_sha256(tool["inputSchema"])
            assert tool["inputSchema"]["type"] == "object"
    status = by_tool["git"]["tools"]["git_status"]["inputSchema"]
    assert status["required"] == ["repo_path"]

    again = pyagent("tools", "lock", str(spec))
    assert again.code == 0 and "up to date" in again.err
    lock_file.unlink()
    assert pyagent("tools", "lock", str(spec)).code == 0
    assert lock_file.read_bytes() == first, "two runs must write the same bytes"
    assert pyagent("tools", "lock", "--locked", str(spec)).code == 0

    clean = pyagent("validate", str(spec), "--format", "json")
    assert clean.code == 0 and diagnostics(clean.out) == []


BAD_CALLS = """\
      - id: bad-method
        kind: mcp
        tool: git.git_stats
      - id: missing
        kind: mcp
        tool: time.convert_time
        arguments:
          time: "12:00"
          source_timezone: Europe/Paris
      - id: wrong-literal
        kind: mcp
        tool: git.git_log
        arguments:
          repo_path: .
          max_count: ten
      - id: wrong-binding
        kind: mcp
        tool: time.get_current_time
        inputs:
          timezone: inputs.count
      - id: ambiguous
        kind: mcp
        tool: git
      - id: extra
        kind: mcp
        tool: git.git_status
        arguments:
          repo_path: .
          repo_pth: .
"""


def test_mcp_steps_are_checked_against_the_lock(tmp_path: Path, servers: dict[str, str], pyagent: CLI) -> None:
    spec = write_spec(tmp_path, servers)
    assert pyagent("tools", "lock", str(spec)).code == 0
    text = TEMPLATE.replace("      zone: string\n", "      zone: string\n      count: int\n")
    text = text.replace("memory:\n", BAD_CALLS + "memory:\n")
    spec = write_spec(tmp_path, servers, text)
    text = spec.read_text()
    run = pyagent("validate", str(spec), "--format", "json")
    assert run.code == 1
    expected = sorted(
        [
            ("PA332", "error", *line_col(text, "git.git_stats")),
            ("PA333", "error", *line_col(text, "time.convert_time")),
            ("PA334", "error", *line_col(text, "ten")),
            ("PA334", "error", *line_col(text, "inputs.count")),
            ("PA338", "error", *line_col(text, "git\n      - id: extra")),
            ("PA335", "warning", *line_col(text, "repo_pth")),
        ]
    )
    assert diagnostics(run.out) == expected
    messages = {d["code"]: d for d in json.loads(run.out)["diagnostics"]}
    assert 'did you mean "git_status"?' in messages["PA332"]["help"]
    assert "'target_timezone'" in messages["PA333"]["message"]
    assert 'did you mean "repo_path"?' in messages["PA335"]["help"]


def test_locked_detects_drift(tmp_path: Path, servers: dict[str, str], pyagent: CLI) -> None:
    spec = write_spec(tmp_path, servers)
    assert pyagent("tools", "lock", str(spec)).code == 0
    lock_file = tmp_path / "swarm.tools.lock.json"
    original = lock_file.read_text()
    # As if the committed lock was made against an older mcp-server-time.
    older = original.replace(f'"version": "{pinned("MCP_SERVER_TIME_VERSION")}"', '"version": "2025.1.1"')
    assert older != original
    lock_file.write_text(older)
    assert pyagent("validate", str(spec)).code == 0  # still a valid lock to check against
    run = pyagent("tools", "lock", "--locked", str(spec), "--format", "json")
    assert run.code == 1
    [drift] = json.loads(run.out)["diagnostics"]
    assert drift["code"] == "PA337"
    assert f"mcp-time 2025.1.1 -> mcp-time {pinned('MCP_SERVER_TIME_VERSION')}" in drift["help"]
    assert lock_file.read_text() == older, "--locked writes nothing"

    # The spec drops the git server: --locked names it; compile-time checks still pass.
    text = TEMPLATE.replace("      - name: git\n        command: [GIT_SERVER]\n", "")
    text = text[: text.index("      - id: status")] + text[text.index("memory:\n") :]
    write_spec(tmp_path, servers, text)
    lock_file.write_text(original)
    run = pyagent("tools", "lock", "--locked", str(spec), "--format", "json")
    [drift] = json.loads(run.out)["diagnostics"]
    assert drift["code"] == "PA337" and "removed server coder.git" in drift["help"]


def test_a_changed_server_declaration_is_a_stale_lock_warning(
    tmp_path: Path, servers: dict[str, str], pyagent: CLI
) -> None:
    spec = write_spec(tmp_path, servers)
    assert pyagent("tools", "lock", str(spec)).code == 0
    text = TEMPLATE.replace("command: [GIT_SERVER]", "command: [GIT_SERVER, --verbose]")
    text = text.replace("tool: git.git_status", "tool: git.no_such_tool")
    write_spec(tmp_path, servers, text)
    text = spec.read_text()
    run = pyagent("validate", str(spec), "--format", "json")
    assert run.code == 0, "a stale lock warns; it does not fail the compile"
    # Steps on the changed server are not checked against the old server's tools.
    assert diagnostics(run.out) == [("PA331", "warning", *line_col(text, "git\n        command"))]


@pytest.fixture
def http_server(servers: dict[str, str]) -> Iterator[int]:
    """A real MCP server over streamable HTTP (the SDK's MCPServer under uvicorn) on a free port."""
    python = SERVERS / "python"
    script = ROOT / "tests" / "data" / "tools" / "http_server.py"
    process = subprocess.Popen([str(python), str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # printed once it listens
        assert line.startswith("port "), f"the test server did not start: {line!r}"
        yield int(line.split()[1])
    finally:
        process.kill()
        process.wait(timeout=30)


def test_an_http_server_is_locked_through_streamable_http(
    tmp_path: Path, servers: dict[str, str], http_server: int, pyagent: CLI
) -> None:
    url = f"http://127.0.0.1:{http_server}/mcp"
    text = TEMPLATE.replace("command: [GIT_SERVER]", f"transport: http\n        url: {url}")
    text = text.replace("tool: git.git_status", "tool: git").replace("tool: git.git_log", "tool: git.lookup")
    text = text.replace("repo_path: inputs.repo", "query: inputs.repo").replace("max_count: 5", "limit: many")
    spec = write_spec(tmp_path, servers, text)
    text = spec.read_text()
    run = pyagent("tools", "lock", str(spec))
    assert run.code == 0, run.err
    lock = json.loads((tmp_path / "swarm.tools.lock.json").read_text())
    [http] = [s for s in lock["servers"] if s["tool"] == "git"]
    assert http["server"] == {"name": "test-search", "version": "1.2.3"}
    assert http["source"] == {"transport": "http", "url": url}
    assert list(http["tools"]) == ["lookup"]
    assert http["tools"]["lookup"]["inputSchema"]["required"] == ["query"]
    # `tool: git` alone is its only tool; the literal `limit` is checked against its schema.
    run = pyagent("validate", str(spec), "--format", "json")
    assert diagnostics(run.out) == [("PA334", "error", *line_col(text, "many"))]


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.parametrize(
    ("tool", "reason"),
    [
        ("command: [/nonexistent/mcp-server]", "not found"),
        (f"command: [{sys.executable}, -c, 'import sys; print(\"boom\", file=sys.stderr); sys.exit(3)']", "boom"),
        (f"command: [{sys.executable}, -c, 'import time; time.sleep(60)']", "no answer within 3 s"),
        ("transport: http\n        url: http://127.0.0.1:PORT/mcp", "127.0.0.1"),
    ],
    ids=["missing-command", "exits", "hangs", "http-unreachable"],
)
def test_a_server_that_does_not_answer_is_pa330(
    tmp_path: Path, servers: dict[str, str], pyagent: CLI, tool: str, reason: str
) -> None:
    text = TEMPLATE.replace("command: [GIT_SERVER]", tool.replace("PORT", str(unused_port())))
    spec = write_spec(tmp_path, servers, text)
    # Only the server that hangs runs into the timeout; the others must fail for their own reason,
    # however slowly a loaded machine starts them.
    timeout = "3" if "sleep" in tool else "120"
    run = pyagent("tools", "lock", str(spec), "--timeout", timeout, "--format", "json")
    assert run.code == 1
    [problem] = json.loads(run.out)["diagnostics"]
    assert problem["code"] == "PA330"
    assert problem["location"]["line"] == line_col(spec.read_text(), "git\n")[0]
    assert reason in problem["message"] + problem["help"]
    assert not (tmp_path / "swarm.tools.lock.json").exists(), "no partial lock"


def test_text_output_has_no_traceback(tmp_path: Path, servers: dict[str, str], pyagent: CLI) -> None:
    spec = write_spec(tmp_path, servers, TEMPLATE.replace("GIT_SERVER", "/nonexistent/mcp-server"))
    run = pyagent("tools", "lock", str(spec), "--color", "never")
    assert run.code == 1 and "error[PA330]" in run.err and "Traceback" not in run.err


def test_an_edited_or_broken_lock_is_pa336(tmp_path: Path, servers: dict[str, str], pyagent: CLI) -> None:
    spec = write_spec(tmp_path, servers)
    assert pyagent("tools", "lock", str(spec)).code == 0
    lock_file = tmp_path / "swarm.tools.lock.json"
    lock = json.loads(lock_file.read_text())
    lock["servers"][0]["tools"]["git_status"]["inputSchema"]["required"] = []
    lock_file.write_text(json.dumps(lock))
    for content in (json.dumps(lock), "{not json", '{"lockVersion": 2}'):
        lock_file.write_text(content)
        run = pyagent("validate", str(spec), "--format", "json")
        assert run.code == 2
        assert [d["code"] for d in json.loads(run.out)["diagnostics"]] == ["PA336"]


def test_without_the_sdk_lock_says_how_to_install_it(
    tmp_path: Path, servers: dict[str, str], pyagent: CLI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "mcp", None)  # `import mcp` now raises ImportError
    spec = write_spec(tmp_path, servers)
    run = pyagent("tools", "lock", str(spec), "--format", "json")
    assert run.code == 2
    [problem] = json.loads(run.out)["diagnostics"]
    assert problem["code"] == "PA339" and "pyagent[tools]" in problem["help"]


JSON_TYPES = ["string", "integer", "number", "boolean", "null", "array", "object"]
SAMPLES = {"string": "x", "integer": 3, "boolean": True}


@given(
    types=st.lists(st.sampled_from(JSON_TYPES), min_size=1, max_size=4, unique=True),
    value_type=st.sampled_from(sorted(JSON_TYPE_OF_VALUE)),
    form=st.sampled_from(["type", "list", "anyOf", "oneOf"]),
)
def test_the_bound_input_type_check_agrees_with_jsonschema(types: list[str], value_type: str, form: str) -> None:
    """What the check says of a bound input's type is what jsonschema says of a value of that type."""
    schema: dict[str, Any] = {
        "type": {"type": types[0]},
        "list": {"type": types},
        "anyOf": {"anyOf": [{"type": t} for t in types]},
        # integer and number overlap, so oneOf of both rejects an integer: the check is about types,
        # and stays on the side of accepting
        "oneOf": {"oneOf": [{"type": t} for t in types if t != "number"] or [{"type": "number"}]},
    }[form]
    json_type = JSON_TYPE_OF_VALUE[value_type]
    allowed = schema_types(schema)
    assert allowed is not None
    assert type_accepted(allowed, json_type) == Draft202012Validator(schema).is_valid(SAMPLES[json_type])


def test_a_spec_without_tool_servers_gets_no_lock(tmp_path: Path, servers: dict[str, str], pyagent: CLI) -> None:
    text = TEMPLATE[: TEMPLATE.index("  coder:\n")] + "  coder: {}\n" + TEMPLATE[TEMPLATE.index("memory:\n") :]
    spec = write_spec(tmp_path, servers, text)
    run = pyagent("tools", "lock", str(spec))
    assert run.code == 0 and "nothing to lock" in run.err
    assert not (tmp_path / "swarm.tools.lock.json").exists()


def test_each_environment_is_checked_against_its_own_declaration(
    tmp_path: Path, servers: dict[str, str], pyagent: CLI
) -> None:
    """An overlay that declares a server differently gets its own lock entry, and both
    environments' steps are checked (none is reported as not locked)."""
    overlay = (
        "environments:\n  dev: {}\n  eu:\n    tier: dev\n"
        "    overrides:\n      cores:\n        coder:\n          tools:\n"
        "            - name: time\n              command: [TIME_SERVER, --local-timezone, Europe/Paris]\n"
        "            - name: git\n              command: [GIT_SERVER]\n"
    )
    text = TEMPLATE.replace("environments:\n  dev: {}\n", overlay).replace("max_count: 5", "max_count: five")
    spec = write_spec(tmp_path, servers, text)
    text = spec.read_text()
    assert pyagent("tools", "lock", str(spec)).code == 0
    lock = json.loads((tmp_path / "swarm.tools.lock.json").read_text())
    assert sorted((s["tool"], len(s["source"]["command"])) for s in lock["servers"]) == [
        ("git", 1),
        ("time", 1),
        ("time", 3),
    ]
    run = pyagent("validate", str(spec), "--format", "json")
    # one finding, reported once though both environments have it
    assert diagnostics(run.out) == [("PA334", "error", *line_col(text, "five"))]

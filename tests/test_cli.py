"""The command line as users and CI meet it: exit codes, formats, unreadable input, and a
stack folder that never loses a file the user had."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pyagent_compile.canonical import to_json
from pyagent_compile.commands.info import swarm_json_schema
from tests.conftest import CLI, ROOT

LAPTOP = ROOT / "examples" / "laptop" / "swarm.yaml"


def run_subprocess(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pyagent_compile", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
        timeout=120,
    )


@pytest.mark.parametrize(
    ("name", "content", "code"),
    [
        ("empty.yaml", b"", 1),
        ("binary.yaml", bytes(range(256)) * 4, 2),
        ("latin1.yaml", "name: caf\xe9\n".encode("latin-1"), 2),
        ("list.yaml", b"- a\n- b\n", 1),
        ("spec.json", b"{}", 2),
    ],
)
def test_unreadable_or_wrong_input_is_a_clean_error(tmp_path: Path, name: str, content: bytes, code: int) -> None:
    (tmp_path / name).write_bytes(content)
    result = run_subprocess("validate", str(tmp_path / name))
    assert result.returncode == code
    assert "Traceback" not in result.stderr
    assert "error[PA" in result.stderr


def test_a_directory_and_a_missing_file_exit_2(tmp_path: Path) -> None:
    for target in (tmp_path, tmp_path / "nope.yaml"):
        result = run_subprocess("validate", str(target))
        assert result.returncode == 2 and "error[PA100]" in result.stderr and "Traceback" not in result.stderr


def test_a_symlink_loop_is_pa100(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").symlink_to(tmp_path / "b.yaml")
    (tmp_path / "b.yaml").symlink_to(tmp_path / "a.yaml")
    for command in ("validate", "compile"):
        result = run_subprocess(command, str(tmp_path / "a.yaml"), cwd=tmp_path)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert "error[PA100]" in result.stderr and "symbolic links" in result.stderr


def test_a_50_mb_input_is_refused_without_a_traceback(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    with big.open("wb") as handle:
        handle.truncate(50 * 1024 * 1024)
    result = run_subprocess("validate", str(big))
    assert result.returncode == 2 and "error[PA107]" in result.stderr


def test_usage_errors_exit_2() -> None:
    assert run_subprocess("compile", "--format", "yaml").returncode == 2
    assert run_subprocess().returncode == 2


def test_valid_spec_exits_0(pyagent: CLI, in_root: Path) -> None:
    run = pyagent("validate", "examples/research/swarm.yaml")
    assert run.code == 0 and "ok:" in run.err


def test_every_problem_in_one_run_sorted_with_a_summary(pyagent: CLI, in_root: Path, tmp_path: Path) -> None:
    spec = tmp_path / "swarm.yaml"
    text = LAPTOP.read_text().replace("storage: 2Gi", "storage: 2Gi\n      gpus: 1")
    spec.write_text(text.replace("replicas: 3", "replicas: 0").replace("blockSize: 16", "blockSize: 17"))
    run = pyagent("validate", str(spec), "--format", "json")
    document = json.loads(run.out)
    lines = [d["location"]["line"] for d in document["diagnostics"]]
    assert len(lines) == 3 and lines == sorted(lines)
    assert document["summary"] == {"errors": 3, "warnings": 0}
    text_run = pyagent("validate", str(spec), "--color", "never")
    assert text_run.err.rstrip().endswith("3 errors, 0 warnings in 1 spec")


def test_github_annotations(pyagent: CLI, in_root: Path) -> None:
    run = pyagent("validate", "tests/bad/01-unknown-core-typo.yaml", "--format", "github")
    first = run.out.splitlines()[0]
    assert first.startswith("::error file=tests/bad/01-unknown-core-typo.yaml,line=28,col=20,")
    assert "title=PA204" in first and "unknown core" in first


def test_unknown_environment(pyagent: CLI, in_root: Path) -> None:
    run = pyagent("validate", "examples/research/swarm.yaml", "--env", "prd")
    assert run.code == 2 and "PA001" in run.err and 'did you mean "prod"?' in run.err


def test_explain_prints_every_code(pyagent: CLI) -> None:
    listing = pyagent("explain", "--list").out
    for code in ("PA101", "PA204", "PA305"):
        assert code in listing
        assert pyagent("explain", code).code == 0
    assert "H100-80GB" in pyagent("explain", "PA302").out
    assert pyagent("explain", "PA999").code == 2


def test_published_schema_is_current() -> None:
    published = (ROOT / "specs" / "swarm.schema.json").read_text()
    assert published == to_json(swarm_json_schema()), "run `make golden` to republish specs/swarm.schema.json"


def test_schema_validates_the_examples_and_rejects_a_typo() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    import yaml

    schema = swarm_json_schema()
    for spec in sorted((ROOT / "examples").glob("*/swarm.yaml")):
        jsonschema.validate(yaml.safe_load(spec.read_text()), schema)
    bad = yaml.safe_load(LAPTOP.read_text())
    bad["nodes"]["agents"]["replica"] = 3
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_no_spec_and_no_project_file(pyagent: CLI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    run = pyagent("compile")
    assert run.code == 2 and "PA003" in run.err


# -- the stack folder ---------------------------------------------------------------------------
@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "examples" / "laptop", tmp_path / "laptop")
    (tmp_path / "pyagent.toml").write_text('[[spec]]\npath = "laptop/swarm.yaml"\n')
    return tmp_path


def test_check_names_stale_files_and_compile_fixes_them(
    pyagent: CLI, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project)
    assert pyagent("compile").code == 0
    assert pyagent("compile", "--check").code == 0
    spec = project / "laptop" / "swarm.yaml"
    spec.write_text(spec.read_text().replace("replicas: 3", "replicas: 5"))
    run = pyagent("compile", "--check")
    assert run.code == 1 and "PA004" in run.err and "changed stacks/laptop/dev/plan.json" in run.err
    assert pyagent("compile").code == 0
    assert pyagent("compile", "--check").code == 0


def test_removed_objects_are_removed_but_user_files_stay(
    pyagent: CLI, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project)
    spec = project / "laptop" / "swarm.yaml"
    original = spec.read_text()
    extra_pool = "nodes:\n  extra:\n    replicas: 1\n    roles: [voter]\n    hardware: {cpu: 1, memory: 1Gi}\n"
    spec.write_text(original.replace("nodes:\n", extra_pool, 1))
    assert pyagent("compile").code == 0
    stack = project / "stacks" / "laptop" / "dev"
    extra = {p.name for p in (stack / "manifests").iterdir() if "extra" in p.name}
    assert extra == {"05-configmap-laptop-extra-config.yaml", "09-statefulset-laptop-extra.yaml"}
    (stack / "NOTES.md").write_text("my notes")
    spec.write_text(original)
    assert pyagent("compile").code == 0
    assert not any("extra" in p.name for p in (stack / "manifests").iterdir())
    assert (stack / "NOTES.md").read_text() == "my notes"
    assert pyagent("compile", "--check").code == 0


def test_a_removed_environment_is_stale_and_then_removed(
    pyagent: CLI, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project)
    spec = project / "laptop" / "swarm.yaml"
    original = spec.read_text()
    spec.write_text(original.replace("  dev: {}\n", "  dev: {}\n  qa: {tier: dev}\n"))
    assert pyagent("compile").code == 0
    assert (project / "stacks" / "laptop" / "qa" / "plan.json").is_file()
    spec.write_text(original)
    run = pyagent("compile", "--check")
    assert run.code == 1 and "stacks/laptop/qa" in run.err
    assert pyagent("compile").code == 0
    assert not (project / "stacks" / "laptop" / "qa").exists()


def test_hand_edited_generated_file_is_not_overwritten(
    pyagent: CLI, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project)
    assert pyagent("compile").code == 0
    edited = project / "stacks" / "laptop" / "dev" / "plan.json"
    edited.write_text(edited.read_text() + "\n")
    spec = project / "laptop" / "swarm.yaml"
    spec.write_text(spec.read_text().replace("replicas: 3", "replicas: 5"))
    run = pyagent("compile")
    assert run.code == 2 and "PA005" in run.err
    assert edited.read_text().endswith("\n\n")
    assert pyagent("compile", "--force").code == 0


def test_a_file_pyagent_did_not_write_is_not_overwritten(
    pyagent: CLI, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project)
    stack = project / "stacks" / "laptop" / "dev"
    stack.mkdir(parents=True)
    (stack / "Pulumi.yaml").write_text("name: mine\n")
    run = pyagent("compile")
    assert run.code == 2 and "PA005" in run.err
    assert (stack / "Pulumi.yaml").read_text() == "name: mine\n"


# What each command may import: start-up is a user-facing figure (editors and pre-commit hooks run
# the CLI constantly; benchmarks/compile_bench.py measures it), so the CLI imports only what the
# command it runs needs. Checked on the modules loaded, not on a time.
IMPORTED = (
    "import contextlib, io, json, sys\n"
    "from pyagent_compile.cli import main\n"
    "with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
    "    try:\n"
    "        main(sys.argv[1:])\n"
    "    except SystemExit:\n"
    "        pass\n"
    "print(json.dumps(sorted(sys.modules)))\n"
)


def imported_by(*args: str, cwd: Path = ROOT) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", IMPORTED, *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=120
    )
    return set(json.loads(done.stdout))


def test_version_imports_no_command() -> None:
    loaded = imported_by("--version")
    assert not {m for m in loaded if m.startswith("pyagent_compile.") and m != "pyagent_compile.cli"}
    assert not {"pydantic", "jinja2", "yaml", "grpc"} & loaded


def test_compile_imports_neither_other_commands_nor_the_runtime(tmp_path: Path) -> None:
    loaded = imported_by("compile", str(LAPTOP), "--out", str(tmp_path / "out"))
    assert "pyagent_compile.pipeline" in loaded  # the check can fail: it sees the command's imports
    for other in ("commands.diff", "commands.policy", "commands.local", "commands.info", "policy", "runtime"):
        assert f"pyagent_compile.{other}" not in loaded
    for other in ("commands.tools", "resolve"):
        assert f"pyagent_compile.{other}" not in loaded
    # no tools lock beside the spec: neither the MCP SDK nor the schema validator loads
    assert not {"grpc", "mcp", "anyio", "jsonschema"} & loaded


def test_validate_imports_no_renderer_and_no_format_it_does_not_print() -> None:
    loaded = imported_by("validate", str(LAPTOP))
    assert "pyagent_compile.pipeline" in loaded
    for unused in ("emit", "render", "render.pulumi", "diagnostics.junit", "diagnostics.sarif"):
        assert f"pyagent_compile.{unused}" not in loaded
    assert not {"jinja2", "xml.etree.ElementTree"} & loaded


def test_every_command_is_mapped_to_the_module_that_registers_it() -> None:
    from pyagent_compile.cli import COMMANDS, build_parser

    full = build_parser()
    choices = next(a for a in full._actions if a.dest == "command").choices
    assert choices is not None
    assert set(COMMANDS) == set(choices)
    for word in COMMANDS:
        lazy = build_parser([word])
        lazy_choices = next(a for a in lazy._actions if a.dest == "command").choices
        assert lazy_choices is not None and word in lazy_choices


# -- pyagent dashboard: what it refuses before serving (tests/integration/test_observe.py serves it) --
def _dashboard(*args: str) -> subprocess.CompletedProcess[str]:
    return run_subprocess("dashboard", *args)


@pytest.fixture(scope="module")
def laptop_local(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dashboard")
    done = run_subprocess("compile", str(LAPTOP), "--out", str(out), "--env", "local")
    assert done.returncode == 0, done.stderr
    return out / "laptop" / "local"


def _refused(done: subprocess.CompletedProcess[str], code: str) -> None:
    assert done.returncode == 2 and f"error[{code}]" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and done.stdout == "", done.stdout + done.stderr


def test_dashboard_refuses_a_listen_address_it_cannot_use(laptop_local: Path) -> None:
    _refused(_dashboard(str(laptop_local), "--listen", "no-port"), "PA622")
    _refused(_dashboard(str(laptop_local), "--listen", "127.0.0.1:70000"), "PA622")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        _refused(_dashboard(str(laptop_local), "--listen", f"127.0.0.1:{taken.getsockname()[1]}"), "PA622")


def test_dashboard_beyond_loopback_needs_allow_remote(laptop_local: Path) -> None:
    _refused(_dashboard(str(laptop_local), "--listen", "0.0.0.0:0"), "PA623")


@pytest.mark.parametrize(
    ("content", "why"),
    [(None, "cannot read"), (b"short", "shorter than 16"), (b"\xff\xfe" * 20, "not UTF-8")],
)
def test_dashboard_token_file_problems_are_pa624(
    laptop_local: Path, tmp_path: Path, content: bytes | None, why: str
) -> None:
    token = tmp_path / "token"
    if content is not None:
        token.write_bytes(content)
    done = _dashboard(str(laptop_local), "--listen", "127.0.0.1:0", "--token-file", str(token))
    _refused(done, "PA624")
    assert why in done.stderr, done.stderr


def _stderr_on_a_terminal(*args: str) -> str:
    """`pyagent ARGS` with its stderr on a pseudo-terminal (stdout piped), as a user sees it."""
    import pty

    master, slave = pty.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pyagent_compile", *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=slave,
            env={**os.environ, "NO_COLOR": "1"},
            timeout=120,
            check=False,
        )
        os.close(slave)
        slave = -1
        chunks = []
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the terminal's other end is closed and drained
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert done.returncode == 0, b"".join(chunks).decode(errors="replace")
        return b"".join(chunks).decode()
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)


def test_compiling_several_specs_shows_progress_on_a_terminal_only(tmp_path: Path) -> None:
    specs = ("examples/laptop/swarm.yaml", "examples/research/swarm.yaml")
    shown = _stderr_on_a_terminal("compile", *specs, "--out", str(tmp_path / "tty"))
    # A status line rewritten in place: each spec, then each stack folder, counted.
    assert "\r\x1b[2Kcompiling examples/laptop/swarm.yaml (1/2)" in shown, shown
    assert "\r\x1b[2Kcompiling examples/research/swarm.yaml (2/2)" in shown, shown
    assert "rendering " in shown and "(1/" in shown, shown
    piped = run_subprocess("compile", *specs, "--out", str(tmp_path / "piped"))
    assert piped.returncode == 0, piped.stderr
    assert "\r" not in piped.stderr and "\x1b" not in piped.stderr and "compiling " not in piped.stderr

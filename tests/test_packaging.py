"""pyagent as users install it: the data files ship inside the package, the compiler runs without
the runtime's packages, and the built wheel, installed into a fresh virtualenv outside the source
tree, gives a working `pyagent` (the compiler's commands, and the local target with the `local`
extra and a daemon)."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import urllib.request
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyagent_compile import resources
from pyagent_compile.runtime.local.daemon import find_daemon
from tests.conftest import ROOT
from tests.integration import harness

PIPELINE = ("load", "model", "check", "plan", "render", "emit", "policy", "diagnostics")
# ... and what only `pyagent tools lock` uses (the MCP SDK and the code that asks servers).
RUNTIME_ONLY = (
    "pyagent_compile.runtime",
    "pyagent_compile._native",
    "grpc",
    "google.protobuf",
    "cryptography",
    "pyagent_compile.resolve",
    "mcp",
    "anyio",
)
LAPTOP = ROOT / "examples" / "laptop" / "swarm.yaml"


def _mirrored_files() -> dict[str, Path]:
    """Every file that _data/ must carry, by its path inside _data/."""
    files: dict[str, Path] = {}
    for entry in resources.MIRRORED:
        source = ROOT / entry
        for path in sorted(source.rglob("*")) if source.is_dir() else [source]:
            if path.is_file():
                files[path.relative_to(ROOT).as_posix()] = path
    return files


def test_data_mirrors_the_repository_files() -> None:
    wanted = _mirrored_files()
    shipped = {p.relative_to(resources.DATA).as_posix(): p for p in resources.DATA.rglob("*") if not p.is_dir()}
    assert sorted(shipped) == sorted(wanted), "add or remove the link in pyagent_compile/_data/ too"
    for name, link in shipped.items():
        assert link.is_symlink() and not Path(os.readlink(link)).is_absolute(), f"{name}: a relative link"
        assert link.resolve() == wanted[name].resolve(), f"{name} points at {link.resolve()}"


def _module_imports(path: Path) -> list[tuple[int, str]]:
    """Module-level imports (not those inside functions, nor under `if TYPE_CHECKING:`)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.lineno, node.module))
    return found


def test_the_pipeline_never_imports_the_runtime() -> None:
    package = ROOT / "pyagent_compile"
    offenders = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for stage in PIPELINE
        for path in sorted((package / stage).rglob("*.py"))
        for line, name in _module_imports(path)
        if name.startswith(RUNTIME_ONLY)
    ]
    assert offenders == []


BLOCK_RUNTIME = "import sys\nfor name in {modules!r}:\n    sys.modules[name] = None\n"


@pytest.mark.parametrize(
    "command",
    [
        ["validate", str(LAPTOP)],
        ["compile", str(LAPTOP), "--out", "{tmp}"],
        ["policy", "check", str(LAPTOP)],
        ["schema"],
        ["explain", "PA204"],
        ["diff", str(LAPTOP), str(ROOT / "examples" / "research" / "swarm.yaml")],
        ["--version"],
    ],
)
def test_compiler_commands_run_without_the_runtime(command: list[str], tmp_path: Path) -> None:
    """With gRPC, protobuf, cryptography and the native extension unimportable, the compiler's
    commands still work: they are only the `local` extra's, and `pyagent compile` must not load them."""
    blocked = BLOCK_RUNTIME.format(modules=["grpc", "google.protobuf", "cryptography", "pyagent_compile._native"])
    main = "from pyagent_compile.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    args = [a.replace("{tmp}", str(tmp_path)) for a in command]
    done = subprocess.run(
        [sys.executable, "-c", blocked + main, *args], capture_output=True, text=True, timeout=120, check=False
    )
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 0, done.stderr


def test_local_commands_without_the_runtime_give_pa619(tmp_path: Path) -> None:
    blocked = BLOCK_RUNTIME.format(modules=["grpc"])
    main = "from pyagent_compile.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    done = subprocess.run(
        [sys.executable, "-c", blocked + main, "status", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "error[PA619]" in done.stderr and "missing: grpc" in done.stderr
    assert "pip install 'pyagent[local]'" in done.stderr


# -- the built wheel, installed where the source tree is out of reach ------------------------------


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    maturin = shutil.which("maturin", path=str(Path(sys.executable).parent))
    if maturin is None:
        pytest.fail("maturin is not installed in the test environment (it is in the `test` extra)")
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run(
        [maturin, "build", "--release", "--out", str(out)], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (built,) = out.glob("pyagent-*.whl")
    return built


def _install(where: Path, requirement: str) -> Path:
    """A fresh virtualenv at `where` with `requirement` installed; its bin folder."""
    venv.EnvBuilder(with_pip=True, clear=True).create(where)
    pip = [str(where / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    done = subprocess.run([*pip, requirement], capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return where / "bin"


def _run(bin_dir: Path, cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # No PYTHONPATH and a working folder outside the checkout: only the installed package is found.
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(
        [str(bin_dir / "pyagent"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**clean, "NO_COLOR": "1", **(env or {})},
        check=False,
    )


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user's project outside the source tree: two example specs and a pyagent.toml."""
    folder = tmp_path_factory.mktemp("project")
    for example in ("laptop", "research"):
        shutil.copytree(ROOT / "examples" / example, folder / example)
    (folder / "pyagent.toml").write_text(
        '[[spec]]\npath = "laptop/swarm.yaml"\n[[spec]]\npath = "research/swarm.yaml"\n'
    )
    return folder


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _install(tmp_path_factory.mktemp("venv") / "plain", str(wheel))


def test_the_installed_wheel_compiles_like_the_checkout(installed: Path, project: Path) -> None:
    where = _run(installed, project, "--version")
    assert where.returncode == 0 and where.stdout.startswith("pyagent "), where.stderr
    location = subprocess.run(
        [str(installed / "python"), "-c", "import pyagent_compile; print(pyagent_compile.__file__)"],
        cwd=project,
        capture_output=True,
        text=True,
        check=True,
    )
    assert str(installed.parent) in location.stdout, "the test must run the installed package"
    compiled = _run(installed, project, "compile")
    assert compiled.returncode == 0, compiled.stderr
    for stack in ("laptop/dev", "laptop/local", "research/prod"):
        ours = sorted(p.relative_to(project / "stacks" / stack) for p in (project / "stacks" / stack).rglob("*"))
        committed = ROOT / "stacks" / stack
        theirs = sorted(p.relative_to(committed) for p in committed.rglob("*") if "data" not in p.parts)
        assert ours == theirs, stack
        for name in ours:
            if (committed / name).is_file():
                assert (project / "stacks" / stack / name).read_bytes() == (committed / name).read_bytes(), name
    assert _run(installed, project, "compile", "--check").returncode == 0


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (("validate", "laptop/swarm.yaml"), 0, "valid"),
        (("policy", "check", "research/swarm.yaml"), 0, "pass every mandatory policy"),
        (("schema",), 0, '"$schema"'),
        (("explain", "PA313"), 0, "environment extends cycle"),
        # what the diff says is checked in tests/policy/test_diff.py; here, that the wheel's diff runs
        (("diff", "laptop/swarm.yaml", "research/swarm.yaml", "--format", "json"), 0, '"title": "laptop/swarm.yaml'),
        (("status", "stacks/laptop/local"), 2, "error[PA619]"),
        # the plain wheel has no `tools` extra: the lock command says how to get the MCP SDK
        (("tools", "lock", "research/swarm.yaml"), 2, "error[PA339]"),
    ],
)
def test_the_installed_wheel_runs_each_command(
    installed: Path, project: Path, args: tuple[str, ...], code: int, needle: str
) -> None:
    run = _run(installed, project, *args)
    assert "Traceback" not in run.stderr, run.stderr
    assert run.returncode == code, run.stdout + run.stderr
    assert needle in run.stdout + run.stderr


@pytest.fixture
def own_stack(tmp_path: Path) -> Iterator[Path]:
    name = harness.unique_name("wheel", 3)
    try:
        yield harness.compile_local(tmp_path, name, 3).folder
    finally:
        harness.release_name(name)


def test_the_installed_wheel_runs_the_local_target(
    wheel: Path, tmp_path_factory: pytest.TempPathFactory, own_stack: Path
) -> None:
    """With the `local` extra and a daemon (the one this checkout builds), the installed wheel
    starts a swarm, reports it, and stops it."""
    daemon, diag = find_daemon(build=True)
    assert daemon is not None, diag
    bin_dir = _install(tmp_path_factory.mktemp("venv") / "local", f"pyagent[local] @ {wheel.as_uri()}")
    env = {"PYAGENT_NODE_BIN": str(daemon)}
    try:
        up = _run(bin_dir, own_stack.parent, "up", "--local", str(own_stack), "--timeout", "120", env=env)
        assert up.returncode == 0, up.stdout + up.stderr
        status = _run(bin_dir, own_stack.parent, "status", str(own_stack), "--format", "json", env=env)
        assert status.returncode == 0 and '"leader"' in status.stdout, status.stdout + status.stderr
        _the_dashboard_serves_its_page_and_data(bin_dir, own_stack)
    finally:
        down = _run(bin_dir, own_stack.parent, "down", str(own_stack), "--purge", env=env)
    assert down.returncode == 0, down.stderr


def _the_dashboard_serves_its_page_and_data(bin_dir: Path, stack: Path) -> None:
    """The page's files ship inside the wheel, and the `local` extra has what the server reads with."""
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    command = [str(bin_dir / "pyagent"), "dashboard", str(stack), "--listen", "127.0.0.1:0"]
    process = subprocess.Popen(command, cwd=stack.parent, env=clean, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        url, _, token = line.strip().rpartition(" ")[2].partition("/#token=")
        assert url.startswith("http://127.0.0.1:") and token, line
        base = url
        with urllib.request.urlopen(f"{base}/static/app.js", timeout=30) as page:
            assert b"pyagentDashboard" in page.read()
        request = urllib.request.Request(f"{base}/api/swarm", headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert json.loads(answer.read())["leader"] is not None
    finally:
        process.terminate()
        process.wait(timeout=30)

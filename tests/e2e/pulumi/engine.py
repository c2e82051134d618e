"""Runs the real Pulumi CLI (the engine, built by tools.py) on a compiled stack, with a local file backend.

Everything of a run lives in one work folder: the backend (`PULUMI_BACKEND_URL=file://...`, no Pulumi
Cloud), PULUMI_HOME, a copy of the stack folder (the passphrase secrets provider writes its salt into
Pulumi.<stack>.yaml, so the committed one is left alone) and the logs. The Kubernetes provider built
here is put first on PATH, where the engine takes it as an ambient plugin; plugin downloads are off, so
a plugin the engine cannot find is an error, never a fetch.

Each command that runs the program is given one of two language runtimes:
- `python_env` set (a virtualenv with the stack's requirements, tools.stack_venv): the real language
  host `pulumi-language-python` (tools.LANGUAGE_HOST), which the engine starts itself, as for users,
  with that virtualenv activated (first on PATH). The host is v3.68.0, which takes the virtualenv from a
  `-virtualenv` flag that this engine no longer passes (it hands runtime options over in the Run
  request), so the activated virtualenv is what it runs the program with, as it would be for a
  project without the option.
- otherwise the Python SDK's own LanguageRuntime (runtime.py) through `--client`, which can also add
  the skipAwait annotation that a control plane without nodes needs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.e2e.pulumi import runtime, tools

PASSPHRASE = "pyagent-e2e"  # protects only the throwaway state of a test run
COMMAND_TIMEOUT = 900.0  # the provider awaits objects for up to 10 minutes by default
# Commands that run the stack's program (they take `--client`).
RUNS_PROGRAM = ("preview", "up", "destroy", "refresh")


@dataclass(frozen=True)
class Result:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@dataclass
class Engine:
    work: Path  # the run's folder: backend/, home/, logs/, the stack copies
    kubeconfig: Path
    stack: str = "dev"
    skip_await: tuple[str, ...] = runtime.NO_NODE_SKIP_AWAIT
    python_env: Path | None = None  # the real language host, with this virtualenv activated
    history: list[Result] = field(default_factory=list)

    def __post_init__(self) -> None:
        for d in (self.backend, self.home, self.logs):
            d.mkdir(parents=True, exist_ok=True)

    @property
    def backend(self) -> Path:
        return self.work / "backend"

    @property
    def home(self) -> Path:
        return self.work / "home"

    @property
    def logs(self) -> Path:
        return self.work / "logs"

    def env(self) -> dict[str, str]:
        bins = tools.binaries()
        first = [str(self.python_env / "bin"), str(bins["pulumi-language-python"].parent)] if self.python_env else []
        path = os.pathsep.join(
            [*first, str(bins["pulumi-resource-kubernetes"].parent), str(bins["pulumi"].parent), os.environ["PATH"]]
        )
        activated = {"VIRTUAL_ENV": str(self.python_env)} if self.python_env else {}
        return {
            **os.environ,
            **activated,
            "PATH": path,
            "PULUMI_BACKEND_URL": f"file://{self.backend}",
            "PULUMI_HOME": str(self.home),
            "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            "PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK": "true",
            "KUBECONFIG": str(self.kubeconfig),
        }

    def copy_stack(self, stack_dir: Path, name: str | None = None) -> Path:
        """A copy of a compiled stack folder in the work folder (its venv/, if any, left out)."""
        dest = self.work / (name or stack_dir.name)
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(stack_dir, dest, ignore=shutil.ignore_patterns("venv", "__pycache__"))
        return dest

    def pulumi(self, stack_dir: Path, *args: str, check: bool = True) -> Result:
        """`pulumi ARGS` in `stack_dir`; for commands that run the program, with a LanguageRuntime of it."""
        cli = str(tools.binaries()["pulumi"])
        base = [cli, *args, "--non-interactive"]
        command = args[0] if args else ""
        n = sum(1 for f in self.logs.glob("??-*.log") if not f.name.endswith(".runtime.log"))
        log = self.logs / f"{n:02d}-{command or 'pulumi'}.runtime.log"
        t0 = time.monotonic()
        if command in RUNS_PROGRAM and self.python_env is not None:
            proc = subprocess.run(
                [*base, "--stack", self.stack],
                cwd=stack_dir,
                env=self.env(),
                capture_output=True,
                text=True,
                timeout=COMMAND_TIMEOUT,
            )
        elif command in RUNS_PROGRAM:
            with runtime.language_runtime(stack_dir, log, self.skip_await) as address:
                argv = [*base, "--stack", self.stack, f"--client={address}", "--exec-kind=auto.inline"]
                proc = subprocess.run(
                    argv, cwd=stack_dir, env=self.env(), capture_output=True, text=True, timeout=COMMAND_TIMEOUT
                )
        else:
            proc = subprocess.run(
                base, cwd=stack_dir, env=self.env(), capture_output=True, text=True, timeout=COMMAND_TIMEOUT
            )
        result = Result(tuple(args), proc.returncode, proc.stdout, proc.stderr, time.monotonic() - t0)
        self.history.append(result)
        (self.logs / f"{n:02d}-{command or 'pulumi'}.log").write_text(
            f"$ pulumi {' '.join(args)}\n# exit {proc.returncode} after {result.seconds:.1f} s\n"
            f"{proc.stdout}\n--- stderr\n{proc.stderr}"
        )
        if check and proc.returncode != 0:
            tail = "\n".join(result.output.strip().splitlines()[-25:])
            raise AssertionError(f"pulumi {' '.join(args)} exited {proc.returncode}:\n{tail}")
        return result

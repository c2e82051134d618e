"""Builds the real Pulumi engine from the Go module proxy and caches it under `.tools/<name>-<version>/bin/`.

Done the way tests/e2e/cluster/tools.py builds Kubernetes: each tool through a small wrapper module
(`src/go.mod` requiring the real modules), with CGO off; a tool whose `bin/` exists is not built
again, because `bin/` is renamed into place only after every binary of it was built.

- The CLI, `pulumi` (which holds the engine and the local file backend): `pkg/v3` cannot be `go
  install`ed, its go.mod replaces `sdk/v3` by `../sdk`; the wrapper requires `sdk/v3` at the same tag
  instead and copies pkg's other replaces (the clipboard fork) as they are.
- The Kubernetes provider, `pulumi-resource-kubernetes`: its main `//go:embed`s schema-embed.json and
  terraform-mapping-embed.json, which its repository generates at build time. The module is copied out of
  the read-only module cache (the wrapper replaces the module by the copy) and what its Makefile's
  `k8sgen` and `k8sprovider` targets do before `go build` is done in the copy: build its generator
  `pulumi-gen-kubernetes`, run its `kinds` step over the committed schema.json, then `VERSION=... go
  generate cmd/pulumi-resource-kubernetes/main.go` (its generate.go writes the two embedded files).
- The Python language host, `pulumi-language-python`: the proxy refuses the module it has had since
  2023; `language_host` asks for it and reports the proxy's answer. It is built from the sdk/v3
  module at v3.68.0, the newest version the proxy serves that still holds it as a package, with its
  `pulumi-language-python-exec` script beside it (what the host runs the program with).
- The stacks' Python environment: a virtualenv with the stack's requirements.txt installed from PyPI,
  what `pulumi install` makes; shared by every stack whose requirements.txt is the same (`stack_venv`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.e2e.cluster.tools import (
    ROOT,
    TOOLS,
    ToolError,
    begin_build,
    empty_partial,
    wrapper_header,
    write_tools_go,
)
from tests.e2e.pulumi import versions

PULUMI_MODULE = "github.com/pulumi/pulumi"
GO_ENV = {"CGO_ENABLED": "0", "GOFLAGS": "-mod=mod -buildvcs=false"}


@dataclass(frozen=True)
class GoBuild:
    name: str
    version: str
    requires: tuple[tuple[str, str], ...]  # (module, version) the wrapper requires
    packages: tuple[str, ...]  # main packages; each binary is named by its last path element
    ldflags: tuple[str, ...] = ()
    # Runs in the wrapper's folder before its go.mod is written; returns extra replace directives.
    prepare: Callable[[Path, Path], list[str]] | None = field(default=None, compare=False)
    # Runs after `go mod tidy`, before the packages are built (src, bin.partial, log); returns facts to record.
    generate: Callable[[Path, Path, Path], dict[str, object]] | None = field(default=None, compare=False)
    replaces_of: str = ""  # a required module whose go.mod replaces are copied (local ones dropped)
    also_imports: tuple[str, ...] = ()  # other packages the wrapper's tidy must resolve (a generator)

    @property
    def home(self) -> Path:
        return TOOLS / f"{self.name}-{self.version}"

    @property
    def bin(self) -> Path:
        return self.home / "bin"


def _env() -> dict[str, str]:
    return {**os.environ, **GO_ENV}


def _run(cmd: list[str], cwd: Path, log: Path, extra_env: dict[str, str] | None = None) -> str:
    with log.open("a") as out:
        out.write(f"$ (cd {cwd} && {' '.join(cmd)})\n")
        out.flush()
        proc = subprocess.run(
            cmd,
            cwd=cwd,
            env={**_env(), **(extra_env or {})},
            stdout=subprocess.PIPE,
            stderr=out,
            text=True,
            check=False,
        )
        out.write(proc.stdout)
    if proc.returncode != 0:
        raise ToolError(f"`{' '.join(cmd[:3])} ...` failed (exit {proc.returncode}) in {cwd}; log: {log}")
    return proc.stdout


def _module_dir(module: str, version: str, cwd: Path, log: Path) -> Path:
    info = json.loads(_run(["go", "mod", "download", "-json", f"{module}@{version}"], cwd, log))
    return Path(info["Dir"])


def published_replaces(gomod: str) -> list[str]:
    """A go.mod's replace directives that point at other published modules; those to local folders are
    left out (the wrapper requires the published module instead)."""
    out = []
    for old, new in re.findall(r"^\s*(?:replace\s+)?(\S+)\s+=>\s+(\S+.*?)\s*$", gomod, flags=re.M):
        if not new.startswith("."):
            out.append(f"{old} => {new}")
    return out


PROVIDER_CMD = "cmd/pulumi-resource-kubernetes"
GENERATOR = f"{versions.KUBERNETES_PROVIDER_MODULE}/cmd/pulumi-gen-kubernetes"


def _copy_provider(src: Path, log: Path) -> list[str]:
    """A writable copy of the provider module (the module cache is read-only), which the wrapper uses."""
    module = _module_dir(versions.KUBERNETES_PROVIDER_MODULE, versions.KUBERNETES_PROVIDER_PSEUDO, src, log)
    copy = src / "provider"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(module, copy)
    for path in (copy, *copy.rglob("*")):
        path.chmod(path.stat().st_mode | stat.S_IWUSR)
    return [f"{versions.KUBERNETES_PROVIDER_MODULE} => ./provider"]


def _generate_provider(src: Path, out: Path, log: Path) -> dict[str, object]:
    """What `make k8sprovider` does before its `go build`, in the copy: builds the provider's generator
    `pulumi-gen-kubernetes` (kept in bin/, as the Makefile's bin/ keeps it), runs its `kinds` step over the
    committed schema.json (which rewrites provider/pkg/kinds/kinds.go), then `VERSION=... go generate` of the
    provider's main, whose generate.go writes the two *-embed.json files the main embeds."""
    copy = src / "provider"
    facts: dict[str, object] = {}
    t0 = time.monotonic()
    ldflags = f"-s -w -X {versions.KUBERNETES_PROVIDER_MODULE}/pkg/version.Version={versions.KUBERNETES_PROVIDER}"
    generator = out / "pulumi-gen-kubernetes"
    _run(["go", "build", "-trimpath", "-ldflags", ldflags, "-o", str(generator), GENERATOR], src, log)
    facts["pulumi-gen-kubernetes"] = round(time.monotonic() - t0)
    kinds = copy / "pkg" / "kinds" / "kinds.go"
    before = kinds.read_bytes()
    _run([str(generator), "kinds", str(copy / PROVIDER_CMD / "schema.json"), str(src)], src, log)
    facts["kinds_go_as_committed"] = kinds.read_bytes() == before
    t0 = time.monotonic()
    _run(["go", "generate", f"./{PROVIDER_CMD}"], copy, log, {"VERSION": versions.KUBERNETES_PROVIDER})
    facts["go_generate"] = round(time.monotonic() - t0)
    for name in ("schema-embed.json", "terraform-mapping-embed.json"):
        if not (copy / PROVIDER_CMD / name).is_file():
            raise ToolError(f"the provider's generate.go wrote no {name}; log: {log}")
    return facts


CLI = GoBuild(
    name="pulumi",
    version=versions.PULUMI,
    requires=((f"{PULUMI_MODULE}/pkg/v3", versions.PULUMI), (f"{PULUMI_MODULE}/sdk/v3", versions.PULUMI)),
    packages=(f"{PULUMI_MODULE}/pkg/v3/cmd/pulumi",),
    ldflags=(f"-X {PULUMI_MODULE}/sdk/v3/go/common/version.Version={versions.PULUMI}",),
    replaces_of=f"{PULUMI_MODULE}/pkg/v3",
)
KUBERNETES_PROVIDER = GoBuild(
    name="pulumi-resource-kubernetes",
    version=f"v{versions.KUBERNETES_PROVIDER}",
    requires=((versions.KUBERNETES_PROVIDER_MODULE, versions.KUBERNETES_PROVIDER_PSEUDO),),
    packages=(f"{versions.KUBERNETES_PROVIDER_MODULE}/cmd/pulumi-resource-kubernetes",),
    # what its Makefile sets: -X ${PROJECT}/${VERSION_PATH}=${VERSION_GENERIC}
    ldflags=(f"-X {versions.KUBERNETES_PROVIDER_MODULE}/pkg/version.Version={versions.KUBERNETES_PROVIDER}",),
    also_imports=(GENERATOR,),
    prepare=_copy_provider,
    generate=_generate_provider,
)
EXEC_SCRIPT = "pulumi-language-python-exec"


def _copy_exec_script(src: Path, out: Path, log: Path) -> dict[str, object]:
    """The script the language host runs a program with (found beside the host, on PATH)."""
    sdk = _module_dir(f"{PULUMI_MODULE}/sdk/v3", versions.LANGUAGE_HOST_IN_SDK, src, log)
    script = out / EXEC_SCRIPT
    shutil.copyfile(sdk / "python" / "cmd" / EXEC_SCRIPT, script)
    script.chmod(0o755)
    return {}


LANGUAGE_HOST = GoBuild(
    name="pulumi-language-python",
    version=versions.LANGUAGE_HOST_IN_SDK,
    requires=((f"{PULUMI_MODULE}/sdk/v3", versions.LANGUAGE_HOST_IN_SDK),),
    packages=(f"{PULUMI_MODULE}/sdk/v3/python/cmd/pulumi-language-python",),
    ldflags=(f"-X {PULUMI_MODULE}/sdk/v3/go/common/version.Version={versions.LANGUAGE_HOST_IN_SDK}",),
    generate=_copy_exec_script,
)
GO_BUILDS = (CLI, KUBERNETES_PROVIDER, LANGUAGE_HOST)


def stack_venv(requirements: Path) -> Path:
    """A virtualenv with `requirements` installed (pip, from PyPI), cached under .tools/ by the file's
    hash; made in a partial folder that is renamed into place once pip has finished."""
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()[:16]
    home = TOOLS / f"pulumi-stack-venv-{digest}"
    if (home / "bin" / "python").exists():
        return home
    partial = home.with_name(home.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    log = TOOLS / f"{home.name}.log"
    log.write_text("")
    base = getattr(sys, "_base_executable", sys.executable)
    _run([base, "-m", "venv", str(partial)], TOOLS, log)
    pip = [str(partial / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    _run([*pip, "-r", str(requirements)], TOOLS, log)
    partial.rename(home)  # its python is a symlink to the base interpreter, and is run as `python -m ...`
    return home


def build(tool: GoBuild, progress: bool = True) -> Path:
    """Builds `tool` into its cache folder unless it is there; returns the folder of its binaries."""
    if tool.bin.is_dir():
        return tool.bin
    src, log = begin_build(tool.home, tool.name, tool.version, progress)
    start = time.monotonic()
    header = wrapper_header(tool.name)
    replaces: list[str] = []
    if tool.replaces_of:
        version = dict(tool.requires)[tool.replaces_of]
        replaces += published_replaces((_module_dir(tool.replaces_of, version, src, log) / "go.mod").read_text())
    if tool.prepare is not None:
        replaces += tool.prepare(src, log)
    gomod = header + "\nrequire (\n" + "".join(f"\t{m} {v}\n" for m, v in tool.requires) + ")\n"
    if replaces:
        gomod += "\nreplace (\n" + "".join(f"\t{r}\n" for r in replaces) + ")\n"
    (src / "go.mod").write_text(gomod)
    write_tools_go(src, (*tool.packages, *tool.also_imports))
    _run(["go", "mod", "tidy", "-e"], src, log)
    timings: dict[str, object] = {"prepare_and_tidy": round(time.monotonic() - start)}
    out = empty_partial(tool.home)
    if tool.generate is not None:
        timings.update(tool.generate(src, out, log))
    ldflags = " ".join(("-s", "-w", *tool.ldflags))
    for pkg in tool.packages:
        name = pkg.rsplit("/", 1)[1]
        t0 = time.monotonic()
        _run(["go", "build", "-trimpath", "-ldflags", ldflags, "-o", str(out / name), pkg], src, log)
        timings[name] = seconds = round(time.monotonic() - t0)
        with log.open("a") as f:
            f.write(f"# built {name} in {seconds} s\n")
        if progress:
            print(f"  {name}: {seconds} s", file=sys.stderr)
    out.rename(tool.bin)
    timings["total"] = round(time.monotonic() - start)
    (tool.home / "built.json").write_text(json.dumps(timings, sort_keys=True) + "\n")
    return tool.bin


@dataclass(frozen=True)
class Refusal:
    version: str
    answer: str  # the proxy's answer, one line


def language_host(log: Path | None = None) -> tuple[Path | None, list[Refusal]]:
    """Asks the proxy for the Python language host's module at each version of LANGUAGE_HOST_TRIES.

    Returns the folder of a served version's source (None when every one was refused) and the refusals;
    nothing is built from it here yet (none has been served)."""
    refusals: list[Refusal] = []
    work = TOOLS / "pulumi-language-python"
    work.mkdir(parents=True, exist_ok=True)
    for version in versions.LANGUAGE_HOST_TRIES:
        proc = subprocess.run(
            ["go", "mod", "download", "-json", f"{versions.LANGUAGE_HOST_MODULE}@{version}"],
            cwd=work,
            env=_env(),
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        data = json.loads(proc.stdout or "{}")
        if proc.returncode == 0 and data.get("Dir"):
            return Path(data["Dir"]), refusals
        answer = str(data.get("Error") or proc.stderr.strip().splitlines()[-1:] or "no answer")
        refusals.append(Refusal(version, " ".join(answer.split())))
    (work / "refused.json").write_text(json.dumps([r.__dict__ for r in refusals], indent=2) + "\n")
    return None, refusals


def binaries() -> dict[str, Path]:
    """The built binaries by name; raises ToolError naming `make pulumi-tools` when one is missing."""
    out = {}
    for tool in GO_BUILDS:
        names = [pkg.rsplit("/", 1)[1] for pkg in tool.packages] + ([EXEC_SCRIPT] if tool is LANGUAGE_HOST else [])
        for name in names:
            path = tool.bin / name
            if not path.is_file():
                raise ToolError(f"{path} is not built: run `make pulumi-tools`")
            out[name] = path
    return out


def build_all() -> None:
    for tool in GO_BUILDS:
        build(tool)


__all__ = [
    "CLI",
    "GO_BUILDS",
    "KUBERNETES_PROVIDER",
    "LANGUAGE_HOST",
    "ROOT",
    "ToolError",
    "binaries",
    "build",
    "build_all",
]

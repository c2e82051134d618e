"""The language runtime the engine runs a compiled stack's Python program through, in place of
`pulumi-language-python` (which the Go module proxy does not serve, see tools.language_host).

It is the Python SDK's own: `pulumi.automation`'s LanguageServer, the gRPC LanguageRuntime service
that the Automation API serves for inline programs. The CLI is pointed at it with `--client
127.0.0.1:<port>` (as the Automation API does, `pulumi.automation._stack`), and its `Run` executes
the stack's `__main__.py` in this process, which is the project's .venv: the SDKs the stacks pin
(pulumi, pulumi-kubernetes) are installed there by `make setup`. What differs from the language host:
nothing creates the stack's `venv/` from requirements.txt, and `GetRequiredPlugins` answers none, so the
engine loads the provider when the program first registers a resource, not before it starts.

On a control plane without nodes (apiserver.py) the runtime also registers a stack transform that adds
the provider's `pulumi.com/skipAwait: "true"` annotation to StatefulSets (`skip_await`, which
engine.Engine turns on by default): the one change to what the program registers. Every command of a
run gets it, so a second preview still shows no change.

A policy pack is run the same way the language host runs one (`python -u -m pulumi.policy ENGINE DIR`,
working directory DIR): `policy_shim` writes a small executable that does that, and the engine is given
its path as `--policy-pack`, which it launches as a binary analyzer plugin.

    python -m tests.e2e.pulumi runtime STACK_DIR   # prints the port, serves until stdin closes
"""

from __future__ import annotations

import contextlib
import os
import runpy
import shlex
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import IO, Any

SKIP_AWAIT = "pulumi.com/skipAwait"
# What cannot become ready on a control plane without nodes (apiserver.py) among the compiled stacks' kinds:
# the StatefulSet's readiness counts ready pods. (A Service with a selector and a cluster IP would wait for
# ready endpoints too; the stacks' Services are headless, which the provider does not wait for.)
NO_NODE_SKIP_AWAIT = ("kubernetes:apps/v1:StatefulSet",)
START_TIMEOUT = 120.0  # importing pulumi_kubernetes takes seconds on 2 busy cores


def skip_await(types: tuple[str, ...]) -> Callable[[Any], Any]:
    """A stack transform that adds the provider's `pulumi.com/skipAwait: "true"` annotation to resources
    of `types`: with no node a StatefulSet's pods never become ready, and the provider would wait for
    them (10 minutes, pkg/await/statefulset.go) and then fail the update."""
    import pulumi

    def transform(args: Any) -> Any:
        if args.type_ not in types:
            return None
        props = dict(args.props)
        metadata = dict(props.get("metadata") or {})
        metadata["annotations"] = {**(metadata.get("annotations") or {}), SKIP_AWAIT: "true"}
        props["metadata"] = metadata
        return pulumi.ResourceTransformResult(props=props, opts=args.opts)

    return transform


def serve(program_dir: Path, skip_await_types: tuple[str, ...] = (), out: IO[str] = sys.stdout) -> None:
    """Serves the LanguageRuntime for the program in `program_dir`; returns when stdin is closed."""
    import grpc
    import pulumi
    from pulumi.automation._server import LanguageServer
    from pulumi.runtime.proto import language_pb2_grpc

    program_dir = program_dir.resolve()
    os.chdir(program_dir)

    def program() -> None:
        if skip_await_types:
            pulumi.runtime.register_resource_transform(skip_await(skip_await_types))
        runpy.run_path(str(program_dir), run_name="__main__")

    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4),
        options=[("grpc.max_receive_message_length", 2**31 - 1)],  # as the Automation API sets it
    )
    language_pb2_grpc.add_LanguageRuntimeServicer_to_server(LanguageServer(program), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, file=out, flush=True)
    sys.stdin.read()  # the parent closes stdin to stop it
    server.stop(5).wait()


@contextlib.contextmanager
def language_runtime(program_dir: Path, log: Path, skip_await_types: tuple[str, ...] = ()) -> Iterator[str]:
    """A LanguageRuntime for `program_dir` in a child process of the project's Python; yields its address."""
    flags = [f"--skip-await={t}" for t in skip_await_types]
    with log.open("ab") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.e2e.pulumi", "runtime", str(program_dir), *flags],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            cwd=Path(__file__).resolve().parents[3],
            text=True,
        )
    assert proc.stdin is not None and proc.stdout is not None
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(proc.stdout.readline() if proc.stdout else ""), daemon=True)
    reader.start()
    reader.join(START_TIMEOUT)
    try:
        if not line or not line[0].strip().isdigit():
            raise RuntimeError(f"the language runtime for {program_dir} did not start; log: {log}")
        yield f"127.0.0.1:{line[0].strip()}"
    finally:
        proc.stdin.close()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def policy_shim(folder: Path, pack: Path) -> Path:
    """An executable that starts the policy pack in `pack` as the language host would; the engine passes
    it the engine's address. Written into `folder` with a copy of the pack's PulumiPolicy.yaml, which
    the engine reads beside a binary pack (for its version; the `runtime` section is not used then)."""
    pack = pack.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(pack / "PulumiPolicy.yaml", folder / "PulumiPolicy.yaml")
    shim = folder / "pyagent-policy-pack"
    shim.write_text(
        "#!/bin/sh\n"
        f"cd {shlex.quote(str(pack))} || exit 1\n"
        f'exec {shlex.quote(sys.executable)} -u -m pulumi.policy "$@" {shlex.quote(str(pack))}\n'
    )
    shim.chmod(0o755)
    return shim

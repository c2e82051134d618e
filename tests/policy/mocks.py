"""Run a compiled stack's Pulumi program under Pulumi's official mocks and capture what it
registers: (type token, logical name, inputs) per resource, inputs as the engine sees them
(camelCase, numbers as floats).

Each capture runs in its own interpreter (`python -m tests.policy.mocks STACK_DIR` prints
JSON): set_mocks and the program's module state are process-global and Pulumi wants one
event loop per test, so separate processes keep the captures independent."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def _capture_here(stack_dir: Path) -> list[dict[str, Any]]:
    import pulumi

    captured: list[dict[str, Any]] = []

    class CaptureMocks(pulumi.runtime.Mocks):
        def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
            captured.append({"type": args.typ, "name": args.name, "inputs": dict(args.inputs)})
            return f"{args.name}-id", dict(args.inputs)

        def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
            return {}, None

    pulumi.runtime.set_mocks(
        CaptureMocks(), project=f"pyagent-{stack_dir.parent.name}", stack=stack_dir.name, preview=False
    )

    @pulumi.runtime.test  # type: ignore[untyped-decorator]
    def run() -> Any:
        spec = importlib.util.spec_from_file_location("stack_program", stack_dir / "__main__.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return pulumi.Output.all(*[r.urn for r in module.RESOURCES.values()])

    run()
    return captured


def capture_stack(stack_dir: Path) -> list[dict[str, Any]]:
    """What the stack's program registers, captured by Pulumi's mocks in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.policy.mocks", str(stack_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    result: list[dict[str, Any]] = json.loads(done.stdout)
    return result


if __name__ == "__main__":
    print(json.dumps(_capture_here(Path(sys.argv[1]).resolve())))

"""Regenerate the committed Python gRPC client from native/proto (needs grpcio-tools).

    python -m pyagent_compile.runtime.nodeapi._generate           # rewrite node_pb2*.py(i)
    python -m pyagent_compile.runtime.nodeapi._generate --check   # exit 1 if they differ (CI)

Why committed rather than generated at set-up: `pyagent up/status/down` import the client at
run time, so an installed pyagent must carry it; tests/test_grpc_stubs.py regenerates it and
compares byte for byte, so it cannot drift from the proto.
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROTO_ROOT = HERE.parents[2] / "native" / "proto"  # the checkout: generating needs one
PROTO = "pyagent/node/v1/node.proto"
OUTPUTS = ("node_pb2.py", "node_pb2.pyi", "node_pb2_grpc.py")
# protoc names modules after the proto's folders (pyagent.node.v1); ours live in this package.
IMPORT = re.compile(r"^from pyagent\.node\.v1 import node_pb2 as", re.MULTILINE)


def generate() -> dict[str, str]:
    from grpc_tools import protoc  # a test/build dependency only

    with tempfile.TemporaryDirectory() as tmp:
        include = str(Path(protoc.__file__).parent / "_proto")
        code = protoc.main(
            [
                "grpc_tools.protoc",
                f"-I{PROTO_ROOT}",
                f"-I{include}",
                f"--python_out={tmp}",
                f"--pyi_out={tmp}",
                f"--grpc_python_out={tmp}",
                str(PROTO_ROOT / PROTO),
            ]
        )
        if code != 0:
            raise SystemExit(f"protoc failed on {PROTO_ROOT / PROTO}")
        folder = Path(tmp) / Path(PROTO).parent
        files = {name: (folder / name).read_text(encoding="utf-8") for name in OUTPUTS}
    files["node_pb2_grpc.py"] = IMPORT.sub(
        "from pyagent_compile.runtime.nodeapi import node_pb2 as", files["node_pb2_grpc.py"]
    )
    return files


def main(argv: list[str]) -> int:
    files = generate()
    if "--check" in argv:
        stale = [n for n, text in files.items() if (HERE / n).read_text(encoding="utf-8") != text]
        for name in stale:
            sys.stderr.write(
                f"stale: pyagent_compile/runtime/nodeapi/{name}; "
                "run python -m pyagent_compile.runtime.nodeapi._generate\n"
            )
        return 1 if stale else 0
    for name, text in files.items():
        (HERE / name).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

"""The committed gRPC client is exactly what grpcio-tools generates from native/proto."""

from __future__ import annotations

import pytest

from pyagent_compile.runtime.nodeapi import _generate


def test_generated_client_matches_the_proto() -> None:
    pytest.importorskip("grpc_tools", reason="grpcio-tools is in the test extra")
    for name, text in _generate.generate().items():
        committed = (_generate.HERE / name).read_text(encoding="utf-8")
        assert committed == text, f"{name} is stale: run `python -m pyagent_compile.runtime.nodeapi._generate`"

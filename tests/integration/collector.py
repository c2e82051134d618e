"""A real OpenTelemetry Collector for tests: `pyagent-otelcol` (native/otelcol, built by
.ci/install-otelcol.sh) receiving OTLP/gRPC on loopback and writing what it receives to a file
as OTLP JSON, which the tests read back span by span."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.integration import harness

BINARY = "pyagent-otelcol"
# OTLP's Status.code, as the file exporter writes it (a number).
STATUS_UNSET, STATUS_OK, STATUS_ERROR = 0, 1, 2

CONFIG = """\
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{port}
processors:
  batch:
    timeout: 50ms
exporters:
  file:
    path: {spans}
    flush_interval: 100ms
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [file]
"""


@dataclass(frozen=True)
class Span:
    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    resource: dict[str, Any]
    status: int


def _value(v: dict[str, Any]) -> Any:
    # OTLP JSON: {"stringValue": ...}, {"intValue": "12"} (int64 as a string), {"boolValue": ...}
    for kind, value in v.items():
        return int(value) if kind == "intValue" else value
    return None


def _attributes(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {a["key"]: _value(a.get("value", {})) for a in items}


def parse_lines(text: str) -> list[Span]:
    spans = []
    for line in text.splitlines():
        if not line.strip():
            continue
        for rs in json.loads(line).get("resourceSpans", []):
            resource = _attributes(rs.get("resource", {}).get("attributes", []))
            for ss in rs.get("scopeSpans", []):
                for s in ss.get("spans", []):
                    spans.append(
                        Span(
                            trace_id=s["traceId"],
                            span_id=s["spanId"],
                            parent_span_id=s.get("parentSpanId", ""),
                            name=s["name"],
                            start_ns=int(s["startTimeUnixNano"]),
                            end_ns=int(s["endTimeUnixNano"]),
                            attributes=_attributes(s.get("attributes", [])),
                            resource=resource,
                            status=int(s.get("status", {}).get("code", STATUS_UNSET)),
                        )
                    )
    return spans


class Collector:
    def __init__(self, folder: Path, process: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.folder = folder
        self.process = process
        self.endpoint = f"http://127.0.0.1:{port}"
        self.log = log

    @property
    def spans_file(self) -> Path:
        return self.folder / "spans.jsonl"

    def spans(self) -> list[Span]:
        try:
            text = self.spans_file.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        # The last line may be half written: read whole lines only.
        return parse_lines(text[: text.rfind("\n") + 1])

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _wait_until_listening(process: subprocess.Popen[bytes], port: int) -> None:
    harness.wait_for(lambda: process.poll() is not None or _listening(port), timeout=60)


def start(folder: Path) -> Collector | None:
    """A running collector, or None when pyagent-otelcol is not installed. A port taken between
    choosing it and the collector binding it is retried with another."""
    binary = shutil.which(BINARY)
    if binary is None:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    for _ in range(5):
        port = harness.free_port()
        config = folder / "otelcol.yaml"
        config.write_text(CONFIG.format(port=port, spans=folder / "spans.jsonl"), encoding="utf-8")
        log = folder / "otelcol.log"
        with log.open("wb") as out:
            process = subprocess.Popen([binary, "--config", str(config)], stdout=out, stderr=subprocess.STDOUT)
        _wait_until_listening(process, port)
        if process.poll() is None:
            return Collector(folder, process, port, log)
        if "address already in use" not in harness.log_tail(log):
            raise AssertionError(f"{BINARY} did not start:\n{harness.log_tail(log)}")
        time.sleep(0.1)
    raise AssertionError(f"{BINARY}: no free port in 5 tries")

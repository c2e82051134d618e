"""The dashboard's web server: the page and its assets (shipped in static/, nothing fetched from
the internet), and a read-only JSON API over the swarm. Every API call needs the token
(`Authorization: Bearer <token>`); the page takes it from its URL's fragment, which browsers
never send to the server or put in a Referer."""

from __future__ import annotations

import hmac
import json
import mimetypes
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from pyagent_compile.runtime.dashboard.collect import MetricsHistory, snapshot, task_rows, task_trace
from pyagent_compile.runtime.local.stack import LocalStack
from pyagent_compile.runtime.tasks import SwarmClient, TaskError

STATIC = Path(__file__).resolve().parent / "static"
# The page loads only from this server: no inline script, no other origin, no framing.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
# Seconds a dashboard waits for the leader before an API call answers 503 (the page retries).
LEADER_TIMEOUT = 3.0


class Dashboard:
    """The state one server shares among its request threads."""

    def __init__(self, stack: LocalStack, token: str, interval: float) -> None:
        self.stack = stack
        self.token = token
        self.metrics = MetricsHistory(stack, interval)
        self._client: SwarmClient | None = None
        self._client_lock = threading.Lock()

    def client(self) -> SwarmClient:
        """One client for every request thread: its gRPC channels (one per node, opened as
        needed) are kept between polls rather than dialled again every second or two. Made on
        first use, so a swarm started after the dashboard is found."""
        with self._client_lock:
            if self._client is None:
                self._client = SwarmClient(self.stack, timeout=LEADER_TIMEOUT)
            return self._client

    def close(self) -> None:
        self.metrics.stop()
        with self._client_lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def authorised(self, header: str | None) -> bool:
        scheme, _, given = (header or "").partition(" ")
        return scheme == "Bearer" and hmac.compare_digest(given.encode(), self.token.encode())

    def api(self, path: str) -> tuple[HTTPStatus, Any]:
        if path == "/api/swarm":
            return HTTPStatus.OK, snapshot(self.stack)
        if path == "/api/metrics":
            return HTTPStatus.OK, self.metrics.series()
        if path == "/api/tasks":
            return self._with_client(lambda c: (HTTPStatus.OK, {"tasks": task_rows(c)}))
        if path.startswith("/api/tasks/"):
            task_id = unquote(path.removeprefix("/api/tasks/"))
            return self._with_client(lambda c: _trace_answer(c, task_id))
        return HTTPStatus.NOT_FOUND, {"error": f"no such API path: {path}"}

    def _with_client(self, body: Any) -> tuple[HTTPStatus, Any]:
        try:
            client = self.client()
        except TaskError as error:
            return HTTPStatus.SERVICE_UNAVAILABLE, {"error": error.diagnostic.message}
        try:
            result: tuple[HTTPStatus, Any] = body(client)
            return result
        except TaskError as error:  # no leader within the timeout: the page says so and retries
            return HTTPStatus.SERVICE_UNAVAILABLE, {"error": error.diagnostic.message}


def _trace_answer(client: SwarmClient, task_id: str) -> tuple[HTTPStatus, Any]:
    trace = task_trace(client, task_id)
    if trace is None:
        return HTTPStatus.NOT_FOUND, {"error": f"no task {task_id!r} in this swarm"}
    return HTTPStatus.OK, {"trace": trace}


def handler_for(board: Dashboard) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "pyagent-dashboard"
        sys_version = ""

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the terminal shows the URL, not a line per poll."""

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            if path.startswith("/api/"):
                if not board.authorised(self.headers.get("Authorization")):
                    self._json(HTTPStatus.UNAUTHORIZED, {"error": "missing or wrong token"})
                    return
                status, body = board.api(path)
                self._json(status, body)
                return
            self._static("index.html" if path == "/" else path.removeprefix("/static/"))

        def do_POST(self) -> None:
            self._json(HTTPStatus.METHOD_NOT_ALLOWED, {"error": "the dashboard is read-only"})

        do_PUT = do_DELETE = do_PATCH = do_POST

        def _static(self, name: str) -> None:
            file = (STATIC / name).resolve()
            if not file.is_relative_to(STATIC) or not file.is_file():
                self._json(HTTPStatus.NOT_FOUND, {"error": "not found"})
                return
            body = file.read_bytes()
            kind = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
            self._send(HTTPStatus.OK, body, kind + ("; charset=utf-8" if kind.startswith("text/") else ""))

        def _json(self, status: HTTPStatus, document: Any) -> None:
            self._send(status, json.dumps(document).encode(), "application/json")

        def _send(self, status: HTTPStatus, body: bytes, kind: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            for name, value in SECURITY_HEADERS.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

    return Handler


def serve(board: Dashboard, host: str, port: int) -> ThreadingHTTPServer:
    """A bound server (port 0: any free one); the caller runs serve_forever."""
    server = ThreadingHTTPServer((host, port), handler_for(board))
    server.daemon_threads = True
    return server

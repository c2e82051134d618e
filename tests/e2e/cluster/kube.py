"""Small clients for the running cluster: HTTPS probes of the API server and `kubectl` with the admin kubeconfig."""

from __future__ import annotations

import json
import ssl
import subprocess
import urllib.request
from typing import Any

from tests.e2e.cluster import tools
from tests.e2e.cluster.layout import Facts, Paths


def api_url(facts: Facts) -> str:
    return f"https://127.0.0.1:{facts.ports['apiserver']}"


def token(paths: Paths) -> str:
    return (paths.pki / "tokens.csv").read_text().split(",", 1)[0]


def get(paths: Paths, facts: Facts, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
    ctx = ssl.create_default_context(cafile=str(paths.pki / "ca.crt"))
    req = urllib.request.Request(api_url(facts) + path, headers={"Authorization": f"Bearer {token(paths)}"})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=timeout) as resp:
            return int(resp.status), bytes(resp.read())
    except urllib.error.HTTPError as e:
        return int(e.code), bytes(e.read())


def get_json(paths: Paths, facts: Facts, path: str) -> dict[str, Any]:
    status, body = get(paths, facts, path)
    if status != 200:
        raise RuntimeError(f"GET {path}: {status} {body[:200]!r}")
    data: dict[str, Any] = json.loads(body)
    return data


def healthz(url: str, timeout: float = 5.0) -> bool:
    """A component's own health endpoint (self-signed serving certificate, always-allowed path)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with urllib.request.urlopen(url, context=ctx if url.startswith("https") else None, timeout=timeout) as resp:
        return bool(resp.status == 200)


def kubectl(paths: Paths, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    argv = [str(tools.KUBERNETES.bin / "kubectl"), "--kubeconfig", str(paths.kubeconfig), *args]
    return subprocess.run(argv, input=input, capture_output=True, text=True, check=check, timeout=300)


def apply(paths: Paths, objects: list[dict[str, Any]], manager: str = "pyagent-e2e") -> None:
    """Server-side apply of objects built as data (a v1 List in JSON)."""
    doc = json.dumps({"apiVersion": "v1", "kind": "List", "items": objects})
    proc = kubectl(paths, "apply", "--server-side", f"--field-manager={manager}", "-f", "-", input=doc, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"kubectl apply failed: {proc.stderr.strip()}")

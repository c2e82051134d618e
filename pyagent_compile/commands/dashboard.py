"""`pyagent dashboard STACK`: a live web page of a running local swarm (runtime/dashboard/)."""

from __future__ import annotations

import argparse
import ipaddress
import secrets
import signal
import sys
from pathlib import Path
from types import FrameType

from pyagent_compile.commands.local import _finish, _load, _needs_runtime
from pyagent_compile.commands.output import add_format_options
from pyagent_compile.diagnostics import Diagnostic

DEFAULT_LISTEN = "127.0.0.1:8710"
MIN_TOKEN = 16
DASHBOARD_HELP = f"""\
Serve a live, read-only web page of a running local swarm: the map of its pools and nodes
(Raft roles, the leader, replication links, mesh peers, health), its tasks as they are
submitted, placed and finished, the selected task's waterfall with its delegated sub-tasks,
and graphs of Raft commits, commit latency, mesh messages and running tasks, sampled from
the nodes' /metrics. Everything the page needs is served from here: it works offline.

It listens on loopback ({DEFAULT_LISTEN}) unless told otherwise, and every data request needs a
token: a new random one per run, or the one in --token-file. Open the URL it prints (the token
rides in the URL's #fragment, which the browser never sends to a server). Stop it with Ctrl-C.

examples:
  pyagent dashboard stacks/laptop/local
  pyagent dashboard stacks/laptop/local --listen 127.0.0.1:0     # any free port
  pyagent dashboard stacks/laptop/local --listen 0.0.0.0:8710 --allow-remote --token-file ~/.pyagent-token
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dashboard = sub.add_parser(
        "dashboard",
        help="a live web page of a running local swarm: map, tasks, traces, graphs",
        description=DASHBOARD_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    dashboard.add_argument("stack", metavar="STACK", help="a local stack folder, e.g. stacks/laptop/local")
    dashboard.add_argument("--listen", default=DEFAULT_LISTEN, metavar="HOST:PORT", help=f"default: {DEFAULT_LISTEN}")
    dashboard.add_argument("--allow-remote", action="store_true", help="allow --listen on a non-loopback address")
    dashboard.add_argument("--token-file", type=Path, help="read the token from this file instead of making one")
    dashboard.add_argument(
        "--interval", type=float, default=2.0, help="seconds between samples of the nodes' /metrics (default: 2)"
    )
    add_format_options(dashboard, ("text",))
    dashboard.set_defaults(run=_needs_runtime(run_dashboard))


def _address(listen: str) -> tuple[str, int] | None:
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or int(port) > 65535:
        return None
    return host, int(port)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _token(args: argparse.Namespace) -> tuple[str | None, Diagnostic | None]:
    if args.token_file is None:
        return secrets.token_urlsafe(24), None
    try:
        token = args.token_file.read_text().strip()
    except OSError as error:
        return None, Diagnostic("PA624", f"cannot read the token file {args.token_file}: {error.strerror}")
    except UnicodeDecodeError:
        return None, Diagnostic("PA624", f"the token file {args.token_file} is not UTF-8 text")
    if len(token) < MIN_TOKEN:
        return None, Diagnostic(
            "PA624",
            f"the token in {args.token_file} is shorter than {MIN_TOKEN} characters",
            help="make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(24))'",
        )
    return token, None


def run_dashboard(args: argparse.Namespace) -> int:
    from pyagent_compile.runtime.dashboard.server import Dashboard, serve

    address = _address(args.listen)
    if address is None:
        return _finish(
            args,
            [Diagnostic("PA622", f"--listen {args.listen!r} is not HOST:PORT", help=f"e.g. --listen {DEFAULT_LISTEN}")],
        )
    host, port = address
    if not _loopback(host) and not args.allow_remote:
        return _finish(
            args,
            [
                Diagnostic(
                    "PA623",
                    f"--listen {args.listen} is reachable from other machines",
                    help="add --allow-remote to mean it",
                )
            ],
        )
    stack, diags = _load(args)
    token, problem = _token(args)
    if stack is None or token is None:
        return _finish(args, diags + ([problem] if problem else []))
    board = Dashboard(stack, token, args.interval)
    try:
        server = serve(board, host, port)
    except OSError as error:
        return _finish(
            args,
            [
                Diagnostic(
                    "PA622",
                    f"cannot listen on {args.listen}: {error.strerror}",
                    help="--listen 127.0.0.1:0 picks a free port",
                )
            ],
        )
    bound_host, bound_port = str(server.server_address[0]), int(server.server_address[1])
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    board.metrics.start()
    sys.stdout.write(f"dashboard of swarm {stack.swarm}: http://{shown}:{bound_port}/#token={token}\n")
    sys.stdout.flush()

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        board.close()
        server.server_close()
    return 0

"""python -m tests.e2e.cluster tools|up|down|status|env|import ARCHIVE  [--state DIR]

A real single-node Kubernetes from real parts, in a state folder (default `.tools/cluster-state/`,
or $PYAGENT_CLUSTER_STATE). See docs/cluster.md.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from tests.e2e.cluster import down as down_mod
from tests.e2e.cluster import images, layout, tools
from tests.e2e.cluster import up as up_mod
from tests.e2e.cluster.layout import Facts, Paths
from tests.e2e.cluster.procs import PartFailed


def env_lines(paths: Paths) -> list[str]:
    facts = Facts.load(paths.state)
    endpoint = f"unix://{paths.containerd_socket}"
    values = {
        "PYAGENT_CLUSTER_STATE": str(paths.state),
        "KUBECONFIG": str(paths.kubeconfig),
        "PYAGENT_CLUSTER_API": f"https://127.0.0.1:{facts.ports.get('apiserver', 0)}",
        "CONTAINERD_ADDRESS": str(paths.containerd_socket),  # read by ctr
        "CONTAINERD_NAMESPACE": "k8s.io",  # the namespace the kubelet's CRI uses
        "CONTAINER_RUNTIME_ENDPOINT": endpoint,  # read by crictl
        "IMAGE_SERVICE_ENDPOINT": endpoint,
    }
    lines = [f"export {k}={shlex.quote(v)}" for k, v in values.items()]
    lines.append(f'export PATH={shlex.quote(f"{tools.KUBERNETES.bin}:{tools.CRI_TOOLS.bin}")}:"$PATH"')
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.e2e.cluster", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["tools", "up", "down", "status", "env", "import"])
    parser.add_argument("archive", nargs="?", help="import: an OCI or docker image archive")
    parser.add_argument("--state", help="state folder (default: $PYAGENT_CLUSTER_STATE or .tools/cluster-state)")
    parser.add_argument("--base-name", help="import: repository for an OCI archive whose reference is only a tag")
    parser.add_argument("--keep", action="store_true", help="up: leave a failed cluster as it is (for its logs)")
    args = parser.parse_args(argv)
    paths = Paths(layout.state_dir(args.state))
    try:
        if args.command == "tools":
            tools.build_all()
            for tool in tools.GO_TOOLS:
                print(f"{tool.name} {tool.version}: {tool.bin}")
            print(f"pause {tools.PAUSE_HOME / 'bin' / 'pause'}")
        elif args.command == "up":
            t0 = time.monotonic()
            try:
                timings = up_mod.up(paths)
            except up_mod.Refused as e:
                print(f"cluster: {e}", file=sys.stderr)
                return 1
            except (PartFailed, tools.ToolError) as e:
                print(f"cluster: {e}", file=sys.stderr)
                if not args.keep:
                    left = down_mod.down(paths)
                    if left:
                        print(f"cluster: down after the failure left: {', '.join(left)}", file=sys.stderr)
                return 1
            print(f"cluster: up in {time.monotonic() - t0:.1f} s {timings}", file=sys.stderr)
            print("\n".join(env_lines(paths)))
        elif args.command == "down":
            t0 = time.monotonic()
            left = down_mod.down(paths)
            if left:
                print(f"cluster: down left: {', '.join(left)}", file=sys.stderr)
                return 1
            print(f"cluster: down in {time.monotonic() - t0:.1f} s, nothing left", file=sys.stderr)
        elif args.command == "status":
            print(down_mod.status_text(paths))
        elif args.command == "env":
            print("\n".join(env_lines(paths)))
        elif args.command == "import":
            if not args.archive:
                parser.error("import needs an ARCHIVE")
            print(images.import_archive(paths, Path(args.archive), args.base_name, paths.log("images")))
    except (PartFailed, tools.ToolError) as e:
        print(f"cluster: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

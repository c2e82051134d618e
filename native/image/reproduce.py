#!/usr/bin/env python3
"""Check that the node image is reproducible: two clones of this repository's HEAD, in two folders
of different names and depths, each build the image from an empty target folder
(`native/image/build.py --check`, so each must also give exactly the committed lock), and their
binaries, OCI archives and manifest digests are compared byte for byte.

    python3 native/image/reproduce.py      # make image-repro; two cold release builds, 10 min or more

Only committed files are cloned: commit first. The clones share $CARGO_HOME (the crates, not the
build) and are removed at the end.
"""

from __future__ import annotations

import filecmp
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OUTPUTS = (
    "native/target/image/x86_64-unknown-linux-gnu/release/pyagent-node",
    "native/target/image/pyagent-node.oci.tar",
    "native/target/image/oci/index.json",
)


def main() -> int:
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "native"], capture_output=True, text=True)
    if dirty.stdout.strip():
        print("reproduce: native/ has uncommitted changes; the clones build HEAD without them", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="pyagent-repro-") as tmp:
        clones = [Path(tmp) / "a", Path(tmp) / "second" / "checkout-b"]
        for clone in clones:
            subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(REPO), str(clone)], check=True)
            subprocess.run(["git", "-C", str(clone), "checkout", "--quiet", head.stdout.strip()], check=True)
            start = time.monotonic()
            built = subprocess.run([sys.executable, "native/image/build.py", "--check"], cwd=clone)
            print(f"reproduce: {clone}: build.py --check exited {built.returncode} in {time.monotonic() - start:.0f} s")
            if built.returncode != 0:
                return 1
        differ = [out for out in OUTPUTS if not filecmp.cmp(clones[0] / out, clones[1] / out, shallow=False)]
        digest = json.loads((clones[0] / OUTPUTS[2]).read_text(encoding="utf-8"))["manifests"][0]["digest"]
    if differ:
        print(f"reproduce: differ between the two folders: {', '.join(differ)}", file=sys.stderr)
        return 1
    print(f"reproduce: same binary, archive and manifest {digest} in both folders, equal to the committed lock")
    return 0


if __name__ == "__main__":
    sys.exit(main())

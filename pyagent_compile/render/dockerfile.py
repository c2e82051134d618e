"""The node image's Dockerfile, rendered into a stack when the spec says `image: {build: native}`."""

from __future__ import annotations

from pyagent_compile import __version__
from pyagent_compile.plan.model import Plan
from pyagent_compile.render.templates import template

# Base images, pinned by digest (docs/node-daemon.md: Rust >= 1.88, the same glibc as the runtime).
# No registry is reachable where this was written: these digests are the ones several public
# repositories pin for the same tags. Verify before the first push, and on every refresh, with
# `docker buildx imagetools inspect <name>:<tag>`.
BUILDER_IMAGE = (
    "docker.io/library/rust:1.90-slim-bookworm@sha256:64232e656c058f4468e8d024e990acff04f0fd5a5c0a88a574dc37773d7325c9"
)
RUNTIME_IMAGE = (
    "gcr.io/distroless/cc-debian12:nonroot@sha256:9dac0a79194e45a7da0158a9c6da57b217585af0786db3845d1f0ec1a0dd182f"
)


def render_dockerfile(plan: Plan) -> dict[str, str]:
    """{"Dockerfile": ...} for a plan that builds its image, else {}."""
    if plan.image_build is None:
        return {}
    ports = plan.image_build.ports
    text = template("node", "Dockerfile.j2").render(
        pyagent_version=__version__,
        swarm=plan.swarm,
        builder_image=BUILDER_IMAGE,
        runtime_image=RUNTIME_IMAGE,
        raft_port=ports["raft"],
        grpc_port=ports["grpc"],
        metrics_port=ports["metrics"],
    )
    return {"Dockerfile": text}

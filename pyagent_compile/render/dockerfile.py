"""The node image's Dockerfile, rendered into a stack when the spec says `image: {build: native}`."""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from pyagent_compile import __version__
from pyagent_compile.plan.model import Plan

TEMPLATES = Path(__file__).resolve().parents[2] / "templates" / "node"


def render_dockerfile(plan: Plan, stack_path: str) -> dict[str, str]:
    """{"Dockerfile": ...} for a plan that builds its image, else {}."""
    if plan.image_build is None:
        return {}
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)), undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False
    )
    text = env.get_template("Dockerfile.j2").render(
        pyagent_version=__version__,
        swarm=plan.swarm,
        env=plan.environment,
        stack_path=stack_path,
        image=plan.image_build.image,
        ports=plan.image_build.ports,
    )
    return {"Dockerfile": text}

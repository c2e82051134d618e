"""Stage 5: render a plan into the files of a stack folder (text, in memory)."""

from __future__ import annotations

from pyagent_compile.plan.model import Plan
from pyagent_compile.render.dashboard import render_dashboard
from pyagent_compile.render.dockerfile import render_dockerfile
from pyagent_compile.render.manifests import render_manifests
from pyagent_compile.render.pulumi import render_pulumi


def render_stack(plan: Plan) -> dict[str, str]:
    """Relative path -> file content for `stacks/<swarm>/<env>/`."""
    files = render_pulumi(plan)
    files.update(render_manifests(plan))
    files.update(render_dockerfile(plan))
    files.update(render_dashboard(plan))
    return dict(sorted(files.items()))


__all__ = ["render_stack"]

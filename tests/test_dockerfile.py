"""The node image's Dockerfile, rendered into a stack for `image: {build: native}`: multi-stage,
base images pinned by digest, a non-root USER, nothing secret in its layers."""

from __future__ import annotations

import io
import re

import pytest
from dockerfile_parse import DockerfileParser

from pyagent_compile.pipeline import compile_spec
from pyagent_compile.render import render_stack
from tests.conftest import ROOT

DIGEST = re.compile(r"^[\w.\-/:]+@sha256:[0-9a-f]{64}$")
SECRET_WORDS = re.compile(r"(?i)(password|passwd|secret|token|api[_-]?key|private[_-]?key|BEGIN [A-Z ]*KEY)")


def _stack(example: str, env: str) -> dict[str, str]:
    result = compile_spec(ROOT / "examples" / example / "swarm.yaml", f"examples/{example}/swarm.yaml", env)
    assert result.ok, result.diagnostics
    (environment,) = result.environments
    assert environment.plan is not None
    return render_stack(environment.plan)


@pytest.fixture
def parsed() -> DockerfileParser:
    files = _stack("laptop", "dev")
    assert "Dockerfile" in files
    return DockerfileParser(fileobj=io.BytesIO(files["Dockerfile"].encode()))


def test_only_built_images_get_a_dockerfile() -> None:
    assert "Dockerfile" not in _stack("research", "prod")  # image: {ref: ...}


def test_every_base_image_is_pinned_by_digest(parsed: DockerfileParser) -> None:
    froms = [i["value"].split()[0] for i in parsed.structure if i["instruction"] == "FROM"]
    assert len(froms) >= 2, "multi-stage: a build stage and a runtime stage"
    for image in froms:
        assert DIGEST.match(image), f"{image} is not pinned by digest"
    assert parsed.baseimage.startswith("gcr.io/distroless/"), "the runtime stage has no shell or package manager"


def test_runs_as_a_non_root_user(parsed: DockerfileParser) -> None:
    final_stage = parsed.structure[max(i for i, x in enumerate(parsed.structure) if x["instruction"] == "FROM") :]
    users = [x["value"] for x in final_stage if x["instruction"] == "USER"]
    assert users and users[-1].split(":")[0] == "10001"  # matches the StatefulSet's runAsUser


def test_read_only_root_friendly(parsed: DockerfileParser) -> None:
    volumes = [x["value"] for x in parsed.structure if x["instruction"] == "VOLUME"]
    assert any("/var/lib/pyagent" in v for v in volumes)
    entrypoint = [x["value"] for x in parsed.structure if x["instruction"] == "ENTRYPOINT"]
    assert entrypoint == ['["/usr/local/bin/pyagent-node", "run"]']  # the StatefulSet passes --config
    manifest = _stack("laptop", "dev")["manifests/09-statefulset-laptop-agents.yaml"]
    assert "readOnlyRootFilesystem: true" in manifest and "runAsUser: 10001" in manifest


def test_no_secrets_in_layers(parsed: DockerfileParser) -> None:
    for instruction in parsed.structure:
        if instruction["instruction"] in ("ENV", "ARG", "RUN", "COPY", "ADD", "LABEL"):
            assert not SECRET_WORDS.search(instruction["value"]), instruction
        assert instruction["instruction"] != "ADD", "ADD can fetch URLs and unpack archives; COPY is explicit"
    copies = [x["value"] for x in parsed.structure if x["instruction"] == "COPY"]
    assert all(".key" not in c and "data/" not in c for c in copies), "node keys and data never enter an image"


def test_exposes_the_spec_ports(parsed: DockerfileParser) -> None:
    exposed = {p for x in parsed.structure if x["instruction"] == "EXPOSE" for p in x["value"].split()}
    assert exposed == {"7100/tcp", "7443/tcp", "9100/tcp"}  # raft, grpc, metrics of the spec


def test_the_image_build_is_portable(parsed: DockerfileParser) -> None:
    """cargo reads native/.cargo/config.toml (tuned to the build host's CPU) only when it runs
    inside native/; the image must build from elsewhere so its binary runs on any x86-64 node."""
    (workdir,) = [i["value"] for i in parsed.structure if i["instruction"] == "WORKDIR"][:1]
    builds = [i["value"] for i in parsed.structure if i["instruction"] == "RUN" and "cargo build" in i["value"]]
    assert builds and all("--manifest-path native/Cargo.toml" in b for b in builds)
    assert not workdir.rstrip("/").endswith("native")
    assert "target-cpu" not in parsed.content

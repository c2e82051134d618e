"""Every version of the Pulumi engine that tests/e2e/test_pulumi.py runs, pinned in one place.

Built from the Go module proxy (cached under `.tools/<name>-<version>/`): the Pulumi CLI (which is the
engine) and the Kubernetes resource provider. The Python SDKs are the ones the compiled stacks pin in
their requirements.txt (installed in the project's .venv by `make setup`).
"""

from __future__ import annotations

# The CLI and its engine: tag v3.276.0 of github.com/pulumi/pulumi (pkg/v3 and sdk/v3 modules).
PULUMI = "v3.276.0"

# The Kubernetes provider. The proxy serves github.com/pulumi/pulumi-kubernetes/provider/v4 at one version
# only, the pseudo-version @latest resolves to; tagged versions (v4.25.0, v4.32.0, v4.34.2) and other
# pseudo-versions answer "403 Forbidden: This module version is not available". Its commit f47bc2d6f199
# (2026-01-15) is the commit tagged v4.25.0, so the binary is stamped 4.25.0, as that release's was.
KUBERNETES_PROVIDER_MODULE = "github.com/pulumi/pulumi-kubernetes/provider/v4"
KUBERNETES_PROVIDER_PSEUDO = "v4.0.0-20260115033456-f47bc2d6f199"
KUBERNETES_PROVIDER = "4.25.0"

# What the compiled stacks pin (stacks/*/*/requirements.txt); test_pulumi.py checks they still do.
PULUMI_SDK_PYTHON = "3.272.0"
KUBERNETES_SDK_PYTHON = "4.34.2"

# The Python language host, as a package of the sdk/v3 module: until v3.68.0 it was
# github.com/pulumi/pulumi/sdk/v3/python/cmd/pulumi-language-python, built from the sdk/v3 module the
# proxy serves; v3.68.0 is the newest version of sdk/v3 the proxy lists that still holds it (v3.90.0 and
# later hold only its pulumi-language-python-exec script).
LANGUAGE_HOST_IN_SDK = "v3.68.0"
# Since then it has had a module of its own, which the proxy refuses at every version asked for (its
# version list, @latest, @v3.276.0, and explicit pseudo-versions of real commits): `tools` asks again for
# these and reports the answer. The commit tagged v3.276.0 is not in the stored snapshot of pulumi/pulumi
# (it ends at v3.259.0, 2026-08-21), so its pseudo-version cannot be written; the ones here are of
# v3.259.0's commit and of the snapshot's newest commit.
LANGUAGE_HOST_MODULE = "github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3"
LANGUAGE_HOST_TRIES = (
    "v3.276.0",
    "v3.0.0-20260819165155-0ac56e876614",
    "v3.0.0-20260821191800-1b5949891b3c",
)

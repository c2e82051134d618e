"""The README is part of the product: its error-code table and its commands must be true."""

from __future__ import annotations

import re

from pyagent_compile.commands.info import code_table_markdown
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()


def test_readme_lists_every_error_code() -> None:
    section = re.search(r"<!-- codes:start -->\n(.*?)<!-- codes:end -->", README, re.DOTALL)
    assert section is not None
    assert section.group(1) == code_table_markdown(), (
        "paste `pyagent explain --list --format markdown` between the codes markers in README.md"
    )


def test_readme_test_command_is_what_ci_runs() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci and "make test" in README
    assert "make demo" in README

"""JUnit XML, the test-report format every CI system shows (Jenkins, GitLab, Azure, GitHub
actions that publish test results).

One <testsuite>; an error is a <testcase> with a <failure>, a warning or note a passing
<testcase> whose <system-out> says what was found; `passed` names checks that ran clean
(e.g. a policy rule on an environment), each a passing <testcase>, so a clean run is not
an empty report.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence

from pyagent_compile.diagnostics.model import Diagnostic, Severity


def _name(diag: Diagnostic) -> str:
    return f"{diag.code} {diag.path}".strip() if diag.path else diag.code


def render_junit(diags: Iterable[Diagnostic], suite: str = "pyagent", passed: Sequence[str] = ()) -> str:
    ordered = list(diags)
    failures = sum(1 for d in ordered if d.severity is Severity.ERROR)
    root = ET.Element(
        "testsuites", name=suite, tests=str(len(ordered) + len(passed)), failures=str(failures), errors="0"
    )
    suite_el = ET.SubElement(
        root,
        "testsuite",
        name=suite,
        tests=str(len(ordered) + len(passed)),
        failures=str(failures),
        errors="0",
        skipped="0",
    )
    for diag in ordered:
        span = diag.span
        attrs = {"name": _name(diag), "classname": span.file if span else suite}
        if span is not None:
            attrs.update(file=span.file, line=str(span.line))
        case = ET.SubElement(suite_el, "testcase", attrs)
        where = f"{span}: " if span else ""
        text = f"{where}{diag.code}: {diag.message}" + (f"\nhelp: {diag.help}" if diag.help else "")
        if diag.severity is Severity.ERROR:
            failure = ET.SubElement(case, "failure", message=diag.message, type=diag.code)
            failure.text = text
        else:
            ET.SubElement(case, "system-out").text = f"{diag.severity.value}: {text}"
    for name in passed:
        ET.SubElement(suite_el, "testcase", name=name, classname=suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"

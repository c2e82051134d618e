//! Real Python runs: a script raising a chain of exceptions, a script that does not compile, and
//! a real pytest run in its long, short and native traceback styles.

mod common;

use std::process::Command;

use common::{python, run, user_functions, TempDir};
use pyagent_trace::{analyze, Kind, Relation, Report};

fn json(report: &Report) -> String {
    serde_json::to_string_pretty(report).expect("serialisable")
}

const CHAINED: &str = r#"import json


def parse(text):
    return json.loads(text)


def load():
    try:
        parse("{not json")
    except ValueError as e:
        raise RuntimeError("bad config") from e


try:
    load()
except RuntimeError:
    {}["missing"]
"#;

#[test]
fn a_chained_python_exception() {
    let dir = TempDir::new("py");
    let script = dir.write("app.py", CHAINED);
    let ran = run(Command::new(python())
        .arg(&script)
        .current_dir(&dir.0)
        .env("PYTHONDONTWRITEBYTECODE", "1"));
    let r = analyze(&ran.stdout, &ran.stderr, ran.exit, &[dir.root()]);
    let shown = json(&r);
    assert_eq!(r.exit_code, Some(1), "{shown}");
    assert_eq!(r.kind, Kind::PythonTraceback, "{shown}");
    assert_eq!(r.failures.len(), 1, "{shown}");
    let f = &r.failures[0];
    assert_eq!(
        (f.error_type.as_str(), f.message.as_str()),
        ("KeyError", "'missing'")
    );
    assert_eq!(f.line, 1);
    let user = f.user_frame.as_ref().expect("a user frame");
    assert_eq!(user.file.as_deref(), Some(script.to_str().unwrap()));
    assert_eq!(
        (user.line, user.function.as_deref()),
        (Some(18), Some("<module>"))
    );
    assert_eq!(user.source.as_deref(), Some("{}[\"missing\"]"));

    // Oldest first: the JSONDecodeError, caused the RuntimeError, during whose handling the
    // KeyError happened.
    assert_eq!(f.chain.len(), 2, "{shown}");
    let decode = &f.chain[0];
    assert_eq!(decode.error_type, "json.decoder.JSONDecodeError");
    assert!(
        decode.message.starts_with("Expecting property name"),
        "{shown}"
    );
    assert_eq!(decode.relation, Relation::Cause);
    // Innermost frames are json's own, then ours.
    assert!(!decode.frames[0].user, "{shown}");
    let decode_user = decode.user_frame.as_ref().expect("user frame");
    assert_eq!(
        (decode_user.function.as_deref(), decode_user.line),
        (Some("parse"), Some(5))
    );
    let runtime = &f.chain[1];
    assert_eq!(
        (runtime.error_type.as_str(), runtime.message.as_str()),
        ("RuntimeError", "bad config")
    );
    assert_eq!(runtime.relation, Relation::Context);
    assert_eq!(runtime.user_frame.as_ref().unwrap().line, Some(12));
    assert!(
        r.summary.starts_with("KeyError: 'missing' at "),
        "{}",
        r.summary
    );
    assert!(r.summary.contains("app.py:18 in <module>"), "{}", r.summary);
}

#[test]
fn a_python_script_that_does_not_compile() {
    let dir = TempDir::new("py-syntax");
    let script = dir.write("bad.py", "x = 1\ndef f(:\n    pass\n");
    let ran = run(Command::new(python()).arg(&script).current_dir(&dir.0));
    let r = analyze(&ran.stdout, &ran.stderr, ran.exit, &[dir.root()]);
    let shown = json(&r);
    assert_eq!(r.failures.len(), 1, "{shown}");
    let f = &r.failures[0];
    assert_eq!(f.error_type, "SyntaxError", "{shown}");
    let at = f.user_frame.as_ref().expect("user frame");
    assert_eq!(
        (at.file.as_deref(), at.line),
        (Some(script.to_str().unwrap()), Some(2))
    );
}

const CALC: &str = "def add(a, b):\n    return a - b\n\n\ndef div(a, b):\n    return a / b\n";
const TESTS: &str = r#"import pytest

from calc import add, div


def test_add():
    assert add(1, 2) == 3


def test_div():
    assert div(1, 0) == 0


class TestK:
    @pytest.mark.parametrize("x", [1])
    def test_p(self, x):
        raise ValueError(f"bad {x}\nsecond line")


def test_ok():
    pass
"#;

fn pytest_available() -> bool {
    let probe = run(Command::new(python()).args(["-c", "import pytest"]));
    if probe.exit != Some(0) {
        eprintln!(
            "SKIPPED: pytest is not importable by {} (set PYAGENT_TEST_PYTHON to a Python with pytest): {}",
            python().display(),
            probe.stderr.trim().lines().last().unwrap_or("")
        );
        return false;
    }
    true
}

fn pytest_report(style: &str) -> (Report, TempDir) {
    let dir = TempDir::new("pytest");
    dir.write("calc.py", CALC);
    dir.write("test_calc.py", TESTS);
    let ran = run(Command::new(python())
        .args([
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:randomly",
            style,
        ])
        .arg("test_calc.py")
        .current_dir(&dir.0)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env_remove("PYTEST_ADDOPTS"));
    assert_eq!(ran.exit, Some(1), "pytest: {}{}", ran.stdout, ran.stderr);
    let r = analyze(&ran.stdout, &ran.stderr, ran.exit, &[dir.root()]);
    (r, dir)
}

fn check_pytest(style: &str) {
    let (r, _dir) = pytest_report(style);
    let shown = json(&r);
    assert_eq!(r.kinds, vec![Kind::Pytest], "{style}: {shown}");
    assert_eq!(r.failures.len(), 3, "{style}: {shown}");
    let tests: Vec<_> = r.failures.iter().map(|f| f.test.as_deref()).collect();
    assert_eq!(
        tests,
        vec![
            Some("test_calc.py::test_add"),
            Some("test_calc.py::test_div"),
            Some("test_calc.py::TestK::test_p[1]")
        ],
        "{style}: {shown}"
    );
    let add = &r.failures[0];
    assert_eq!(add.error_type, "AssertionError", "{style}: {shown}");
    assert!(add.message.contains("assert -1 == 3"), "{style}: {shown}");
    let at = add.user_frame.as_ref().unwrap();
    // Relative to the rootdir, but absolute in --tb=native (CPython's own format).
    assert!(
        at.file.as_deref().unwrap().ends_with("test_calc.py"),
        "{style}: {shown}"
    );
    assert_eq!(at.line, Some(7), "{style}: {shown}");

    let div = &r.failures[1];
    assert_eq!(
        (div.error_type.as_str(), div.message.as_str()),
        ("ZeroDivisionError", "division by zero"),
        "{style}: {shown}"
    );
    let at = div.user_frame.as_ref().unwrap();
    assert!(
        at.file.as_deref().unwrap().ends_with("calc.py"),
        "{style}: {shown}"
    );
    assert_eq!(
        (at.line, at.function.as_deref()),
        (Some(6), Some("div")),
        "{style}: {shown}"
    );
    // --tb=native shows pytest's and pluggy's own frames too (site-packages: not the user's).
    let user = user_functions(div);
    assert_eq!(
        user,
        vec![Some("div"), Some("test_div")],
        "{style}: {shown}"
    );

    let p = &r.failures[2];
    assert_eq!(
        (p.error_type.as_str(), p.message.as_str()),
        ("ValueError", "bad 1\nsecond line"),
        "{style}: {shown}"
    );
    assert_eq!(
        p.user_frame.as_ref().unwrap().line,
        Some(17),
        "{style}: {shown}"
    );
    assert!(
        r.summary.starts_with("AssertionError: assert -1 == 3 at "),
        "{style}: {}",
        r.summary
    );
    assert!(
        r.summary.ends_with("test_calc.py:7 in test_add (test test_calc.py::test_add) [pytest, exit code 1]; 2 more failures"),
        "{style}: {}",
        r.summary
    );
}

#[test]
fn a_real_pytest_run_long_short_and_native() {
    if !pytest_available() {
        return;
    }
    for style in ["--tb=long", "--tb=short", "--tb=native"] {
        check_pytest(style);
    }
}

#[test]
fn a_real_pytest_run_with_only_its_summary() {
    if !pytest_available() {
        return;
    }
    let (r, _dir) = pytest_report("--tb=no");
    let shown = json(&r);
    assert_eq!(r.failures.len(), 3, "{shown}");
    assert_eq!(r.failures[1].error_type, "ZeroDivisionError", "{shown}");
    assert_eq!(
        r.failures[1].test.as_deref(),
        Some("test_calc.py::test_div")
    );
    let at = r.failures[1].user_frame.as_ref().expect("the test's file");
    assert_eq!(at.file.as_deref(), Some("test_calc.py"));
}

//! Real Rust and Go programs that panic: compiled here with `rustc` and `go build`, run, and
//! their output analysed.

mod common;

use std::process::Command;

use common::{go_command, run, user_functions, Ran, TempDir};
use pyagent_trace::{analyze, Kind, Report};

fn json(report: &Report) -> String {
    serde_json::to_string_pretty(report).expect("serialisable")
}

const PANICS: &str = r#"fn pick(v: &[i32], i: usize) -> i32 {
    v[i]
}

fn main() {
    let v = vec![1, 2, 3];
    println!("{}", pick(&v, 5));
}
"#;

fn rustc() -> String {
    std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into())
}

fn compile(dir: &TempDir, source: &str, extra: &[&str]) {
    dir.write("main.rs", source);
    let built = run(Command::new(rustc())
        .args(["-g", "--edition", "2021", "-o", "prog", "main.rs"])
        .args(extra)
        .current_dir(&dir.0));
    assert_eq!(built.exit, Some(0), "rustc failed: {}", built.stderr);
}

fn run_prog(dir: &TempDir, backtrace: &str) -> Ran {
    run(Command::new(dir.0.join("prog"))
        .current_dir(&dir.0)
        .env("RUST_BACKTRACE", backtrace))
}

#[test]
fn a_rust_panic_without_and_with_a_backtrace() {
    let dir = TempDir::new("rust");
    compile(&dir, PANICS, &[]);

    let ran = run_prog(&dir, "0");
    let r = analyze(&ran.stdout, &ran.stderr, ran.exit, &[dir.root()]);
    let shown = json(&r);
    assert_eq!(r.exit_code, Some(101));
    assert_eq!(r.kind, Kind::RustPanic, "{shown}");
    let f = &r.failures[0];
    assert_eq!(f.error_type, "panic");
    assert_eq!(
        f.message,
        "index out of bounds: the len is 3 but the index is 5"
    );
    assert_eq!(f.thread.as_deref(), Some("main"));
    assert!(f.frames.is_empty(), "{shown}");
    let at = f
        .user_frame
        .as_ref()
        .expect("the panic's location is the user's");
    assert_eq!(
        (at.file.as_deref(), at.line, at.column),
        (Some("main.rs"), Some(2), Some(5))
    );
    assert_eq!(
        r.summary,
        "panic: index out of bounds: the len is 3 but the index is 5 at main.rs:2 [rust panic, exit code 101]"
    );

    for mode in ["1", "full"] {
        let ran = run_prog(&dir, mode);
        let r = analyze(&ran.stdout, &ran.stderr, ran.exit, &[dir.root()]);
        let shown = json(&r);
        assert_eq!(r.failures.len(), 1, "{mode}: {shown}");
        let f = &r.failures[0];
        assert_eq!(
            f.message,
            "index out of bounds: the len is 3 but the index is 5"
        );
        assert!(f.frames.len() >= 3, "{mode}: {shown}");
        // The innermost frames are std's panic machinery, not the user's.
        assert!(!f.frames[0].user, "{mode}: {shown}");
        let user = f.user_frame.as_ref().expect("a user frame");
        assert_eq!(
            user.function.as_deref(),
            Some("main::pick"),
            "{mode}: {shown}"
        );
        assert_eq!(
            (user.line, user.column),
            (Some(2), Some(5)),
            "{mode}: {shown}"
        );
        assert!(
            user.file.as_deref().unwrap().ends_with("main.rs"),
            "{mode}: {shown}"
        );
        let callers = user_functions(f);
        assert_eq!(
            callers,
            vec![Some("main::pick"), Some("main::main")],
            "{mode}: {shown}"
        );
        // Full backtraces' crate hashes are gone.
        assert!(
            f.frames
                .iter()
                .all(|f| !f.function.as_deref().unwrap_or("").contains("std[")),
            "{shown}"
        );
    }
}

const LIBTEST: &str = r#"pub fn add(a: i32, b: i32) -> i32 {
    a - b
}

#[cfg(test)]
mod tests {
    #[test]
    fn adds() {
        assert_eq!(super::add(1, 2), 3);
    }

    #[test]
    fn fine() {}
}
"#;

#[test]
fn a_failing_libtest_test() {
    let dir = TempDir::new("rust-test");
    compile(&dir, LIBTEST, &["--test"]);
    let ran = run(Command::new(dir.0.join("prog"))
        .args(["--test-threads", "1"])
        .current_dir(&dir.0)
        .env("RUST_BACKTRACE", "0"));
    let r = analyze(&ran.stdout, &ran.stderr, ran.exit, &[dir.root()]);
    let shown = json(&r);
    assert_eq!(r.failures.len(), 1, "{shown}");
    let f = &r.failures[0];
    assert_eq!(f.test.as_deref(), Some("tests::adds"), "{shown}");
    assert_eq!(f.thread.as_deref(), Some("tests::adds"));
    assert_eq!(
        f.message, "assertion `left == right` failed\n  left: -1\n right: 3",
        "{shown}"
    );
    assert_eq!(f.user_frame.as_ref().unwrap().line, Some(9));
}

const GO_PANICS: &str = r#"package main

import (
	"fmt"
	"os"
	"sync"
)

type account struct{ balance int }

func (a *account) share(parts int) int {
	return a.balance / parts
}

func main() {
	a := &account{balance: 10}
	if len(os.Args) > 1 && os.Args[1] == "goroutine" {
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			panic(fmt.Sprintf("worker %d failed", 3))
		}()
		wg.Wait()
		return
	}
	fmt.Println(a.share(len(os.Args) - 1))
}
"#;

#[test]
fn go_panics_in_main_and_in_a_goroutine() {
    let dir = TempDir::new("go");
    dir.write("main.go", GO_PANICS);
    let built = run(go_command(&dir.0).args(["build", "-o", "prog", "main.go"]));
    assert_eq!(
        built.exit,
        Some(0),
        "go build failed: {}{}",
        built.stdout,
        built.stderr
    );
    let main_go = dir.0.join("main.go");
    let main_go = main_go.to_str().unwrap();

    let ran = run(Command::new(dir.0.join("prog")).current_dir(&dir.0));
    let r = analyze(&ran.stdout, &ran.stderr, ran.exit, &[dir.root()]);
    let shown = json(&r);
    assert_eq!(r.exit_code, Some(2));
    assert_eq!(r.kind, Kind::GoPanic, "{shown}");
    let f = &r.failures[0];
    assert_eq!(
        (f.error_type.as_str(), f.message.as_str()),
        ("runtime error", "integer divide by zero"),
        "{shown}"
    );
    assert_eq!(f.thread.as_deref(), Some("goroutine 1"));
    let user = f.user_frame.as_ref().expect("user frame");
    assert_eq!(user.file.as_deref(), Some(main_go), "{shown}");
    assert_eq!(
        (user.line, user.function.as_deref()),
        (Some(12), Some("main.(*account).share")),
        "{shown}"
    );
    assert_eq!(
        f.frames.last().unwrap().function.as_deref(),
        Some("main.main"),
        "{shown}"
    );

    let ran = run(Command::new(dir.0.join("prog"))
        .arg("goroutine")
        .current_dir(&dir.0));
    let r = analyze(&ran.stdout, &ran.stderr, ran.exit, &[dir.root()]);
    let shown = json(&r);
    let f = &r.failures[0];
    assert_eq!(
        (f.error_type.as_str(), f.message.as_str()),
        ("panic", "worker 3 failed"),
        "{shown}"
    );
    assert_ne!(f.thread.as_deref(), Some("goroutine 1"), "{shown}");
    let user = f.user_frame.as_ref().expect("user frame");
    assert_eq!(
        (user.line, user.function.as_deref()),
        (Some(22), Some("main.main.func1")),
        "{shown}"
    );
    let creator = f.frames.last().unwrap();
    assert_eq!(creator.function.as_deref(), Some("main.main"), "{shown}");
    assert_eq!(creator.line, Some(20), "{shown}");
}

#[test]
fn go_build_errors_are_compiler_errors() {
    let dir = TempDir::new("go-build");
    dir.write(
        "main.go",
        "package main\n\nfunc main() {\n\tundefinedThing()\n}\n",
    );
    let ran = run(go_command(&dir.0).args(["build", "-o", "prog", "main.go"]));
    let r = analyze(&ran.stdout, &ran.stderr, ran.exit, &[dir.root()]);
    let shown = json(&r);
    assert_eq!(r.kind, Kind::CompilerError, "{shown}");
    let at = r.failures[0].user_frame.as_ref().expect("user frame");
    assert_eq!((at.line, at.column), (Some(4), Some(2)), "{shown}");
    assert!(
        r.failures[0].message.contains("undefined: undefinedThing"),
        "{shown}"
    );
}

#[test]
fn rustc_errors_are_compiler_errors() {
    let dir = TempDir::new("rustc-error");
    dir.write("main.rs", "fn main() {\n    let x: i32 = \"no\";\n}\n");
    let ran = run(Command::new(rustc()).args(["main.rs"]).current_dir(&dir.0));
    let r = analyze(&ran.stdout, &ran.stderr, ran.exit, &[dir.root()]);
    let shown = json(&r);
    assert_eq!(r.failures.len(), 1, "{shown}");
    let f = &r.failures[0];
    assert_eq!(
        (f.error_type.as_str(), f.message.as_str()),
        ("error[E0308]", "mismatched types"),
        "{shown}"
    );
    let at = f.user_frame.as_ref().unwrap();
    assert_eq!(
        (at.file.as_deref(), at.line),
        (Some("main.rs"), Some(2)),
        "{shown}"
    );
}

//! Which frames are the user's code: a file under one of the user roots (the workspace, as the
//! command saw it) or a relative path, and not in a library. The library markers are where each
//! toolchain puts code the user did not write:
//!
//! - Python: `site-packages/`, `dist-packages/` (a venv inside the workspace included), CPython's
//!   own modules (`<frozen importlib._bootstrap>`), the interpreter's `lib/pythonX.Y/`;
//! - Rust: `/rustc/<commit>/library/...` (std, core, alloc as shipped), `.rustup/toolchains/`,
//!   `.cargo/registry/` and `.cargo/git/` (dependencies);
//! - Go: the module cache `pkg/mod/`, GOROOT (`/usr/local/go/src/`, `/usr/lib/go-1.x/src/`), and,
//!   under `-trimpath`, standard packages shown as relative paths (`runtime/panic.go`), told by
//!   the function's package: a first path element without a dot is the standard library (the
//!   rule Go's own `go list` and panicparse's `IsStdlib` follow);
//! - C: glibc's start-up code (`./csu/...`, `sysdeps/`), below `main` in full Rust backtraces.

use crate::report::{Failure, Frame, Kind};

const LIBRARY_MARKERS: &[&str] = &[
    "site-packages/",
    "dist-packages/",
    "/rustc/",
    ".rustup/toolchains/",
    ".cargo/registry/",
    ".cargo/git/",
    "pkg/mod/",
    "/usr/local/go/src/",
    "/usr/lib/go/src/",
    // glibc's start-up code, in full Rust backtraces: `./csu/../csu/libc-start.c`.
    "csu/",
    "sysdeps/",
];

fn python_stdlib(file: &str) -> bool {
    // `/usr/lib/python3.11/json/decoder.py`, `.venv/lib/python3.11/x.py` (the venv's stdlib links).
    file.split('/').any(|part| {
        part.strip_prefix("python")
            .and_then(|v| v.split_once('.'))
            .is_some_and(|(major, minor)| {
                !major.is_empty()
                    && major.bytes().all(|b| b.is_ascii_digit())
                    && !minor.is_empty()
                    && minor.bytes().all(|b| b.is_ascii_digit())
            })
    }) && file.contains("lib/python")
}

fn go_root(file: &str) -> bool {
    // `/usr/lib/go-1.22/src/runtime/panic.go` (Debian's GOROOT).
    file.split_once("/go-1.")
        .is_some_and(|(_, rest)| rest.contains("/src/"))
}

fn in_library(file: &str) -> bool {
    (file.starts_with('<') && file != "<string>" && file != "<stdin>")
        || LIBRARY_MARKERS.iter().any(|m| file.contains(m))
        || python_stdlib(file)
        || go_root(file)
}

fn under_root(file: &str, root: &str) -> bool {
    let root = root.trim_end_matches('/');
    if root.is_empty() {
        return false;
    }
    file.strip_prefix(root)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// A Go function of a standard package: `runtime.gopanic`, `net/http.(*Server).Serve` (the first
/// element of the package path has no dot; `main` is the program's own).
fn go_standard_function(function: &str) -> bool {
    let first_element = function.split('/').next().unwrap_or("");
    let first_element = if function.contains('/') {
        first_element
    } else {
        first_element.split('.').next().unwrap_or("")
    };
    first_element != "main" && !first_element.contains('.')
}

fn is_user(frame: &Frame, kind: Kind, roots: &[&str]) -> bool {
    let Some(file) = frame.file.as_deref() else {
        return false;
    };
    if file.is_empty() || in_library(file) {
        return false;
    }
    if file.starts_with('/') {
        return roots.iter().any(|r| under_root(file, r));
    }
    match (kind, frame.function.as_deref()) {
        (Kind::GoPanic, Some(f)) => !go_standard_function(f),
        _ => true,
    }
}

fn classify(
    frames: &mut [Frame],
    location: &mut Option<Frame>,
    kind: Kind,
    roots: &[&str],
) -> Option<Frame> {
    for f in frames.iter_mut() {
        f.user = is_user(f, kind, roots);
    }
    if let Some(loc) = location.as_mut() {
        loc.user = is_user(loc, kind, roots);
    }
    frames
        .iter()
        .find(|f| f.user)
        .or(location.as_ref().filter(|l| l.user))
        .cloned()
}

/// Sets every frame's `user` flag and the failure's (and its causes') `user_frame`.
pub(crate) fn mark_user_code(failure: &mut Failure, roots: &[&str]) {
    let kind = failure.kind;
    failure.user_frame = classify(&mut failure.frames, &mut failure.location, kind, roots);
    for cause in &mut failure.chain {
        cause.user_frame = classify(&mut cause.frames, &mut cause.location, kind, roots);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(file: &str, function: Option<&str>) -> Frame {
        Frame {
            file: Some(file.into()),
            function: function.map(Into::into),
            ..Frame::default()
        }
    }

    #[test]
    fn user_roots_relative_paths_and_libraries() {
        let roots = ["/workspace", "/tmp/ws/"];
        let user = |file: &str| is_user(&frame(file, None), Kind::PythonTraceback, &roots);
        assert!(user("/workspace/calc.py"));
        assert!(user("/tmp/ws/a/b.py"));
        assert!(user("calc.py"));
        assert!(user("<string>"));
        assert!(!user("/workspacex/calc.py"));
        assert!(!user("/usr/lib/python3.11/json/decoder.py"));
        assert!(!user(
            "/workspace/.venv/lib/python3.11/site-packages/x/y.py"
        ));
        assert!(!user(".venv/lib/python3.12/site-packages/x.py"));
        assert!(!user("<frozen importlib._bootstrap>"));
        assert!(!user("/rustc/59807616e/library/core/src/panicking.rs"));
        assert!(!user(
            "/root/.cargo/registry/src/index.crates.io-1/serde-1.0.0/src/de.rs"
        ));
        assert!(!user("/usr/lib/go-1.22/src/runtime/panic.go"));
        assert!(!user("/workspace/go/pkg/mod/github.com/x/y@v1/z.go"));
    }

    #[test]
    fn go_trimpath_frames_by_package() {
        let roots: [&str; 0] = [];
        let go = |file: &str, f: &str| is_user(&frame(file, Some(f)), Kind::GoPanic, &roots);
        assert!(go("main.go", "main.main"));
        assert!(go("example.com/m/x.go", "example.com/m.F"));
        assert!(!go("runtime/panic.go", "runtime.gopanic"));
        assert!(!go("net/http/server.go", "net/http.(*conn).serve"));
    }
}

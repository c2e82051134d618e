//! The report: the stable JSON shape (docs/analyze-trace.md) of what was recognised.
//!
//! Every field is always present (`null` or empty when there is nothing to say), so a consumer
//! never has to tell "absent" from "unknown". Adding a field is compatible; renaming or removing
//! one, or changing a meaning, bumps [`REPORT_VERSION`].

use serde::Serialize;

/// The version of the report's JSON shape.
pub const REPORT_VERSION: u32 = 1;

/// What kind of output a failure was recognised in.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// CPython's `Traceback (most recent call last):` (and a bare `SyntaxError` report).
    PythonTraceback,
    /// pytest's `FAILURES` / `ERRORS` sections and its short test summary.
    Pytest,
    /// Rust std's panic message (`thread 'main' panicked at ...`), with its backtrace if printed.
    RustPanic,
    /// Go runtime's `panic: ...` / `fatal error: ...` and the goroutine traceback.
    GoPanic,
    /// A compiler's diagnostic: `file:line:col: error: ...` (gcc, clang, mypy), rustc's
    /// `error[E...]` with its `-->` line, Go's `file.go:line:col: ...` after `# package`.
    CompilerError,
    /// Nothing recognised (only as [`Report::kind`]).
    Unrecognised,
}

/// Which output stream a failure was found in.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One stack frame, or one position (a panic's or a diagnostic's location).
#[derive(Serialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Frame {
    /// As printed (not resolved against any directory).
    pub file: Option<String>,
    pub line: Option<u32>,
    pub column: Option<u32>,
    /// The function (Python's `in NAME`, a demangled Rust symbol, a Go function).
    pub function: Option<String>,
    /// The source line, where the trace prints it (Python, pytest).
    pub source: Option<String>,
    /// In the user's code: under one of the user roots or a relative path, and not in a
    /// library (site-packages, the Rust or Go standard library, a crate registry, ...).
    pub user: bool,
}

/// How a chained Python exception leads to the next one (CPython `traceback.py`'s
/// `_cause_message` and `_context_message`).
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Relation {
    /// "The above exception was the direct cause of the following exception:" (`raise ... from`).
    Cause,
    /// "During handling of the above exception, another exception occurred:".
    Context,
}

/// An earlier exception of a chain, as printed before the failure it led to.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Cause {
    /// How this exception leads to the next one in the chain (the next cause, or the failure).
    pub relation: Relation,
    pub error_type: String,
    pub message: String,
    pub location: Option<Frame>,
    pub frames: Vec<Frame>,
    pub frames_omitted: usize,
    pub user_frame: Option<Frame>,
}

/// One failure: an uncaught exception, a failed test, a panic, a compiler error.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    pub kind: Kind,
    pub stream: Stream,
    /// 1-based line of the stream (of the analysed text) where the failure's report starts.
    pub line: usize,
    /// The exception class (`ZeroDivisionError`, `mymod.MyError`), `panic`, `runtime error`,
    /// `fatal error`, `error`, `error[E0425]`; `unknown` when the trace does not say.
    pub error_type: String,
    /// The message, lines joined with `\n` (bounded, see docs).
    pub message: String,
    /// The test that failed: pytest's node id (or section name), libtest's test name.
    pub test: Option<String>,
    /// The Rust thread name or the Go goroutine (`goroutine 1`).
    pub thread: Option<String>,
    /// Where it was raised: a panic's or diagnostic's position, else the innermost frame.
    pub location: Option<Frame>,
    /// Innermost (where it failed) first, whatever order the language prints them in.
    pub frames: Vec<Frame>,
    /// Frames beyond the bound that were not kept (the outermost ones).
    pub frames_omitted: usize,
    /// The innermost frame in the user's code (or the location, if it is and there are no
    /// frames in user code).
    pub user_frame: Option<Frame>,
    /// Python only: the exceptions that led to this one, oldest first, as printed.
    pub chain: Vec<Cause>,
}

/// How much of one stream was analysed.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct StreamInput {
    /// `argument` (given to [`crate::analyze`]), `inline` (the trace's inline text) or
    /// `capture` (the whole capture file, its SHA-256 checked).
    pub source: &'static str,
    /// Bytes the command wrote to the stream, where known (else those given).
    pub bytes: u64,
    /// Bytes analysed: the last [`crate::MAX_ANALYSED_BYTES`] at most.
    pub analysed_bytes: u64,
    /// The analysed text is not the whole of what the command wrote.
    pub truncated: bool,
}

/// Both streams' [`StreamInput`].
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Inputs {
    pub stdout: StreamInput,
    pub stderr: StreamInput,
}

impl Report {
    /// The report as JSON (a step's output). Cannot fail: every field is a string, a number, a
    /// boolean, null, or a list or object of them.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

/// What was recognised in a command's output.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// [`REPORT_VERSION`].
    pub version: u32,
    /// The kind of the first failure, or `unrecognised`.
    pub kind: Kind,
    /// Every kind recognised, in the order of [`Report::failures`]' first of each.
    pub kinds: Vec<Kind>,
    /// One line for people (and a model): the first failure, where, how many more.
    pub summary: String,
    pub exit_code: Option<i32>,
    /// The signal that ended the command, where the trace says.
    pub signal: Option<i32>,
    /// stdout's failures, then stderr's, each in the order they appear.
    pub failures: Vec<Failure>,
    /// Failures beyond [`crate::MAX_FAILURES`], not kept.
    pub failures_omitted: usize,
    pub input: Inputs,
}

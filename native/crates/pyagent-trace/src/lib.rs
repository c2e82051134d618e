//! Turns a failing command's output into a structured [`Report`]: which kinds of failure were
//! recognised, and for each its type, message, frames, the innermost frame in the user's code,
//! and a one-line summary. The node's executor runs it for `analyze-trace` steps, whose input is
//! a `sandbox` step's trace ([`analyze_trace`], [`analyze_trace_with_captures`]); the JSON shape
//! is in docs/analyze-trace.md.
//!
//! ```
//! let stderr = "Traceback (most recent call last):\n  File \"/workspace/calc.py\", line 2, in <module>\n    1 / 0\nZeroDivisionError: division by zero\n";
//! let report = pyagent_trace::analyze("", stderr, Some(1), &["/workspace"]);
//! assert_eq!(report.failures[0].error_type, "ZeroDivisionError");
//! assert_eq!(report.failures[0].user_frame.as_ref().unwrap().line, Some(2));
//! ```
//!
//! # Recognised
//!
//! | kind | source of the format |
//! |---|---|
//! | CPython tracebacks, chained (`raise from`, during handling), `SyntaxError`, exception groups (the group itself) | CPython `Lib/traceback.py` |
//! | pytest `FAILURES`/`ERRORS` sections (long, short, native) and the short test summary | pytest `_pytest/terminal.py`, `_pytest/_code/code.py` |
//! | Rust panics (before and since 1.73, with the thread id of 1.89+), short and full backtraces, libtest's test name, stack overflow | `library/std/src/panicking.rs`, backtrace-rs `print.rs`, `library/test/src/formatters/pretty.rs` |
//! | Go `panic:` / `fatal error:` and the failing goroutine's frames | Go `runtime/panic.go`, `runtime/traceback.go` |
//! | compiler diagnostics: GCC/Clang/mypy `file:line[:col]: error:`, rustc `error[E..]` + `-->`, `go build` | each tool's output |
//!
//! # Why hand-written parsers
//!
//! We looked for maintained parsers first. `panic-message` and Sentry's `message_from_panic_info`
//! read a panic *payload* inside the panicking process, not printed text. `sentry-backtrace`'s
//! `parse_stacktrace` reads only a Rust backtrace (not the panic line), via `regex`, and brings
//! `sentry-core` with it; `backtrace-parser` (2018) reads only the old backtrace format. Go's
//! good parsers (maruel/panicparse, DataDog/gostackparse) and Python's own `traceback` module are
//! not Rust. No crate covers the four formats with one report, so the parsers are written here
//! against the printers' sources cited in each module, line by line, with no regular
//! expressions: each parser walks the lines once and every bound (line length, message lines,
//! frames, chain length, failures, analysed bytes) is a constant below, so the work is linear in
//! the input and unknown text gives an empty report with kind `unrecognised`, never an error.

mod compiler;
mod golang;
mod paths;
mod pytest;
mod python;
pub mod report;
mod rust;
mod text;
mod trace;

pub use report::{
    Cause, Failure, Frame, Inputs, Kind, Relation, Report, Stream, StreamInput, REPORT_VERSION,
};
use text::Found;

/// Of each stream, the last this many bytes are analysed (failures are printed last; a
/// sandbox step captures at most 1 MiB of a stream).
pub const MAX_ANALYSED_BYTES: usize = 2 << 20;
/// Failures kept in a report (the first ones); the rest are counted in `failuresOmitted`.
pub const MAX_FAILURES: usize = 64;
/// A summary's excerpt of a message.
const SUMMARY_MESSAGE_CHARS: usize = 160;

/// One stream's text and what is known of it.
pub(crate) struct StreamText {
    pub text: String,
    pub source: &'static str,
    pub bytes: u64,
    pub truncated: bool,
}

/// Analyses a command's output. `user_roots` are the directories of the user's code as the
/// command saw them (a `sandbox` step's workspace: `/workspace`, or its host path when the
/// sandbox fell back to Landlock); relative paths count as the user's too.
pub fn analyze(stdout: &str, stderr: &str, exit: Option<i32>, user_roots: &[&str]) -> Report {
    let given = |text: &str| StreamText {
        text: text.to_string(),
        source: "argument",
        bytes: text.len() as u64,
        truncated: false,
    };
    analyze_streams(given(stdout), given(stderr), exit, None, user_roots)
}

/// Analyses a `sandbox` step's trace (its output JSON) from its inline text alone (the first
/// 16 KiB of each stream). Anything that is not such a trace gives an `unrecognised` report.
pub fn analyze_trace(trace: &serde_json::Value, user_roots: &[&str]) -> Report {
    analyze_trace_reading(trace, user_roots, false)
}

/// As [`analyze_trace`], but each stream is read whole from its capture file when the trace
/// names one that exists here with the recorded SHA-256 (else the inline text is used; the
/// report's `input` says which).
pub fn analyze_trace_with_captures(trace: &serde_json::Value, user_roots: &[&str]) -> Report {
    analyze_trace_reading(trace, user_roots, true)
}

fn analyze_trace_reading(trace: &serde_json::Value, roots: &[&str], captures: bool) -> Report {
    let stdout = trace::stream_text(trace, "stdout", captures);
    let stderr = trace::stream_text(trace, "stderr", captures);
    let (exit, signal) = trace::exit_and_signal(trace);
    analyze_streams(stdout, stderr, exit, signal, roots)
}

/// The last [`MAX_ANALYSED_BYTES`] of `text`, from a line start when cut.
fn analysed_window(text: &str) -> &str {
    if text.len() <= MAX_ANALYSED_BYTES {
        return text;
    }
    let mut start = text.len() - MAX_ANALYSED_BYTES;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    let window = &text[start..];
    window.find('\n').map_or(window, |nl| &window[nl + 1..])
}

/// A format's parser: every failure it finds in the lines.
type Parser = fn(&[&str]) -> Vec<Found>;

/// Is `line` inside one of the sorted, non-overlapping `spans`?
fn claimed(spans: &[(usize, usize)], line: usize) -> bool {
    let after = spans.partition_point(|&(start, _)| start <= line);
    after > 0 && line < spans[after - 1].1
}

/// Every failure in one stream. The parsers run in priority order; a failure that starts inside
/// one an earlier parser found is the same failure seen differently (a Python traceback inside
/// a pytest section, a pytest location line that looks like a diagnostic) and is dropped.
fn analyse_stream(text: &str, stream: Stream) -> Vec<Failure> {
    let lines = text::lines(text);
    let parsers: [Parser; 5] = [
        pytest::parse,
        python::parse,
        rust::parse,
        golang::parse,
        compiler::parse,
    ];
    let mut spans: Vec<(usize, usize)> = Vec::new();
    let mut kept: Vec<Found> = Vec::new();
    for parse in parsers {
        let fresh: Vec<Found> = parse(&lines)
            .into_iter()
            .filter(|f| !claimed(&spans, f.start))
            .collect();
        spans.extend(fresh.iter().map(|f| (f.start, f.end.max(f.start + 1))));
        spans = merged(spans);
        kept.extend(fresh);
    }
    kept.sort_by_key(|f| f.start);
    kept.into_iter()
        .map(|f| Failure {
            stream,
            ..f.failure
        })
        .collect()
}

/// Sorts spans and merges the overlapping ones.
fn merged(mut spans: Vec<(usize, usize)>) -> Vec<(usize, usize)> {
    spans.sort_unstable();
    let mut out: Vec<(usize, usize)> = Vec::with_capacity(spans.len());
    for (start, end) in spans {
        match out.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => out.push((start, end)),
        }
    }
    out
}

fn stream_input(s: &StreamText, analysed: &str) -> StreamInput {
    StreamInput {
        source: s.source,
        bytes: s.bytes.max(s.text.len() as u64),
        analysed_bytes: analysed.len() as u64,
        truncated: s.truncated || analysed.len() < s.text.len(),
    }
}

fn analyze_streams(
    stdout: StreamText,
    stderr: StreamText,
    exit_code: Option<i32>,
    signal: Option<i32>,
    roots: &[&str],
) -> Report {
    let (out, err) = (analysed_window(&stdout.text), analysed_window(&stderr.text));
    let mut failures = analyse_stream(out, Stream::Stdout);
    failures.extend(analyse_stream(err, Stream::Stderr));
    let failures_omitted = failures.len().saturating_sub(MAX_FAILURES);
    failures.truncate(MAX_FAILURES);
    for f in &mut failures {
        paths::mark_user_code(f, roots);
    }
    let mut kinds: Vec<Kind> = Vec::new();
    for f in &failures {
        if !kinds.contains(&f.kind) {
            kinds.push(f.kind);
        }
    }
    let input = Inputs {
        stdout: stream_input(&stdout, out),
        stderr: stream_input(&stderr, err),
    };
    let mut report = Report {
        version: REPORT_VERSION,
        kind: kinds.first().copied().unwrap_or(Kind::Unrecognised),
        kinds,
        summary: String::new(),
        exit_code,
        signal,
        failures,
        failures_omitted,
        input,
    };
    report.summary = summary(&report);
    report
}

fn one_line(s: &str) -> String {
    let first = s.lines().next().unwrap_or("").trim();
    let mut out: String = first.chars().take(SUMMARY_MESSAGE_CHARS).collect();
    if out.len() < first.len() {
        out.push('…');
    }
    out
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::PythonTraceback => "python traceback",
        Kind::Pytest => "pytest",
        Kind::RustPanic => "rust panic",
        Kind::GoPanic => "go panic",
        Kind::CompilerError => "compiler error",
        Kind::Unrecognised => "unrecognised",
    }
}

fn ending(report: &Report) -> String {
    match (report.exit_code, report.signal) {
        (_, Some(sig)) => format!("killed by signal {sig}"),
        (Some(code), None) => format!("exit code {code}"),
        (None, None) => "exit code unknown".into(),
    }
}

/// One line: the first failure, where (in the user's code if any), how many more.
fn summary(report: &Report) -> String {
    let partly = if report.input.stdout.truncated || report.input.stderr.truncated {
        "; output analysed in part"
    } else {
        ""
    };
    let Some(first) = report.failures.first() else {
        return format!("no failure recognised ({}){partly}", ending(report));
    };
    let mut s = first.error_type.clone();
    let message = one_line(&first.message);
    if !message.is_empty() {
        s.push_str(": ");
        s.push_str(&message);
    }
    if let Some(at) = first.user_frame.as_ref().or(first.location.as_ref()) {
        if let Some(file) = &at.file {
            s.push_str(&format!(" at {}", one_line(file)));
            if let Some(line) = at.line {
                s.push_str(&format!(":{line}"));
            }
        }
        if let Some(function) = &at.function {
            s.push_str(&format!(" in {}", one_line(function)));
        }
    }
    if let Some(test) = &first.test {
        s.push_str(&format!(" (test {})", one_line(test)));
    }
    let more = report.failures.len() - 1 + report.failures_omitted;
    s.push_str(&format!(" [{}, {}]", kind_name(first.kind), ending(report)));
    if more > 0 {
        let plural = if more == 1 { "" } else { "s" };
        s.push_str(&format!("; {more} more failure{plural}"));
    }
    s.push_str(partly);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_unrecognised() {
        let r = analyze("hello\nworld", "\u{0}\u{1}: x", Some(3), &[]);
        assert_eq!(r.kind, Kind::Unrecognised);
        assert!(r.failures.is_empty());
        assert_eq!(r.summary, "no failure recognised (exit code 3)");
    }

    #[test]
    fn claimed_spans() {
        let spans = merged(vec![(10, 20), (0, 3), (15, 25)]);
        assert_eq!(spans, vec![(0, 3), (10, 25)]);
        assert!(claimed(&spans, 0) && claimed(&spans, 24));
        assert!(!claimed(&spans, 3) && !claimed(&spans, 25) && !claimed(&spans, 9));
    }

    #[test]
    fn the_window_is_the_tail_from_a_line_start() {
        let text = format!("{}\nlast line", "x".repeat(MAX_ANALYSED_BYTES + 10));
        assert_eq!(analysed_window(&text), "last line");
    }
}

//! CPython tracebacks, as `Lib/traceback.py` prints them (3.8 to 3.14):
//!
//! ```text
//! Traceback (most recent call last):            <- TracebackException.format
//!   File "/w/p.py", line 9, in <module>         <- StackSummary.format_frame_summary
//!     load()                                    <- the source line, 4 spaces
//!     ~~~~^^                                    <- 3.11+ carets (skipped)
//!   [Previous line repeated 996 more times]     <- recursion, collapsed
//! mymod.MyError: message                        <- format_exception_only: qualname, ": ", str(exc)
//! more message lines, then 3.11+ notes
//!
//! The above exception was the direct cause of the following exception:   <- _cause_message
//! During handling of the above exception, another exception occurred:    <- _context_message
//! ```
//!
//! A `SyntaxError` adds `  File "x.py", line 3` (no `in`) with the source and a caret before its
//! line; a script that does not compile prints only that part, with no `Traceback` header. An
//! `ExceptionGroup` (3.11+) prints `  + Exception Group Traceback ...` with its lines behind
//! `| `; the group's own frames and line are read, its sub-exceptions are not.

use crate::report::{Cause, Failure, Frame, Kind, Relation};
use crate::text::{
    blank_failure, leading_spaces, push_frame, split_exception, Found, Message, MAX_CHAIN,
};

const HEADER: &str = "Traceback (most recent call last):";
const GROUP_HEADER: &str = "Exception Group Traceback (most recent call last):";
const CAUSE: &str = "The above exception was the direct cause of the following exception:";
const CONTEXT: &str = "During handling of the above exception, another exception occurred:";
const SYNTAX_ERRORS: &[&str] = &["SyntaxError", "IndentationError", "TabError"];

/// One printed exception: its frames (as printed, outermost first) and its line.
struct Printed {
    error_type: String,
    message: String,
    frames: Vec<Frame>,
    frames_omitted: usize,
}

/// Inside an exception group's block, the `| ` that `traceback.py` puts before each line.
fn unprefixed(line: &str, group: bool) -> &str {
    if !group {
        return line;
    }
    let t = line.trim_start();
    t.strip_prefix("| ")
        .or_else(|| t.strip_prefix("+ "))
        .or_else(|| t.strip_prefix('|'))
        .unwrap_or(line)
}

/// `Some(group)` when the line opens a traceback.
fn header(line: &str) -> Option<bool> {
    let t = line.trim();
    if t == HEADER {
        return Some(false);
    }
    let g = t.strip_prefix("+ ").unwrap_or(t);
    (g == GROUP_HEADER).then_some(true)
}

fn relation(line: &str) -> Option<Relation> {
    match line.trim() {
        CAUSE => Some(Relation::Cause),
        CONTEXT => Some(Relation::Context),
        _ => None,
    }
}

/// `  File "NAME", line N, in FUNC` or, for a `SyntaxError`, `  File "NAME", line N`.
fn frame_line(line: &str) -> Option<Frame> {
    if leading_spaces(line) == 0 {
        return None;
    }
    let rest = line.trim_start().strip_prefix("File \"")?;
    let (file, after) = rest.rsplit_once("\", line ")?;
    let (lineno, function) = match after.split_once(", in ") {
        Some((n, f)) => (n, Some(f.to_string())),
        None => (after, None),
    };
    Some(Frame {
        file: Some(file.to_string()),
        line: lineno.trim().parse().ok(),
        function,
        ..Frame::default()
    })
}

fn carets_only(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| matches!(c, '^' | '~' | ' ' | '-'))
}

/// Reads frames from `lines[at..]`; returns them and the index of the first line after them.
fn read_frames(lines: &[&str], mut at: usize, group: bool) -> (Vec<Frame>, usize, usize) {
    let (mut frames, mut omitted) = (Vec::new(), 0);
    while at < lines.len() {
        let line = unprefixed(lines[at], group);
        if let Some(frame) = frame_line(line) {
            push_frame(&mut frames, &mut omitted, frame);
            at += 1;
            continue;
        }
        let indent = leading_spaces(line);
        if indent == 0 || line.trim().is_empty() {
            break;
        }
        let text = line.trim();
        if indent >= 4 && !carets_only(text) && !text.starts_with("[Previous line repeated") {
            if let Some(last) = frames.last_mut().filter(|f| f.source.is_none()) {
                last.source = Some(text.to_string());
            }
        }
        at += 1;
    }
    (frames, omitted, at)
}

/// The exception's line(s) at `lines[at]`; returns the index after them.
fn read_exception(lines: &[&str], at: usize, group: bool) -> (String, String, usize) {
    let Some(first) = lines.get(at).map(|l| unprefixed(l, group)) else {
        return ("unknown".into(), String::new(), at);
    };
    if first.trim().is_empty() {
        return ("unknown".into(), String::new(), at);
    }
    let (ty, msg) = split_exception(first).unwrap_or(("unknown", first));
    let mut message = Message::default();
    message.push(msg);
    let mut next = at + 1;
    while let Some(line) = lines.get(next).map(|l| unprefixed(l, group)) {
        let t = line.trim_start();
        let ends = t.is_empty()
            || header(line).is_some()
            || relation(line).is_some()
            || frame_line(line).is_some()
            || (group && t.starts_with("+-"));
        if ends || !message.push(line) {
            break;
        }
        next += 1;
    }
    (ty.to_string(), message.finish(), next)
}

fn read_printed(lines: &[&str], frames_at: usize, group: bool) -> (Printed, usize) {
    let (frames, frames_omitted, at) = read_frames(lines, frames_at, group);
    let (error_type, message, next) = read_exception(lines, at, group);
    let printed = Printed {
        error_type,
        message,
        frames,
        frames_omitted,
    };
    (printed, next)
}

/// Index of the first non-blank line from `at`, looking at most two lines on.
fn skip_blanks(lines: &[&str], at: usize) -> usize {
    let mut i = at;
    while i < lines.len() && i < at + 2 && lines[i].trim().is_empty() {
        i += 1;
    }
    i
}

/// After a printed exception: the next one of the chain, if a chain message follows.
fn next_in_chain(lines: &[&str], at: usize) -> Option<(Relation, Printed, usize)> {
    let marker = skip_blanks(lines, at);
    let rel = relation(lines.get(marker)?)?;
    let start = skip_blanks(lines, marker + 1);
    let line = lines.get(start)?;
    if let Some(group) = header(line) {
        let (printed, next) = read_printed(lines, start + 1, group);
        return Some((rel, printed, next));
    }
    // An exception that was never raised (`raise X from ValueError()`) prints without frames.
    split_exception(line)?;
    let (printed, next) = read_printed(lines, start, false);
    Some((rel, printed, next))
}

fn innermost_first(mut frames: Vec<Frame>) -> Vec<Frame> {
    frames.reverse();
    frames
}

fn into_failure(start: usize, chain: Vec<(Printed, Option<Relation>)>) -> Failure {
    let mut failure = blank_failure(Kind::PythonTraceback, start);
    let mut chain = chain;
    let Some((last, _)) = chain.pop() else {
        return failure;
    };
    let skip = chain.len().saturating_sub(MAX_CHAIN);
    failure.chain = chain
        .into_iter()
        .skip(skip)
        .map(|(p, rel)| {
            let frames = innermost_first(p.frames);
            Cause {
                relation: rel.unwrap_or(Relation::Context),
                error_type: p.error_type,
                message: p.message,
                location: frames.first().cloned(),
                frames,
                frames_omitted: p.frames_omitted,
                user_frame: None,
            }
        })
        .collect();
    failure.frames = innermost_first(last.frames);
    failure.location = failure.frames.first().cloned();
    failure.frames_omitted = last.frames_omitted;
    failure.error_type = last.error_type;
    failure.message = last.message;
    failure
}

/// A traceback (and its chain) starting at `lines[start]`, the header or, for a bare
/// `SyntaxError`, its `File` line.
fn read_traceback(
    lines: &[&str],
    start: usize,
    frames_at: usize,
    group: bool,
    mut chain: Vec<(Printed, Option<Relation>)>,
) -> Found {
    let (first, mut end) = read_printed(lines, frames_at, group);
    chain.push((first, None));
    while let Some((rel, printed, next)) = next_in_chain(lines, end) {
        if let Some(previous) = chain.last_mut() {
            previous.1 = Some(rel);
        }
        chain.push((printed, None));
        end = next;
    }
    Found {
        start,
        end,
        failure: into_failure(start, chain),
    }
}

/// A `SyntaxError` printed alone (a script that does not compile): `  File "x", line N`,
/// its source and caret, then the error at column 0 within a few lines.
fn bare_syntax_error(lines: &[&str], at: usize) -> bool {
    let Some(frame) = frame_line(lines[at]) else {
        return false;
    };
    frame.function.is_none()
        && lines[at + 1..lines.len().min(at + 5)]
            .iter()
            .any(|l| split_exception(l).is_some_and(|(ty, _)| SYNTAX_ERRORS.contains(&ty)))
}

/// A chain that starts with an exception printed without a traceback (`raise X from
/// ValueError()`: the cause was never raised): its line, a blank, the chain message at
/// `lines[at]`, a blank, then a traceback. Returns the exception's line and the traceback's header.
fn untraced_start(lines: &[&str], at: usize) -> Option<(usize, Printed, Relation, usize)> {
    let rel = relation(lines[at])?;
    let header_at = skip_blanks(lines, at + 1);
    let group = header(lines.get(header_at)?)?;
    if group {
        return None;
    }
    let line_at = at
        .checked_sub(2)
        .filter(|&l| lines[l + 1].trim().is_empty())?;
    let (ty, msg) = split_exception(lines[line_at])?;
    let printed = Printed {
        error_type: ty.to_string(),
        message: msg.to_string(),
        frames: Vec::new(),
        frames_omitted: 0,
    };
    Some((line_at, printed, rel, header_at))
}

/// Every traceback in `lines`.
pub(crate) fn parse(lines: &[&str]) -> Vec<Found> {
    let mut found = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let tb = if let Some(group) = header(lines[i]) {
            Some(read_traceback(lines, i, i + 1, group, Vec::new()))
        } else if bare_syntax_error(lines, i) {
            Some(read_traceback(lines, i, i, false, Vec::new()))
        } else if let Some((start, printed, rel, header_at)) = untraced_start(lines, i) {
            let chain = vec![(printed, Some(rel))];
            Some(read_traceback(lines, start, header_at + 1, false, chain))
        } else {
            None
        };
        match tb {
            Some(tb) => {
                i = tb.end.max(i + 1);
                found.push(tb);
            }
            None => i += 1,
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::lines;

    #[test]
    fn a_chain_of_three_with_both_relations() {
        let text = "Traceback (most recent call last):\n  File \"/w/p.py\", line 5, in load\n    parse(\"x\")\n  File \"/w/p.py\", line 2, in parse\n    return int(s)\n           ^^^^^^\nValueError: invalid literal\n\nThe above exception was the direct cause of the following exception:\n\nTraceback (most recent call last):\n  File \"/w/p.py\", line 7, in load\n    raise RuntimeError(\"bad\") from e\nRuntimeError: bad\n\nDuring handling of the above exception, another exception occurred:\n\nTraceback (most recent call last):\n  File \"/w/p.py\", line 11, in <module>\n    {}[\"k\"]\nKeyError: 'k'\n";
        let found = parse(&lines(text));
        assert_eq!(found.len(), 1);
        let f = &found[0].failure;
        assert_eq!(
            (f.error_type.as_str(), f.message.as_str()),
            ("KeyError", "'k'")
        );
        assert_eq!(f.frames[0].line, Some(11));
        assert_eq!(f.chain.len(), 2);
        assert_eq!(f.chain[0].relation, Relation::Cause);
        assert_eq!(f.chain[0].error_type, "ValueError");
        assert_eq!(f.chain[0].frames[0].function.as_deref(), Some("parse"));
        assert_eq!(
            f.chain[0].frames[0].source.as_deref(),
            Some("return int(s)")
        );
        assert_eq!(f.chain[1].relation, Relation::Context);
    }

    #[test]
    fn a_cause_that_was_never_raised() {
        let text = "ValueError: inner\n\nThe above exception was the direct cause of the following exception:\n\nTraceback (most recent call last):\n  File \"/w/x.py\", line 1, in <module>\nRuntimeError: outer\n";
        let found = parse(&lines(text));
        assert_eq!(found.len(), 1);
        let f = &found[0].failure;
        assert_eq!((f.line, f.error_type.as_str()), (1, "RuntimeError"));
        assert_eq!(f.chain.len(), 1);
        assert_eq!(
            (f.chain[0].error_type.as_str(), f.chain[0].relation),
            ("ValueError", Relation::Cause)
        );
        assert!(f.chain[0].frames.is_empty());
    }

    #[test]
    fn a_bare_syntax_error_and_an_exception_group() {
        let text =
            "  File \"/w/bad.py\", line 1\n    def f(:\n          ^\nSyntaxError: invalid syntax\n";
        let found = parse(&lines(text));
        assert_eq!(found[0].failure.error_type, "SyntaxError");
        assert_eq!(found[0].failure.location.as_ref().unwrap().line, Some(1));

        let group = "  + Exception Group Traceback (most recent call last):\n  |   File \"/w/g.py\", line 1, in <module>\n  |     raise ExceptionGroup(\"eg\", [ValueError(1)])\n  | ExceptionGroup: eg (1 sub-exception)\n  +-+---------------- 1 ----------------\n    | ValueError: 1\n    +------------------------------------\n";
        let found = parse(&lines(group));
        assert_eq!(found.len(), 1);
        let f = &found[0].failure;
        assert_eq!(f.error_type, "ExceptionGroup");
        assert_eq!(f.message, "eg (1 sub-exception)");
        assert_eq!(f.frames[0].file.as_deref(), Some("/w/g.py"));
    }
}

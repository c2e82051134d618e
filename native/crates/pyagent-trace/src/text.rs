//! Line handling and the small parsers every format shares, with the bounds that keep the work
//! linear in the input: every parser walks the lines once, looks at each line a constant number
//! of times, and no line it looks at is longer than [`MAX_LINE_BYTES`]. No regular expressions.

use crate::report::{Failure, Frame, Kind, Stream};

/// A line longer than this is cut (at a character boundary) before any parser sees it.
pub(crate) const MAX_LINE_BYTES: usize = 4096;
/// Of a failure's message.
pub(crate) const MAX_MESSAGE_LINES: usize = 50;
pub(crate) const MAX_MESSAGE_BYTES: usize = 8192;
/// Of one failure's frames (the innermost are kept).
pub(crate) const MAX_FRAMES: usize = 128;
/// Of one Python exception chain (the ones nearest the failure are kept).
pub(crate) const MAX_CHAIN: usize = 16;

/// A failure a parser found, with the lines its report spans (`start..end`).
#[derive(Debug)]
pub(crate) struct Found {
    pub start: usize,
    pub end: usize,
    pub failure: Failure,
}

/// The text's lines, `\r\n` or `\n` ended, each cut to [`MAX_LINE_BYTES`].
pub(crate) fn lines(text: &str) -> Vec<&str> {
    text.split('\n')
        .map(|l| clip(l.strip_suffix('\r').unwrap_or(l), MAX_LINE_BYTES))
        .collect()
}

/// At most `max` bytes of `s`, cut at a character boundary.
pub(crate) fn clip(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

pub(crate) fn blank_failure(kind: Kind, start: usize) -> Failure {
    Failure {
        kind,
        stream: Stream::Stderr,
        line: start + 1,
        error_type: String::new(),
        message: String::new(),
        test: None,
        thread: None,
        location: None,
        frames: Vec::new(),
        frames_omitted: 0,
        user_frame: None,
        chain: Vec::new(),
    }
}

/// A message built line by line, bounded in lines and bytes.
#[derive(Default)]
pub(crate) struct Message {
    text: String,
    lines: usize,
}

impl Message {
    /// Adds a line; false once the message is full (the line is dropped).
    pub fn push(&mut self, line: &str) -> bool {
        if self.lines >= MAX_MESSAGE_LINES || self.text.len() + line.len() > MAX_MESSAGE_BYTES {
            return false;
        }
        if self.lines > 0 {
            self.text.push('\n');
        }
        self.text.push_str(line);
        self.lines += 1;
        true
    }

    pub fn is_full(&self) -> bool {
        self.lines >= MAX_MESSAGE_LINES
    }

    pub fn finish(self) -> String {
        self.text
    }
}

/// Keeps a frame unless [`MAX_FRAMES`] are kept already (then counts it as omitted).
pub(crate) fn push_frame(frames: &mut Vec<Frame>, omitted: &mut usize, frame: Frame) {
    if frames.len() < MAX_FRAMES {
        frames.push(frame);
    } else {
        *omitted += 1;
    }
}

pub(crate) fn leading_spaces(line: &str) -> usize {
    line.len() - line.trim_start_matches([' ', '\t']).len()
}

fn digits(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 9 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `file:LINE:COL` or `file:LINE` (a Rust panic location, an `at` line, a Go frame's file line).
pub(crate) fn parse_position(s: &str) -> Option<Frame> {
    let s = s.trim();
    let (head, last) = s.rsplit_once(':')?;
    let last = digits(last)?;
    let (file, line, column) = match head.rsplit_once(':') {
        Some((file, line)) if digits(line).is_some() => (file, digits(line), Some(last)),
        _ => (head, Some(last), None),
    };
    (!file.is_empty()).then(|| Frame {
        file: Some(file.to_string()),
        line,
        column,
        ..Frame::default()
    })
}

/// A line that starts `path:LINE: rest` or `path:LINE:COL: rest` (pytest's locations,
/// compilers' diagnostics): the first `:` followed by digits and `:` ends the path.
pub(crate) fn path_line_prefix(line: &str) -> Option<(Frame, &str)> {
    if line.starts_with([' ', '\t']) {
        return None;
    }
    let bytes = line.as_bytes();
    let mut at = 0;
    while let Some(off) = line[at..].find(':') {
        let colon = at + off;
        let run = bytes[colon + 1..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let after = colon + 1 + run;
        if colon > 0 && run > 0 && bytes.get(after) == Some(&b':') {
            let lineno = digits(&line[colon + 1..after])?;
            let mut frame = Frame {
                file: Some(line[..colon].to_string()),
                line: Some(lineno),
                ..Frame::default()
            };
            let mut rest = &line[after + 1..];
            let col_run = rest.bytes().take_while(|b| b.is_ascii_digit()).count();
            if col_run > 0 && rest.as_bytes().get(col_run) == Some(&b':') {
                frame.column = digits(&rest[..col_run]);
                rest = &rest[col_run + 1..];
            }
            return Some((frame, rest.strip_prefix(' ').unwrap_or(rest)));
        }
        // Past the digits just checked: each byte is looked at a bounded number of times.
        at = after.max(colon + 1);
    }
    None
}

/// A dotted identifier (`ValueError`, `mymod.sub.MyError`), as Python names exception classes.
pub(crate) fn is_dotted_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 256
        && s.split('.').all(|part| {
            let mut chars = part.chars();
            matches!(chars.next(), Some(c) if c.is_alphabetic() || c == '_')
                && chars.all(|c| c.is_alphanumeric() || c == '_')
        })
}

/// `Type: message` or a bare `Type` (CPython `format_exception_only`: the class's qualified
/// name, then `: ` and `str(exc)` when that is not empty).
pub(crate) fn split_exception(line: &str) -> Option<(&str, &str)> {
    match line.split_once(": ") {
        Some((ty, msg)) if is_dotted_identifier(ty) => Some((ty, msg)),
        _ => {
            let ty = line.strip_suffix(':').unwrap_or(line).trim_end();
            is_dotted_identifier(ty).then_some((ty, ""))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_with_and_without_columns() {
        let f = parse_position("src/main.rs:12:5").unwrap();
        assert_eq!(
            (f.file.as_deref(), f.line, f.column),
            (Some("src/main.rs"), Some(12), Some(5))
        );
        let f = parse_position("/go/x.go:7").unwrap();
        assert_eq!(
            (f.file.as_deref(), f.line, f.column),
            (Some("/go/x.go"), Some(7), None)
        );
        assert!(parse_position("no position").is_none());
        assert!(parse_position(":3").is_none());
    }

    #[test]
    fn path_line_prefixes() {
        let (f, rest) = path_line_prefix("a/b.c:3:14: error: nope").unwrap();
        assert_eq!(
            (f.file.as_deref(), f.line, f.column),
            (Some("a/b.c"), Some(3), Some(14))
        );
        assert_eq!(rest, "error: nope");
        let (f, rest) = path_line_prefix("C:x:12: AssertionError").unwrap();
        assert_eq!((f.file.as_deref(), f.line), (Some("C:x"), Some(12)));
        assert_eq!(rest, "AssertionError");
        assert!(path_line_prefix("  indented.py:3: x").is_none());
        assert!(path_line_prefix("time 12:30 later").is_none());
    }

    #[test]
    fn exception_lines() {
        assert_eq!(split_exception("KeyError: 'k'"), Some(("KeyError", "'k'")));
        assert_eq!(split_exception("a.b.E: x: y"), Some(("a.b.E", "x: y")));
        assert_eq!(
            split_exception("KeyboardInterrupt"),
            Some(("KeyboardInterrupt", ""))
        );
        assert_eq!(split_exception("not an exception: x"), None);
    }

    #[test]
    fn long_lines_are_cut_at_char_boundaries() {
        let long = "é".repeat(MAX_LINE_BYTES);
        let ls = lines(&long);
        assert!(ls[0].len() <= MAX_LINE_BYTES);
    }
}

//! Rust panics, as std's default panic hook prints them (`library/std/src/panicking.rs`,
//! `default_hook`), with the backtrace of `library/std/src/sys/backtrace.rs` and backtrace-rs's
//! `print.rs`:
//!
//! ```text
//! thread 'main' (4067) panicked at src/main.rs:1:26:      <- Rust 1.73+ (the thread id since 1.89)
//! index out of bounds: the len is 3 but the index is 5    <- the message, any number of lines
//! thread 'main' panicked at 'boom', src/main.rs:2:5        <- before 1.73: message quoted, then location
//! note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace
//! stack backtrace:                                        <- RUST_BACKTRACE=1 (short) or full
//!    0: __rustc::rust_begin_unwind
//!              at /rustc/<commit>/library/std/src/panicking.rs:689:5
//!    3: m::f
//!              at ./m.rs:1:26
//!    0:     0x565421b377ea - std[e28293b1aa0f68bd]::backtrace_rs::...   <- full: address, crate hash
//! note: Some details are omitted, run with `RUST_BACKTRACE=full` for a verbose backtrace.
//! thread 'main' has overflowed its stack
//! fatal runtime error: stack overflow
//! ```
//!
//! A panic in a libtest test (`cargo test`) is printed under `---- name stdout ----`
//! (`library/test/src/formatters/pretty.rs`), which names the test.

use crate::report::{Failure, Frame, Kind};
use crate::text::{blank_failure, parse_position, push_frame, Found, Message, MAX_MESSAGE_LINES};

struct Header<'a> {
    thread: &'a str,
    after: &'a str,
}

/// `thread 'NAME' panicked at REST` / `thread 'NAME' (ID) panicked at REST`.
fn header<'a>(line: &'a str, verb: &str) -> Option<Header<'a>> {
    let rest = line.strip_prefix("thread '")?;
    let at = rest.find(verb)?;
    let (name, id) = rest[..at].rsplit_once('\'')?;
    let id_ok = id.is_empty()
        || id
            .strip_prefix(" (")
            .and_then(|i| i.strip_suffix(')'))
            .is_some_and(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()));
    id_ok.then(|| Header {
        thread: name,
        after: &rest[at + verb.len()..],
    })
}

/// Drops the crate disambiguators (`std[e28293b1aa0f68bd]::`) and the symbol hash
/// (`::h0123456789abcdef`) that full backtraces print (a disambiguator is a 64-bit hash in hex).
fn clean_symbol(symbol: &str) -> String {
    let mut out = String::with_capacity(symbol.len());
    let mut rest = symbol;
    while let Some(open) = rest.find('[') {
        let tail = &rest[open + 1..];
        let hex = tail.bytes().take_while(u8::is_ascii_hexdigit).count();
        out.push_str(&rest[..open]);
        if hex >= 8 && tail.as_bytes().get(hex) == Some(&b']') {
            rest = &tail[hex + 1..];
        } else {
            out.push('[');
            rest = tail;
        }
    }
    out.push_str(rest);
    if let Some((head, hash)) = out.rsplit_once("::h") {
        if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            out.truncate(head.len());
        }
    }
    out
}

fn ends_message(line: &str) -> bool {
    line.trim().is_empty()
        || line.starts_with("note: ")
        || line.starts_with("stack backtrace:")
        || line.starts_with("thread '")
        || line.starts_with("fatal runtime error:")
}

/// The message and location of the panic whose header is `lines[at]`; the index after them.
fn panic_message(lines: &[&str], at: usize, after: &str) -> (String, Option<Frame>, usize) {
    let mut message = Message::default();
    if let Some(loc) = after.strip_suffix(':').and_then(parse_position) {
        let mut next = at + 1;
        while next < lines.len() && !ends_message(lines[next]) && message.push(lines[next]) {
            next += 1;
        }
        return (message.finish(), Some(loc), next);
    }
    // Before 1.73: `'MESSAGE', FILE:L:C`, the message possibly over several lines.
    let quoted = after.strip_prefix('\'').unwrap_or(after);
    let mut next = at;
    let mut line = quoted;
    loop {
        if let Some((msg, loc)) = line.rsplit_once("', ") {
            if let Some(frame) = parse_position(loc) {
                message.push(msg);
                return (message.finish(), Some(frame), next + 1);
            }
        }
        message.push(line);
        next += 1;
        if next >= lines.len() || next > at + MAX_MESSAGE_LINES || ends_message(lines[next]) {
            return (message.finish(), None, next);
        }
        line = lines[next];
    }
}

/// `   3: m::f` or, full, `   0:     0x5654... - std::...`.
fn numbered_symbol(line: &str) -> Option<&str> {
    let (index, symbol) = line.trim_start().split_once(':')?;
    if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let symbol = symbol.trim();
    Some(symbol.split_once(" - ").map_or(
        symbol,
        |(addr, s)| {
            if addr.starts_with("0x") {
                s
            } else {
                symbol
            }
        },
    ))
}

/// The frames after `stack backtrace:` at `lines[at]`; the index after them.
fn backtrace(lines: &[&str], at: usize, failure: &mut Failure) -> usize {
    let mut next = at + 1;
    let mut frames = Vec::new();
    while next < lines.len() {
        let line = lines[next];
        if line.trim().is_empty() || !line.starts_with(' ') {
            break;
        }
        let trimmed = line.trim();
        if let Some(pos) = trimmed.strip_prefix("at ") {
            let position = parse_position(pos).unwrap_or_default();
            match frames.last_mut() {
                Some(Frame { file: None, .. }) => {
                    let last = frames.last_mut().expect("just matched");
                    last.file = position.file;
                    last.line = position.line;
                    last.column = position.column;
                }
                _ => push_frame(&mut frames, &mut failure.frames_omitted, position),
            }
        } else {
            let symbol = numbered_symbol(line).unwrap_or(trimmed);
            let frame = Frame {
                function: Some(clean_symbol(symbol)),
                ..Frame::default()
            };
            push_frame(&mut frames, &mut failure.frames_omitted, frame);
        }
        next += 1;
    }
    failure.frames = frames;
    // `note: Some details are omitted, ...` belongs to the backtrace.
    if lines
        .get(next)
        .is_some_and(|l| l.starts_with("note: Some details"))
    {
        next += 1;
    }
    next
}

fn panic_at(lines: &[&str], at: usize, head: &Header, test: Option<&str>) -> Found {
    let mut failure = blank_failure(Kind::RustPanic, at);
    failure.error_type = "panic".into();
    failure.thread = Some(head.thread.to_string());
    failure.test = test.map(str::to_string);
    let (message, location, mut next) = panic_message(lines, at, head.after);
    failure.message = message;
    failure.location = location;
    // The note, or the backtrace, comes right after the message.
    for _ in 0..2 {
        match lines.get(next) {
            Some(l) if l.starts_with("note: run with `RUST_BACKTRACE") => next += 1,
            Some(l) if l.starts_with("stack backtrace:") => {
                next = backtrace(lines, next, &mut failure);
                break;
            }
            _ => break,
        }
    }
    Found {
        start: at,
        end: next,
        failure,
    }
}

fn fatal(at: usize, thread: Option<&str>, error_type: &str, message: &str) -> Found {
    let mut failure = blank_failure(Kind::RustPanic, at);
    failure.error_type = error_type.into();
    failure.message = message.into();
    failure.thread = thread.map(str::to_string);
    Found {
        start: at,
        end: at + 1,
        failure,
    }
}

/// libtest's `---- NAME stdout ----`.
fn test_header(line: &str) -> Option<&str> {
    line.strip_prefix("---- ")?.strip_suffix(" stdout ----")
}

/// Every panic in `lines`.
pub(crate) fn parse(lines: &[&str]) -> Vec<Found> {
    let mut found = Vec::new();
    let mut test: Option<&str> = None;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if let Some(name) = test_header(line) {
            test = Some(name);
        } else if line == "failures:" || line.starts_with("test result:") {
            test = None;
        }
        if let Some(head) = header(line, " panicked at ") {
            let panic = panic_at(lines, i, &head, test);
            i = panic.end.max(i + 1);
            found.push(panic);
            continue;
        }
        if let Some(head) = header(line, " has overflowed its stack") {
            found.push(fatal(i, Some(head.thread), "stack overflow", line));
            // Its `fatal runtime error: stack overflow` is the same failure.
            i += if lines
                .get(i + 1)
                .is_some_and(|l| l.starts_with("fatal runtime error:"))
            {
                2
            } else {
                1
            };
            continue;
        }
        if let Some(msg) = line.strip_prefix("fatal runtime error: ") {
            found.push(fatal(i, None, "fatal runtime error", msg));
        }
        i += 1;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::lines;

    #[test]
    fn old_format_and_multiline_messages() {
        let found = parse(&lines("thread 'main' panicked at 'boom', src/main.rs:2:5\nnote: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n"));
        let f = &found[0].failure;
        assert_eq!(f.message, "boom");
        assert_eq!(
            f.location.as_ref().unwrap().file.as_deref(),
            Some("src/main.rs")
        );
        assert_eq!(found[0].end, 2);

        let found = parse(&lines("---- tests::eq stdout ----\nthread 'tests::eq' panicked at src/lib.rs:9:9:\nassertion `left == right` failed\n  left: 1\n right: 2\nnote: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n"));
        let f = &found[0].failure;
        assert_eq!(
            f.message,
            "assertion `left == right` failed\n  left: 1\n right: 2"
        );
        assert_eq!(f.test.as_deref(), Some("tests::eq"));
        assert_eq!(f.location.as_ref().unwrap().line, Some(9));
    }

    #[test]
    fn full_backtrace_symbols_are_cleaned() {
        assert_eq!(
            clean_symbol(
                "<std[e28293b1aa0f68bd]::sys::X as core[c1f1a4ba060b9bfa]::fmt::Display>::fmt"
            ),
            "<std::sys::X as core::fmt::Display>::fmt"
        );
        assert_eq!(clean_symbol("m::main::h0123456789abcdef"), "m::main");
        assert_eq!(clean_symbol("a[b]::c"), "a[b]::c");
    }

    #[test]
    fn stack_overflow() {
        let found = parse(&lines(
            "\nthread 'main' has overflowed its stack\nfatal runtime error: stack overflow\n",
        ));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].failure.error_type, "stack overflow");
    }
}

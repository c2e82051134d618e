//! Go panics and fatal errors, as the runtime prints them (`runtime/panic.go` `printpanics` and
//! `printpanicval`, `runtime/traceback.go` `goroutineheader`, `traceback2`, `printFuncName`,
//! `printcreatedby`), Go 1.17 to 1.26; the field notes of panicparse and Datadog's gostackparse
//! agree:
//!
//! ```text
//! panic: runtime error: integer divide by zero             <- "panic: " + value (error: v.Error())
//! panic: boom [recovered]                                  <- printpanics, a recovered then repanicked one
//!     panic: again                                         <- a panic during the panic
//! panic: (main.T) 0xc000012345                             <- a value of a non-basic type
//! [signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x48f0a4]
//! fatal error: all goroutines are asleep - deadlock!       <- runtime.fatal / throw
//!
//! goroutine 1 [running]:                                   <- the failing goroutine comes first
//! main.divide(...)                                         <- function (arguments)
//!     /tmp/x/main.go:5                                     <- tab, file:line, " +0x1d" pc offset
//! main.main()
//!     /tmp/x/main.go:8 +0xa
//! created by main.start in goroutine 1                     <- since Go 1.21 ("in goroutine N")
//! ...additional frames elided...
//! exit status 2                                            <- `go run`'s, not the runtime's
//! ```
//!
//! (Each file line starts with a tab, shown as four spaces here.)

use crate::report::{Frame, Kind};
use crate::text::{blank_failure, parse_position, push_frame, Found, Message};

/// How far after `panic:` the `goroutine N [...]:` line may be (the message, `[signal ...]`).
const HEADER_REACH: usize = 64;

/// `goroutine 1 [running]:`, `goroutine 7 gp=0x... m=0 mp=0x... [running]:` -> `goroutine 1`.
fn goroutine_header(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("goroutine ")?;
    let id = rest.split(' ').next()?;
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) || !line.ends_with("]:") {
        return None;
    }
    Some(&line[..("goroutine ".len() + id.len())])
}

/// The kind and message of `panic: V` / `fatal error: V` at column 0.
fn panic_line(line: &str) -> Option<(&'static str, &str)> {
    if let Some(v) = line.strip_prefix("panic: ") {
        return Some(("panic", v));
    }
    if let Some(v) = line.strip_prefix("fatal error: ") {
        return Some(("fatal error", v));
    }
    None
}

/// The error type a panic value shows: `runtime error` for `runtime.Error`s, the type of a
/// non-basic value (`(main.T) 0xc...`), else `panic` / `fatal error`.
fn classify<'a>(kind: &'static str, value: &'a str) -> (String, &'a str) {
    if let Some(msg) = value.strip_prefix("runtime error: ") {
        return ("runtime error".into(), msg);
    }
    if let Some((ty, rest)) = value.strip_prefix('(').and_then(|v| v.split_once(") ")) {
        if !ty.is_empty() && !ty.contains(' ') {
            return (ty.to_string(), rest);
        }
    }
    (kind.to_string(), value)
}

/// A function line: `main.divide(...)`, `main.(*T).M(0xc000010000)`, `panic({0x4a2f40?, ...})`.
fn function_line(line: &str) -> Option<&str> {
    if line.starts_with([' ', '\t']) || !line.ends_with(')') {
        return None;
    }
    let open = line.rfind('(')?;
    (open > 0).then(|| &line[..open])
}

/// `\t/path/file.go:12 +0x1d` (or ` fp=... sp=... pc=...` with GOTRACEBACK=system).
fn file_line(line: &str) -> Option<Frame> {
    let rest = line.strip_prefix('\t')?;
    let position = rest.split(" +0x").next()?.split(" fp=").next()?;
    parse_position(position)
}

/// Where the panic was raised: the caller of the last `panic(...)` frame (deferred functions
/// that run during the panic print above it), else the first frame outside the runtime.
fn raised_at(frames: &[Frame]) -> Option<&Frame> {
    let is_panic = |f: &Frame| matches!(f.function.as_deref(), Some("panic" | "runtime.gopanic"));
    match frames.iter().rposition(is_panic) {
        Some(p) => frames.get(p + 1),
        None => frames
            .iter()
            .find(|f| {
                f.function
                    .as_deref()
                    .is_some_and(|f| !f.starts_with("runtime."))
            })
            .or(frames.first()),
    }
}

/// `go test`'s `--- FAIL: TestName (0.00s)`, printed just before a test's panic.
fn failed_test(line: &str) -> Option<&str> {
    let name = line.strip_prefix("--- FAIL: ")?.split(" (").next()?;
    (!name.is_empty()).then_some(name)
}

/// The panic at `lines[at]` and the first goroutine's frames; `None` if no goroutine header
/// follows (then it is some other program's `panic:` line).
fn read_panic(lines: &[&str], at: usize, kind: &'static str, value: &str) -> Option<Found> {
    let mut message = Message::default();
    let value = value
        .strip_suffix(" [recovered]")
        .or_else(|| value.strip_suffix(" [recovered, repanicked]"))
        .unwrap_or(value);
    let (error_type, first) = classify(kind, value);
    message.push(first);
    let mut next = at + 1;
    let reach = lines.len().min(at + HEADER_REACH);
    let goroutine = loop {
        if next >= reach {
            return None;
        }
        if let Some(g) = goroutine_header(lines[next]) {
            break g;
        }
        let more = lines[next].trim();
        if !more.is_empty() && !message.is_full() {
            message.push(more);
        }
        next += 1;
    };
    let mut failure = blank_failure(Kind::GoPanic, at);
    failure.error_type = error_type;
    failure.message = message.finish();
    failure.thread = Some(goroutine.to_string());
    failure.test = at
        .checked_sub(1)
        .and_then(|i| failed_test(lines[i]))
        .map(str::to_string);
    next += 1;
    let mut frames = Vec::new();
    while next < lines.len() {
        let line = lines[next];
        if line.trim().is_empty() {
            break;
        }
        if let Some(position) = file_line(line) {
            if let Some(last) = frames.last_mut().filter(|f: &&mut Frame| f.file.is_none()) {
                last.file = position.file;
                last.line = position.line;
                last.column = position.column;
            }
        } else if let Some(creator) = line.strip_prefix("created by ") {
            let function = creator.split(" in goroutine ").next().unwrap_or(creator);
            let frame = Frame {
                function: Some(function.to_string()),
                ..Frame::default()
            };
            push_frame(&mut frames, &mut failure.frames_omitted, frame);
        } else if let Some(function) = function_line(line) {
            let frame = Frame {
                function: Some(function.to_string()),
                ..Frame::default()
            };
            push_frame(&mut frames, &mut failure.frames_omitted, frame);
        } else if !line.starts_with("...") {
            break;
        }
        next += 1;
    }
    failure.location = raised_at(&frames).cloned();
    failure.frames = frames;
    let exit_status = |i: usize| lines.get(i).is_some_and(|l| l.starts_with("exit status "));
    if exit_status(next) {
        next += 1;
    } else if exit_status(next + 1) {
        next += 2;
    }
    Some(Found {
        start: at,
        end: next,
        failure,
    })
}

/// The index of the first goroutine header at or after a position; positions asked for never
/// decrease, so the whole parse scans the lines for headers once.
struct NextHeader {
    at: usize,
}

impl NextHeader {
    fn from(&mut self, lines: &[&str], from: usize) -> usize {
        if self.at < from {
            self.at = from;
            while self.at < lines.len() && goroutine_header(lines[self.at]).is_none() {
                self.at += 1;
            }
        }
        self.at
    }
}

/// Every Go panic in `lines`.
pub(crate) fn parse(lines: &[&str]) -> Vec<Found> {
    let mut found = Vec::new();
    let mut next_header = NextHeader { at: 0 };
    let mut i = 0;
    while i < lines.len() {
        if let Some((kind, value)) = panic_line(lines[i]) {
            // Only a `panic:` with a goroutine header near enough is read (and then passed).
            let near = next_header.from(lines, i + 1) < i + HEADER_REACH;
            if let Some(panic) = near.then(|| read_panic(lines, i, kind, value)).flatten() {
                i = panic.end.max(i + 1);
                found.push(panic);
                continue;
            }
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
    fn a_nil_dereference_in_a_method_with_a_created_by() {
        let text = "panic: runtime error: invalid memory address or nil pointer dereference\n[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x48f0a4]\n\ngoroutine 6 [running]:\nmain.(*T).M(0x0)\n\t/w/main.go:9 +0x4\ncreated by main.main in goroutine 1\n\t/w/main.go:14 +0x25\nexit status 2\n";
        let found = parse(&lines(text));
        assert_eq!(found.len(), 1);
        let f = &found[0].failure;
        assert_eq!(f.error_type, "runtime error");
        assert!(f.message.starts_with("invalid memory address"));
        assert!(f.message.contains("[signal SIGSEGV"));
        assert_eq!(f.thread.as_deref(), Some("goroutine 6"));
        assert_eq!(f.frames[0].function.as_deref(), Some("main.(*T).M"));
        assert_eq!(f.frames[0].line, Some(9));
        assert_eq!(f.frames[1].function.as_deref(), Some("main.main"));
    }

    #[test]
    fn panic_lines_without_goroutines_are_not_go() {
        assert!(parse(&lines("panic: not go\nsomething else\n")).is_empty());
        let found = parse(&lines("panic: (main.T) 0xc000012345\n\ngoroutine 1 [running]:\nmain.main()\n\t/w/m.go:3 +0x1\n"));
        assert_eq!(found[0].failure.error_type, "main.T");
    }

    #[test]
    fn a_go_test_panic_is_located_below_the_panic_frame() {
        let text = "--- FAIL: TestPanics (0.00s)\npanic: runtime error: x [recovered, repanicked]\n\ngoroutine 17 [running]:\ntesting.tRunner.func1.2({0x55a740, 0x6cae60})\n\t/usr/local/go/src/testing/testing.go:1974 +0x232\npanic({0x55a740?, 0x6cae60?})\n\t/usr/local/go/src/runtime/panic.go:860 +0x13a\nexample.com/gt.TestPanics(0xdc56296248?)\n\t/w/x_test.go:9 +0x10\n";
        let f = &parse(&lines(text))[0].failure;
        assert_eq!(f.test.as_deref(), Some("TestPanics"));
        assert_eq!(f.message, "x");
        let at = f.location.as_ref().unwrap();
        assert_eq!(
            (at.function.as_deref(), at.line),
            (Some("example.com/gt.TestPanics"), Some(9))
        );
    }
}

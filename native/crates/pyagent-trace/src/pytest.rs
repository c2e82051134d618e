//! pytest's terminal report (`_pytest/terminal.py` and `_pytest/_code/code.py`, pytest 7 to 9):
//!
//! ```text
//! =================================== FAILURES ===================================   <- write_sep("=")
//! ___________________________________ test_add ___________________________________   <- write_sep("_", head)
//!     def test_add():
//! >       assert add(1, 2) == 3
//! E       assert -1 == 3                      <- ReprEntry: "E" lines, the exception
//! E        +  where -1 = add(1, 2)
//!
//! test_calc.py:5: AssertionError              <- ReprFileLocation: path:lineno: typename
//! _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _   <- between entries (long); an entry's location
//!                                                 has an empty message unless it is the last
//! test_calc.py:8: in test_div                 <- --tb=short: path:lineno: in function
//! ----------------------------- Captured stdout call -----------------------------
//! =========================== short test summary info ============================
//! FAILED test_calc.py::TestK::test_p[1] - ValueError: bad 1
//! ERROR test_x.py - ModuleNotFoundError: ...
//! ```
//!
//! `--tb=native` sections hold CPython tracebacks, read by [`crate::python`]. `--tb=line`
//! and `--tb=no` print no sections: the short summary (`-r`) still names each failure.

use std::collections::HashMap;

use crate::python;
use crate::report::{Frame, Kind};
use crate::text::{
    blank_failure, is_dotted_identifier, path_line_prefix, push_frame, split_exception, Found,
    Message,
};

/// A `write_sep` line: `fill` repeated, a title in the middle (or none).
fn separator(line: &str, fill: char) -> Option<&str> {
    let t = line.trim_end();
    if t.len() < 6 || !t.starts_with(fill) || !t.ends_with(fill) {
        return None;
    }
    let title = t.trim_matches(fill);
    if title.is_empty() {
        return Some("");
    }
    // The title is padded by one space each side: `_ _ _` (no title) stays apart from `_ x _`.
    let inner = title.strip_prefix(' ')?.strip_suffix(' ')?;
    let inner_is_fill = inner.chars().all(|c| c == fill || c == ' ');
    (!inner.is_empty() && !inner_is_fill).then_some(inner)
}

/// Which `=` section the lines are in.
#[derive(Clone, Copy, PartialEq)]
enum Section {
    Other,
    Failures,
    Summary,
}

struct Entry {
    start: usize,
    end: usize,
    name: String,
}

/// Reads one `___ name ___` section of FAILURES or ERRORS.
fn read_entry(lines: &[&str], entry: &Entry) -> Found {
    let body = &lines[entry.start + 1..entry.end];
    let mut failure = blank_failure(Kind::Pytest, entry.start);
    failure.test = Some(entry.name.clone());
    if let Some(tb) = python::parse(body).pop() {
        // --tb=native: the section is a CPython traceback.
        let mut f = tb.failure;
        f.kind = Kind::Pytest;
        f.line = failure.line;
        f.test = failure.test;
        return Found {
            start: entry.start,
            end: entry.end,
            failure: f,
        };
    }
    let (mut frames, mut omitted) = (Vec::new(), 0);
    let mut last_type: Option<String> = None;
    let mut last_def: Option<String> = None;
    let mut pending_source: Option<String> = None;
    let mut e_lines: Vec<&str> = Vec::new();
    for line in body {
        if separator(line, '-').is_some() {
            // Captured output follows: none of it is the failure's.
            break;
        }
        if let Some(rest) = line
            .strip_prefix('E')
            .filter(|r| r.is_empty() || r.starts_with(' '))
        {
            e_lines.push(rest);
        } else if let Some(src) = line.strip_prefix('>') {
            pending_source = Some(src.trim().to_string());
        } else if let Some((mut frame, rest)) = path_line_prefix(line) {
            let rest = rest.trim();
            frame.function = match rest.strip_prefix("in ") {
                Some(f) => Some(f.to_string()),
                None => last_def.take(),
            };
            frame.source = pending_source.take();
            if !rest.is_empty() && !rest.starts_with("in ") && is_dotted_identifier(rest) {
                last_type = Some(rest.to_string());
            }
            push_frame(&mut frames, &mut omitted, frame);
        } else {
            let code = line.trim_start();
            if let Some(def) = code
                .strip_prefix("def ")
                .or(code.strip_prefix("async def "))
            {
                last_def = def.split('(').next().map(|n| n.trim().to_string());
            } else if line.starts_with("    ") && pending_source.is_none() && !code.is_empty() {
                // --tb=short prints the source line under its location, 4 spaces in.
                if let Some(last) = frames
                    .last_mut()
                    .filter(|f: &&mut Frame| f.source.is_none())
                {
                    last.source = Some(code.to_string());
                }
            }
        }
    }
    let (error_type, message) = exception_of(&e_lines, last_type);
    frames.reverse();
    failure.location = frames.first().cloned();
    failure.frames = frames;
    failure.frames_omitted = omitted;
    failure.error_type = error_type;
    failure.message = message;
    Found {
        start: entry.start,
        end: entry.end,
        failure,
    }
}

/// The `E` lines, their common indent removed, and the exception type they (or the last
/// location) name; a bare `assert` failure is pytest's rewritten `AssertionError`.
fn exception_of(e_lines: &[&str], located_type: Option<String>) -> (String, String) {
    let indent = e_lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    let mut message = Message::default();
    for l in e_lines {
        if !message.push(l.get(indent..).unwrap_or("").trim_end()) {
            break;
        }
    }
    let text = message.finish();
    let first = text.lines().next().unwrap_or("");
    let named = split_exception(first).filter(|(_, m)| !m.is_empty() || text.lines().count() == 1);
    match (named, located_type) {
        (Some((ty, msg)), located) if located.as_deref().is_none_or(|l| l == ty) => {
            let rest = text.split_once('\n').map_or("", |(_, r)| r);
            let message = if rest.is_empty() {
                msg.to_string()
            } else {
                format!("{msg}\n{rest}")
            };
            (ty.to_string(), message)
        }
        (_, Some(ty)) => {
            let prefix = format!("{ty}: ");
            let message = text.strip_prefix(&prefix).unwrap_or(&text).to_string();
            (ty, message)
        }
        (_, None) if first.starts_with("assert") => ("AssertionError".into(), text),
        (_, None) => ("unknown".into(), text),
    }
}

/// `FAILED nodeid - message` / `ERROR nodeid` (`_pytest/terminal.py` `_get_line_with_reprcrash_message`).
fn summary_line(line: &str) -> Option<(&str, &str, &str)> {
    let (status, rest) = line.split_once(' ')?;
    if !matches!(status, "FAILED" | "ERROR") {
        return None;
    }
    let (node, message) = rest.split_once(" - ").unwrap_or((rest, ""));
    Some((status, node.trim(), message))
}

/// The section heads that can name this node id: `TestK.test_p[1]` for
/// `t.py::TestK::test_p[1]`, `ERROR collecting t.py` for `t.py`.
fn heads_of_node(node: &str) -> [String; 3] {
    let (_, after_file) = node.split_once("::").unwrap_or(("", node));
    [
        after_file.replace("::", "."),
        after_file.to_string(),
        format!("ERROR collecting {node}"),
    ]
}

fn from_summary(index: usize, status: &str, node: &str, message: &str) -> Found {
    let mut failure = blank_failure(Kind::Pytest, index);
    failure.test = Some(node.to_string());
    let (ty, msg) = match split_exception(message) {
        Some((ty, msg)) if !msg.is_empty() => (ty.to_string(), msg.to_string()),
        _ if message.starts_with("assert") => ("AssertionError".into(), message.to_string()),
        _ if status == "ERROR" && message.is_empty() => ("error".into(), String::new()),
        _ => ("unknown".into(), message.to_string()),
    };
    failure.error_type = ty;
    failure.message = msg;
    let file = node.split("::").next().unwrap_or(node);
    failure.location = Some(Frame {
        file: Some(file.to_string()),
        ..Frame::default()
    });
    Found {
        start: index,
        end: index + 1,
        failure,
    }
}

/// Every failure of every pytest run in `lines`.
pub(crate) fn parse(lines: &[&str]) -> Vec<Found> {
    let mut found: Vec<Found> = Vec::new();
    let mut section = Section::Other;
    let mut entry: Option<Entry> = None;
    // Sections of the current run not yet named by a summary line: head -> index in `found`.
    let mut unnamed: HashMap<String, usize> = HashMap::new();
    let finish = |e: &Entry, found: &mut Vec<Found>, unnamed: &mut HashMap<String, usize>| {
        unnamed.entry(e.name.clone()).or_insert(found.len());
        found.push(read_entry(lines, e));
    };
    for (i, line) in lines.iter().enumerate() {
        if let Some(title) = separator(line, '=') {
            if let Some(mut e) = entry.take() {
                e.end = i;
                finish(&e, &mut found, &mut unnamed);
            }
            section = match title {
                "FAILURES" | "ERRORS" => Section::Failures,
                "short test summary info" => Section::Summary,
                _ => Section::Other,
            };
            if title.starts_with("test session starts") {
                unnamed.clear();
            }
            continue;
        }
        match section {
            Section::Failures => {
                if let Some(head) = separator(line, '_').filter(|h| !h.is_empty()) {
                    if let Some(mut e) = entry.take() {
                        e.end = i;
                        finish(&e, &mut found, &mut unnamed);
                    }
                    entry = Some(Entry {
                        start: i,
                        end: i,
                        name: head.to_string(),
                    });
                }
            }
            Section::Summary => {
                if let Some((status, node, message)) = summary_line(line) {
                    let named = heads_of_node(node)
                        .iter()
                        .find_map(|head| unnamed.remove(head));
                    match named {
                        Some(at) => found[at].failure.test = Some(node.to_string()),
                        None => found.push(from_summary(i, status, node, message)),
                    }
                }
            }
            Section::Other => {}
        }
    }
    if let Some(mut e) = entry.take() {
        e.end = lines.len();
        finish(&e, &mut found, &mut unnamed);
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::lines;

    #[test]
    fn separators() {
        assert_eq!(separator("===== FAILURES =====", '='), Some("FAILURES"));
        assert_eq!(separator("_____ test_x _____", '_'), Some("test_x"));
        assert_eq!(separator("_ _ _ _ _ _ _ _ _ _", '_'), None);
        assert_eq!(separator("==========", '='), Some(""));
        assert_eq!(separator("=", '='), None);
    }

    #[test]
    fn short_tracebacks_and_a_summary_only_failure() {
        let text = "=================================== FAILURES ===================================\n___________________________________ test_div ___________________________________\ntest_calc.py:8: in test_div\n    assert div(1, 0) == 0\ncalc.py:4: in div\n    return a / b\nE   ZeroDivisionError: division by zero\n=========================== short test summary info ============================\nFAILED test_calc.py::test_div - ZeroDivisionError: division by zero\nFAILED test_calc.py::test_other - assert 1 == 2\n";
        let found = parse(&lines(text));
        assert_eq!(found.len(), 2);
        let f = &found[0].failure;
        assert_eq!(f.test.as_deref(), Some("test_calc.py::test_div"));
        assert_eq!(f.error_type, "ZeroDivisionError");
        assert_eq!(f.message, "division by zero");
        assert_eq!(f.frames[0].function.as_deref(), Some("div"));
        assert_eq!(f.frames[0].source.as_deref(), Some("return a / b"));
        assert_eq!(f.frames[1].file.as_deref(), Some("test_calc.py"));
        let g = &found[1].failure;
        assert_eq!(
            (g.error_type.as_str(), g.message.as_str()),
            ("AssertionError", "assert 1 == 2")
        );
    }

    #[test]
    fn head_names() {
        assert!(heads_of_node("t.py::TestK::test_p[1]").contains(&"TestK.test_p[1]".to_string()));
        assert!(heads_of_node("t.py::test_x").contains(&"test_x".to_string()));
        assert!(heads_of_node("t.py").contains(&"ERROR collecting t.py".to_string()));
    }
}

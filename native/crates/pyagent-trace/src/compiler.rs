//! Compiler and checker diagnostics, the common shapes only:
//!
//! ```text
//! calc.c:3:14: error: expected ';' after expression      <- GCC/Clang (also `fatal error:`)
//! calc.py:3: error: Incompatible return value  [return-value]   <- mypy
//! error[E0425]: cannot find value `x` in this scope      <- rustc (`rustc_errors` human emitter)
//!   --> src/main.rs:2:5
//! # example.com/m                                        <- `go build` / `go vet`: the package,
//! ./main.go:5:2: undefined: x                            <-   then file:line:col: message
//! ```
//!
//! Warnings and notes are not failures and are not reported.

use crate::report::Kind;
use crate::text::{blank_failure, parse_position, path_line_prefix, Found};

fn diagnostic(at: usize, error_type: &str, message: &str, location: crate::report::Frame) -> Found {
    let mut failure = blank_failure(Kind::CompilerError, at);
    failure.error_type = error_type.to_string();
    failure.message = message.trim().to_string();
    failure.location = Some(location);
    Found {
        start: at,
        end: at + 1,
        failure,
    }
}

/// rustc's `error[E0425]: msg` or `error: msg`, with its `  --> file:L:C` in the next lines.
fn rustc(lines: &[&str], at: usize) -> Option<Found> {
    let line = lines[at];
    let (head, message) = line.split_once(": ")?;
    let code_ok = head == "error"
        || head
            .strip_prefix("error[")
            .and_then(|c| c.strip_suffix(']'))
            .is_some_and(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_alphanumeric()));
    if !code_ok {
        return None;
    }
    let arrow =
        (at + 1..lines.len().min(at + 4)).find(|&i| lines[i].trim_start().starts_with("--> "))?;
    let location = parse_position(lines[arrow].trim_start().strip_prefix("--> ")?)?;
    let mut found = diagnostic(at, head, message, location);
    found.end = arrow + 1;
    Some(found)
}

fn is_go_file(file: Option<&str>) -> bool {
    file.is_some_and(|f| f.ends_with(".go"))
}

/// Every diagnostic in `lines`.
pub(crate) fn parse(lines: &[&str]) -> Vec<Found> {
    let mut found = Vec::new();
    // After `# package`, go build's errors have no `error:` word.
    let mut in_go_package = false;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if line.starts_with("# ") {
            in_go_package = true;
        } else if line.starts_with("error") {
            if let Some(d) = rustc(lines, i) {
                i = d.end;
                found.push(d);
                continue;
            }
        } else if let Some((location, rest)) = path_line_prefix(line) {
            let kind = ["error: ", "fatal error: "].iter().find_map(|w| {
                rest.strip_prefix(w)
                    .map(|m| (w.trim_end_matches([':', ' ']), m))
            });
            match kind {
                Some((ty, message)) => found.push(diagnostic(i, ty, message, location)),
                None if in_go_package && is_go_file(location.file.as_deref()) => {
                    found.push(diagnostic(i, "error", rest, location))
                }
                None => {}
            }
        } else if !line.starts_with([' ', '\t']) {
            in_go_package = false;
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
    fn gcc_mypy_rustc_and_go() {
        let text = "x.c:3:14: error: expected ';'\nx.c:4:1: warning: unused\nm.py:3: error: Bad  [misc]\nerror[E0425]: cannot find value `x`\n --> src/main.rs:2:5\n  |\n# example.com/m\n./main.go:5:2: undefined: x\nerror: could not compile `m`\n";
        let found = parse(&lines(text));
        let got: Vec<_> = found
            .iter()
            .map(|f| {
                let l = f.failure.location.as_ref().unwrap();
                (
                    f.failure.error_type.as_str(),
                    l.file.clone().unwrap(),
                    l.line,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("error", "x.c".to_string(), Some(3)),
                ("error", "m.py".to_string(), Some(3)),
                ("error[E0425]", "src/main.rs".to_string(), Some(2)),
                ("error", "./main.go".to_string(), Some(5)),
            ]
        );
    }
}

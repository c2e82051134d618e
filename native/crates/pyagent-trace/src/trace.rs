//! A `sandbox` step's trace (pyagent-node `work/sandbox_step.rs`, docs/tasks.md) as input:
//!
//! ```json
//! {"command": [...], "exitCode": 1, "signal": null,
//!  "stdout": "<first 16 KiB>", "stderr": "<first 16 KiB>",
//!  "stdoutTruncated": false, "stderrTruncated": true,
//!  "streams": {"stderr": {"text": "...", "bytes": 40000, "sha256": "<hex>",
//!              "inlineTruncated": true, "captureTruncated": false,
//!              "file": "/var/lib/pyagent/workspaces/<task>.<step>.stderr"}, "stdout": {...}},
//!  "killed": null, "isolation": "namespaces", ...}
//! ```
//!
//! Only the head of each stream is inline, and a traceback is usually at the end, so
//! [`crate::analyze_trace_with_captures`] reads the whole capture when the trace names one on
//! this machine and its SHA-256 is the one recorded (the command cannot have altered it: it is
//! kept beside the workspace, not in it).

use std::io::Read as _;

use serde_json::Value;

use crate::StreamText;

/// A capture larger than this is not read (the sandbox step keeps at most 1 MiB of a stream).
const MAX_CAPTURE_BYTES: u64 = 16 << 20;

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The capture file's text, if it is there, not too large, and has the recorded SHA-256.
fn capture(stream: &Value) -> Option<String> {
    let path = stream.get("file")?.as_str()?;
    let expected = stream.get("sha256")?.as_str()?;
    let file = std::fs::File::open(path).ok()?;
    let mut bytes = Vec::new();
    file.take(MAX_CAPTURE_BYTES + 1)
        .read_to_end(&mut bytes)
        .ok()?;
    if bytes.len() as u64 > MAX_CAPTURE_BYTES || !sha256_hex(&bytes).eq_ignore_ascii_case(expected)
    {
        return None;
    }
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// One stream of the trace: the capture if asked and usable, else the inline text.
pub(crate) fn stream_text(trace: &Value, name: &str, read_captures: bool) -> StreamText {
    let detail = trace.get("streams").and_then(|s| s.get(name));
    let inline = trace.get(name).and_then(Value::as_str).unwrap_or("");
    let recorded_bytes = detail
        .and_then(|d| d.get("bytes"))
        .and_then(Value::as_u64)
        .unwrap_or(inline.len() as u64);
    let flag = |key: &str| detail.and_then(|d| d.get(key)).and_then(Value::as_bool);
    let capture_truncated = flag("captureTruncated").unwrap_or(false);
    if read_captures {
        if let Some(text) = detail.and_then(capture) {
            return StreamText {
                text,
                source: "capture",
                bytes: recorded_bytes,
                truncated: capture_truncated,
            };
        }
    }
    let truncated_key = format!("{name}Truncated");
    let inline_truncated = trace
        .get(truncated_key.as_str())
        .and_then(Value::as_bool)
        .or(flag("inlineTruncated"))
        .unwrap_or(false);
    StreamText {
        text: inline.to_string(),
        source: "inline",
        bytes: recorded_bytes,
        truncated: inline_truncated || capture_truncated,
    }
}

/// The trace's exit code and signal.
pub(crate) fn exit_and_signal(trace: &Value) -> (Option<i32>, Option<i32>) {
    let int = |key: &str| {
        trace
            .get(key)
            .and_then(Value::as_i64)
            .and_then(|v| i32::try_from(v).ok())
    };
    (int("exitCode"), int("signal"))
}

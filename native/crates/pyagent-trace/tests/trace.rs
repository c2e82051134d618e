//! A `sandbox` step's trace as input: built as pyagent-node's `sandbox_step::trace` builds it
//! (16 KiB of each stream inline, the whole capture beside the workspace with its SHA-256),
//! from a real Python run whose traceback comes after more than 16 KiB of other output.

mod common;

use std::process::Command;

use common::{python, TempDir};
use pyagent_trace::{analyze_trace, analyze_trace_with_captures, Kind};
use serde_json::{json, Value};

const INLINE_BYTES: usize = 16 << 10;

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `sandbox_step.rs`'s `stream()`.
fn stream(bytes: &[u8], file: &std::path::Path) -> Value {
    let kept_on_disk = bytes.len() > INLINE_BYTES && std::fs::write(file, bytes).is_ok();
    let head = &bytes[..bytes.len().min(INLINE_BYTES)];
    json!({
        "text": String::from_utf8_lossy(head),
        "bytes": bytes.len(),
        "sha256": sha256_hex(bytes),
        "inlineTruncated": bytes.len() > INLINE_BYTES,
        "captureTruncated": false,
        "file": kept_on_disk.then(|| file.display().to_string()),
    })
}

const NOISY: &str = r#"import sys

for i in range(2000):
    print(f"progress line {i} of the build, nothing wrong yet", file=sys.stderr)


def check(values):
    return values["expected"]


check({})
"#;

#[test]
fn the_whole_capture_is_read_when_the_inline_head_misses_the_traceback() {
    let dir = TempDir::new("trace");
    let workspace = dir.0.join("workspace");
    std::fs::create_dir(&workspace).unwrap();
    std::fs::write(workspace.join("job.py"), NOISY).unwrap();
    let out = Command::new(python())
        .arg("job.py")
        .current_dir(&workspace)
        .output()
        .expect("python runs");
    assert!(
        out.stderr.len() > INLINE_BYTES,
        "the run must print more than the inline head"
    );
    let captures = dir.0.join("task-1.run");
    let (o, e) = (
        stream(&out.stdout, &captures.with_extension("stdout")),
        stream(&out.stderr, &captures.with_extension("stderr")),
    );
    let trace = json!({
        "command": ["python", "job.py"],
        "exitCode": out.status.code(),
        "signal": null,
        "stdout": o["text"],
        "stderr": e["text"],
        "stdoutTruncated": out.stdout.len() > INLINE_BYTES,
        "stderrTruncated": out.stderr.len() > INLINE_BYTES,
        "streams": {"stdout": o, "stderr": e},
        "killed": null,
        "isolation": "namespaces",
        "elapsedMs": 12,
    });
    let root = workspace.to_str().unwrap();

    let inline = analyze_trace(&trace, &[root]);
    assert_eq!(inline.kind, Kind::Unrecognised, "{inline:?}");
    assert_eq!(inline.input.stderr.source, "inline");
    assert!(inline.input.stderr.truncated);
    assert_eq!(inline.input.stderr.bytes, out.stderr.len() as u64);
    assert_eq!(
        inline.summary,
        "no failure recognised (exit code 1); output analysed in part"
    );

    let whole = analyze_trace_with_captures(&trace, &[root]);
    assert_eq!(whole.input.stderr.source, "capture");
    assert!(!whole.input.stderr.truncated);
    assert_eq!(whole.kind, Kind::PythonTraceback, "{whole:?}");
    let f = &whole.failures[0];
    assert_eq!(
        (f.error_type.as_str(), f.message.as_str()),
        ("KeyError", "'expected'")
    );
    assert_eq!(f.line, 2001);
    let at = f.user_frame.as_ref().unwrap();
    assert_eq!((at.function.as_deref(), at.line), (Some("check"), Some(8)));

    // A capture that is not what the trace recorded is not read.
    std::fs::write(
        captures.with_extension("stderr"),
        b"Traceback (most recent call last):\nX: forged\n",
    )
    .unwrap();
    let forged = analyze_trace_with_captures(&trace, &[root]);
    assert_eq!(forged.input.stderr.source, "inline");
    assert_eq!(forged.kind, Kind::Unrecognised);
}

#[test]
fn a_small_trace_is_read_inline_and_garbage_is_unrecognised() {
    let trace = json!({
        "exitCode": 2, "signal": null, "stdout": "",
        "stderr": "panic: boom\n\ngoroutine 1 [running]:\nmain.main()\n\t/workspace/main.go:4 +0x25\nexit status 2\n",
        "stdoutTruncated": false, "stderrTruncated": false,
        "streams": {"stderr": {"bytes": 86, "sha256": "00", "inlineTruncated": false, "captureTruncated": false, "file": null}},
    });
    let r = analyze_trace_with_captures(&trace, &["/workspace"]);
    assert_eq!(r.kind, Kind::GoPanic);
    assert_eq!(
        r.summary,
        "panic: boom at /workspace/main.go:4 in main.main [go panic, exit code 2]"
    );

    for garbage in [
        json!(42),
        json!(null),
        json!({"stdout": 5, "exitCode": "x", "streams": []}),
    ] {
        let r = analyze_trace_with_captures(&garbage, &[]);
        assert_eq!(r.kind, Kind::Unrecognised);
        assert_eq!(r.exit_code, None);
        assert_eq!(r.summary, "no failure recognised (exit code unknown)");
    }
    let killed = analyze_trace(
        &json!({"exitCode": null, "signal": 9, "stderr": "Killed"}),
        &[],
    );
    assert_eq!(killed.summary, "no failure recognised (killed by signal 9)");
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    k.sort_unstable();
    k
}

/// The shape docs/analyze-trace.md documents: every key present, even when null or empty.
#[test]
fn the_json_shape_is_the_documented_one() {
    let text = "ValueError: inner\n\nThe above exception was the direct cause of the following exception:\n\nTraceback (most recent call last):\n  File \"/workspace/x.py\", line 1, in <module>\n    raise RuntimeError(\"outer\") from ValueError(\"inner\")\nRuntimeError: outer\n";
    let v = pyagent_trace::analyze("", text, Some(1), &["/workspace"]).to_json();
    assert_eq!(v["version"], 1);
    assert_eq!(
        keys(&v),
        [
            "exitCode",
            "failures",
            "failuresOmitted",
            "input",
            "kind",
            "kinds",
            "signal",
            "summary",
            "version"
        ]
    );
    let f = &v["failures"][0];
    assert_eq!(
        keys(f),
        [
            "chain",
            "errorType",
            "frames",
            "framesOmitted",
            "kind",
            "line",
            "location",
            "message",
            "stream",
            "test",
            "thread",
            "userFrame"
        ]
    );
    assert_eq!(
        keys(&f["frames"][0]),
        ["column", "file", "function", "line", "source", "user"]
    );
    assert_eq!(
        keys(&f["chain"][0]),
        [
            "errorType",
            "frames",
            "framesOmitted",
            "location",
            "message",
            "relation",
            "userFrame"
        ]
    );
    assert_eq!(
        keys(&v["input"]["stderr"]),
        ["analysedBytes", "bytes", "source", "truncated"]
    );
    assert_eq!(
        (
            v["kind"].as_str(),
            f["stream"].as_str(),
            f["chain"][0]["relation"].as_str()
        ),
        (Some("python-traceback"), Some("stderr"), Some("cause"))
    );
    assert_eq!(f["userFrame"]["file"], "/workspace/x.py");
    assert_eq!(f["test"], Value::Null);
}

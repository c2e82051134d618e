//! Whatever the input, the analysis returns a report (never panics), within its bounds, and
//! its time grows linearly with the input.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use pyagent_trace::{analyze, Kind, Report, MAX_FAILURES};

/// Lines of every recognised format, to be shuffled into near-misses.
const FRAGMENTS: &[&str] = &[
    "Traceback (most recent call last):",
    "  File \"/w/x.py\", line 3, in f",
    "  File \"x.py\", line 3",
    "    return g()",
    "    ~~~^^",
    "ValueError: bad",
    "KeyboardInterrupt",
    "",
    "The above exception was the direct cause of the following exception:",
    "During handling of the above exception, another exception occurred:",
    "  [Previous line repeated 3 more times]",
    "  + Exception Group Traceback (most recent call last):",
    "  | ValueError: 1",
    "  +-+---------------- 1 ----------------",
    "=================== FAILURES ===================",
    "=================== ERRORS ===================",
    "___________ test_x ___________",
    "_ _ _ _ _ _ _ _",
    "E       assert 1 == 2",
    "t.py:3: AssertionError",
    "t.py:3: in test_x",
    "---------- Captured stdout call ----------",
    "=========== short test summary info ===========",
    "FAILED t.py::test_x - ZeroDivisionError: x",
    "ERROR t.py",
    "thread 'main' panicked at src/a.rs:1:2:",
    "thread 'main' (7) panicked at 'x",
    "', src/a.rs:1:2",
    "note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace",
    "stack backtrace:",
    "   0: foo::bar",
    "   1:     0x55 - std[e28293b1aa0f68bd]::rt::x::h0123456789abcdef",
    "             at src/a.rs:1:2",
    "---- tests::t stdout ----",
    "thread 'a' (1) has overflowed its stack",
    "fatal runtime error: stack overflow",
    "panic: boom [recovered]",
    "panic: runtime error: x",
    "fatal error: all goroutines are asleep - deadlock!",
    "goroutine 1 [running]:",
    "main.main()",
    "\t/w/m.go:3 +0x1",
    "created by main.main in goroutine 1",
    "...additional frames elided...",
    "a.c:1:2: error: x",
    "error[E0001]: x",
    " --> a.rs:1:1",
    "# example.com/m",
    "./m.go:1:2: undefined: x",
];

fn check_invariants(text: &str, report: &Report) {
    let json = serde_json::to_string(report).expect("serialisable");
    assert!(json.contains("\"version\":1"));
    assert_eq!(
        report.kind == Kind::Unrecognised,
        report.failures.is_empty()
    );
    assert!(report.failures.len() <= MAX_FAILURES);
    assert!(!report.summary.contains('\n'));
    let lines = text.split('\n').count();
    for f in &report.failures {
        assert!(f.line >= 1 && f.line <= lines, "line {} of {lines}", f.line);
        assert!(f.frames.len() <= 128);
        assert!(f.chain.len() <= 16);
        assert!(f.message.len() <= 8192);
        assert!(!f.error_type.is_empty());
        if let Some(u) = &f.user_frame {
            assert!(u.user);
        }
    }
}

fn fragments() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => proptest::sample::select(FRAGMENTS).prop_map(str::to_string),
        1 => ".{0,40}",
    ];
    proptest::collection::vec(piece, 0..120).prop_map(|v| v.join("\n"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_text_gives_a_report(stdout in ".{0,2000}", stderr in ".{0,2000}", exit in any::<Option<i32>>()) {
        let r = analyze(&stdout, &stderr, exit, &["/w"]);
        check_invariants(&stdout, &r);
    }

    #[test]
    fn near_misses_of_every_format_give_a_report(stdout in fragments(), stderr in fragments()) {
        let r = analyze(&stdout, &stderr, Some(1), &["/w"]);
        check_invariants(&format!("{stdout}\n{stderr}"), &r);
    }

    #[test]
    fn arbitrary_bytes_read_lossily_give_a_report(bytes in proptest::collection::vec(any::<u8>(), 0..4000)) {
        let text = String::from_utf8_lossy(&bytes);
        let r = analyze("", &text, None, &[]);
        check_invariants(&text, &r);
    }
}

/// Inputs that would make a careless parser quadratic: each a unit repeated.
const ADVERSARIAL: &[&str] = &[
    "panic: x\n",
    "thread 'main' panicked at 'x\n",
    "Traceback (most recent call last):\n",
    "  File \"a\", line 1\n",
    "Traceback (most recent call last):\nX: y\n\nDuring handling of the above exception, another exception occurred:\n\n",
    "error[E1]: x\n",
    "=== FAILURES ===\n___ t ___\nE   x\n",
    "FAILED t.py::t - x\n",
    "stack backtrace:\n   0: a[a[a[a[a[a[a[a[a[a[a[a[a[a[a[a[a[a[a[a[\n",
    "1:1:1:1:1:1:1:1:1:1:1:1:1:1:1:1:1:1:1:1:1:1:1:1:1:1:1:1:1:1:",
    "x",
    "\n",
];

fn input(unit: &str, bytes: usize) -> String {
    unit.repeat(bytes / unit.len() + 1)
}

fn fastest_of_three(text: &str) -> Duration {
    (0..3)
        .map(|_| {
            let t = Instant::now();
            let r = analyze("", text, Some(1), &["/w"]);
            std::hint::black_box(r);
            t.elapsed()
        })
        .min()
        .expect("three runs")
}

/// Four times the input takes about four times as long (a quadratic parser takes sixteen);
/// the bound is loose because CI's two cores are shared. MiBs of input stay under seconds.
#[test]
fn time_grows_linearly_with_the_input() {
    let small = 256 << 10;
    for unit in ADVERSARIAL {
        let (a, b) = (input(unit, small), input(unit, 4 * small));
        let (ta, tb) = (fastest_of_three(&a), fastest_of_three(&b));
        let ratio = tb.as_secs_f64() / ta.as_secs_f64().max(1e-4);
        eprintln!("{unit:?}: 256 KiB {ta:?}, 1 MiB {tb:?}, x{ratio:.1}");
        // Below a few milliseconds (a line cut to its bound) the ratio is timer noise.
        assert!(
            tb < Duration::from_millis(20) || ratio < 12.0,
            "{unit:?}: 256 KiB took {ta:?}, 1 MiB took {tb:?} (x{ratio:.1})"
        );
        assert!(tb < Duration::from_secs(20), "{unit:?}: 1 MiB took {tb:?}");
    }
}

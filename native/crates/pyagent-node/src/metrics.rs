//! Counters and a latency histogram, rendered in the Prometheus text format.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::auth::Reject;

pub const CHANNELS: [&str; 2] = ["raft", "client"];

#[derive(Debug, Clone, Copy)]
pub enum Channel {
    Raft = 0,
    Client = 1,
}

/// Upper bounds (seconds) of the commit-latency buckets.
pub const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
];

/// Upper bounds (seconds) of the step-duration buckets: a step is a sandbox run, a tool or model
/// call, or a whole sub-task, from milliseconds to minutes.
pub const STEP_BUCKETS: [f64; 14] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0,
];

/// Which bucket bounds a histogram counts in (commit latency's unless told otherwise).
#[derive(Debug, Clone, Copy)]
pub struct Bounds(&'static [f64; 14]);

impl Default for Bounds {
    fn default() -> Self {
        Bounds(&BUCKETS)
    }
}

#[derive(Debug, Default)]
pub struct Histogram {
    bounds: Bounds,
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn with_bounds(bounds: &'static [f64; 14]) -> Self {
        Histogram {
            bounds: Bounds(bounds),
            ..Histogram::default()
        }
    }

    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        if let Some(i) = self.bounds.0.iter().position(|b| s <= *b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn render(&self, name: &str, help: &str, out: &mut String) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        self.render_samples(name, "", out);
    }

    /// The samples only, each with `labels` (`k="v",...`, or empty) before `le`.
    fn render_samples(&self, name: &str, labels: &str, out: &mut String) {
        let sep = if labels.is_empty() { "" } else { "," };
        let braces = |s: &str| {
            if s.is_empty() {
                String::new()
            } else {
                format!("{{{s}}}")
            }
        };
        let mut cum = 0;
        for (i, b) in self.bounds.0.iter().enumerate() {
            cum += self.counts[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {cum}");
        }
        let count = self.count();
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{} {sum}", braces(labels));
        let _ = writeln!(out, "{name}_count{} {count}", braces(labels));
    }
}

/// One histogram per label set, made on first use (a step kind and its outcome: a handful),
/// counting in STEP_BUCKETS.
#[derive(Debug, Default)]
pub struct LabelledHistograms {
    by_labels: std::sync::Mutex<std::collections::BTreeMap<String, std::sync::Arc<Histogram>>>,
}

impl LabelledHistograms {
    /// `labels` in the text format's `k="v",...` form, values already escaped.
    pub fn observe(&self, labels: String, d: Duration) {
        let histogram = {
            let mut map = self.by_labels.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(labels)
                .or_insert_with(|| std::sync::Arc::new(Histogram::with_bounds(&STEP_BUCKETS)))
                .clone()
        };
        histogram.observe(d);
    }

    pub fn render(&self, name: &str, help: &str, out: &mut String) {
        let map = self.by_labels.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (labels, histogram) in map.iter() {
            histogram.render_samples(name, labels, out);
        }
    }
}

#[derive(Debug, Default)]
pub struct Metrics {
    rejected: [[AtomicU64; Reject::ALL.len()]; 2],
    pub applied: AtomicU64,
    pub refused: AtomicU64,
    pub commit_latency: Histogram,
    /// Each step attempt this node ran, by kind and outcome (executor).
    pub step_duration: LabelledHistograms,
    /// Sandboxed commands killed, by [`SANDBOX_KILLS`] reason.
    sandbox_kills: [AtomicU64; SANDBOX_KILLS.len()],
}

/// Why a sandboxed command was killed: it ran past its step's timeout, the kernel's OOM killer
/// struck at its memory limit, or its task was cancelled or taken away while it ran.
pub const SANDBOX_KILLS: [&str; 3] = ["wall_clock", "memory", "cancelled"];

impl Metrics {
    pub fn reject(&self, channel: Channel, reason: Reject) {
        let i = Reject::ALL.iter().position(|r| *r == reason).unwrap_or(0);
        self.rejected[channel as usize][i].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a kill; `reason` is one of [`SANDBOX_KILLS`].
    pub fn sandbox_killed(&self, reason: &str) {
        if let Some(i) = SANDBOX_KILLS.iter().position(|r| *r == reason) {
            self.sandbox_kills[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn rejected(&self, channel: Channel, reason: Reject) -> u64 {
        let i = Reject::ALL.iter().position(|r| *r == reason).unwrap_or(0);
        self.rejected[channel as usize][i].load(Ordering::Relaxed)
    }

    pub fn render_counters(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP pyagent_rejected_messages_total Messages refused by signature, membership or replay checks.\n# TYPE pyagent_rejected_messages_total counter"
        );
        for (c, channel) in CHANNELS.iter().enumerate() {
            for (i, reason) in Reject::ALL.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "pyagent_rejected_messages_total{{channel=\"{channel}\",reason=\"{}\"}} {}",
                    reason.label(),
                    self.rejected[c][i].load(Ordering::Relaxed)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP pyagent_commands_total Client commands committed, by outcome.\n# TYPE pyagent_commands_total counter"
        );
        let _ = writeln!(
            out,
            "pyagent_commands_total{{outcome=\"applied\"}} {}",
            self.applied.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "pyagent_commands_total{{outcome=\"refused\"}} {}",
            self.refused.load(Ordering::Relaxed)
        );
        self.commit_latency.render(
            "pyagent_commit_latency_seconds",
            "Submit latency from proposal to applied on the leader.",
            out,
        );
        self.step_duration.render(
            "pyagent_step_duration_seconds",
            "Step attempts this node ran, by kind and outcome (succeeded, failed, timed_out).",
            out,
        );
        let _ = writeln!(
            out,
            "# HELP pyagent_sandbox_kills_total Sandboxed step commands killed, by reason (wall_clock, memory, cancelled).\n# TYPE pyagent_sandbox_kills_total counter"
        );
        for (reason, n) in SANDBOX_KILLS.iter().zip(&self.sandbox_kills) {
            let _ = writeln!(
                out,
                "pyagent_sandbox_kills_total{{reason=\"{reason}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
    }
}

/// Appends one gauge (with optional labels) in the text format.
pub fn gauge(out: &mut String, name: &str, help: &str, samples: &[(&str, f64)]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
    for (labels, v) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {v}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {v}");
        }
    }
}

pub fn counter(out: &mut String, name: &str, help: &str, v: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
    );
}

/// Appends one counter with a sample per label set.
pub fn counters(out: &mut String, name: &str, help: &str, samples: &[(String, u64)]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    for (labels, v) in samples {
        let _ = writeln!(out, "{name}{{{labels}}} {v}");
    }
}

/// Escapes a label value.
pub fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labelled_histograms_render_one_series_per_label_set_with_their_own_bounds() {
        let steps = LabelledHistograms::default();
        steps.observe(
            "kind=\"sandbox\",outcome=\"succeeded\"".into(),
            Duration::from_millis(40),
        );
        steps.observe(
            "kind=\"sandbox\",outcome=\"succeeded\"".into(),
            Duration::from_secs(60),
        );
        steps.observe(
            "kind=\"mcp\",outcome=\"failed\"".into(),
            Duration::from_millis(2),
        );
        let mut out = String::new();
        steps.render("s", "help", &mut out);
        assert!(
            out.starts_with("# HELP s help\n# TYPE s histogram\n"),
            "{out}"
        );
        for line in [
            "s_bucket{kind=\"sandbox\",outcome=\"succeeded\",le=\"0.025\"} 0",
            "s_bucket{kind=\"sandbox\",outcome=\"succeeded\",le=\"0.05\"} 1",
            "s_bucket{kind=\"sandbox\",outcome=\"succeeded\",le=\"120\"} 2",
            "s_bucket{kind=\"sandbox\",outcome=\"succeeded\",le=\"+Inf\"} 2",
            "s_count{kind=\"sandbox\",outcome=\"succeeded\"} 2",
            "s_sum{kind=\"sandbox\",outcome=\"succeeded\"} 60.04",
            "s_bucket{kind=\"mcp\",outcome=\"failed\",le=\"0.005\"} 1",
        ] {
            assert!(out.lines().any(|l| l == line), "missing {line}:\n{out}");
        }
        // The unlabelled histogram keeps its own bounds and format.
        let commit = Histogram::default();
        commit.observe(Duration::from_micros(700));
        let mut out = String::new();
        commit.render("c", "h", &mut out);
        assert!(
            out.contains("c_bucket{le=\"0.001\"} 1\n") && out.contains("c_count 1\n"),
            "{out}"
        );
    }
}

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

#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| s <= *b) {
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
        let mut cum = 0;
        for (i, b) in BUCKETS.iter().enumerate() {
            cum += self.counts[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {cum}");
        }
        let count = self.count();
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {count}");
    }
}

#[derive(Debug, Default)]
pub struct Metrics {
    rejected: [[AtomicU64; Reject::ALL.len()]; 2],
    pub applied: AtomicU64,
    pub refused: AtomicU64,
    pub commit_latency: Histogram,
}

impl Metrics {
    pub fn reject(&self, channel: Channel, reason: Reject) {
        let i = Reject::ALL.iter().position(|r| *r == reason).unwrap_or(0);
        self.rejected[channel as usize][i].fetch_add(1, Ordering::Relaxed);
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

//! The node process's own figures, under the names every Prometheus client library exports
//! (client_golang's process collector, through prometheus/procfs): CPU seconds, resident and
//! virtual memory, open and allowed file descriptors, threads and start time. Read from
//! /proc/self at each scrape; a figure that cannot be read is left out, never made up.

use std::fmt::Write as _;

/// Linux reports CPU times in USER_HZ ticks, 100 per second on every architecture it runs on
/// (the value prometheus/procfs also assumes).
const USER_HZ: f64 = 100.0;

#[derive(Debug, Default, PartialEq)]
pub struct ProcessStats {
    pub cpu_seconds: Option<f64>,
    pub threads: Option<u64>,
    pub virtual_bytes: Option<u64>,
    pub resident_bytes: Option<u64>,
    pub start_time_seconds: Option<f64>,
    pub open_fds: Option<u64>,
    pub max_fds: Option<u64>,
}

/// The fields of /proc/<pid>/stat after the command name, which may itself hold spaces and
/// parentheses: everything after the last ')'. `field(n)` is field n of proc(5) (1-based).
struct StatFields<'a>(Vec<&'a str>);

impl<'a> StatFields<'a> {
    fn parse(text: &'a str) -> Option<Self> {
        let rest = &text[text.rfind(')')? + 1..];
        Some(Self(rest.split_whitespace().collect()))
    }

    fn field(&self, n: usize) -> Option<u64> {
        // The first field after ')' is field 3 (state).
        self.0.get(n.checked_sub(3)?)?.parse().ok()
    }
}

/// utime + stime, threads, vsize and starttime (ticks after boot) from /proc/self/stat.
fn from_stat(text: &str, boot_time: Option<u64>) -> ProcessStats {
    let Some(fields) = StatFields::parse(text) else {
        return ProcessStats::default();
    };
    let cpu = match (fields.field(14), fields.field(15)) {
        (Some(user), Some(system)) => Some((user + system) as f64 / USER_HZ),
        _ => None,
    };
    let start = match (fields.field(22), boot_time) {
        (Some(ticks), Some(boot)) => Some(boot as f64 + ticks as f64 / USER_HZ),
        _ => None,
    };
    ProcessStats {
        cpu_seconds: cpu,
        threads: fields.field(20),
        virtual_bytes: fields.field(23),
        start_time_seconds: start,
        ..ProcessStats::default()
    }
}

/// `VmRSS:  12345 kB` from /proc/self/status, in bytes (no page size to know).
fn resident_from_status(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The soft limit of `Max open files` in /proc/self/limits (None when unlimited).
fn max_fds_from_limits(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// `btime` of /proc/stat: the boot time in seconds since the epoch.
fn boot_time_from_proc_stat(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

pub fn read() -> ProcessStats {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let boot = read("/proc/stat")
        .as_deref()
        .and_then(boot_time_from_proc_stat);
    let mut stats = read("/proc/self/stat")
        .map(|t| from_stat(&t, boot))
        .unwrap_or_default();
    stats.resident_bytes = read("/proc/self/status")
        .as_deref()
        .and_then(resident_from_status);
    stats.max_fds = read("/proc/self/limits")
        .as_deref()
        .and_then(max_fds_from_limits);
    stats.open_fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|entries| entries.count() as u64);
    stats
}

/// Appends the figures that could be read, in the text format.
pub fn render(stats: &ProcessStats, out: &mut String) {
    let as_f64 = |v: Option<u64>| v.map(|v| v as f64);
    // The names, types and help texts of the Prometheus client libraries' process collector.
    let rows: [(&str, &str, &str, Option<f64>); 7] = [
        (
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
            stats.cpu_seconds,
        ),
        (
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            as_f64(stats.resident_bytes),
        ),
        (
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
            as_f64(stats.virtual_bytes),
        ),
        (
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            as_f64(stats.open_fds),
        ),
        (
            "process_max_fds",
            "gauge",
            "Maximum number of open file descriptors.",
            as_f64(stats.max_fds),
        ),
        (
            "process_threads",
            "gauge",
            "Number of OS threads in the process.",
            as_f64(stats.threads),
        ),
        (
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since unix epoch in seconds.",
            stats.start_time_seconds,
        ),
    ];
    for (name, kind, help, value) in rows {
        if let Some(v) = value {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A real line of /proc/<pid>/stat, with a command name that holds a space and a ')'.
    const STAT: &str = "4242 (pyagent node) x) S 1 4242 4242 0 -1 4194560 2187 0 0 0 \
        250 75 0 0 20 0 9 0 123456 987654321 3000 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 17 1 0 0 0 0 0";

    #[test]
    fn stat_fields_are_read_after_the_last_parenthesis() {
        let stats = from_stat(STAT, Some(1_700_000_000));
        assert_eq!(stats.cpu_seconds, Some(3.25)); // (250 + 75) ticks
        assert_eq!(stats.threads, Some(9));
        assert_eq!(stats.virtual_bytes, Some(987_654_321));
        assert_eq!(stats.start_time_seconds, Some(1_700_000_000.0 + 1234.56));
    }

    #[test]
    fn damaged_text_gives_no_figure_rather_than_a_wrong_one() {
        assert_eq!(
            from_stat("no parenthesis here", Some(1)),
            ProcessStats::default()
        );
        assert_eq!(from_stat("1 (x) S 1", Some(1)).cpu_seconds, None);
        assert_eq!(from_stat(STAT, None).start_time_seconds, None);
    }

    #[test]
    fn status_limits_and_boot_time() {
        let status = "Name:\tpyagent-node\nVmPeak:\t  20000 kB\nVmRSS:\t   1536 kB\nThreads:\t9\n";
        assert_eq!(resident_from_status(status), Some(1536 * 1024));
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max cpu time              unlimited            unlimited            seconds   \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(max_fds_from_limits(limits), Some(1024));
        assert_eq!(
            max_fds_from_limits("Max open files unlimited unlimited files"),
            None
        );
        assert_eq!(
            boot_time_from_proc_stat("cpu  1 2 3\nbtime 1765000000\nprocesses 10\n"),
            Some(1_765_000_000)
        );
    }

    #[test]
    fn this_process_reads_and_renders_every_figure() {
        let stats = read();
        assert!(stats.cpu_seconds.is_some() && stats.resident_bytes.unwrap() > 0);
        assert!(stats.open_fds.unwrap() >= 3 && stats.threads.unwrap() >= 1);
        let mut out = String::new();
        render(&stats, &mut out);
        for name in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_virtual_memory_bytes",
            "process_open_fds",
            "process_threads",
            "process_start_time_seconds",
        ] {
            assert!(
                out.contains(&format!("\n{name} ")),
                "{name} missing:\n{out}"
            );
        }
    }
}

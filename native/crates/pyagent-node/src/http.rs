//! A tiny HTTP/1.1 responder for `/metrics` and `/healthz` (no HTTP framework needed for two
//! read-only endpoints; each connection serves one request and is closed).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::metrics::{counter, esc, gauge};
use crate::shared::Shared;
use openraft::async_runtime::WatchReceiver as _;

pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let mut buf = Vec::with_capacity(1024);
            let mut chunk = [0u8; 1024];
            let read = tokio::time::timeout(Duration::from_secs(5), async {
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
                    let n = stream.read(&mut chunk).await?;
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                Ok::<_, std::io::Error>(())
            })
            .await;
            if !matches!(read, Ok(Ok(()))) {
                return;
            }
            let line = buf.split(|b| *b == b'\n').next().unwrap_or(&[]);
            let line = String::from_utf8_lossy(line);
            let mut parts = line.split_whitespace();
            let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            let path = path.split('?').next().unwrap_or("");
            let (status, ctype, body) = match (method, path) {
                ("GET", "/metrics") => (
                    "200 OK",
                    "text/plain; version=0.0.4; charset=utf-8",
                    render(&shared),
                ),
                // Liveness: this process serves requests, whatever the swarm's state.
                ("GET", "/livez") => ("200 OK", "text/plain", "ok\n".to_string()),
                // Readiness: a leader is known, and this node is neither rejoining after damage
                // nor behind or stuck behind its leader (the body says which).
                ("GET", "/healthz") => match shared.health() {
                    None => ("200 OK", "text/plain", "ok\n".to_string()),
                    Some(why) => ("503 Service Unavailable", "text/plain", why + "\n"),
                },
                ("GET", _) => ("404 Not Found", "text/plain", "not found\n".to_string()),
                _ => (
                    "405 Method Not Allowed",
                    "text/plain",
                    "method not allowed\n".to_string(),
                ),
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            // one write: a second small segment would wait for the client's delayed ACK
            let _ = stream.write_all((head + &body).as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}

pub fn render(shared: &Shared) -> String {
    let mut out = String::with_capacity(4096);
    raft_metrics(shared, &mut out);
    recovery_metrics(shared, &mut out);
    log_metrics(shared, &mut out);
    shared.metrics.render_counters(&mut out);
    crate::process::render(&crate::process::read(), &mut out);
    crate::work::metrics::render(shared, &mut out);
    crate::mesh::render_metrics(shared, &mut out);
    kv_metrics(shared, &mut out);
    out
}

/// The node, its Raft role and indexes, replication and membership.
fn raft_metrics(shared: &Shared, out: &mut String) {
    let cfg = &shared.cfg;
    let m = shared.raft.metrics().borrow_watched().clone();
    let labels = format!(
        "node_id=\"{}\",name=\"{}\",swarm=\"{}\",pool=\"{}\",version=\"{}\"",
        cfg.node_id,
        esc(&cfg.name),
        esc(&cfg.swarm),
        esc(&cfg.pool),
        env!("CARGO_PKG_VERSION")
    );
    gauge(
        out,
        "pyagent_node_info",
        "Static facts about this node.",
        &[(&labels, 1.0)],
    );
    gauge(
        out,
        "pyagent_raft_term",
        "Current Raft term.",
        &[("", m.current_term as f64)],
    );
    gauge(
        out,
        "pyagent_raft_leader_id",
        "Known leader's node id (0: none).",
        &[("", m.current_leader.unwrap_or(0) as f64)],
    );
    let is_leader = m.current_leader == Some(cfg.node_id);
    gauge(
        out,
        "pyagent_raft_is_leader",
        "1 if this node is the leader.",
        &[("", f64::from(u8::from(is_leader)))],
    );
    gauge(
        out,
        "pyagent_raft_commit_index",
        "Highest log index known committed.",
        &[("", shared.committed_index() as f64)],
    );
    gauge(
        out,
        "pyagent_raft_applied_index",
        "Highest log index applied to the state machine.",
        &[("", m.last_applied.map(|l| l.index).unwrap_or(0) as f64)],
    );
    gauge(
        out,
        "pyagent_raft_last_log_index",
        "Last index in the log.",
        &[("", m.last_log_index.unwrap_or(0) as f64)],
    );
    replication_metrics(cfg.node_id, &m, out);
}

/// On the leader, what each follower holds; the membership's voters and learners.
fn replication_metrics(
    node_id: u64,
    m: &openraft::RaftMetrics<crate::types::TypeConfig>,
    out: &mut String,
) {
    // On the leader: the last log index each follower is known to hold (what a follower that
    // does not catch up is stuck at, as the leader sees it).
    let matched: Vec<(String, f64)> = m
        .replication
        .iter()
        .flatten()
        .filter(|(id, _)| **id != node_id)
        .map(|(id, l)| {
            (
                format!("target=\"{id}\""),
                l.map(|l| l.index).unwrap_or(0) as f64,
            )
        })
        .collect();
    let matched: Vec<(&str, f64)> = matched.iter().map(|(l, v)| (l.as_str(), *v)).collect();
    gauge(
        out,
        "pyagent_raft_replication_matched_index",
        "On the leader: the last log index replicated to each follower.",
        &matched,
    );
    let membership = m.membership_config.membership();
    let voters = membership.voter_ids().count();
    let all = membership.nodes().count();
    gauge(
        out,
        "pyagent_raft_members",
        "Members in the current membership.",
        &[
            ("voter=\"true\"", voters as f64),
            ("voter=\"false\"", all.saturating_sub(voters) as f64),
        ],
    );
}

/// Rejoining after damage to the Raft state (docs/raft-recovery.md).
fn recovery_metrics(shared: &Shared, out: &mut String) {
    let rec = &shared.recovery;
    gauge(
        out,
        "pyagent_raft_recovering",
        "1 while this node rejoins after damage to its Raft state (it does not vote meanwhile).",
        &[("", f64::from(u8::from(rec.is_recovering())))],
    );
    gauge(
        out,
        "pyagent_raft_recovered_seconds",
        "After damage: seconds from start-up until it had caught up and voted again (0: n/a).",
        &[("", rec.rejoined_after_ms().unwrap_or(0) as f64 / 1000.0)],
    );
    counter(
        out,
        "pyagent_raft_votes_refused_total",
        "Vote and pre-vote requests refused while recovering.",
        rec.refused_votes(),
    );
    counter(
        out,
        "pyagent_raft_leader_requests_refused_total",
        "Requests from a leader refused by a node whose vote was lost: before it learnt its term \
         floor from the other voters, or from a leader below that floor.",
        rec.refused_leaders(),
    );
    gauge(
        out,
        "pyagent_raft_leader_commit_index",
        "The highest commit index a leader has announced to this node.",
        &[("", rec.announced() as f64)],
    );
}

/// The on-disk Raft log.
fn log_metrics(shared: &Shared, out: &mut String) {
    let ls = &shared.log_stats;
    gauge(
        out,
        "pyagent_log_entries",
        "Entries in the on-disk log file.",
        &[("", ls.entries.load(Ordering::Relaxed) as f64)],
    );
    gauge(
        out,
        "pyagent_log_bytes",
        "Size of the on-disk log file.",
        &[("", ls.bytes.load(Ordering::Relaxed) as f64)],
    );
    counter(
        out,
        "pyagent_log_fsyncs_total",
        "fdatasync calls of the log writer (one per group commit).",
        ls.fsyncs.load(Ordering::Relaxed),
    );
    counter(
        out,
        "pyagent_log_appended_entries_total",
        "Entries appended to the log.",
        ls.appended.load(Ordering::Relaxed),
    );
    counter(
        out,
        "pyagent_log_truncated_bytes_total",
        "Bytes of torn or corrupt log tail dropped at start-up.",
        ls.truncated_bytes.load(Ordering::Relaxed),
    );
}

/// The node's KV_v2 pool.
fn kv_metrics(shared: &Shared, out: &mut String) {
    let kv = shared.kv.stats();
    gauge(
        out,
        "pyagent_kv_available",
        "1 when the KV_v2 engine is linked in.",
        &[("", f64::from(u8::from(kv.available)))],
    );
    gauge(
        out,
        "pyagent_kv_blocks_total",
        "KV_v2 blocks configured.",
        &[("", kv.blocks_total as f64)],
    );
    gauge(
        out,
        "pyagent_kv_blocks_used",
        "KV_v2 blocks in use.",
        &[("", kv.blocks_used as f64)],
    );
}

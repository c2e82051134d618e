//! Rejoining after damage to this node's durable Raft state (docs/raft-recovery.md).
//!
//! A node whose log, vote or snapshots were found damaged or missing at start-up may have
//! acknowledged entries (or granted votes) that it no longer remembers. Raft's safety rests on
//! every voter remembering what it acknowledged: a candidate wins only with the votes of a
//! majority that each hold every committed entry the candidate lacks... unless one of them has
//! forgotten it. So such a node is *recovering*: it neither campaigns (openraft's `elect` is off)
//! nor grants a vote or a pre-vote (the Raft transport answers "not granted" before openraft
//! sees the request), while it keeps accepting entries and snapshots from the leader. It votes
//! again once it holds everything any leader may have counted it for, which is decided here:
//!
//! The first AppendEntries (or snapshot) it accepts from a leader after starting carries the
//! leader's commit id `c`. If `c` is of the leader's own term, the leader has committed an entry
//! of its term, so `c` is at or past every entry the leader held when elected, which includes
//! every entry committed before that (Leader Completeness). An entry the leader itself counted
//! this node's old acknowledgement for is at or below `c` as well: before accepting anything the
//! node must have answered a conflict (it lacks what the leader thought it held), and the leader
//! resets its progress for the node only after that; openraft ignores acknowledgements from
//! before the reset. So once the node has applied up to `c`, it holds every entry a quorum could
//! have counted with its vote, and may vote again.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use openraft::async_runtime::WatchReceiver as _;

use crate::sm::Raft;
use crate::types::LogId;

/// A follower whose applied index trails the commit index its leader announces by more than
/// this is reported as behind (/healthz), as is one that trails at all and has not applied
/// anything for [`STUCK_AFTER`].
pub const BEHIND_ENTRIES: u64 = 1000;
/// How long a follower may trail its leader's commit index before /healthz calls it stuck.
pub const STUCK_AFTER: Duration = Duration::from_secs(10);

/// The recovery state of this node, shared by the Raft transport (which refuses votes while
/// recovering and reports what leaders announce), the watcher in `node` and `/healthz`.
#[derive(Debug)]
pub struct Recovery {
    recovering: AtomicBool,
    /// What was found damaged (kept after rejoining, for /metrics and the logs).
    reason: Option<String>,
    started: Instant,
    /// The first commit id of a leader's own term seen in a request this node accepted.
    target: Mutex<Option<LogId>>,
    /// The highest commit index any leader announced to this node (accepted or not).
    announced: AtomicU64,
    /// Milliseconds from start to rejoining (0: not rejoined, or never recovering).
    rejoined_after_ms: AtomicU64,
    refused_votes: AtomicU64,
    /// Since when this node's applied index has trailed the announced commit index without
    /// moving, and the applied index last seen.
    behind_since: Mutex<(Option<Instant>, u64)>,
}

/// What a leader told this node in one request, as the transport saw it.
#[derive(Debug, Clone, Copy)]
pub struct LeaderSaid {
    /// The term of the leader's vote carried by the request.
    pub term: u64,
    /// The leader's commit id (for a snapshot: the snapshot's last log id).
    pub committed: Option<LogId>,
    /// Whether this node accepted the request (an AppendEntries that did not conflict, or a
    /// snapshot it installed).
    pub accepted: bool,
}

impl Recovery {
    /// `damage`: what start-up found lost or corrupt, if anything; then the node is recovering.
    pub fn new(damage: Option<String>) -> Recovery {
        if let Some(why) = &damage {
            tracing::warn!(
                damage = %why,
                "this node's Raft state was damaged: it will not vote or campaign until it has \
                 caught up with a leader"
            );
        }
        Recovery {
            recovering: AtomicBool::new(damage.is_some()),
            reason: damage,
            started: Instant::now(),
            target: Mutex::new(None),
            announced: AtomicU64::new(0),
            rejoined_after_ms: AtomicU64::new(0),
            refused_votes: AtomicU64::new(0),
            behind_since: Mutex::new((None, 0)),
        }
    }

    pub fn is_recovering(&self) -> bool {
        self.recovering.load(Ordering::Acquire)
    }

    /// What start-up found damaged.
    pub fn damage(&self) -> Option<&str> {
        self.reason.as_deref()
    }

    pub fn refused_votes(&self) -> u64 {
        self.refused_votes.load(Ordering::Relaxed)
    }

    /// Counts a vote or pre-vote request refused because this node is recovering.
    pub fn refused_vote(&self) {
        self.refused_votes.fetch_add(1, Ordering::Relaxed);
    }

    /// Milliseconds from start to rejoining, if this node was recovering and has rejoined.
    pub fn rejoined_after_ms(&self) -> Option<u64> {
        Some(self.rejoined_after_ms.load(Ordering::Relaxed)).filter(|ms| *ms > 0)
    }

    /// The commit index the leader last announced (0: none yet).
    pub fn announced(&self) -> u64 {
        self.announced.load(Ordering::Relaxed)
    }

    /// Records what a leader's request said (called by the transport for every AppendEntries
    /// and snapshot from a leader).
    pub fn leader_said(&self, said: LeaderSaid) {
        if let Some(c) = said.committed {
            self.announced.fetch_max(c.index, Ordering::Relaxed);
        }
        if !said.accepted || !self.is_recovering() {
            return;
        }
        let mut target = self.target.lock().unwrap_or_else(|p| p.into_inner());
        if target.is_none() {
            *target = said.committed.filter(|c| c.leader_id.term == said.term);
        }
    }

    /// Whether a recovering node that has applied up to `applied` may vote again; see the
    /// module's documentation.
    pub fn caught_up(&self, applied: Option<LogId>) -> bool {
        let target = *self.target.lock().unwrap_or_else(|p| p.into_inner());
        caught_up(target, applied)
    }

    /// Ends recovery (the caller turns elections back on); false if it had already ended.
    pub fn finish(&self) -> bool {
        if !self.recovering.swap(false, Ordering::AcqRel) {
            return false;
        }
        let ms = (self.started.elapsed().as_millis() as u64).max(1);
        self.rejoined_after_ms.store(ms, Ordering::Relaxed);
        true
    }

    /// Records whether `applied` trails the announced commit index, for [`Recovery::health`]:
    /// the clock of "stuck" runs while it trails and does not move (under steady writes a
    /// follower always trails by a little, and is not stuck).
    pub fn observe_applied(&self, applied: u64) {
        let mut b = self.behind_since.lock().unwrap_or_else(|p| p.into_inner());
        if applied >= self.announced() {
            *b = (None, applied);
        } else if b.0.is_none() || applied > b.1 {
            *b = (Some(Instant::now()), applied);
        }
    }

    /// Why this node is not healthy (for /healthz), or None. `leader`: the leader it knows;
    /// `applied`: its applied index; `is_leader`: it leads.
    pub fn health(&self, leader: Option<u64>, applied: u64, is_leader: bool) -> Option<String> {
        if self.is_recovering() {
            return Some(format!(
                "recovering: {}; not voting until caught up (applied {applied}, leader's commit {})",
                self.damage().unwrap_or("damaged state"),
                self.announced()
            ));
        }
        if leader.is_none() {
            return Some("no leader".to_string());
        }
        if is_leader {
            return None;
        }
        let announced = self.announced();
        let gap = announced.saturating_sub(applied);
        if gap > BEHIND_ENTRIES {
            return Some(format!(
                "behind: applied {applied}, leader's commit {announced}"
            ));
        }
        let since = self
            .behind_since
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0;
        match since {
            Some(t) if gap > 0 && t.elapsed() >= STUCK_AFTER => Some(format!(
                "stuck: applied {applied} has not moved for {} s, behind the leader's commit {announced}",
                t.elapsed().as_secs()
            )),
            _ => None,
        }
    }
}

/// Follows Raft's metrics: ends recovery once caught up (and turns elections back on), and
/// keeps the behind/stuck clock of /healthz. Elections must be off (`elect(false)`) from
/// before Raft's first election timeout while recovering: `node::start` does that.
pub async fn watch(raft: Raft, recovery: std::sync::Arc<Recovery>) {
    let mut rx = raft.metrics();
    loop {
        let applied = rx.borrow_watched().last_applied;
        recovery.observe_applied(applied.map_or(0, |a| a.index));
        if recovery.is_recovering() && recovery.caught_up(applied) && recovery.finish() {
            raft.runtime_config().elect(true);
            tracing::info!(
                applied = applied.map_or(0, |a| a.index),
                after_ms = recovery.rejoined_after_ms().unwrap_or(0),
                "caught up with the leader after damage: voting and campaigning again"
            );
        }
        // A tick as well as changes: a stuck node's metrics do not change.
        match tokio::time::timeout(Duration::from_secs(1), rx.changed()).await {
            Ok(Err(_)) => return, // Raft stopped
            _ => continue,
        }
    }
}

/// Whether a node that has applied up to `applied` holds everything up to `target`, the first
/// own-term commit id of a leader that it accepted a request from (none yet: not caught up).
pub fn caught_up(target: Option<LogId>, applied: Option<LogId>) -> bool {
    match (target, applied) {
        (Some(t), Some(a)) => a.index >= t.index,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::log_id;

    fn said(term: u64, committed: Option<LogId>, accepted: bool) -> LeaderSaid {
        LeaderSaid {
            term,
            committed,
            accepted,
        }
    }

    #[test]
    fn an_intact_node_is_not_recovering() {
        let r = Recovery::new(None);
        assert!(!r.is_recovering());
        assert_eq!(r.health(Some(1), 0, false), None);
        assert_eq!(r.health(None, 0, false).as_deref(), Some("no leader"));
    }

    /// Only a request the node accepted, whose commit id is of the leader's own term, sets the
    /// index to reach; refused requests and older-term commit ids do not.
    #[test]
    fn the_target_is_the_first_own_term_commit_of_an_accepted_request() {
        let r = Recovery::new(Some("test".into()));
        assert!(r.is_recovering());
        r.leader_said(said(5, Some(log_id(5, 1, 90)), false));
        assert!(
            !r.caught_up(Some(log_id(5, 1, 200))),
            "a conflict sets nothing"
        );
        r.leader_said(said(5, Some(log_id(4, 2, 80)), true));
        assert!(
            !r.caught_up(Some(log_id(5, 1, 200))),
            "the leader has not committed an entry of its term yet"
        );
        r.leader_said(said(5, Some(log_id(5, 1, 100)), true));
        r.leader_said(said(5, Some(log_id(5, 1, 150)), true));
        assert!(!r.caught_up(Some(log_id(4, 2, 99))));
        assert!(r.caught_up(Some(log_id(5, 1, 100))));
        assert_eq!(r.announced(), 150);
        assert!(r
            .health(Some(1), 100, false)
            .unwrap()
            .starts_with("recovering"));
        assert!(r.finish());
        assert!(!r.finish());
        assert!(r.rejoined_after_ms().is_some());
        assert_eq!(r.health(Some(1), 150, false), None);
    }

    #[test]
    fn a_follower_far_behind_is_reported() {
        let r = Recovery::new(None);
        r.leader_said(said(2, Some(log_id(2, 1, 5000)), false));
        r.observe_applied(10);
        assert!(r.health(Some(1), 10, false).unwrap().starts_with("behind"));
        assert_eq!(
            r.health(Some(1), 10, true),
            None,
            "a leader is never behind"
        );
        r.observe_applied(5000);
        assert_eq!(r.health(Some(1), 5000, false), None);
    }
}

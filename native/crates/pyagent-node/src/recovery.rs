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
//!
//! A node whose *vote* was lost (vote.bin missing or unreadable, raft/ wiped) has one more
//! thing to relearn before it accepts anything: the term it had reached. It may have voted for
//! a leader of term T, and acknowledged that leader's entries, and then forgotten both; a stale
//! leader of a term below T (cut off from the others, but not from this node) would then find
//! it willing to accept, and the two could commit an entry that conflicts with one committed in
//! term T. So until it knows a floor for its term it accepts no entries at all, and afterwards
//! none from a leader below the floor. The floor is the highest term among the current votes of
//! `n - m + 1` of the other voters (n voters, m a majority): every leader this node voted for
//! was elected by m voters, m - 1 of them others, and any `n - m + 1` others include one of them,
//! which remembers that term (it saved its vote before granting it). See [`answers_needed`] and
//! [`learn_floor`].

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
    /// The vote was lost: entries are accepted only from a leader of at least the floor.
    vote_lost: bool,
    /// The floor learnt from the other voters (None: not yet).
    floor: Mutex<Option<u64>>,
    /// While the floor is being learnt: (voters that answered, answers needed).
    asked: Mutex<(usize, usize)>,
    /// Requests from a leader refused because the floor is unknown or above the leader's term.
    refused_leaders: AtomicU64,
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
    /// `vote_lost`: the vote was among what was lost (storage's `LogStore::vote_lost`).
    pub fn new(damage: Option<String>, vote_lost: bool) -> Recovery {
        if let Some(why) = &damage {
            tracing::warn!(
                damage = %why,
                "this node's Raft state was damaged: it will not vote or campaign until it has \
                 caught up with a leader"
            );
        }
        let recovering = damage.is_some();
        Recovery {
            recovering: AtomicBool::new(recovering),
            reason: damage,
            started: Instant::now(),
            target: Mutex::new(None),
            announced: AtomicU64::new(0),
            rejoined_after_ms: AtomicU64::new(0),
            refused_votes: AtomicU64::new(0),
            vote_lost: vote_lost && recovering,
            floor: Mutex::new(None),
            asked: Mutex::new((0, 0)),
            refused_leaders: AtomicU64::new(0),
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

    /// Whether this node must learn its term floor before accepting entries: it is recovering,
    /// its vote was lost, and the floor is not known yet.
    pub fn needs_floor(&self) -> bool {
        self.vote_lost && self.is_recovering() && self.floor().is_none()
    }

    /// The term floor learnt from the other voters, if any.
    pub fn floor(&self) -> Option<u64> {
        *self.floor.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records how many voters have answered so far, of how many are needed.
    pub fn asked(&self, answered: usize, needed: usize) {
        *self.asked.lock().unwrap_or_else(|p| p.into_inner()) = (answered, needed);
    }

    /// Sets the floor once enough voters answered.
    pub fn set_floor(&self, term: u64) {
        *self.floor.lock().unwrap_or_else(|p| p.into_inner()) = Some(term);
        tracing::info!(
            floor = term,
            "learnt the term this node's lost vote could have reached: accepting entries from a \
             leader of that term or later"
        );
    }

    /// Whether an AppendEntries or snapshot from a leader of `term` may reach openraft (counted
    /// when not). Only a node whose vote was lost ever refuses: until it knows its floor, every
    /// leader; then those below it. Once recovery ends, openraft's own vote (saved with the first
    /// request it accepted, of a term at or above the floor) refuses older leaders by itself.
    pub fn admits_leader(&self, term: u64) -> bool {
        if !self.vote_lost || !self.is_recovering() {
            return true;
        }
        let admitted = self.floor().is_some_and(|floor| term >= floor);
        if !admitted {
            self.refused_leaders.fetch_add(1, Ordering::Relaxed);
        }
        admitted
    }

    /// What this node tells a peer that asks for its current term (a peer whose own vote was
    /// lost): None while its own vote is lost and not relearnt, which the asker does not count.
    pub fn term_to_tell(&self, durable_vote_term: u64) -> Option<u64> {
        (!self.needs_floor()).then_some(durable_vote_term)
    }

    pub fn refused_leaders(&self) -> u64 {
        self.refused_leaders.load(Ordering::Relaxed)
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
        if self.needs_floor() {
            let (answered, needed) = *self.asked.lock().unwrap_or_else(|p| p.into_inner());
            return Some(format!(
                "recovering: {}; vote lost: waiting for the terms of {needed} other voter(s) \
                 before accepting entries ({answered} answered)",
                self.damage().unwrap_or("damaged state"),
            ));
        }
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

/// How many of the other voters must tell their terms before a node whose vote was lost may
/// take entries from anyone, in a membership of `voters` voters (this node among them):
/// `n - m + 1`, m a majority, so that the answers include one voter of every majority that
/// could have elected a leader with this node's vote. None in a group of one: no leader but
/// itself can have needed its vote.
pub fn answers_needed(voters: usize) -> usize {
    if voters <= 1 {
        return 0;
    }
    let majority = voters / 2 + 1;
    voters - majority + 1
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
        let r = Recovery::new(None, false);
        assert!(!r.is_recovering());
        assert_eq!(r.health(Some(1), 0, false), None);
        assert_eq!(r.health(None, 0, false).as_deref(), Some("no leader"));
    }

    /// Only a request the node accepted, whose commit id is of the leader's own term, sets the
    /// index to reach; refused requests and older-term commit ids do not.
    #[test]
    fn the_target_is_the_first_own_term_commit_of_an_accepted_request() {
        let r = Recovery::new(Some("test".into()), false);
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

    /// n - m + 1 of the others: 2 of 2 in a group of 3, 3 of 4 in 5, 4 of 6 in 7; none alone.
    #[test]
    fn the_answers_needed_meet_every_majority() {
        assert_eq!(
            (1..=7).map(answers_needed).collect::<Vec<_>>(),
            vec![0, 1, 2, 2, 3, 3, 4]
        );
        for n in 2..=9usize {
            let majority = n / 2 + 1;
            // The others that elected a leader with this node's vote (m - 1 of them) and the
            // others that answered always share one.
            assert!((majority - 1) + answers_needed(n) > n - 1, "n = {n}");
        }
    }

    /// A node whose vote was lost takes nothing from a leader until it knows its floor, then
    /// only from a leader at or above it; a node that lost only entries takes from any leader
    /// (its intact vote makes openraft refuse older ones).
    #[test]
    fn a_lost_vote_refuses_leaders_until_the_floor_is_known() {
        let r = Recovery::new(Some("vote.bin is missing".into()), true);
        assert!(r.needs_floor());
        assert!(!r.admits_leader(9));
        assert_eq!(r.term_to_tell(0), None, "its own term is not to be counted");
        r.asked(1, 2);
        let health = r.health(Some(1), 0, false).unwrap();
        assert!(
            health.contains("vote lost") && health.contains("(1 answered)"),
            "{health}"
        );
        r.set_floor(10);
        assert!(!r.needs_floor());
        assert!(!r.admits_leader(9), "a stale leader");
        assert!(r.admits_leader(10) && r.admits_leader(11));
        assert_eq!(r.refused_leaders(), 2);
        assert_eq!(r.term_to_tell(10), Some(10));
        assert!(r.finish());
        assert!(
            r.admits_leader(1),
            "after recovery openraft's own vote decides"
        );

        let entries_only = Recovery::new(Some("log corrupt".into()), false);
        assert!(!entries_only.needs_floor() && entries_only.admits_leader(1));
        assert!(!Recovery::new(None, true).needs_floor());
    }

    #[test]
    fn a_follower_far_behind_is_reported() {
        let r = Recovery::new(None, false);
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

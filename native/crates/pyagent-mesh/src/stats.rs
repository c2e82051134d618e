//! Counters of the mesh, read by the node's /metrics and status.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::message::Topic;

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Refusal {
    /// The peer's key is not in the Raft membership.
    NotAMember,
    /// The node already keeps as many connections as `mesh.neighbours` allows.
    NeighbourLimit,
}

impl Refusal {
    pub fn label(self) -> &'static str {
        match self {
            Refusal::NotAMember => "not-a-member",
            Refusal::NeighbourLimit => "neighbour-limit",
        }
    }
}

/// Why a received message was dropped instead of delivered and forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rejection {
    /// Its author (the signer) is not a member.
    NotAMember,
    TooLarge,
    /// It does not decode as its topic's type.
    Malformed,
    /// Its author published more than the per-minute budget.
    RateLimited,
    /// Sealed with a session whose key does not decrypt or verify it.
    Undecryptable,
    /// Its session's key never came while it waited (the oldest held are dropped first).
    NoKey,
}

impl Rejection {
    pub fn label(self) -> &'static str {
        match self {
            Rejection::NotAMember => "not-a-member",
            Rejection::TooLarge => "too-large",
            Rejection::Malformed => "malformed",
            Rejection::RateLimited => "rate-limited",
            Rejection::Undecryptable => "undecryptable",
            Rejection::NoKey => "no-key",
        }
    }
}

#[derive(Debug, Default)]
pub struct MeshStats {
    pub peers: AtomicU64,
    pub members: AtomicU64,
    refused: Mutex<BTreeMap<Refusal, u64>>,
    published: Mutex<BTreeMap<Topic, u64>>,
    delivered: Mutex<BTreeMap<Topic, u64>>,
    rejected: Mutex<BTreeMap<(Topic, Rejection), u64>>,
    pub bytes_delivered: AtomicU64,
    /// Group sessions this node replaced because a member was removed.
    pub rotations: AtomicU64,
    /// Members whose bundle came with a new identity (restarted without their saved state).
    pub identity_changes: AtomicU64,
    /// 1 when this node resumed its saved encryption state at start.
    pub restored: AtomicU64,
    /// Peers mDNS announced: members, and any other libp2p node (ignored).
    mdns_members: AtomicU64,
    mdns_others: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub peers: u64,
    pub members: u64,
    pub refused: BTreeMap<Refusal, u64>,
    pub published: BTreeMap<Topic, u64>,
    pub delivered: BTreeMap<Topic, u64>,
    pub rejected: BTreeMap<(Topic, Rejection), u64>,
    pub bytes_delivered: u64,
    pub rotations: u64,
    /// Announcements mDNS heard: (of members, of other libp2p nodes).
    pub mdns_found: (u64, u64),
    pub identity_changes: u64,
    pub restored: bool,
}

fn bump<K: Ord>(map: &Mutex<BTreeMap<K, u64>>, key: K) {
    *map.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .entry(key)
        .or_default() += 1;
}

fn copy<K: Ord + Clone>(map: &Mutex<BTreeMap<K, u64>>) -> BTreeMap<K, u64> {
    map.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}

impl MeshStats {
    pub fn refused(&self, why: Refusal) {
        bump(&self.refused, why);
    }

    pub fn published(&self, topic: Topic) {
        bump(&self.published, topic);
    }

    pub fn delivered(&self, topic: Topic, bytes: usize) {
        bump(&self.delivered, topic);
        self.bytes_delivered
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub fn rejected(&self, topic: Topic, why: Rejection) {
        bump(&self.rejected, (topic, why));
    }

    /// Counts a peer (address) mDNS announced; `member`: whether its key is admitted.
    pub fn mdns_found(&self, member: bool) {
        let counter = if member {
            &self.mdns_members
        } else {
            &self.mdns_others
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            peers: self.peers.load(Ordering::Relaxed),
            members: self.members.load(Ordering::Relaxed),
            refused: copy(&self.refused),
            published: copy(&self.published),
            delivered: copy(&self.delivered),
            rejected: copy(&self.rejected),
            bytes_delivered: self.bytes_delivered.load(Ordering::Relaxed),
            rotations: self.rotations.load(Ordering::Relaxed),
            mdns_found: (
                self.mdns_members.load(Ordering::Relaxed),
                self.mdns_others.load(Ordering::Relaxed),
            ),
            identity_changes: self.identity_changes.load(Ordering::Relaxed),
            restored: self.restored.load(Ordering::Relaxed) == 1,
        }
    }
}

//! The openraft type configuration and the data carried in the log.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A member as recorded in the replicated Raft membership: its public key travels with it, so
/// the membership (ids and keys) is part of the replicated state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub name: String,
    pub raft: String,
    pub grpc: String,
    /// base64 of the Ed25519 public key.
    pub public_key: String,
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.raft)
    }
}

/// A client command as it is stored in the log (a log entry holds a batch of them, proposed
/// together: one entry, one fsync per node, for all the commands that arrived meanwhile): the signed bytes exactly as received, plus the
/// leader's clock when it was proposed (leases are measured on it, identically on every replica).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogCommand {
    pub signer: u64,
    pub seq: u64,
    #[serde(with = "serde_bytes_vec")]
    pub command: Vec<u8>,
    #[serde(with = "serde_bytes_vec")]
    pub signature: Vec<u8>,
    pub proposed_at_ms: u64,
}

/// What applying one command produced.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyResult {
    pub applied: bool,
    pub refusal: String,
    pub message: String,
    pub token: Option<(u64, u64)>,
    pub lease_expires_ms: u64,
}

impl ApplyResult {
    pub fn ok() -> Self {
        ApplyResult {
            applied: true,
            ..Default::default()
        }
    }

    pub fn refused(refusal: &str, message: impl Into<String>) -> Self {
        ApplyResult {
            applied: false,
            refusal: refusal.to_string(),
            message: message.into(),
            ..Default::default()
        }
    }
}

/// The commands of one log entry. Serialised exactly as the `Vec` it wraps (the log format is
/// unchanged); a newtype only because openraft 0.10 wants `Display` on the entry payload.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Batch(pub Vec<LogCommand>);

impl fmt::Display for Batch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} command(s)", self.0.len())
    }
}

openraft::declare_raft_types!(
    /// Types of the pyagent swarm's Raft group.
    pub TypeConfig:
        D = Batch,
        R = Vec<ApplyResult>,
        NodeId = u64,
        Node = Member,
);

pub type NodeId = u64;
pub type Entry = openraft::type_config::alias::EntryOf<TypeConfig>;
pub type LogId = openraft::type_config::alias::LogIdOf<TypeConfig>;
pub type CommittedLeaderId = openraft::type_config::alias::CommittedLeaderIdOf<TypeConfig>;
pub type Vote = openraft::type_config::alias::VoteOf<TypeConfig>;
pub type StoredMembership = openraft::type_config::alias::StoredMembershipOf<TypeConfig>;
pub type SnapshotMeta = openraft::type_config::alias::SnapshotMetaOf<TypeConfig>;
pub type Snapshot = openraft::type_config::alias::SnapshotOf<TypeConfig, SnapshotData>;
/// A snapshot's bytes (msgpack of the swarm state), held in memory.
pub type SnapshotData = Vec<u8>;
pub type StorageError = openraft::StorageError<TypeConfig>;

/// A log id from its term, the node that led that term, and its index.
pub fn log_id(term: u64, node: NodeId, index: u64) -> LogId {
    openraft::LogId::new(
        CommittedLeaderId {
            term,
            node_id: node,
        },
        index,
    )
}

/// Serialises `Vec<u8>` as msgpack `bin` rather than an array of integers.
pub mod serde_bytes_vec {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<Vec<u8>, A::Error> {
                let mut out = Vec::new();
                while let Some(b) = a.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(out)
            }
        }
        d.deserialize_byte_buf(V)
    }
}

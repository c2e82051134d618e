//! Signed messages: envelopes for Raft RPCs, signed client commands, and the replay window.
//!
//! What is signed always starts with a domain tag and the swarm name, so a signature made for one
//! purpose (or one swarm) never verifies for another.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

pub const RAFT_DOMAIN: &[u8] = b"pyagent.node.v1.raft";
pub const COMMAND_DOMAIN: &[u8] = b"pyagent.node.v1.Command";
/// How far below a sender's highest sequence number a (not yet seen) number is still accepted.
pub const REPLAY_WINDOW: u64 = 4096;

/// Why a message was refused; the label of `pyagent_rejected_messages_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Reject {
    Unsigned,
    Malformed,
    NonMember,
    BadSignature,
    WrongRecipient,
    Replay,
}

impl Reject {
    pub const ALL: [Reject; 6] = [
        Reject::Unsigned,
        Reject::Malformed,
        Reject::NonMember,
        Reject::BadSignature,
        Reject::WrongRecipient,
        Reject::Replay,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Reject::Unsigned => "unsigned",
            Reject::Malformed => "malformed",
            Reject::NonMember => "non_member",
            Reject::BadSignature => "bad_signature",
            Reject::WrongRecipient => "wrong_recipient",
            Reject::Replay => "replay",
        }
    }
}

impl std::fmt::Display for Reject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// A signed Raft RPC request or response.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Envelope {
    pub from: u64,
    pub to: u64,
    pub seq: u64,
    #[serde(with = "crate::types::serde_bytes_vec")]
    pub body: Vec<u8>,
    #[serde(with = "crate::types::serde_bytes_vec")]
    pub sig: Vec<u8>,
}

pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(1)
}

/// Raft envelopes whose sequence (a sender's microsecond clock) is older than this, relative to
/// when the receiver started, are refused as replays: the receiver's in-memory window does not
/// survive a restart, this floor does. Assumes clocks within this much of each other.
pub const MAX_CLOCK_SKEW_MICROS: u64 = 120_000_000;

fn push_u64(buf: &mut Vec<u8>, v: u64) {
    buf.extend_from_slice(&v.to_be_bytes());
}

pub fn raft_message(swarm: &str, from: u64, to: u64, seq: u64, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(RAFT_DOMAIN.len() + swarm.len() + 26 + body.len());
    m.extend_from_slice(RAFT_DOMAIN);
    m.push(0);
    m.extend_from_slice(swarm.as_bytes());
    m.push(0);
    push_u64(&mut m, from);
    push_u64(&mut m, to);
    push_u64(&mut m, seq);
    m.extend_from_slice(body);
    m
}

pub fn command_message(swarm: &str, signer: u64, seq: u64, command: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(COMMAND_DOMAIN.len() + swarm.len() + 18 + command.len());
    m.extend_from_slice(COMMAND_DOMAIN);
    m.push(0);
    m.extend_from_slice(swarm.as_bytes());
    m.push(0);
    push_u64(&mut m, signer);
    push_u64(&mut m, seq);
    m.extend_from_slice(command);
    m
}

pub fn verify(key: &VerifyingKey, message: &[u8], sig: &[u8]) -> Result<(), Reject> {
    if sig.is_empty() {
        return Err(Reject::Unsigned);
    }
    let sig: [u8; 64] = sig.try_into().map_err(|_| Reject::Malformed)?;
    key.verify_strict(message, &Signature::from_bytes(&sig))
        .map_err(|_| Reject::BadSignature)
}

/// Signature checks with their costly parts remembered, per process: decoded public keys (point
/// decompression costs about as much as the verification) and commands this node already
/// verified on its API, so the leader's apply of its own proposal does not check the curve
/// twice. Verification is a pure function of (key, message, signature), so remembering a success
/// changes no outcome; followers, which never saw the command on their API, verify it in full.
#[derive(Debug, Default)]
pub struct SigCache {
    keys: Mutex<HashMap<String, VerifyingKey>>,
    verified: Mutex<HashSet<[u8; 32]>>,
}

/// Remembered verifications at most (a leader that proposes faster than it applies, or whose
/// proposals are refused before apply, cannot grow the set without bound).
const VERIFIED_CAP: usize = 1 << 16;
/// Distinct public keys remembered at most (members come and go over a swarm's life).
const KEYS_CAP: usize = 4096;

impl SigCache {
    /// The decoded key for a base64 public key, decoded once.
    pub fn key(&self, b64: &str) -> Option<VerifyingKey> {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(k) = keys.get(b64) {
            return Some(*k);
        }
        let k = crate::identity::decode_public_key(b64).ok()?;
        if keys.len() >= KEYS_CAP {
            keys.clear();
        }
        keys.insert(b64.to_string(), k);
        Some(k)
    }

    fn digest(key: &VerifyingKey, message: &[u8], sig: &[u8]) -> [u8; 32] {
        let mut h = blake3::Hasher::new();
        h.update(key.as_bytes());
        h.update(&(sig.len() as u64).to_le_bytes());
        h.update(sig);
        h.update(message);
        *h.finalize().as_bytes()
    }

    /// Verifies and remembers the success for one later [`SigCache::verify_once`].
    pub fn verify_and_remember(
        &self,
        key: &VerifyingKey,
        message: &[u8],
        sig: &[u8],
    ) -> Result<(), Reject> {
        verify(key, message, sig)?;
        let mut done = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        if done.len() >= VERIFIED_CAP {
            done.clear();
        }
        done.insert(Self::digest(key, message, sig));
        Ok(())
    }

    /// Verifies, using (and forgetting) a success remembered by the API.
    pub fn verify_once(
        &self,
        key: &VerifyingKey,
        message: &[u8],
        sig: &[u8],
    ) -> Result<(), Reject> {
        let digest = Self::digest(key, message, sig);
        if self
            .verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&digest)
        {
            return Ok(());
        }
        verify(key, message, sig)
    }
}

/// Signs outgoing envelopes with this node's key and a sequence that keeps growing across
/// restarts (it starts at the wall clock in microseconds).
pub struct Signer {
    pub node_id: u64,
    pub swarm: String,
    key: SigningKey,
    seq: AtomicU64,
}

impl Signer {
    pub fn new(node_id: u64, swarm: String, key: SigningKey) -> Self {
        let start = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(1);
        Signer {
            node_id,
            swarm,
            key,
            seq: AtomicU64::new(start),
        }
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// A hybrid clock: strictly increasing, and never behind the wall clock in microseconds, so
    /// a receiver that restarted (and lost its replay window) can refuse old captured messages.
    pub fn next_seq(&self) -> u64 {
        let now = now_micros();
        let prev = self
            .seq
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |p| {
                Some(p.saturating_add(1).max(now))
            })
            .unwrap_or(0);
        prev.saturating_add(1).max(now)
    }

    pub fn envelope(&self, to: u64, body: Vec<u8>) -> Envelope {
        let seq = self.next_seq();
        let sig = self
            .key
            .sign(&raft_message(&self.swarm, self.node_id, to, seq, &body));
        Envelope {
            from: self.node_id,
            to,
            seq,
            body,
            sig: sig.to_bytes().to_vec(),
        }
    }

    /// Signs a client command as node `self.node_id` (used by tests and tools).
    pub fn sign_command(&self, seq: u64, command: &[u8]) -> Vec<u8> {
        self.key
            .sign(&command_message(&self.swarm, self.node_id, seq, command))
            .to_bytes()
            .to_vec()
    }
}

/// Per-sender replay protection: the last [`REPLAY_WINDOW`] sequence numbers accepted from each
/// sender. A number is refused if it was seen, or if it is below all of them once the window is
/// full; so concurrent clients may arrive out of order by up to the window's size, whatever the
/// numbers' spacing (e.g. nanosecond clocks). Serialisable: the client-command window lives in
/// the replicated state.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReplayWindow {
    senders: BTreeMap<u64, BTreeSet<u64>>,
}

impl ReplayWindow {
    /// Would `seq` from `sender` be accepted? Does not record it.
    pub fn check(&self, sender: u64, seq: u64) -> Result<(), Reject> {
        match self.senders.get(&sender) {
            None => Ok(()),
            Some(seen) => {
                let full = seen.len() as u64 >= REPLAY_WINDOW;
                if seen.contains(&seq) || (full && seen.first().is_some_and(|min| seq < *min)) {
                    Err(Reject::Replay)
                } else {
                    Ok(())
                }
            }
        }
    }

    /// Checks and records `seq`.
    pub fn accept(&mut self, sender: u64, seq: u64) -> Result<(), Reject> {
        self.check(sender, seq)?;
        let seen = self.senders.entry(sender).or_default();
        seen.insert(seq);
        while seen.len() as u64 > REPLAY_WINDOW {
            seen.pop_first();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> SigningKey {
        SigningKey::from_bytes(&[b; 32])
    }

    #[test]
    fn sig_cache_remembers_a_success_once_and_never_a_failure() {
        let k = key(5);
        let pk = k.verifying_key();
        let cache = SigCache::default();
        let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, pk.as_bytes());
        assert_eq!(cache.key(&b64), Some(pk));
        assert_eq!(cache.key("not base64"), None);
        let msg = b"command".to_vec();
        let sig = k.sign(&msg).to_bytes().to_vec();
        cache.verify_and_remember(&pk, &msg, &sig).unwrap();
        cache.verify_once(&pk, &msg, &sig).unwrap(); // remembered
        cache.verify_once(&pk, &msg, &sig).unwrap(); // verified again in full
                                                     // a remembered success covers exactly (key, message, signature)
        cache.verify_and_remember(&pk, &msg, &sig).unwrap();
        assert_eq!(
            cache.verify_once(&pk, b"other", &sig),
            Err(Reject::BadSignature)
        );
        assert_eq!(
            cache.verify_once(&key(6).verifying_key(), &msg, &sig),
            Err(Reject::BadSignature)
        );
        let mut forged = sig.clone();
        forged[3] ^= 1;
        assert_eq!(
            cache.verify_and_remember(&pk, &msg, &forged),
            Err(Reject::BadSignature)
        );
        assert_eq!(
            cache.verify_once(&pk, &msg, &forged),
            Err(Reject::BadSignature)
        );
        assert_eq!(cache.verify_once(&pk, &msg, &[]), Err(Reject::Unsigned));
    }

    #[test]
    fn envelope_verifies_and_forgeries_do_not() {
        let s = Signer::new(1, "swarm".into(), key(1));
        let e = s.envelope(2, b"hello".to_vec());
        let msg = raft_message("swarm", e.from, e.to, e.seq, &e.body);
        verify(&s.verifying_key(), &msg, &e.sig).unwrap();
        // tampered body
        let msg2 = raft_message("swarm", e.from, e.to, e.seq, b"hellO");
        assert_eq!(
            verify(&s.verifying_key(), &msg2, &e.sig),
            Err(Reject::BadSignature)
        );
        // another swarm
        let msg3 = raft_message("other", e.from, e.to, e.seq, &e.body);
        assert_eq!(
            verify(&s.verifying_key(), &msg3, &e.sig),
            Err(Reject::BadSignature)
        );
        // a different key (impostor)
        assert_eq!(
            verify(&key(2).verifying_key(), &msg, &e.sig),
            Err(Reject::BadSignature)
        );
        assert_eq!(verify(&s.verifying_key(), &msg, &[]), Err(Reject::Unsigned));
        assert_eq!(
            verify(&s.verifying_key(), &msg, &[1, 2, 3]),
            Err(Reject::Malformed)
        );
    }

    /// The exact signed bytes are a cross-language contract (docs/node-daemon.md has this
    /// vector for the Python side).
    #[test]
    fn command_signature_vector() {
        let msg = command_message("laptop", 1, 2, b"cmd");
        let mut expected = b"pyagent.node.v1.Command\0laptop\0".to_vec();
        expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2]);
        expected.extend_from_slice(b"cmd");
        assert_eq!(msg, expected);
        let s = Signer::new(1, "laptop".into(), SigningKey::from_bytes(&[1; 32]));
        let sig = s.sign_command(2, b"cmd");
        let hex: String = sig.iter().map(|b| format!("{b:02x}")).collect();
        let pk: String = s
            .verifying_key()
            .as_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            pk,
            "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c"
        );
        assert_eq!(
            hex,
            "a47a6e5ecca6e36fc9f37fbbfabcc3818759e728d0961d4144f6ecf2a55247b8\
             188891779aa1e8d3950f48594926e43b2f51612e2cba02167e596eeac051aa0c"
        );
    }

    #[test]
    fn replay_window() {
        let mut w = ReplayWindow::default();
        w.accept(1, 10_000).unwrap();
        assert_eq!(w.accept(1, 10_000), Err(Reject::Replay));
        w.accept(1, 9_999).unwrap(); // out of order: fine while the window is not full
        assert_eq!(w.accept(1, 9_999), Err(Reject::Replay));
        w.accept(2, 10_000).unwrap(); // senders are independent
        for i in 0..REPLAY_WINDOW {
            w.accept(1, 1_000_000 + i * 1_000_000).unwrap(); // widely spaced numbers
        }
        // the window now holds only the large numbers: anything older is refused
        assert_eq!(w.accept(1, 10_001), Err(Reject::Replay));
        assert_eq!(w.accept(1, 1_000_000), Err(Reject::Replay));
        w.accept(1, 2_500_000).unwrap(); // unseen and above the window's floor
    }
}

//! Signed messages: envelopes for Raft RPCs, signed client commands, and the replay window.
//!
//! What is signed always starts with a domain tag and the swarm name, so a signature made for one
//! purpose (or one swarm) never verifies for another.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

pub const RAFT_DOMAIN: &[u8] = b"pyagent.node.v1.raft";
pub const COMMAND_DOMAIN: &[u8] = b"pyagent.node.v1.Command";
pub const JOIN_DOMAIN: &[u8] = b"pyagent.node.v1.Join";
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

/// What a pod signs to ask to join: it proves that the joiner holds the key it asks to be
/// admitted with, for this swarm and this node id, bound to its token.
pub fn join_message(swarm: &str, node_id: u64, token: &str) -> Vec<u8> {
    let mut m = Vec::with_capacity(JOIN_DOMAIN.len() + swarm.len() + 10 + token.len());
    m.extend_from_slice(JOIN_DOMAIN);
    m.push(0);
    m.extend_from_slice(swarm.as_bytes());
    m.push(0);
    push_u64(&mut m, node_id);
    m.extend_from_slice(token.as_bytes());
    m
}

/// A public key as verification uses it: decoded and decompressed once.
///
/// Signatures are checked under ZIP 215's rules (ed25519-zebra): the cofactored equation, for
/// single and batched checks alike, so a batch accepts exactly the signatures that verify one by
/// one and every replica reaches the same verdict on a command whatever batches it saw. Small-order
/// keys, which ZIP 215 would let anyone sign for, are refused when a member key is decoded
/// ([`crate::identity::decode_public_key`]).
pub type PublicKey = ed25519_zebra::VerificationKey;

/// The verification form of a key that [`crate::identity::decode_public_key`] accepted.
pub fn public_key(key: &VerifyingKey) -> Option<PublicKey> {
    PublicKey::try_from(key.to_bytes()).ok()
}

/// A member's base64 public key in verification form; None for anything
/// [`crate::identity::decode_public_key`] refuses.
pub fn decode_member_key(b64: &str) -> Option<PublicKey> {
    public_key(&crate::identity::decode_public_key(b64).ok()?)
}

fn signature(sig: &[u8]) -> Result<ed25519_zebra::Signature, Reject> {
    if sig.is_empty() {
        return Err(Reject::Unsigned);
    }
    let sig: [u8; 64] = sig.try_into().map_err(|_| Reject::Malformed)?;
    Ok(ed25519_zebra::Signature::from_bytes(&sig))
}

pub fn verify(key: &PublicKey, message: &[u8], sig: &[u8]) -> Result<(), Reject> {
    key.verify(&signature(sig)?, message)
        .map_err(|_| Reject::BadSignature)
}

/// One signature to check: the signer's key, the signed bytes and the signature as received.
#[derive(Debug, Clone, Copy)]
pub struct Check<'a> {
    pub key: &'a PublicKey,
    pub message: &'a [u8],
    pub sig: &'a [u8],
}

/// Fewer well-formed signatures than this are checked one by one: a batch of one costs more
/// than a single check (measured: 42 vs 31 us), from two on it costs less (25 us each).
pub const BATCH_FROM: usize = 2;

/// Verdicts for many signatures, equal to [`verify`] on each. Checked as one batch (one
/// multiscalar multiplication, about a quarter of the cost per signature at 32) and, only when
/// the batch fails, one by one to find which.
pub fn verify_many(checks: &[Check<'_>]) -> Vec<Result<(), Reject>> {
    let mut verdicts: Vec<Result<(), Reject>> = Vec::with_capacity(checks.len());
    let mut batch = ed25519_zebra::batch::Verifier::new();
    let mut queued = 0;
    for c in checks {
        match signature(c.sig) {
            Ok(sig) => {
                batch.queue(((*c.key).into(), sig, c.message));
                queued += 1;
                verdicts.push(Ok(()));
            }
            Err(r) => verdicts.push(Err(r)),
        }
    }
    let batch_passed =
        queued >= BATCH_FROM && BatchRng::new().is_some_and(|rng| batch.verify(rng).is_ok());
    if !batch_passed {
        for (c, v) in checks.iter().zip(verdicts.iter_mut()) {
            if v.is_ok() {
                *v = verify(c.key, c.message, c.sig);
            }
        }
    }
    verdicts
}

/// The batch check's random coefficients: a BLAKE3 output stream keyed from the OS's
/// generator. They must be unpredictable to whoever chose the signatures; when the OS cannot
/// give a seed, the batch is skipped and every signature checked on its own.
struct BatchRng(blake3::OutputReader);

impl BatchRng {
    fn new() -> Option<Self> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).ok()?;
        Some(BatchRng(blake3::Hasher::new_keyed(&seed).finalize_xof()))
    }
}

impl rand_core::TryRng for BatchRng {
    type Error = std::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut b = [0u8; 4];
        self.0.fill(&mut b);
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut b = [0u8; 8];
        self.0.fill(&mut b);
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), Self::Error> {
        self.0.fill(dest);
        Ok(())
    }
}

impl rand_core::TryCryptoRng for BatchRng {}

/// Signature checks with their costly parts remembered, per process: decoded public keys (point
/// decompression costs about as much as the verification) and successes already checked, by
/// the API or in a batch before apply ([`crate::state::SwarmState::preverify`]), so applying
/// the same command does not check the curve again. Verification is a pure function of (key,
/// message, signature), so remembering a success changes no outcome.
#[derive(Debug, Default)]
pub struct SigCache {
    keys: Mutex<HashMap<String, PublicKey>>,
    verified: Mutex<HashSet<[u8; 32]>>,
}

/// Remembered verifications at most (a leader that proposes faster than it applies, or whose
/// proposals are refused before apply, cannot grow the set without bound).
const VERIFIED_CAP: usize = 1 << 16;
/// Distinct public keys remembered at most (members come and go over a swarm's life).
const KEYS_CAP: usize = 4096;

impl SigCache {
    /// The decoded key for a base64 public key, decoded once.
    pub fn key(&self, b64: &str) -> Option<PublicKey> {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(k) = keys.get(b64) {
            return Some(*k);
        }
        let k = decode_member_key(b64)?;
        if keys.len() >= KEYS_CAP {
            keys.clear();
        }
        keys.insert(b64.to_string(), k);
        Some(k)
    }

    fn digest(key: &PublicKey, message: &[u8], sig: &[u8]) -> [u8; 32] {
        let mut h = blake3::Hasher::new();
        h.update(key.as_ref());
        h.update(&(sig.len() as u64).to_le_bytes());
        h.update(sig);
        h.update(message);
        *h.finalize().as_bytes()
    }

    /// Verifies and remembers the success for one later [`SigCache::verify_once`].
    pub fn verify_and_remember(
        &self,
        key: &PublicKey,
        message: &[u8],
        sig: &[u8],
    ) -> Result<(), Reject> {
        let check = Check { key, message, sig };
        self.verify_many_and_remember(&[check])
            .pop()
            .unwrap_or(Err(Reject::Malformed))
    }

    /// Checks many signatures as one batch ([`verify_many`]) and remembers each success for one
    /// later [`SigCache::verify_once`]. Signatures already remembered are not checked again.
    pub fn verify_many_and_remember(&self, checks: &[Check<'_>]) -> Vec<Result<(), Reject>> {
        let digests: Vec<[u8; 32]> = checks
            .iter()
            .map(|c| Self::digest(c.key, c.message, c.sig))
            .collect();
        let fresh: Vec<usize> = {
            let done = self.verified.lock().unwrap_or_else(|p| p.into_inner());
            (0..checks.len())
                .filter(|&i| !done.contains(&digests[i]))
                .collect()
        };
        let to_check: Vec<Check<'_>> = fresh.iter().map(|&i| checks[i]).collect();
        let verdicts = verify_many(&to_check);
        let mut out = vec![Ok(()); checks.len()];
        let mut done = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        for (&i, verdict) in fresh.iter().zip(verdicts) {
            if verdict.is_ok() {
                if done.len() >= VERIFIED_CAP {
                    done.clear();
                }
                done.insert(digests[i]);
            }
            out[i] = verdict;
        }
        out
    }

    /// Verifies, using (and forgetting) a success remembered by the API.
    pub fn verify_once(&self, key: &PublicKey, message: &[u8], sig: &[u8]) -> Result<(), Reject> {
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
    public: PublicKey,
    seq: AtomicU64,
    /// The same key for the Raft transport's encrypted channels (net.rs).
    channel: pyagent_mesh::secure::ChannelKey,
}

impl Signer {
    pub fn new(node_id: u64, swarm: String, key: SigningKey) -> Self {
        let start = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(1);
        // Derived from the seed, so it cannot fail as decoding a received key can.
        let public = PublicKey::from(&ed25519_zebra::SigningKey::from(key.to_bytes()));
        let channel = pyagent_mesh::secure::ChannelKey::new(key.to_bytes(), &swarm, "raft");
        Signer {
            node_id,
            swarm,
            key,
            public,
            seq: AtomicU64::new(start),
            channel,
        }
    }

    /// The key of this node's Raft channels.
    pub fn channel(&self) -> &pyagent_mesh::secure::ChannelKey {
        &self.channel
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// This node's key in the form verification uses.
    pub fn public_key(&self) -> PublicKey {
        self.public
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

    /// Signs a request to join the swarm as node `self.node_id` with `token`.
    pub fn sign_join(&self, token: &str) -> Vec<u8> {
        self.key
            .sign(&join_message(&self.swarm, self.node_id, token))
            .to_bytes()
            .to_vec()
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
        let pk = public_key(&k.verifying_key()).unwrap();
        let cache = SigCache::default();
        let b64 = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            k.verifying_key().as_bytes(),
        );
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
            cache.verify_once(&public_key(&key(6).verifying_key()).unwrap(), &msg, &sig),
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

    /// A batch gives each signature the verdict it gets alone, whatever else is in the batch.
    #[test]
    fn verify_many_agrees_with_verify() {
        let signers: Vec<SigningKey> = (1..=4).map(key).collect();
        let keys: Vec<PublicKey> = signers
            .iter()
            .map(|k| public_key(&k.verifying_key()).unwrap())
            .collect();
        let msgs: Vec<Vec<u8>> = (0..8u8).map(|i| vec![i; 40 + i as usize]).collect();
        let sigs: Vec<Vec<u8>> = msgs
            .iter()
            .enumerate()
            .map(|(i, m)| signers[i % 4].sign(m).to_bytes().to_vec())
            .collect();
        let mut forged = sigs[3].clone();
        forged[40] ^= 0x10;
        // (key, message, signature) triples: good ones and every kind of bad one.
        let cases: Vec<(usize, usize, Vec<u8>)> = vec![
            (0, 0, sigs[0].clone()),
            (1, 1, sigs[1].clone()),
            (2, 2, sigs[2].clone()),
            (3, 3, forged),
            (0, 4, sigs[4].clone()),
            (1, 4, sigs[4].clone()), // right signature, wrong key
            (1, 5, Vec::new()),      // unsigned
            (2, 6, vec![1, 2, 3]),   // malformed
            (3, 7, sigs[7].clone()),
            (3, 7, sigs[6].clone()), // another message's signature
        ];
        let alone: Vec<Result<(), Reject>> = cases
            .iter()
            .map(|(k, m, s)| verify(&keys[*k], &msgs[*m], s))
            .collect();
        assert_eq!(alone.iter().filter(|v| v.is_ok()).count(), 5);
        for take in [cases.len(), 2, 5] {
            for start in 0..=cases.len() - take {
                let part = &cases[start..start + take];
                let checks: Vec<Check<'_>> = part
                    .iter()
                    .map(|(k, m, s)| Check {
                        key: &keys[*k],
                        message: &msgs[*m],
                        sig: s,
                    })
                    .collect();
                assert_eq!(verify_many(&checks), alone[start..start + take].to_vec());
            }
        }
        // All good: the batch passes as a whole.
        let good: Vec<Check<'_>> = (0..8)
            .map(|i| Check {
                key: &keys[i % 4],
                message: &msgs[i],
                sig: &sigs[i],
            })
            .collect();
        assert!(verify_many(&good).iter().all(|v| v.is_ok()));
        assert!(verify_many(&[]).is_empty());
    }

    #[test]
    fn sig_cache_remembers_the_successes_of_a_batch() {
        let k = key(5);
        let pk = public_key(&k.verifying_key()).unwrap();
        let (m1, m2) = (b"one".to_vec(), b"two".to_vec());
        let s1 = k.sign(&m1).to_bytes().to_vec();
        let s2 = k.sign(&m1).to_bytes().to_vec(); // signs m1, checked against m2: bad
        let cache = SigCache::default();
        let checks = [
            Check {
                key: &pk,
                message: &m1,
                sig: &s1,
            },
            Check {
                key: &pk,
                message: &m2,
                sig: &s2,
            },
        ];
        assert_eq!(
            cache.verify_many_and_remember(&checks),
            vec![Ok(()), Err(Reject::BadSignature)]
        );
        assert_eq!(cache.verified.lock().unwrap().len(), 1);
        // remembered: a second batch finds it and checks nothing new
        assert_eq!(cache.verify_many_and_remember(&checks[..1]), vec![Ok(())]);
        cache.verify_once(&pk, &m1, &s1).unwrap();
        assert!(cache.verified.lock().unwrap().is_empty());
        assert_eq!(cache.verify_once(&pk, &m2, &s2), Err(Reject::BadSignature));
    }

    #[test]
    fn envelope_verifies_and_forgeries_do_not() {
        let s = Signer::new(1, "swarm".into(), key(1));
        let e = s.envelope(2, b"hello".to_vec());
        let msg = raft_message("swarm", e.from, e.to, e.seq, &e.body);
        verify(&s.public_key(), &msg, &e.sig).unwrap();
        // tampered body
        let msg2 = raft_message("swarm", e.from, e.to, e.seq, b"hellO");
        assert_eq!(
            verify(&s.public_key(), &msg2, &e.sig),
            Err(Reject::BadSignature)
        );
        // another swarm
        let msg3 = raft_message("other", e.from, e.to, e.seq, &e.body);
        assert_eq!(
            verify(&s.public_key(), &msg3, &e.sig),
            Err(Reject::BadSignature)
        );
        // a different key (impostor)
        assert_eq!(
            verify(&public_key(&key(2).verifying_key()).unwrap(), &msg, &e.sig),
            Err(Reject::BadSignature)
        );
        assert_eq!(verify(&s.public_key(), &msg, &[]), Err(Reject::Unsigned));
        assert_eq!(
            verify(&s.public_key(), &msg, &[1, 2, 3]),
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

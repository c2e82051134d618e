//! End-to-end encryption of the topics (docs/mesh.md), with vodozemac: each author seals what
//! it publishes with its own Megolm group session (Matrix's sender keys), and sends that
//! session's key to each member over a pairwise Olm session. Forwarding members see only
//! ciphertext; a member removed from the swarm is sent no key of the session that replaces the
//! one it knew, so it cannot read anything published after its removal.
//!
//! Identity: a member's Olm identity (Curve25519) and fallback key travel in a `bundle` on the
//! keys topic, signed (as every gossiped message is) by the member's node key, so a bundle is
//! bound to the member that gossipsub's strict validation names as its author.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use serde::{Deserialize, Serialize};
use vodozemac::megolm::{
    GroupSession, InboundGroupSession, InboundGroupSessionPickle, MegolmMessage,
    SessionConfig as MegolmConfig, SessionKey,
};
use vodozemac::olm::{
    Account, AccountPickle, OlmMessage, Session, SessionConfig as OlmConfig, SessionPickle,
};
use vodozemac::Curve25519PublicKey;

/// What travels on the keys topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum KeyMessage {
    /// The author's Olm identity and fallback key (base64 Curve25519).
    Bundle { identity: String, fallback: String },
    /// The author's current group session key, for member `to` only (an Olm message).
    RoomKey {
        to: u64,
        message_type: u8,
        ciphertext: String,
    },
    /// The author holds messages of `of`'s session `session` and lacks its key (gossip delivers
    /// only to the peers of the moment: a key sent before the author joined never reached it).
    KeyRequest { of: u64, session: String },
}

/// A payload sealed with its author's group session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sealed {
    pub session: String,
    pub ciphertext: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoomKeyPlain {
    session: String,
    key: String,
}

/// Why a sealed message could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// No key of the author's session (yet): kept a while for a key that may still come.
    NoKey,
    /// The ciphertext does not decrypt or verify.
    Undecryptable,
}

/// How many sealed messages per author wait for a key.
const PENDING_PER_AUTHOR: usize = 64;

/// The least time between two requests for one session's key.
const REQUEST_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

pub struct Crypto {
    me: u64,
    account: Account,
    fallback: Curve25519PublicKey,
    outbound: GroupSession,
    /// The outbound session's key at its first message: a member that gets it opens every
    /// message of the session, including those sealed before the key reached it (a key
    /// exported later would open only what comes after).
    outbound_key: String,
    /// Members the current outbound session's key was sent to.
    shared_with: BTreeSet<u64>,
    bundles: BTreeMap<u64, (Curve25519PublicKey, Curve25519PublicKey)>,
    olm_out: HashMap<u64, Session>,
    olm_in: HashMap<u64, Vec<Session>>,
    inbound: HashMap<(u64, String), InboundGroupSession>,
    pending: HashMap<u64, VecDeque<(crate::message::Topic, Sealed)>>,
    requested: HashMap<(u64, String), std::time::Instant>,
    /// Sessions this node has rotated away from (counted for /metrics).
    pub rotations: u64,
    /// Something worth keeping across a restart changed since the last [`Crypto::save`].
    dirty: bool,
    /// Members whose bundle came with another identity than the one known (a member that
    /// restarted without its saved state), counted for /metrics.
    pub identity_changes: u64,
}

/// What a node keeps of its end-to-end encryption across a restart (docs/mesh.md): its Olm
/// account (so its identity, and the members' sessions with it, stay valid), its pairwise
/// sessions, the group sessions of the others it holds keys of, and the others' bundles. Every
/// secret is a vodozemac pickle encrypted with the pickle key (AES-256-CBC and HMAC-SHA-256, as
/// Matrix clients keep theirs); the bundles are public keys. Its own group session is not kept:
/// a node that restarts from a state older than its last message would reuse that session's
/// message keys, so it starts a new one and sends its key over the kept Olm sessions.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Saved {
    version: u32,
    me: u64,
    account: String,
    fallback: String,
    bundles: BTreeMap<u64, (String, String)>,
    olm_out: BTreeMap<u64, String>,
    olm_in: BTreeMap<u64, Vec<String>>,
    inbound: Vec<(u64, String)>,
    rotations: u64,
}

const SAVED_VERSION: u32 = 1;

/// Why a saved state could not be restored (the node then starts with new keys).
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("not a saved encryption state: {0}")]
    Format(String),
    #[error("saved for node {saved}, not node {me}")]
    OtherNode { saved: u64, me: u64 },
    #[error("does not decrypt with this node's key (another key, or damaged): {0}")]
    Key(String),
}

impl Crypto {
    /// A new identity: a new Olm account and fallback key, and a new group session.
    pub fn new(me: u64) -> Crypto {
        let mut account = Account::new();
        let fallback = account
            .generate_fallback_key()
            .or_else(|| account.fallback_key().into_values().next())
            .expect("a new account makes a fallback key");
        Crypto::with_account(me, account, fallback)
    }

    /// A new group session over a given Olm account, with nothing else known yet.
    fn with_account(me: u64, account: Account, fallback: Curve25519PublicKey) -> Crypto {
        let outbound = GroupSession::new(MegolmConfig::version_1());
        Crypto {
            me,
            account,
            fallback,
            outbound_key: outbound.session_key().to_base64(),
            outbound,
            shared_with: BTreeSet::new(),
            bundles: BTreeMap::new(),
            olm_out: HashMap::new(),
            olm_in: HashMap::new(),
            inbound: HashMap::new(),
            pending: HashMap::new(),
            requested: HashMap::new(),
            rotations: 0,
            dirty: true,
            identity_changes: 0,
        }
    }

    /// Whether something worth keeping changed since the last [`Crypto::save`].
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// The state to keep across a restart ([`Saved`]), as bytes; clears the dirty flag.
    pub fn save(&mut self, pickle_key: &[u8; 32]) -> Vec<u8> {
        let saved = Saved {
            version: SAVED_VERSION,
            me: self.me,
            account: self.account.pickle().encrypt(pickle_key),
            fallback: self.fallback.to_base64(),
            bundles: self
                .bundles
                .iter()
                .map(|(m, (i, f))| (*m, (i.to_base64(), f.to_base64())))
                .collect(),
            olm_out: self
                .olm_out
                .iter()
                .map(|(m, s)| (*m, s.pickle().encrypt(pickle_key)))
                .collect(),
            olm_in: self
                .olm_in
                .iter()
                .map(|(m, ss)| {
                    (
                        *m,
                        ss.iter().map(|s| s.pickle().encrypt(pickle_key)).collect(),
                    )
                })
                .collect(),
            inbound: self
                .inbound
                .iter()
                .map(|((author, _), s)| (*author, s.pickle().encrypt(pickle_key)))
                .collect(),
            rotations: self.rotations,
        };
        self.dirty = false;
        serde_json::to_vec(&saved).expect("plain data serialises")
    }

    /// A node's state as [`Crypto::save`] kept it, with a new group session of its own (see
    /// [`Saved`]), whose key goes to every member over the kept Olm sessions.
    pub fn restore(bytes: &[u8], pickle_key: &[u8; 32], me: u64) -> Result<Crypto, RestoreError> {
        let saved: Saved =
            serde_json::from_slice(bytes).map_err(|e| RestoreError::Format(e.to_string()))?;
        if saved.version != SAVED_VERSION {
            return Err(RestoreError::Format(format!("version {}", saved.version)));
        }
        if saved.me != me {
            return Err(RestoreError::OtherNode {
                saved: saved.me,
                me,
            });
        }
        let key = |e: vodozemac::PickleError| RestoreError::Key(e.to_string());
        let public = |s: &str| {
            Curve25519PublicKey::from_base64(s).map_err(|e| RestoreError::Format(e.to_string()))
        };
        let session =
            |p: &str| SessionPickle::from_encrypted(p, pickle_key).map(Session::from_pickle);
        let account = Account::from_pickle(
            AccountPickle::from_encrypted(&saved.account, pickle_key).map_err(key)?,
        );
        let mut crypto = Crypto::with_account(me, account, public(&saved.fallback)?);
        crypto.rotations = saved.rotations;
        for (m, (identity, fallback)) in &saved.bundles {
            crypto
                .bundles
                .insert(*m, (public(identity)?, public(fallback)?));
        }
        for (m, pickle) in &saved.olm_out {
            crypto.olm_out.insert(*m, session(pickle).map_err(key)?);
        }
        for (m, pickles) in &saved.olm_in {
            let sessions = pickles
                .iter()
                .map(|p| session(p))
                .collect::<Result<Vec<_>, _>>()
                .map_err(key)?;
            crypto.olm_in.insert(*m, sessions);
        }
        for (author, pickle) in &saved.inbound {
            let s = InboundGroupSession::from_pickle(
                InboundGroupSessionPickle::from_encrypted(pickle, pickle_key).map_err(key)?,
            );
            crypto.inbound.insert((*author, s.session_id()), s);
        }
        crypto.dirty = false;
        Ok(crypto)
    }

    pub fn bundle(&self) -> KeyMessage {
        KeyMessage::Bundle {
            identity: self.account.curve25519_key().to_base64(),
            fallback: self.fallback.to_base64(),
        }
    }

    /// Takes `author`'s bundle; true if it is new (the caller then publishes its own, so that a
    /// member that joined learns it too).
    pub fn learn_bundle(&mut self, author: u64, identity: &str, fallback: &str) -> bool {
        let (Ok(identity), Ok(fallback)) = (
            Curve25519PublicKey::from_base64(identity),
            Curve25519PublicKey::from_base64(fallback),
        ) else {
            return false;
        };
        let old = self.bundles.insert(author, (identity, fallback));
        self.dirty |= old != Some((identity, fallback));
        if old.is_some_and(|(i, _)| i != identity) {
            // A new identity (the member restarted without its saved state): its old sessions
            // are of no use.
            self.identity_changes += 1;
            self.olm_out.remove(&author);
            self.shared_with.remove(&author);
        }
        old.is_none_or(|(i, _)| i != identity)
    }

    /// Room keys for every member in `members` with a known bundle that does not yet have the
    /// current session's key.
    pub fn room_keys_for(&mut self, members: &BTreeSet<u64>) -> Vec<KeyMessage> {
        let wanting: Vec<u64> = members
            .iter()
            .copied()
            .filter(|m| {
                *m != self.me && !self.shared_with.contains(m) && self.bundles.contains_key(m)
            })
            .collect();
        let plain = serde_json::to_vec(&RoomKeyPlain {
            session: self.outbound.session_id(),
            key: self.outbound_key.clone(),
        })
        .expect("plain data serialises");
        let mut out = Vec::new();
        for to in wanting {
            let (identity, fallback) = self.bundles[&to];
            let session = match self.olm_out.entry(to) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => {
                    let Ok(s) = self.account.create_outbound_session(
                        OlmConfig::version_1(),
                        identity,
                        fallback,
                    ) else {
                        continue;
                    };
                    v.insert(s)
                }
            };
            let Ok(message) = session.encrypt(&plain) else {
                continue;
            };
            let (message_type, bytes) = message.to_parts();
            out.push(KeyMessage::RoomKey {
                to,
                message_type: u8::try_from(message_type).unwrap_or(u8::MAX),
                ciphertext: vodozemac::base64_encode(bytes),
            });
            self.shared_with.insert(to);
            self.dirty = true;
        }
        out
    }

    /// Requests for the keys of held messages, at most one per session every [`REQUEST_EVERY`].
    pub fn key_requests(&mut self, now: std::time::Instant) -> Vec<KeyMessage> {
        let wanted: BTreeSet<(u64, String)> = self
            .pending
            .iter()
            .flat_map(|(author, q)| q.iter().map(|(_, s)| (*author, s.session.clone())))
            .collect();
        self.requested.retain(|k, _| wanted.contains(k));
        let mut out = Vec::new();
        for (of, session) in wanted {
            let due = self
                .requested
                .get(&(of, session.clone()))
                .is_none_or(|at| now.saturating_duration_since(*at) >= REQUEST_EVERY);
            if due {
                self.requested.insert((of, session.clone()), now);
                out.push(KeyMessage::KeyRequest { of, session });
            }
        }
        out
    }

    /// `requester` asks for the key of `session`: if it is this node's current one, it will be
    /// sent again ([`Crypto::room_keys_for`]).
    pub fn requested_by(&mut self, requester: u64, session: &str) {
        if session == self.outbound.session_id() {
            self.shared_with.remove(&requester);
        }
    }

    /// Forgets that `member` was sent the current key (its message could not be published).
    pub fn unshare(&mut self, member: u64) {
        self.shared_with.remove(&member);
    }

    /// A room key from `author` addressed to this node; true if it gave a new session key.
    pub fn take_room_key(&mut self, author: u64, message_type: u8, ciphertext: &str) -> bool {
        let Some((identity, _)) = self.bundles.get(&author).copied() else {
            return false;
        };
        let Ok(bytes) = vodozemac::base64_decode(ciphertext) else {
            return false;
        };
        let Ok(message) = OlmMessage::from_parts(usize::from(message_type), &bytes) else {
            return false;
        };
        let plain = self.olm_decrypt(author, identity, &message);
        let Some(plain) = plain else { return false };
        let Ok(room) = serde_json::from_slice::<RoomKeyPlain>(&plain) else {
            return false;
        };
        let Ok(key) = SessionKey::from_base64(&room.key) else {
            return false;
        };
        let session = InboundGroupSession::new(&key, MegolmConfig::version_1());
        if session.session_id() != room.session {
            return false;
        }
        self.dirty = true;
        self.inbound
            .insert((author, room.session), session)
            .is_none()
    }

    fn olm_decrypt(
        &mut self,
        author: u64,
        identity: Curve25519PublicKey,
        message: &OlmMessage,
    ) -> Option<Vec<u8>> {
        self.dirty = true; // a receiving chain advances, or a session is added
        let sessions = self.olm_in.entry(author).or_default();
        for s in sessions.iter_mut() {
            if let Ok(p) = s.decrypt(message) {
                return Some(p);
            }
        }
        let OlmMessage::PreKey(pre_key) = message else {
            return None;
        };
        let created = self
            .account
            .create_inbound_session(OlmConfig::version_1(), identity, pre_key)
            .ok()?;
        sessions.push(created.session);
        Some(created.plaintext)
    }

    pub fn seal(&mut self, plaintext: &[u8]) -> Sealed {
        Sealed {
            session: self.outbound.session_id(),
            ciphertext: self.outbound.encrypt(plaintext).to_base64(),
        }
    }

    pub fn open(&mut self, author: u64, sealed: &Sealed) -> Result<Vec<u8>, OpenError> {
        let session = self
            .inbound
            .get_mut(&(author, sealed.session.clone()))
            .ok_or(OpenError::NoKey)?;
        let message =
            MegolmMessage::from_base64(&sealed.ciphertext).map_err(|_| OpenError::Undecryptable)?;
        session
            .decrypt(&message)
            .map(|d| d.plaintext)
            .map_err(|_| OpenError::Undecryptable)
    }

    /// A new group session, whose key goes only to the members from now on: called when a
    /// member is removed, so that it cannot read what comes after.
    pub fn rotate(&mut self) {
        self.outbound = GroupSession::new(MegolmConfig::version_1());
        self.outbound_key = self.outbound.session_key().to_base64();
        self.shared_with.clear();
        self.rotations += 1;
    }

    /// Forgets a removed member's keys and sessions.
    pub fn forget(&mut self, member: u64) {
        self.dirty = true;
        self.bundles.remove(&member);
        self.olm_out.remove(&member);
        self.olm_in.remove(&member);
        self.inbound.retain(|(a, _), _| *a != member);
        self.pending.remove(&member);
    }

    /// Keeps a message whose key has not come yet; the oldest goes when the queue is full.
    pub fn hold(&mut self, author: u64, topic: crate::message::Topic, sealed: Sealed) -> bool {
        let queue = self.pending.entry(author).or_default();
        let dropped = queue.len() == PENDING_PER_AUTHOR;
        if dropped {
            queue.pop_front();
        }
        queue.push_back((topic, sealed));
        dropped
    }

    /// The held messages of `author` that open now, and drops nothing else.
    pub fn release(&mut self, author: u64) -> Vec<(crate::message::Topic, Vec<u8>)> {
        let Some(queue) = self.pending.remove(&author) else {
            return Vec::new();
        };
        let mut opened = Vec::new();
        let mut still = VecDeque::new();
        for (topic, sealed) in queue {
            match self.open(author, &sealed) {
                Ok(p) => opened.push((topic, p)),
                Err(OpenError::NoKey) => still.push_back((topic, sealed)),
                Err(OpenError::Undecryptable) => {}
            }
        }
        if !still.is_empty() {
            self.pending.insert(author, still);
        }
        opened
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Delivers every key message from `from` to the others, as the keys topic would.
    fn exchange(nodes: &mut [Crypto], members: &BTreeSet<u64>) {
        for _ in 0..3 {
            let mut sent: Vec<(u64, KeyMessage)> = Vec::new();
            for n in nodes.iter_mut() {
                if members.contains(&n.me) {
                    sent.push((n.me, n.bundle()));
                    for k in n.room_keys_for(members) {
                        sent.push((n.me, k));
                    }
                }
            }
            for (author, message) in sent {
                for n in nodes.iter_mut().filter(|n| n.me != author) {
                    match &message {
                        KeyMessage::Bundle { identity, fallback } => {
                            n.learn_bundle(author, identity, fallback);
                        }
                        KeyMessage::RoomKey {
                            to,
                            message_type,
                            ciphertext,
                        } if *to == n.me => {
                            n.take_room_key(author, *message_type, ciphertext);
                        }
                        KeyMessage::RoomKey { .. } | KeyMessage::KeyRequest { .. } => {}
                    }
                }
            }
        }
    }

    #[test]
    fn members_open_what_an_author_seals_and_a_removed_member_reads_nothing_after() {
        let mut nodes: Vec<Crypto> = (1..=3).map(Crypto::new).collect();
        let all: BTreeSet<u64> = [1, 2, 3].into();
        exchange(&mut nodes, &all);
        let before = nodes[0].seal(b"lesson one");
        assert!(!before.ciphertext.contains("lesson"));
        assert_eq!(nodes[1].open(1, &before).unwrap(), b"lesson one");
        assert_eq!(nodes[2].open(1, &before).unwrap(), b"lesson one");

        // Node 3 is removed: node 1 rotates and sends the new key to node 2 only.
        let rest: BTreeSet<u64> = [1, 2].into();
        nodes[0].rotate();
        nodes[0].forget(3);
        nodes[1].forget(3);
        exchange(&mut nodes, &rest);
        let after = nodes[0].seal(b"lesson two");
        assert_eq!(nodes[1].open(1, &after).unwrap(), b"lesson two");
        // Node 3 holds everything it was ever sent, and the ciphertext, and cannot open it.
        assert_eq!(nodes[2].open(1, &after), Err(OpenError::NoKey));
        assert_ne!(after.session, before.session);
        // Nor could it with the old session's key: a new session is a new ratchet.
        let mut forged = after.clone();
        forged.session = before.session.clone();
        assert_eq!(nodes[2].open(1, &forged), Err(OpenError::Undecryptable));
    }

    /// A node restored from its saved state keeps its identity and every session: it opens what
    /// the others seal in their sessions of before its restart, its new group session's key
    /// reaches them over the kept Olm sessions (no new pre-key session), and the others see no
    /// new identity. The saved bytes hold no secret in the clear, and open with no other key.
    #[test]
    fn a_restored_node_resumes_its_sessions() {
        let pickle_key = [7u8; 32];
        let mut nodes: Vec<Crypto> = (1..=2).map(Crypto::new).collect();
        let both: BTreeSet<u64> = [1, 2].into();
        exchange(&mut nodes, &both);
        let before = nodes[1].seal(b"before the restart");
        assert_eq!(nodes[0].open(2, &before).unwrap(), b"before the restart");
        let identity = nodes[0].bundle();
        let room_key = nodes[0].outbound_key.clone();
        let olm_out_before = nodes[0].olm_out[&2].session_id();
        let bytes = nodes[0].save(&pickle_key);
        assert!(!nodes[0].is_dirty());
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(&room_key) && !text.contains("before the restart"));
        assert!(matches!(
            Crypto::restore(&bytes, &[8u8; 32], 1),
            Err(RestoreError::Key(_))
        ));
        assert!(matches!(
            Crypto::restore(&bytes, &pickle_key, 2),
            Err(RestoreError::OtherNode { .. })
        ));

        let mut restored = Crypto::restore(&bytes, &pickle_key, 1).unwrap();
        assert_eq!(restored.bundle(), identity, "the same identity");
        let old_outbound = nodes[0].outbound.session_id();
        nodes[0] = restored;
        assert_ne!(
            nodes[0].outbound.session_id(),
            old_outbound,
            "a new group session"
        );
        let after = nodes[1].seal(b"after the restart");
        assert_eq!(nodes[0].open(2, &after).unwrap(), b"after the restart");
        // Its new session's key goes to node 2 over the kept Olm session, which node 2 still
        // holds: no new pairwise session on either side.
        assert_eq!(nodes[0].olm_out[&2].session_id(), olm_out_before);
        let keys = nodes[0].room_keys_for(&both);
        let [KeyMessage::RoomKey {
            message_type,
            ciphertext,
            ..
        }] = keys.as_slice()
        else {
            panic!("one room key: {keys:?}");
        };
        assert!(nodes[1].take_room_key(1, *message_type, ciphertext));
        assert_eq!(nodes[1].olm_in[&1].len(), 1, "node 2 made no new session");
        let sealed = nodes[0].seal(b"from the restored node");
        assert_eq!(
            nodes[1].open(1, &sealed).unwrap(),
            b"from the restored node"
        );
        let KeyMessage::Bundle { identity, fallback } = nodes[0].bundle() else {
            unreachable!()
        };
        assert!(
            !nodes[1].learn_bundle(1, &identity, &fallback),
            "no new identity"
        );
        restored = Crypto::new(1);
        assert_ne!(
            restored.bundle(),
            nodes[0].bundle(),
            "a fresh node is another identity"
        );
    }

    #[test]
    fn a_message_that_comes_before_its_key_is_held_then_opened() {
        let mut nodes: Vec<Crypto> = (1..=2).map(Crypto::new).collect();
        let sealed = nodes[0].seal(b"early");
        assert_eq!(nodes[1].open(1, &sealed), Err(OpenError::NoKey));
        nodes[1].hold(1, crate::message::Topic::Feed, sealed);
        exchange(&mut nodes, &[1, 2].into());
        assert_eq!(
            nodes[1].release(1),
            vec![(crate::message::Topic::Feed, b"early".to_vec())]
        );
    }

    #[test]
    fn a_member_that_missed_a_key_asks_for_it_and_gets_it_again() {
        let mut nodes: Vec<Crypto> = (1..=2).map(Crypto::new).collect();
        exchange(&mut nodes, &[1, 2].into());
        // Node 2 loses what it had of node 1 (as a node that joined late never had it).
        nodes[1].inbound.clear();
        let sealed = nodes[0].seal(b"missed");
        assert_eq!(nodes[1].open(1, &sealed), Err(OpenError::NoKey));
        nodes[1].hold(1, crate::message::Topic::Feed, sealed);
        let now = std::time::Instant::now();
        let requests = nodes[1].key_requests(now);
        let [KeyMessage::KeyRequest { of: 1, session }] = requests.as_slice() else {
            panic!("{requests:?}")
        };
        assert!(
            nodes[1].key_requests(now).is_empty(),
            "one request per interval"
        );
        nodes[0].requested_by(2, session);
        let keys = nodes[0].room_keys_for(&[1, 2].into());
        let [KeyMessage::RoomKey {
            message_type,
            ciphertext,
            ..
        }] = keys.as_slice()
        else {
            panic!("{keys:?}")
        };
        assert!(nodes[1].take_room_key(1, *message_type, ciphertext));
        assert_eq!(nodes[1].olm_in[&1].len(), 1, "node 2 made no new session");
        assert_eq!(
            nodes[1].release(1),
            vec![(crate::message::Topic::Feed, b"missed".to_vec())]
        );
    }

    #[test]
    fn a_room_key_for_another_member_or_from_a_stranger_gives_nothing() {
        let mut nodes: Vec<Crypto> = (1..=3).map(Crypto::new).collect();
        let b = nodes[0].bundle();
        let KeyMessage::Bundle { identity, fallback } = &b else {
            unreachable!()
        };
        nodes[1].learn_bundle(1, identity, fallback);
        nodes[2].learn_bundle(1, identity, fallback);
        let b2 = nodes[1].bundle();
        let KeyMessage::Bundle { identity, fallback } = &b2 else {
            unreachable!()
        };
        nodes[0].learn_bundle(2, identity, fallback);
        let keys = nodes[0].room_keys_for(&[1, 2].into());
        let [KeyMessage::RoomKey {
            message_type,
            ciphertext,
            ..
        }] = keys.as_slice()
        else {
            panic!("{keys:?}")
        };
        // Node 3 sees the key meant for node 2 and cannot use it.
        assert!(!nodes[2].take_room_key(1, *message_type, ciphertext));
        assert!(nodes[1].take_room_key(1, *message_type, ciphertext));
        assert_eq!(nodes[1].olm_in[&1].len(), 1, "node 2 made no new session");
    }
}

//! The mesh's event loop: one task owns the libp2p swarm; the handle talks to it by commands.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use libp2p::core::ConnectedPoint;
use libp2p::futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, TopicHash};
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, OutboundRequestId};
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::{ConnectionDenied, ConnectionId, DialError, ListenError, SwarmEvent};
use libp2p::{connection_limits, identify, mdns, Multiaddr, PeerId, Swarm};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::admission::Members;
use crate::behaviour::{Behaviour, BehaviourEvent};
use crate::command::{Command, Peer};
use crate::config::{MeshConfig, Seed};
use crate::e2e::{Crypto, KeyMessage, OpenError, Sealed};
use crate::error::MeshError;
use crate::message::{Delivered, Lesson, Payload, Request, Response, Topic};
use crate::rate::RateLimiter;
use crate::stats::{MeshStats, Refusal, Rejection};

/// How many lessons a node keeps (and hands to a neighbour that asks).
pub const FEED_KEPT: usize = 256;

/// Ticks between two publications of a node's key bundle (besides those a new member causes).
const BUNDLE_EVERY_TICKS: u32 = 15;

/// The largest gossiped message for payloads of `max` bytes: a sealed payload is its Megolm
/// ciphertext (the payload, a MAC and a signature) in base64 inside a small JSON object.
pub fn sealed_limit(max: usize) -> usize {
    max * 4 / 3 + 512
}

/// An accepted message, before this node decrypts or applies it.
enum Verdict {
    Key(u64, KeyMessage),
    Sealed(u64, Topic, Sealed),
}

pub type Feed = Arc<Mutex<VecDeque<(u64, Lesson)>>>;

pub struct Runner {
    pub swarm: Swarm<Behaviour>,
    pub cfg: MeshConfig,
    pub members: Members,
    pub topics: BTreeMap<TopicHash, Topic>,
    pub rate: RateLimiter,
    pub stats: Arc<MeshStats>,
    pub delivered: broadcast::Sender<Delivered>,
    pub feed: Feed,
    pub commands: mpsc::Receiver<Command>,
    pub resolved: mpsc::Sender<Command>,
    pub stop: watch::Receiver<bool>,
    /// Seed addresses, and which peer each turned out to be (None: not reached yet).
    seeds: BTreeMap<SocketAddr, Option<PeerId>>,
    dns_seeds: Vec<(String, u16)>,
    /// Members that mDNS found, with the addresses they announced (until they expire).
    found: BTreeMap<PeerId, BTreeSet<Multiaddr>>,
    /// Addresses that turned out to be this node itself.
    own: BTreeSet<SocketAddr>,
    requests: HashMap<OutboundRequestId, oneshot::Sender<Result<Response, MeshError>>>,
    /// The end-to-end encryption's keys and sessions (e2e.rs).
    crypto: Crypto,
    /// Ticks until this node publishes its key bundle again (0: at the next tick).
    bundle_in: u32,
    /// Open connections: the peer, its remote address and whether this node dialled.
    connections: HashMap<ConnectionId, (PeerId, Multiaddr, bool)>,
    asked_feed: bool,
}

impl Runner {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        swarm: Swarm<Behaviour>,
        cfg: MeshConfig,
        members: Members,
        stats: Arc<MeshStats>,
        delivered: broadcast::Sender<Delivered>,
        feed: Feed,
        commands: (mpsc::Sender<Command>, mpsc::Receiver<Command>),
        stop: watch::Receiver<bool>,
    ) -> Runner {
        let topics = Topic::ALL
            .into_iter()
            .map(|t| (IdentTopic::new(t.name(&cfg.swarm)).hash(), t))
            .collect();
        let me = members.node_of(swarm.local_peer_id()).unwrap_or_default();
        let crypto = restore_crypto(&cfg, &stats, me);
        let mut runner = Runner {
            swarm,
            rate: RateLimiter::new(cfg.limits.per_sender_per_minute),
            members: Members::default(),
            topics,
            stats,
            delivered,
            feed,
            resolved: commands.0,
            commands: commands.1,
            stop,
            seeds: BTreeMap::new(),
            dns_seeds: Vec::new(),
            found: BTreeMap::new(),
            own: BTreeSet::from([cfg.listen]),
            requests: HashMap::new(),
            connections: HashMap::new(),
            crypto,
            bundle_in: 0,
            asked_feed: false,
            cfg,
        };
        for seed in runner.cfg.seeds.clone() {
            runner.add_seed(seed);
        }
        runner.set_members(members);
        runner
    }

    pub async fn run(mut self) {
        let mut tick = tokio::time::interval(self.cfg.redial_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm(event),
                Some(command) = self.commands.recv() => self.on_command(command),
                _ = tick.tick() => {
                    self.look_for_neighbours();
                    self.tick_bundle();
                    self.share_keys();
                    self.request_keys();
                    self.save_crypto();
                }
                _ = self.stop.changed() => break,
            }
        }
        self.save_crypto();
    }

    /// Writes the encryption state if it changed (atomically: a crash leaves the old or the
    /// new, never half of one; readable by the node's user only).
    fn save_crypto(&mut self) {
        let Some(path) = self.cfg.state_file.clone() else {
            return;
        };
        if !self.crypto.is_dirty() {
            return;
        }
        let bytes = self.crypto.save(&pickle_key(&self.cfg));
        if let Err(e) = write_atomic(&path, &bytes) {
            tracing::warn!(path = %path.display(), "cannot save the encryption state: {e}");
        }
    }

    fn add_seed(&mut self, seed: Seed) {
        match seed {
            Seed::Addr(addr) => {
                self.seeds.entry(addr).or_insert(None);
            }
            Seed::Dns { host, port } => self.dns_seeds.push((host, port)),
        }
    }

    /// Allows exactly the members; a removed member's connections close at once.
    fn set_members(&mut self, members: Members) {
        let removed: Vec<u64> = self
            .members
            .peers()
            .map(|(_, n)| *n)
            .filter(|n| !members.peers().any(|(_, m)| m == n))
            .collect();
        if !removed.is_empty() {
            // What this node publishes from now on must be unreadable to the removed members.
            for node in &removed {
                self.crypto.forget(*node);
            }
            self.crypto.rotate();
            self.stats
                .rotations
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let allow = &mut self.swarm.behaviour_mut().allow;
        let gone: Vec<PeerId> = allow
            .allowed_peers()
            .iter()
            .filter(|p| members.node_of(p).is_none())
            .copied()
            .collect();
        for peer in gone {
            allow.disallow_peer(peer);
        }
        for (peer, _) in members.peers() {
            allow.allow_peer(*peer);
        }
        self.stats
            .members
            .store(members.len() as u64, std::sync::atomic::Ordering::Relaxed);
        self.members = members;
    }

    fn neighbours(&self) -> usize {
        self.swarm.connected_peers().count()
    }

    /// Dials seeds (and peers Kademlia learnt of) while the node has fewer neighbours than it may
    /// keep; DNS seeds are resolved again each time.
    fn look_for_neighbours(&mut self) {
        let room = (self.cfg.neighbours as usize).saturating_sub(self.neighbours());
        if room == 0 {
            return;
        }
        for (host, port) in self.dns_seeds.clone() {
            let back = self.resolved.clone();
            tokio::spawn(async move {
                if let Ok(found) = tokio::net::lookup_host((host.as_str(), port)).await {
                    let _ = back.send(Command::Resolved(found.collect())).await;
                }
            });
        }
        let unreached: Vec<SocketAddr> = self
            .seeds
            .iter()
            .filter(|(addr, peer)| {
                !self.own.contains(addr) && peer.is_none_or(|p| !self.swarm.is_connected(&p))
            })
            .map(|(addr, _)| *addr)
            .take(room)
            .collect();
        let room = room.saturating_sub(unreached.len());
        for addr in unreached {
            let _ = self.swarm.dial(multiaddr_of(addr));
        }
        self.dial_found(room);
    }

    /// Dials up to `room` of the members mDNS found that this node is not connected to.
    fn dial_found(&mut self, room: usize) {
        let unreached: Vec<(PeerId, Vec<Multiaddr>)> = self
            .found
            .iter()
            .filter(|(peer, _)| !self.swarm.is_connected(peer))
            .take(room)
            .map(|(peer, addrs)| (*peer, addrs.iter().cloned().collect()))
            .collect();
        for (peer, addrs) in unreached {
            let _ = self
                .swarm
                .dial(DialOpts::peer_id(peer).addresses(addrs).build());
        }
    }

    /// What mDNS heard: a member is remembered (and told to Kademlia) and dialled while there is
    /// room; any other libp2p node on the network (another swarm, a stranger) is counted and
    /// left alone: the allow list would refuse it anyway.
    fn on_found(&mut self, found: Vec<(PeerId, Multiaddr)>) {
        for (peer, addr) in found {
            if peer == *self.swarm.local_peer_id() {
                continue;
            }
            if self.members.node_of(&peer).is_none() {
                self.stats.mdns_found(false);
                continue;
            }
            self.stats.mdns_found(true);
            self.swarm
                .behaviour_mut()
                .kad
                .add_address(&peer, addr.clone());
            self.found.entry(peer).or_default().insert(addr);
        }
        let room = (self.cfg.neighbours as usize).saturating_sub(self.neighbours());
        self.dial_found(room);
    }

    fn on_expired(&mut self, gone: Vec<(PeerId, Multiaddr)>) {
        for (peer, addr) in gone {
            if let Some(addrs) = self.found.get_mut(&peer) {
                addrs.remove(&addr);
                if addrs.is_empty() {
                    self.found.remove(&peer);
                }
            }
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Publish(payload, reply) => {
                let _ = reply.send(self.publish(&payload));
            }
            Command::SetMembers(members) => self.set_members(members),
            Command::AddSeed(seed) => {
                self.add_seed(seed);
                self.look_for_neighbours();
            }
            Command::Peers(reply) => {
                let _ = reply.send(self.peers());
            }
            Command::Request(node, request, reply) => self.request(node, request, reply),
            Command::Resolved(addrs) => {
                for addr in addrs {
                    self.seeds.entry(addr).or_insert(None);
                }
            }
        }
    }

    fn publish(&mut self, payload: &Payload) -> Result<(), MeshError> {
        let data = payload.encode();
        let topic = payload.topic();
        if data.len() > self.cfg.limits.max_message_bytes {
            return Err(MeshError::TooLarge {
                size: data.len(),
                limit: self.cfg.limits.max_message_bytes,
            });
        }
        let sealed = serde_json::to_vec(&self.crypto.seal(&data)).expect("plain data serialises");
        self.publish_raw(topic, sealed)?;
        if let Payload::Lesson(lesson) = payload {
            let me = self.own_node_id();
            remember(&self.feed, me, lesson.clone());
        }
        Ok(())
    }

    fn publish_raw(&mut self, topic: Topic, data: Vec<u8>) -> Result<(), MeshError> {
        let hash = IdentTopic::new(topic.name(&self.cfg.swarm));
        match self.swarm.behaviour_mut().gossip.publish(hash, data) {
            Ok(_) => {
                self.stats.published(topic);
                Ok(())
            }
            Err(e) => Err(MeshError::Publish {
                topic: topic.label(),
                why: e.to_string(),
            }),
        }
    }

    /// Asks the authors of held messages for their keys (at most once per session per interval).
    fn request_keys(&mut self) {
        for request in self.crypto.key_requests(Instant::now()) {
            let bytes = serde_json::to_vec(&request).expect("plain data serialises");
            let _ = self.publish_raw(Topic::Keys, bytes);
        }
    }

    /// Publishes this node's key bundle every [`BUNDLE_EVERY_TICKS`] ticks, and at the next
    /// tick after it heard of a member new to it (coalesced: one bundle however many joined).
    /// Only ticks count down: counting on every received bundle made the nodes answer each
    /// other's bundles with their own, a flood that grew with the swarm.
    fn tick_bundle(&mut self) {
        if self.bundle_in > 0 {
            self.bundle_in -= 1;
            return;
        }
        let bundle = serde_json::to_vec(&self.crypto.bundle()).expect("plain data serialises");
        self.bundle_in = if self.publish_raw(Topic::Keys, bundle).is_ok() {
            BUNDLE_EVERY_TICKS
        } else {
            0 // no peer yet: next tick
        };
    }

    /// Sends this node's current session key to every member that has a bundle and lacks it.
    fn share_keys(&mut self) {
        let members: BTreeSet<u64> = self.members.peers().map(|(_, n)| *n).collect();
        let keys = self.crypto.room_keys_for(&members);
        // Kept before they are sent: a restart from a state older than a sent Olm message would
        // encrypt the next one with a message key already used.
        self.save_crypto();
        for key in keys {
            let bytes = serde_json::to_vec(&key).expect("plain data serialises");
            if self.publish_raw(Topic::Keys, bytes).is_err() {
                // Not sent: send again at the next tick.
                if let KeyMessage::RoomKey { to, .. } = key {
                    self.crypto.unshare(to);
                }
            }
        }
    }

    fn own_node_id(&self) -> u64 {
        self.members
            .node_of(self.swarm.local_peer_id())
            .unwrap_or_default()
    }

    fn peers(&self) -> Vec<Peer> {
        let mut out: BTreeMap<PeerId, Peer> = BTreeMap::new();
        for (peer, addr, outbound) in self.connections.values() {
            out.entry(*peer).or_insert_with(|| Peer {
                node_id: self.members.node_of(peer).unwrap_or_default(),
                peer_id: peer.to_string(),
                address: addr.to_string(),
                outbound: *outbound,
            });
        }
        out.into_values().collect()
    }

    fn request(
        &mut self,
        node: u64,
        request: Request,
        reply: oneshot::Sender<Result<Response, MeshError>>,
    ) {
        let peer = self
            .members
            .peers()
            .find(|(_, n)| **n == node)
            .map(|(p, _)| *p);
        let Some(peer) = peer.filter(|p| self.swarm.is_connected(p)) else {
            let _ = reply.send(Err(MeshError::Request {
                node,
                why: "not a connected neighbour".into(),
            }));
            return;
        };
        let id = self
            .swarm
            .behaviour_mut()
            .direct
            .send_request(&peer, request);
        self.requests.insert(id, reply);
    }

    fn on_swarm(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            } => self.on_connected(peer_id, connection_id, &endpoint),
            SwarmEvent::ConnectionClosed { connection_id, .. } => {
                self.connections.remove(&connection_id);
                self.count_peers();
            }
            SwarmEvent::IncomingConnectionError {
                error: ListenError::Denied { cause },
                ..
            } => self.count_denied(&cause),
            SwarmEvent::OutgoingConnectionError { error, .. } => match error {
                DialError::Denied { cause } => self.count_denied(&cause),
                DialError::LocalPeerId { address } => {
                    if let Some(addr) = socket_of(&address) {
                        self.own.insert(addr);
                    }
                }
                _ => {}
            },
            SwarmEvent::Behaviour(event) => self.on_behaviour(event),
            _ => {}
        }
    }

    fn on_connected(&mut self, peer: PeerId, id: ConnectionId, endpoint: &ConnectedPoint) {
        let outbound = endpoint.is_dialer();
        let remote = endpoint.get_remote_address().clone();
        if outbound {
            if let Some(addr) = socket_of(&remote) {
                self.seeds.entry(addr).and_modify(|p| *p = Some(peer));
            }
        }
        // A new peer beyond `neighbours` is turned away; the overlay reaches it through others.
        let is_new = !self.connections.values().any(|(p, _, _)| *p == peer);
        if is_new && self.neighbours() > self.cfg.neighbours as usize {
            self.stats.refused(Refusal::NeighbourLimit);
            let _ = self.swarm.close_connection(id);
            return;
        }
        self.connections.insert(id, (peer, remote, outbound));
        self.count_peers();
        if !self.asked_feed {
            self.asked_feed = true;
            let id = self.swarm.behaviour_mut().direct.send_request(
                &peer,
                Request::RecentFeed {
                    limit: FEED_KEPT as u32,
                },
            );
            let (tx, _rx) = oneshot::channel();
            self.requests.insert(id, tx);
        }
    }

    fn count_peers(&self) {
        let peers: BTreeSet<PeerId> = self.connections.values().map(|(p, _, _)| *p).collect();
        self.stats
            .peers
            .store(peers.len() as u64, std::sync::atomic::Ordering::Relaxed);
    }

    fn count_denied(&self, cause: &ConnectionDenied) {
        if cause
            .downcast_ref::<libp2p::allow_block_list::NotAllowed>()
            .is_some()
        {
            self.stats.refused(Refusal::NotAMember);
        } else if cause
            .downcast_ref::<connection_limits::Exceeded>()
            .is_some()
        {
            self.stats.refused(Refusal::NeighbourLimit);
        }
    }

    fn on_behaviour(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Mdns(mdns::Event::Discovered(found)) => self.on_found(found),
            BehaviourEvent::Mdns(mdns::Event::Expired(gone)) => self.on_expired(gone),
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                for addr in info.listen_addrs {
                    self.swarm.behaviour_mut().kad.add_address(&peer_id, addr);
                }
            }
            BehaviourEvent::Gossip(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            }) => {
                let verdict = self.judge(&message);
                let acceptance = match &verdict {
                    Ok(_) => MessageAcceptance::Accept,
                    // Forwarders are not at fault for an author's flood: drop without blame.
                    Err((_, Rejection::RateLimited)) => MessageAcceptance::Ignore,
                    Err(_) => MessageAcceptance::Reject,
                };
                self.swarm
                    .behaviour_mut()
                    .gossip
                    .report_message_validation_result(&message_id, &propagation_source, acceptance);
                match verdict {
                    Ok(verdict) => self.take(verdict),
                    Err((topic, why)) => self.stats.rejected(topic, why),
                }
            }
            BehaviourEvent::Direct(request_response::Event::Message { peer, message, .. }) => {
                self.on_direct(peer, message);
            }
            BehaviourEvent::Direct(request_response::Event::OutboundFailure {
                request_id,
                error,
                ..
            }) => {
                if let Some(reply) = self.requests.remove(&request_id) {
                    let _ = reply.send(Err(MeshError::Request {
                        node: 0,
                        why: error.to_string(),
                    }));
                }
            }
            _ => {}
        }
    }

    /// The application's verdict on a gossiped message, before it is forwarded: its author is a
    /// member, it fits the limit, has its topic's shape, and its author is within the rate
    /// limit. Forwarders cannot read sealed payloads: what they decrypt is checked after
    /// ([`Runner::take`]).
    fn judge(&mut self, message: &gossipsub::Message) -> Result<Verdict, (Topic, Rejection)> {
        let topic = *self
            .topics
            .get(&message.topic)
            .ok_or((Topic::Events, Rejection::Malformed))?;
        let author = message
            .source
            .and_then(|p| self.members.node_of(&p))
            .ok_or((topic, Rejection::NotAMember))?;
        if message.data.len() > sealed_limit(self.cfg.limits.max_message_bytes) {
            return Err((topic, Rejection::TooLarge));
        }
        let verdict = if topic == Topic::Keys {
            serde_json::from_slice(&message.data).map(|k| Verdict::Key(author, k))
        } else {
            serde_json::from_slice(&message.data).map(|s| Verdict::Sealed(author, topic, s))
        }
        .map_err(|_| (topic, Rejection::Malformed))?;
        if !self.rate.allow(author, topic, Instant::now()) {
            return Err((topic, Rejection::RateLimited));
        }
        Ok(verdict)
    }

    /// What an accepted message gives this node.
    fn take(&mut self, verdict: Verdict) {
        match verdict {
            Verdict::Key(author, KeyMessage::Bundle { identity, fallback }) => {
                let changes = self.crypto.identity_changes;
                if self.crypto.learn_bundle(author, &identity, &fallback) {
                    self.bundle_in = 0; // a member new to us: let it learn our bundle too
                }
                if self.crypto.identity_changes != changes {
                    self.stats
                        .identity_changes
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                self.share_keys();
            }
            Verdict::Key(
                author,
                KeyMessage::RoomKey {
                    to,
                    message_type,
                    ciphertext,
                },
            ) => {
                if to == self.own_node_id()
                    && self.crypto.take_room_key(author, message_type, &ciphertext)
                {
                    for (topic, plain) in self.crypto.release(author) {
                        self.open_payload(author, topic, &plain);
                    }
                }
            }
            Verdict::Key(author, KeyMessage::KeyRequest { of, session }) => {
                if of == self.own_node_id() {
                    self.crypto.requested_by(author, &session);
                    self.share_keys();
                }
            }
            Verdict::Sealed(author, topic, sealed) => match self.crypto.open(author, &sealed) {
                Ok(plain) => self.open_payload(author, topic, &plain),
                Err(OpenError::NoKey) => {
                    if self.crypto.hold(author, topic, sealed) {
                        self.stats.rejected(topic, Rejection::NoKey);
                    }
                    self.request_keys();
                }
                Err(OpenError::Undecryptable) => {
                    self.stats.rejected(topic, Rejection::Undecryptable)
                }
            },
        }
    }

    fn open_payload(&mut self, author: u64, topic: Topic, plain: &[u8]) {
        if plain.len() > self.cfg.limits.max_message_bytes {
            self.stats.rejected(topic, Rejection::TooLarge);
            return;
        }
        match Payload::decode(topic, plain) {
            Ok(payload) => self.deliver(
                Delivered {
                    from: author,
                    payload,
                    received_ms: now_ms(),
                },
                plain.len(),
            ),
            Err(_) => self.stats.rejected(topic, Rejection::Malformed),
        }
    }

    fn deliver(&mut self, delivered: Delivered, bytes: usize) {
        self.stats.delivered(delivered.payload.topic(), bytes);
        if let Payload::Lesson(lesson) = &delivered.payload {
            remember(&self.feed, delivered.from, lesson.clone());
        }
        let _ = self.delivered.send(delivered);
    }

    fn on_direct(&mut self, peer: PeerId, message: request_response::Message<Request, Response>) {
        match message {
            request_response::Message::Request {
                request, channel, ..
            } => {
                let response = match request {
                    Request::RecentFeed { limit } => Response::RecentFeed {
                        lessons: recent(&self.feed, limit as usize),
                    },
                };
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .direct
                    .send_response(channel, response);
            }
            request_response::Message::Response {
                request_id,
                response,
            } => {
                let Response::RecentFeed { lessons } = &response;
                // A neighbour's copy of the feed: only lessons of members are kept.
                for (author, lesson) in lessons {
                    if self.members.peers().any(|(_, n)| n == author) {
                        remember(&self.feed, *author, lesson.clone());
                    }
                }
                let _ = peer;
                if let Some(reply) = self.requests.remove(&request_id) {
                    let _ = reply.send(Ok(response));
                }
            }
        }
    }
}

fn remember(feed: &Feed, author: u64, lesson: Lesson) {
    let mut feed = feed
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if feed.iter().any(|(a, l)| *a == author && *l == lesson) {
        return;
    }
    if feed.len() == FEED_KEPT {
        feed.pop_front();
    }
    feed.push_back((author, lesson));
}

pub fn recent(feed: &Feed, limit: usize) -> Vec<(u64, Lesson)> {
    let feed = feed
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let skip = feed.len().saturating_sub(limit);
    feed.iter().skip(skip).cloned().collect()
}

pub fn multiaddr_of(addr: SocketAddr) -> Multiaddr {
    Multiaddr::from(addr.ip()).with(Protocol::Tcp(addr.port()))
}

pub fn socket_of(addr: &Multiaddr) -> Option<SocketAddr> {
    let mut ip = None;
    let mut port = None;
    for part in addr.iter() {
        match part {
            Protocol::Ip4(a) => ip = Some(std::net::IpAddr::V4(a)),
            Protocol::Ip6(a) => ip = Some(std::net::IpAddr::V6(a)),
            Protocol::Tcp(p) => port = Some(p),
            _ => {}
        }
    }
    Some(SocketAddr::new(ip?, port?))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// The pickle key of the saved encryption state: derived from the node's secret key, so only
/// this node's key opens it.
fn pickle_key(cfg: &MeshConfig) -> [u8; 32] {
    blake3::derive_key("pyagent mesh e2e state v1", &cfg.secret)
}

/// Node `me`'s encryption state as it saved it (same identity, same sessions), or new keys when
/// there is none or it cannot be read (logged: the members then re-key with it).
fn restore_crypto(cfg: &MeshConfig, stats: &MeshStats, me: u64) -> Crypto {
    let Some(path) = &cfg.state_file else {
        return Crypto::new(me);
    };
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Crypto::new(me),
        Err(e) => {
            tracing::warn!(path = %path.display(), "cannot read the saved encryption state, new keys: {e}");
            return Crypto::new(me);
        }
    };
    match Crypto::restore(&bytes, &pickle_key(cfg), me) {
        Ok(crypto) => {
            stats
                .restored
                .store(1, std::sync::atomic::Ordering::Relaxed);
            crypto
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), "saved encryption state not used, new keys: {e}");
            Crypto::new(me)
        }
    }
}

/// Writes `bytes` to `path` through a temporary file, fsynced and renamed, mode 0600.
fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

//! What a node's mesh is told: its key, where it listens, whom it dials first, and the limits of
//! its topics. `pyagent-node` builds this from `node.json`'s `mesh` section.

use std::net::SocketAddr;
use std::time::Duration;

/// Where a node first looks for peers (issue 18's discovery: the rendered peer list on the local
/// target, the headless Service's DNS name in Kubernetes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seed {
    /// One peer's mesh address.
    Addr(SocketAddr),
    /// A name whose every address is a peer's (a headless Service resolves to all its pods),
    /// resolved again whenever the node has fewer neighbours than it should.
    Dns { host: String, port: u16 },
}

/// Size and rate limits of the topics (issue 18: "with a size limit and rate limit per sender").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest payload of one message on any topic, in bytes.
    pub max_message_bytes: usize,
    /// Messages one author may publish per topic per minute; more are dropped, not forwarded.
    pub per_sender_per_minute: u32,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_message_bytes: 16 * 1024,
            per_sender_per_minute: 120,
        }
    }
}

#[derive(Debug, Clone)]
pub struct MeshConfig {
    /// The swarm's name: topics and protocols are named after it, so two swarms never mix.
    pub swarm: String,
    /// The node's Ed25519 secret key (its Raft identity): the mesh's peer id is derived from it.
    pub secret: [u8; 32],
    pub listen: SocketAddr,
    pub seeds: Vec<Seed>,
    /// At most this many connections (in and out); other members are reached through the overlay.
    pub neighbours: u32,
    pub limits: Limits,
    /// How often the node looks for neighbours when it has fewer than it may keep.
    pub redial_every: Duration,
    /// Gossipsub's heartbeat (mesh maintenance and gossip of message ids).
    pub heartbeat: Duration,
    /// Also find peers by mDNS on the local network (`discovery.mode: mdns`), beside the seeds.
    pub mdns: bool,
    /// Where the end-to-end encryption's sessions are kept across restarts (encrypted with a
    /// key derived from `secret`); None: new keys at every start.
    pub state_file: Option<std::path::PathBuf>,
}

impl MeshConfig {
    pub fn new(swarm: &str, secret: [u8; 32], listen: SocketAddr) -> MeshConfig {
        MeshConfig {
            swarm: swarm.to_owned(),
            secret,
            listen,
            seeds: Vec::new(),
            neighbours: 30,
            limits: Limits::default(),
            redial_every: Duration::from_secs(2),
            heartbeat: Duration::from_millis(500),
            mdns: false,
            state_file: None,
        }
    }
}

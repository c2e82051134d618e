//! The swarm's P2P mesh (docs/mesh.md), built on rust-libp2p: TCP with Noise (authenticated,
//! encrypted) and Yamux, identify, Kademlia, gossipsub with strict validation, and
//! request-response for direct messages.
//!
//! - Admission: a node's mesh identity is its Ed25519 node key, and only the keys of the Raft
//!   membership are allowed; a stranger's connection is denied and counted.
//! - `neighbours` bounds the peers a node keeps; the others are reached through gossip.
//! - Topics: swarm events and the world feed of lessons, typed, size- and rate-limited per author,
//!   sealed end to end (Megolm sessions per author, their keys sent over Olm: vodozemac).

mod admission;
mod behaviour;
mod command;
mod config;
mod e2e;
mod error;
mod message;
mod rate;
mod runner;
pub mod secure;
mod stats;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use libp2p::futures::StreamExt;
use libp2p::gossipsub::IdentTopic;
use libp2p::swarm::SwarmEvent;
use libp2p::{noise, tcp, yamux, PeerId, SwarmBuilder};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

pub use admission::{keypair_of, peer_id_of, MemberKey, Members};
pub use command::Peer;
pub use config::{Limits, MeshConfig, Seed};
pub use error::MeshError;
pub use message::{Delivered, Lesson, Payload, Request, Response, SwarmEvent as Event, Topic};
pub use runner::FEED_KEPT;
pub use stats::{MeshStats, Refusal, Rejection, StatsSnapshot};

use behaviour::Behaviour;
use command::Command;
use runner::{multiaddr_of, recent, Feed, Runner};

/// A running mesh. Dropping it (or [`Mesh::stop`]) ends the event loop and closes every
/// connection.
pub struct Mesh {
    commands: mpsc::Sender<Command>,
    stats: Arc<MeshStats>,
    delivered: broadcast::Sender<Delivered>,
    feed: Feed,
    peer_id: PeerId,
    listening: SocketAddr,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

/// How long the listener may take to come up.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);

impl Mesh {
    /// Starts listening on `cfg.listen` and dialling the seeds; `members` are the keys allowed
    /// in (updated later by [`Mesh::set_members`]).
    pub async fn start(cfg: MeshConfig, members: &[MemberKey]) -> Result<Mesh, MeshError> {
        let key = keypair_of(cfg.secret);
        let peer_id = key.public().to_peer_id();
        let members = Members::new(members)?;
        let behaviour = Behaviour::new(&key, &cfg)?;
        let mut swarm = SwarmBuilder::with_existing_identity(key)
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )
            .map_err(|e| MeshError::Build(e.to_string()))?
            .with_behaviour(|_| behaviour)
            .map_err(|e| MeshError::Build(e.to_string()))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
            .build();
        for topic in Topic::ALL {
            swarm
                .behaviour_mut()
                .gossip
                .subscribe(&IdentTopic::new(topic.name(&cfg.swarm)))
                .map_err(|e| MeshError::Build(e.to_string()))?;
        }
        let listen_error = |why: String| MeshError::Listen {
            addr: cfg.listen.to_string(),
            why,
        };
        swarm
            .listen_on(multiaddr_of(cfg.listen))
            .map_err(|e| listen_error(e.to_string()))?;
        let listening = tokio::time::timeout(LISTEN_TIMEOUT, first_listen_addr(&mut swarm))
            .await
            .map_err(|_| listen_error("timed out".into()))?
            .map_err(listen_error)?;

        let stats = Arc::new(MeshStats::default());
        let (delivered, _) = broadcast::channel(1024);
        let feed = Feed::default();
        let (tx, rx) = mpsc::channel(256);
        let (stop, stop_rx) = watch::channel(false);
        let mut cfg = cfg;
        cfg.listen = listening;
        let runner = Runner::new(
            swarm,
            cfg,
            members,
            stats.clone(),
            delivered.clone(),
            feed.clone(),
            (tx.clone(), rx),
            stop_rx,
        );
        let task = tokio::spawn(runner.run());
        Ok(Mesh {
            commands: tx,
            stats,
            delivered,
            feed,
            peer_id,
            listening,
            stop,
            task: Some(task),
        })
    }

    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The address the mesh listens on (the real port when the configuration said 0).
    pub fn listening(&self) -> SocketAddr {
        self.listening
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    /// Messages of other members that passed validation, as they arrive.
    pub fn subscribe(&self) -> broadcast::Receiver<Delivered> {
        self.delivered.subscribe()
    }

    /// The newest lessons this node holds (its own and others'), oldest first.
    pub fn feed(&self, limit: usize) -> Vec<(u64, Lesson)> {
        recent(&self.feed, limit)
    }

    pub async fn publish(&self, payload: Payload) -> Result<(), MeshError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Publish(payload, tx)).await?;
        rx.await.map_err(|_| MeshError::Stopped)?
    }

    /// Replaces the allowed keys; a removed member's connections close at once.
    pub async fn set_members(&self, members: &[MemberKey]) -> Result<(), MeshError> {
        self.send(Command::SetMembers(Members::new(members)?)).await
    }

    pub async fn add_seed(&self, seed: Seed) -> Result<(), MeshError> {
        self.send(Command::AddSeed(seed)).await
    }

    pub async fn peers(&self) -> Result<Vec<Peer>, MeshError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Peers(tx)).await?;
        rx.await.map_err(|_| MeshError::Stopped)
    }

    /// A direct request to a connected neighbour.
    pub async fn request(&self, node: u64, request: Request) -> Result<Response, MeshError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Request(node, request, tx)).await?;
        rx.await.map_err(|_| MeshError::Stopped)?
    }

    async fn send(&self, command: Command) -> Result<(), MeshError> {
        self.commands
            .send(command)
            .await
            .map_err(|_| MeshError::Stopped)
    }

    /// Ends the event loop and waits for it: every connection is closed when this returns.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Mesh {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn first_listen_addr(swarm: &mut libp2p::Swarm<Behaviour>) -> Result<SocketAddr, String> {
    loop {
        match swarm.select_next_some().await {
            SwarmEvent::NewListenAddr { address, .. } => {
                return runner::socket_of(&address)
                    .ok_or_else(|| format!("not an IP and TCP port: {address}"));
            }
            SwarmEvent::ListenerError { error, .. } => return Err(error.to_string()),
            SwarmEvent::ListenerClosed { reason, .. } => {
                return Err(match reason {
                    Ok(()) => "listener closed".into(),
                    Err(e) => e.to_string(),
                })
            }
            _ => {}
        }
    }
}

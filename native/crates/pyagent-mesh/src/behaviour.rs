//! The libp2p behaviours the mesh combines, and how each is configured.

use libp2p::allow_block_list::{self, AllowedPeers};
use libp2p::connection_limits::{self, ConnectionLimits};
use libp2p::gossipsub::{self, MessageAuthenticity, ValidationMode};
use libp2p::identity::Keypair;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{identify, kad, mdns, StreamProtocol};

use crate::config::MeshConfig;
use crate::error::MeshError;
use crate::message::{Request, Response};

/// Order matters: the allow list and the limits come first, so a stranger's connection is denied
/// before any other behaviour hears of it.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    pub allow: allow_block_list::Behaviour<AllowedPeers>,
    pub limits: connection_limits::Behaviour,
    /// Only with `discovery.mode: mdns`: what it finds is dialled only if it is a member.
    pub mdns: Toggle<mdns::tokio::Behaviour>,
    pub identify: identify::Behaviour,
    pub kad: kad::Behaviour<kad::store::MemoryStore>,
    pub gossip: gossipsub::Behaviour,
    pub direct: request_response::json::Behaviour<Request, Response>,
}

/// How often mDNS asks the network again (libp2p's default is 5 minutes; a node also asks when
/// an interface comes up, and answers every query it hears, so a newcomer is found at once).
const MDNS_QUERY_EVERY: std::time::Duration = std::time::Duration::from_secs(20);

/// libp2p's mDNS (service `_p2p._udp.local`, IPv4) when the configuration asks for it. Every
/// libp2p node on the network answers it, of any swarm: the runner keeps only members.
fn mdns_behaviour(
    cfg: &MeshConfig,
    peer_id: libp2p::PeerId,
) -> Result<Option<mdns::tokio::Behaviour>, MeshError> {
    if !cfg.mdns {
        return Ok(None);
    }
    let config = mdns::Config {
        query_interval: MDNS_QUERY_EVERY,
        ..mdns::Config::default()
    };
    mdns::tokio::Behaviour::new(config, peer_id)
        .map(Some)
        .map_err(|e| MeshError::Build(format!("mdns: {e}")))
}

/// Bytes a gossipsub RPC adds around one payload (signature, key, ids, framing), so that the
/// payload limit, not the frame, decides what is too large.
const FRAME_OVERHEAD: usize = 4096;

impl Behaviour {
    pub fn new(key: &Keypair, cfg: &MeshConfig) -> Result<Behaviour, MeshError> {
        let peer_id = key.public().to_peer_id();
        let neighbours = cfg.neighbours.max(1);
        // Two connections to one peer happen when both dial at once; more is abuse.
        let limits = ConnectionLimits::default()
            .with_max_established_per_peer(Some(2))
            .with_max_established(Some(neighbours.saturating_mul(2)));
        let kad_protocol = StreamProtocol::try_from_owned(format!("/pyagent/{}/kad/1", cfg.swarm))
            .map_err(|e| MeshError::Build(e.to_string()))?;
        let direct_protocol =
            StreamProtocol::try_from_owned(format!("/pyagent/{}/direct/1", cfg.swarm))
                .map_err(|e| MeshError::Build(e.to_string()))?;
        let mut kad = kad::Behaviour::with_config(
            peer_id,
            kad::store::MemoryStore::new(peer_id),
            kad::Config::new(kad_protocol),
        );
        kad.set_mode(Some(kad::Mode::Server));
        Ok(Behaviour {
            allow: allow_block_list::Behaviour::default(),
            limits: connection_limits::Behaviour::new(limits),
            mdns: Toggle::from(mdns_behaviour(cfg, peer_id)?),
            identify: identify::Behaviour::new(identify::Config::new(
                format!("/pyagent/{}/1", cfg.swarm),
                key.public(),
            )),
            kad,
            gossip: gossipsub::Behaviour::new(
                MessageAuthenticity::Signed(key.clone()),
                gossip_config(cfg)?,
            )
            .map_err(|e| MeshError::Build(e.to_owned()))?,
            direct: request_response::json::Behaviour::new(
                [(direct_protocol, ProtocolSupport::Full)],
                request_response::Config::default(),
            ),
        })
    }
}

/// Gossipsub with strict validation (every message signed by its author, with a sequence
/// number) and the application's verdict before anything is forwarded; the overlay's degree
/// fits within `neighbours`.
fn gossip_config(cfg: &MeshConfig) -> Result<gossipsub::Config, MeshError> {
    let high = usize::try_from(cfg.neighbours.clamp(1, 12)).unwrap_or(12);
    let n = high.min(6);
    let low = n.min(4);
    let outbound = (n / 2).min(2).min(low);
    gossipsub::ConfigBuilder::default()
        .validation_mode(ValidationMode::Strict)
        .validate_messages()
        .max_transmit_size(
            crate::runner::sealed_limit(cfg.limits.max_message_bytes) + FRAME_OVERHEAD,
        )
        .heartbeat_interval(cfg.heartbeat)
        .mesh_n_high(high)
        .mesh_n(n)
        .mesh_n_low(low)
        .mesh_outbound_min(outbound)
        .build()
        .map_err(|e| MeshError::Build(format!("gossipsub: {e}")))
}

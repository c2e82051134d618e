//! What the handle asks of the mesh's event loop.

use std::net::SocketAddr;

use tokio::sync::oneshot;

use crate::admission::Members;
use crate::config::Seed;
use crate::error::MeshError;
use crate::message::{Payload, Request, Response};

/// A connected peer, as the node reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub node_id: u64,
    pub peer_id: String,
    /// The remote address of the first connection.
    pub address: String,
    /// Whether this node dialled it (else it dialled this node).
    pub outbound: bool,
}

pub enum Command {
    Publish(Payload, oneshot::Sender<Result<(), MeshError>>),
    SetMembers(Members),
    AddSeed(Seed),
    Peers(oneshot::Sender<Vec<Peer>>),
    Request(u64, Request, oneshot::Sender<Result<Response, MeshError>>),
    /// Addresses a DNS seed resolved to (sent by the resolver task).
    Resolved(Vec<SocketAddr>),
}

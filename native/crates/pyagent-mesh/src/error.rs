//! What can go wrong with the mesh, as its callers see it.

#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    #[error("not an Ed25519 public key: {0}")]
    BadKey(String),
    #[error("mesh listen address {addr}: {why}")]
    Listen { addr: String, why: String },
    #[error("the mesh has stopped")]
    Stopped,
    #[error("publish on {topic}: {why}")]
    Publish { topic: &'static str, why: String },
    #[error("a message of {size} bytes is larger than the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("direct request to node {node}: {why}")]
    Request { node: u64, why: String },
    #[error("channel handshake: {0}")]
    Handshake(String),
    #[error("building the mesh: {0}")]
    Build(String),
}

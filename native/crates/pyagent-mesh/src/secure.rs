//! Encrypted, authenticated point-to-point channels on the mesh's Noise (libp2p-noise: the XX
//! handshake, ChaCha20-Poly1305, each side's static key signed by its Ed25519 node key), for
//! protocols that keep their own TCP connections: the Raft transport runs on these.
//!
//! Each side learns the other's node key from the handshake; the caller decides whether that
//! key is a member (and closes the channel if not) before reading anything from it. The
//! prologue names the swarm and the protocol, so a channel opened for one cannot be used for
//! another.

use std::time::Duration;

use libp2p::core::upgrade::{InboundConnectionUpgrade, OutboundConnectionUpgrade};
use libp2p::identity::Keypair;
use libp2p::noise;
use tokio::net::TcpStream;
use tokio_util::compat::{Compat, FuturesAsyncReadCompatExt, TokioAsyncReadCompatExt};

use crate::admission::keypair_of;
use crate::error::MeshError;

/// A channel after its handshake: tokio's AsyncRead and AsyncWrite, encrypted underneath.
pub type SecureStream = Compat<noise::Output<Compat<TcpStream>>>;

/// How long a handshake may take before the connection is dropped (a peer that connects and
/// says nothing must not hold a task for ever).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The node key that secures this node's channels.
#[derive(Clone)]
pub struct ChannelKey {
    keypair: Keypair,
    prologue: Vec<u8>,
}

impl std::fmt::Debug for ChannelKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelKey")
            .field("peer_id", &self.keypair.public().to_peer_id())
            .finish_non_exhaustive()
    }
}

impl ChannelKey {
    /// `protocol` names what the channel carries (e.g. `raft`) within `swarm`.
    pub fn new(secret: [u8; 32], swarm: &str, protocol: &str) -> ChannelKey {
        ChannelKey {
            keypair: keypair_of(secret),
            prologue: format!("/pyagent/{swarm}/{protocol}/1").into_bytes(),
        }
    }

    fn config(&self) -> Result<noise::Config, MeshError> {
        Ok(noise::Config::new(&self.keypair)
            .map_err(|e| MeshError::Build(e.to_string()))?
            .with_prologue(self.prologue.clone()))
    }

    /// Opens the channel on a connection this node dialled; returns the peer's Ed25519 key.
    pub async fn outbound(&self, tcp: TcpStream) -> Result<([u8; 32], SecureStream), MeshError> {
        let config = self.config()?;
        finish(config.upgrade_outbound(tcp.compat(), "/noise").await).await
    }

    /// Opens the channel on a connection this node accepted; returns the peer's Ed25519 key.
    pub async fn inbound(&self, tcp: TcpStream) -> Result<([u8; 32], SecureStream), MeshError> {
        let config = self.config()?;
        let handshake = config.upgrade_inbound(tcp.compat(), "/noise");
        let done = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake)
            .await
            .map_err(|_| MeshError::Handshake("timed out".into()))?;
        finish(done).await
    }
}

async fn finish(
    done: Result<(libp2p::PeerId, noise::Output<Compat<TcpStream>>), noise::Error>,
) -> Result<([u8; 32], SecureStream), MeshError> {
    let (peer, io) = done.map_err(|e| MeshError::Handshake(e.to_string()))?;
    let key = libp2p::identity::PublicKey::try_decode_protobuf(
        &peer_public_key(&peer)
            .ok_or_else(|| MeshError::Handshake("peer id without key".into()))?,
    )
    .ok()
    .and_then(|k| k.try_into_ed25519().ok())
    .ok_or_else(|| MeshError::Handshake("the peer's key is not Ed25519".into()))?;
    Ok((key.to_bytes(), io.compat()))
}

/// An Ed25519 peer id is its public key inlined with the identity multihash.
fn peer_public_key(peer: &libp2p::PeerId) -> Option<Vec<u8>> {
    let hash = peer.as_ref();
    (hash.code() == 0).then(|| hash.digest().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn both_sides_learn_the_others_key_and_bytes_cross_encrypted() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server_key = ChannelKey::new([1; 32], "s", "raft");
        let client_key = ChannelKey::new([2; 32], "s", "raft");
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let (peer, mut io) = server_key.inbound(tcp).await.unwrap();
            let mut buf = [0u8; 5];
            io.read_exact(&mut buf).await.unwrap();
            io.write_all(b"world").await.unwrap();
            io.flush().await.unwrap();
            (peer, buf)
        });
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (peer, mut io) = client_key.outbound(tcp).await.unwrap();
        io.write_all(b"hello").await.unwrap();
        io.flush().await.unwrap();
        let mut buf = [0u8; 5];
        io.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"world");
        let (client_seen, got) = server.await.unwrap();
        assert_eq!(&got, b"hello");
        let public = |s: [u8; 32]| {
            keypair_of(s)
                .public()
                .try_into_ed25519()
                .unwrap()
                .to_bytes()
        };
        assert_eq!(peer, public([1; 32]));
        assert_eq!(client_seen, public([2; 32]));
    }

    #[tokio::test]
    async fn another_swarm_or_protocol_cannot_complete_the_handshake() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            ChannelKey::new([1; 32], "s", "raft")
                .inbound(tcp)
                .await
                .is_err()
        });
        let tcp = TcpStream::connect(addr).await.unwrap();
        let client = ChannelKey::new([2; 32], "other", "raft")
            .outbound(tcp)
            .await;
        assert!(client.is_err());
        assert!(server.await.unwrap());
    }
}

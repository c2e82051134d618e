//! Who may be on the mesh: exactly the members of the swarm's Raft membership. A peer's mesh
//! identity is its node key (Noise proves the peer holds it), so the allow list is the
//! membership's keys turned into peer ids; a stranger is refused when its connection is
//! established, before any protocol runs on it.

use std::collections::BTreeMap;

use libp2p::identity::{ed25519, Keypair, PeerId, PublicKey};

use crate::error::MeshError;

/// A member of the swarm as the mesh needs it: its Raft node id and its Ed25519 public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberKey {
    pub node_id: u64,
    pub public_key: [u8; 32],
}

/// The current members by peer id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Members {
    by_peer: BTreeMap<PeerId, u64>,
}

impl Members {
    pub fn new(members: &[MemberKey]) -> Result<Members, MeshError> {
        let mut by_peer = BTreeMap::new();
        for m in members {
            by_peer.insert(peer_id_of(&m.public_key)?, m.node_id);
        }
        Ok(Members { by_peer })
    }

    pub fn node_of(&self, peer: &PeerId) -> Option<u64> {
        self.by_peer.get(peer).copied()
    }

    pub fn peers(&self) -> impl Iterator<Item = (&PeerId, &u64)> {
        self.by_peer.iter()
    }

    pub fn len(&self) -> usize {
        self.by_peer.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_peer.is_empty()
    }
}

/// The libp2p identity of a node key.
pub fn keypair_of(secret: [u8; 32]) -> Keypair {
    let mut bytes = secret;
    let secret = ed25519::SecretKey::try_from_bytes(&mut bytes)
        .expect("every 32-byte string is an Ed25519 secret key");
    Keypair::from(ed25519::Keypair::from(secret))
}

/// The peer id of a member's Ed25519 public key.
pub fn peer_id_of(public_key: &[u8; 32]) -> Result<PeerId, MeshError> {
    let key = ed25519::PublicKey::try_from_bytes(public_key)
        .map_err(|e| MeshError::BadKey(e.to_string()))?;
    Ok(PublicKey::from(key).to_peer_id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_key_and_its_public_half_give_the_same_peer_id() {
        let secret = [7u8; 32];
        let pair = keypair_of(secret);
        let public: [u8; 32] = pair.public().try_into_ed25519().unwrap().to_bytes();
        assert_eq!(pair.public().to_peer_id(), peer_id_of(&public).unwrap());
        let members = Members::new(&[MemberKey {
            node_id: 3,
            public_key: public,
        }])
        .unwrap();
        assert_eq!(members.node_of(&pair.public().to_peer_id()), Some(3));
        assert_eq!(
            members.node_of(&keypair_of([8u8; 32]).public().to_peer_id()),
            None
        );
    }
}

//! The node's side of the P2P mesh (docs/mesh.md; the mesh itself is `pyagent-mesh`).
//!
//! The mesh is started with the node, on the node's own key, and admits exactly the keys of the
//! node's keyring: the configured members until the Raft membership is known, then the
//! replicated membership (`node::refresh_keys` keeps the keyring). What the node says on it:
//! the leader announces each membership change, and a worker announces the tasks it starts and
//! ends. `/metrics` shows the peers, refusals, and messages by topic.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use openraft::async_runtime::WatchReceiver as _;
use openraft::ServerState;
use pyagent_mesh::{Event, MemberKey, Mesh, MeshConfig, Payload, Seed};

use crate::config::MeshSettings;
use crate::metrics::{counter, counters, esc, gauge};
use crate::net::Keyring;
use crate::shared::Shared;

/// How often the node compares its keyring with what the mesh admits.
const FOLLOW_EVERY: Duration = Duration::from_millis(500);

/// The file in the node's data dir where the mesh keeps its end-to-end encryption's sessions
/// (encrypted with a key derived from the node's own: docs/mesh.md).
pub const E2E_STATE_FILE: &str = "mesh-e2e.json";

pub async fn start(
    swarm: &str,
    settings: &MeshSettings,
    key: &SigningKey,
    keyring: &Keyring,
    data_dir: &std::path::Path,
) -> Result<Mesh, pyagent_mesh::MeshError> {
    let mut cfg = MeshConfig::new(swarm, key.to_bytes(), settings.listen);
    cfg.neighbours = settings.neighbours;
    // mDNS beside the seeds: where the network carries no multicast (most pod networks) the
    // seeds and the headless Service's DNS name still find the members.
    cfg.mdns = settings.mdns;
    cfg.state_file = Some(data_dir.join(E2E_STATE_FILE));
    cfg.seeds = settings.seeds.iter().copied().map(Seed::Addr).collect();
    if let Some((host, port)) = &settings.dns {
        cfg.seeds.push(Seed::Dns {
            host: host.clone(),
            port: *port,
        });
    }
    let mesh = Mesh::start(cfg, &member_keys(keyring)).await?;
    tracing::info!(peer_id = %mesh.peer_id(), listen = %mesh.listening(), "mesh up");
    Ok(mesh)
}

fn member_keys(keyring: &Keyring) -> Vec<MemberKey> {
    keyring
        .snapshot()
        .into_iter()
        .map(|(node_id, key)| MemberKey {
            node_id,
            public_key: <[u8; 32]>::from(key),
        })
        .collect()
}

/// Keeps the mesh's allow list equal to the keyring, and, on the leader, announces each
/// membership change to the swarm.
pub async fn follow_membership(shared: Arc<Shared>, mesh: Arc<Mesh>) {
    let mut admitted: Vec<MemberKey> = member_keys(&shared.keyring);
    let mut announced = None;
    loop {
        tokio::time::sleep(FOLLOW_EVERY).await;
        let now = member_keys(&shared.keyring);
        if now != admitted && mesh.set_members(&now).await.is_ok() {
            admitted = now;
        }
        let m = shared.raft.metrics().borrow_watched().clone();
        let id = *m.membership_config.log_id();
        if m.state == ServerState::Leader && announced != Some(id) {
            let membership = m.membership_config.membership();
            let voters: Vec<u64> = membership.voter_ids().collect();
            let learners: Vec<u64> = membership.learner_ids().collect();
            let event = Payload::Event(Event::Membership { voters, learners });
            // Alone (no peer subscribed yet), there is no one to tell: try again next round.
            if mesh.publish(event).await.is_ok() {
                announced = Some(id);
            }
        }
    }
}

/// Tells the swarm something this node did, if it has a mesh; never waits and never fails the
/// caller (the mesh is for notice, the Raft log for truth).
pub fn announce(shared: &Shared, event: Event) {
    let Some(mesh) = shared.mesh.clone() else {
        return;
    };
    tokio::spawn(async move {
        if let Err(e) = mesh.publish(Payload::Event(event)).await {
            tracing::debug!(error = %e, "mesh announcement not sent");
        }
    });
}

pub fn render_metrics(shared: &Shared, out: &mut String) {
    let Some(mesh) = &shared.mesh else {
        return;
    };
    let s = mesh.stats();
    gauge(
        out,
        "pyagent_mesh_peers",
        "Members this node holds a mesh connection with (at most discovery.neighbours).",
        &[("", s.peers as f64)],
    );
    gauge(
        out,
        "pyagent_mesh_members_admitted",
        "Keys the mesh admits (the Raft membership's).",
        &[("", s.members as f64)],
    );
    counters(
        out,
        "pyagent_mesh_mdns_announcements_total",
        "Peer addresses mDNS announced (discovery.mode mdns): of members (dialled while there is \
         room), and of other libp2p nodes on the network (ignored).",
        &[
            ("kind=\"member\"".to_string(), s.mdns_found.0),
            ("kind=\"other\"".to_string(), s.mdns_found.1),
        ],
    );
    gauge(
        out,
        "pyagent_mesh_e2e_state_restored",
        "1 when this node resumed its saved end-to-end encryption state (identity and sessions) at start.",
        &[("", f64::from(u8::from(s.restored)))],
    );
    counter(
        out,
        "pyagent_mesh_identity_changes_total",
        "Members whose key bundle came with a new identity (restarted without their saved state): \
         their sessions are rebuilt.",
        s.identity_changes,
    );
    counter(
        out,
        "pyagent_mesh_group_sessions_rotated_total",
        "Megolm sessions this node replaced because a member was removed (end-to-end encryption).",
        s.rotations,
    );
    let refused: Vec<(String, u64)> = s
        .refused
        .iter()
        .map(|(why, n)| (format!("reason=\"{}\"", why.label()), *n))
        .collect();
    counters(
        out,
        "pyagent_mesh_connections_refused_total",
        "Mesh connections refused: not-a-member (a key outside the membership) or neighbour-limit.",
        &refused,
    );
    let by_topic = |m: &BTreeMap<pyagent_mesh::Topic, u64>| -> Vec<(String, u64)> {
        m.iter()
            .map(|(t, n)| (format!("topic=\"{}\"", t.label()), *n))
            .collect()
    };
    counters(
        out,
        "pyagent_mesh_messages_published_total",
        "Messages this node published, by topic.",
        &by_topic(&s.published),
    );
    counters(
        out,
        "pyagent_mesh_messages_delivered_total",
        "Messages of other members received and accepted, by topic.",
        &by_topic(&s.delivered),
    );
    let rejected: Vec<(String, u64)> = s
        .rejected
        .iter()
        .map(|((t, why), n)| {
            (
                format!("topic=\"{}\",reason=\"{}\"", t.label(), esc(why.label())),
                *n,
            )
        })
        .collect();
    counters(
        out,
        "pyagent_mesh_messages_rejected_total",
        "Messages dropped: author not a member, too large, malformed, rate-limited, undecryptable, no key.",
        &rejected,
    );
}

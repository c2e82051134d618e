//! A pod of the swarm's StatefulSets that is not a member yet asks to be one (`Join`), through
//! the seed and then whichever node the answers name as leader, until the Raft membership it
//! receives lists it. Refusals are logged once per distinct reason, so a pod that is not
//! admitted says why in its log without flooding it.

use std::sync::Arc;
use std::time::Duration;

use openraft::async_runtime::WatchReceiver as _;
use tonic::Code;

use crate::admission::JOIN_TOKEN_FILE;
use crate::proto::{self, node_client::NodeClient};
use crate::shared::Shared;

const FIRST_RETRY: Duration = Duration::from_millis(500);
const LAST_RETRY: Duration = Duration::from_secs(10);
const CALL_TIMEOUT: Duration = Duration::from_secs(90);

/// Listed in the membership this node has received, as a voter if its pool votes (a pod added as
/// a learner whose promotion failed asks again).
fn is_member(shared: &Shared) -> bool {
    let metrics = shared.raft.metrics().borrow_watched().clone();
    let membership = metrics.membership_config.membership();
    let id = shared.cfg.node_id;
    let voter = shared.cfg.me().is_some_and(|m| m.voter);
    membership.get_node(&id).is_some() && (!voter || membership.voter_ids().any(|v| v == id))
}

/// Installs the keys of the members `client`'s node reports. The leader starts replicating to a
/// learner as it adds it, so this node must know the members' keys before it asks to join, or
/// it would refuse their messages. They come from the node this pod found by the swarm's own
/// DNS names, the same trust it puts in that node to admit it; once the Raft membership reaches
/// this node, the keys come from it (`node::refresh_keys`).
async fn learn_member_keys(
    shared: &Shared,
    client: &mut NodeClient<tonic::transport::Channel>,
) -> Result<(), tonic::Status> {
    let status = client
        .status(proto::StatusRequest::default())
        .await?
        .into_inner();
    let mut keys: std::collections::BTreeMap<u64, crate::auth::PublicKey> = status
        .members
        .iter()
        .filter_map(|m| crate::auth::decode_member_key(&m.public_key).map(|k| (m.node_id, k)))
        .collect();
    keys.insert(shared.cfg.node_id, shared.signer.public_key());
    shared.keyring.replace(keys);
    Ok(())
}

/// This pod's member entry, with its key.
fn me(shared: &Shared) -> Option<proto::Member> {
    let m = shared.cfg.me()?;
    Some(proto::Member {
        node_id: m.node_id,
        name: m.name.clone(),
        raft: m.raft.clone(),
        grpc: m.grpc.clone(),
        voter: m.voter,
        public_key: m.public_key.clone()?,
    })
}

/// One Join call to `target` ("host:port"); Err carries the gRPC status.
async fn join_once(
    shared: &Shared,
    target: &str,
    member: proto::Member,
) -> Result<proto::CommandResult, tonic::Status> {
    let token = std::fs::read_to_string(JOIN_TOKEN_FILE)
        .map_err(|e| tonic::Status::unavailable(format!("{JOIN_TOKEN_FILE}: {e}")))?;
    let token = token.trim().to_string();
    let signature = shared.signer.sign_join(&token);
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{target}"))
        .map_err(|e| tonic::Status::invalid_argument(e.to_string()))?
        .timeout(CALL_TIMEOUT)
        .connect_timeout(Duration::from_secs(5));
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| tonic::Status::unavailable(format!("{target}: {e}")))?;
    let request = proto::JoinRequest {
        member: Some(member),
        token,
        signature,
    };
    let mut client = NodeClient::new(channel);
    learn_member_keys(shared, &mut client).await?;
    let response = client.join(request).await?;
    Ok(response.into_inner())
}

/// How many of the seed pool's other pods the seed asks before it initialises a new group.
const SEED_PROBES: u64 = 4;

/// True if one of the seed pool's other pods answers with a membership: the group exists, and
/// a seed with an empty volume (lost, or replaced) must join it rather than start a second one.
/// At the swarm's first start the others are new too (no membership) or not up yet.
pub async fn group_exists(shared: &Shared) -> bool {
    let Some(k) = shared.cfg.kubernetes.as_ref() else {
        return false;
    };
    for ordinal in 1..=SEED_PROBES {
        let host = k.pod_host(&k.pool.stateful_set, ordinal);
        let target = format!("http://{host}:{}", k.ports.1);
        let Ok(endpoint) = tonic::transport::Endpoint::from_shared(target) else {
            continue;
        };
        let endpoint = endpoint
            .timeout(Duration::from_secs(2))
            .connect_timeout(Duration::from_secs(2));
        let Ok(channel) = endpoint.connect().await else {
            continue;
        };
        let status = NodeClient::new(channel)
            .status(proto::StatusRequest::default())
            .await;
        if let Ok(s) = status {
            if !s.into_inner().members.is_empty() {
                tracing::warn!(peer = %host, "the Raft group exists already: the seed joins it");
                return true;
            }
        }
    }
    false
}

/// The leader's gRPC address a FAILED_PRECONDITION names, if any.
fn leader_hint(status: &tonic::Status) -> Option<String> {
    if status.code() != Code::FailedPrecondition {
        return None;
    }
    let grpc = status
        .metadata()
        .get("pyagent-leader-grpc")?
        .to_str()
        .ok()?;
    (!grpc.is_empty()).then(|| grpc.to_string())
}

/// Asks to join until this node is in the membership it has received.
pub async fn join_until_member(shared: Arc<Shared>) {
    let (Some(seed), Some(member)) = (
        shared.cfg.kubernetes.as_ref().and_then(|k| k.seed()),
        me(&shared),
    ) else {
        tracing::error!("cannot join: no seed or no own member entry");
        return;
    };
    let seed_grpc = seed.2;
    let mut target = seed_grpc.clone();
    let mut delay = FIRST_RETRY;
    let mut last_reason = String::new();
    while !is_member(&shared) {
        match join_once(&shared, &target, member.clone()).await {
            Ok(r) => {
                tracing::info!(via = %target, index = r.index, message = %r.message, "admitted to the swarm");
                delay = FIRST_RETRY;
            }
            Err(status) => {
                if let Some(leader) = leader_hint(&status) {
                    target = leader;
                    delay = FIRST_RETRY;
                    tokio::time::sleep(delay).await;
                    continue;
                }
                let reason = format!("{:?}: {}", status.code(), status.message());
                if reason != last_reason {
                    tracing::warn!(via = %target, %reason, "join not accepted yet; retrying");
                    last_reason = reason;
                }
                target = seed_grpc.clone();
                delay = (delay * 2).min(LAST_RETRY);
            }
        }
        tokio::time::sleep(delay).await;
    }
    tracing::info!("member of the swarm");
}

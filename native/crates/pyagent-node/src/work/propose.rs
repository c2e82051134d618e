//! A node's own commands (worker registration, heartbeats, step reports, sub-tasks), signed with
//! its key and proposed through the leader: directly when this node leads, else over the
//! leader's gRPC `Submit`, exactly as a client's would be.

use std::time::Duration;

use openraft::async_runtime::WatchReceiver as _;
use prost::Message as _;

use crate::proto::{self, command::Op, node_client::NodeClient};
use crate::shared::Shared;
use crate::types::{ApplyResult, LogCommand};

const CALL_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum ProposeError {
    #[error("no leader is known")]
    NoLeader,
    #[error("{0}")]
    Rpc(String),
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The leader's id and gRPC address as this node knows them.
fn leader(shared: &Shared) -> Option<(u64, String)> {
    let m = shared.raft.metrics().borrow_watched().clone();
    let id = m.current_leader?;
    let grpc = m.membership_config.membership().get_node(&id)?.grpc.clone();
    Some((id, grpc))
}

/// Signs `op` and proposes it once. The result says whether the state machine applied it; an
/// Err means the outcome is unknown or nothing was proposed (callers retry: every operation
/// here is idempotent or refused as a duplicate).
pub async fn propose(shared: &Shared, op: Op) -> Result<ApplyResult, ProposeError> {
    let command = proto::Command { op: Some(op) }.encode_to_vec();
    let seq = shared.signer.next_seq();
    let signature = shared.signer.sign_command(seq, &command);
    let (leader_id, grpc) = leader(shared).ok_or(ProposeError::NoLeader)?;
    if leader_id == shared.cfg.node_id {
        let cmd = LogCommand {
            signer: shared.cfg.node_id,
            seq,
            command,
            signature,
            proposed_at_ms: now_ms(),
        };
        let (r, _) = shared
            .proposer
            .propose(cmd)
            .await
            .map_err(|e| ProposeError::Rpc(e.to_string()))?;
        return Ok(r);
    }
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{grpc}"))
        .map_err(|e| ProposeError::Rpc(e.to_string()))?
        .timeout(CALL_TIMEOUT)
        .connect_timeout(Duration::from_secs(5));
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| ProposeError::Rpc(format!("{grpc}: {e}")))?;
    let r = NodeClient::new(channel)
        .submit(proto::SignedCommand {
            command,
            signer: shared.cfg.node_id,
            seq,
            signature,
        })
        .await
        .map_err(|s| ProposeError::Rpc(format!("{:?}: {}", s.code(), s.message())))?
        .into_inner();
    Ok(ApplyResult {
        applied: r.applied,
        refusal: r.refusal,
        message: r.message,
        token: r.token.map(|t| (t.term, t.index)),
        lease_expires_ms: r.lease_expires_ms,
    })
}

/// [`propose`] until the state machine answers (applied or refused), waiting between tries,
/// or until `stop` says to give up (the caller no longer cares).
pub async fn propose_until_answered(
    shared: &Shared,
    op: Op,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> Option<ApplyResult> {
    let mut delay = Duration::from_millis(50);
    loop {
        match propose(shared, op.clone()).await {
            Ok(r) => return Some(r),
            Err(e) => tracing::debug!(error = %e, "proposal not answered; retrying"),
        }
        if *stop.borrow() {
            return None;
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

//! The leader keeps the Raft membership within the StatefulSets' replica counts: the pods that a
//! scale-down takes away are removed from the membership, all in one joint-consensus change, so
//! that the quorum is counted over pods that exist. A pod that is only restarting or rescheduled
//! keeps its ordinal below the count and is never touched.
//!
//! The removal must be committed while the departing pods still answer: a scale-down from five
//! voters to two, with the three gone first, would leave two of five and no quorum to commit
//! anything, ever. So a departing pod, on SIGTERM, keeps serving until the leader has removed it
//! ([`stay_until_removed`], within its termination grace period), and the leader looks often.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use openraft::async_runtime::WatchReceiver as _;
use openraft::{ChangeMembers, ServerState};

use crate::admission::KubeApi;
use crate::batching::while_lease_pending;
use crate::shared::Shared;

/// How often the leader compares the membership with the replica counts (one GET per pool).
const CHECK_EVERY: Duration = Duration::from_secs(2);
/// How long a departing pod waits after SIGTERM to be removed; the rendered pods have 30 s of
/// termination grace.
const LEAVE_WITHIN: Duration = Duration::from_secs(20);

/// The members whose ordinal is at or beyond their StatefulSet's replica count, given the counts
/// (`None`: the count could not be read, and that pool's members are left alone).
pub fn beyond_replicas(
    k: &crate::config::KubernetesIdentity,
    members: &[u64],
    replicas: &BTreeMap<String, Option<u64>>,
) -> Vec<u64> {
    members
        .iter()
        .copied()
        .filter(|id| {
            k.pod_of(*id).is_some_and(|(pool, ordinal)| {
                matches!(replicas.get(&pool.stateful_set), Some(Some(r)) if ordinal >= *r)
            })
        })
        .collect()
}

fn leads_with_committed_membership(shared: &Shared) -> Option<Vec<u64>> {
    let m = shared.raft.metrics().borrow_watched().clone();
    let settled = m.state == ServerState::Leader
        && m.committed_membership_config.log_id() == m.membership_config.log_id();
    settled.then(|| {
        m.membership_config
            .membership()
            .nodes()
            .map(|(id, _)| *id)
            .collect()
    })
}

pub async fn remove_scaled_down(shared: Arc<Shared>, kube: Arc<KubeApi>) {
    let Some(k) = shared.cfg.kubernetes.clone() else {
        return;
    };
    let mut last_error = String::new();
    loop {
        tokio::time::sleep(CHECK_EVERY).await;
        let Some(members) = leads_with_committed_membership(&shared) else {
            continue;
        };
        let mut replicas = BTreeMap::new();
        for pool in &k.membership.pools {
            let count = match kube
                .replicas(&k.membership.namespace, &pool.stateful_set)
                .await
            {
                Ok(n) => Some(n),
                Err(e) => {
                    if e != last_error {
                        tracing::warn!(error = %e, "cannot read a replica count; its pods are left as they are");
                        last_error = e;
                    }
                    None
                }
            };
            replicas.insert(pool.stateful_set.clone(), count);
        }
        let beyond: BTreeSet<u64> = beyond_replicas(&k, &members, &replicas)
            .into_iter()
            .collect();
        if beyond.is_empty() {
            continue;
        }
        tracing::info!(nodes = ?beyond, "removing the pods that a scale-down takes away");
        if let Err(e) = remove(&shared, beyond.clone()).await {
            tracing::warn!(nodes = ?beyond, error = %e, "could not remove them yet");
        }
    }
}

/// One membership change for the voters among `ids` (joint consensus: a majority of the old
/// voters and of the new ones), one for the learners.
async fn remove(shared: &Shared, ids: BTreeSet<u64>) -> Result<(), String> {
    let raft = &shared.raft;
    let voters: BTreeSet<u64> = raft
        .metrics()
        .borrow_watched()
        .membership_config
        .membership()
        .voter_ids()
        .collect();
    let (voting, learning): (BTreeSet<u64>, BTreeSet<u64>) =
        ids.into_iter().partition(|id| voters.contains(id));
    for change in [
        (!voting.is_empty()).then_some(ChangeMembers::RemoveVoters(voting)),
        (!learning.is_empty()).then_some(ChangeMembers::RemoveNodes(learning)),
    ]
    .into_iter()
    .flatten()
    {
        while_lease_pending(raft, || raft.change_membership(change.clone(), false))
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn in_membership(shared: &Shared) -> bool {
    let metrics = shared.raft.metrics().borrow_watched().clone();
    metrics
        .membership_config
        .membership()
        .get_node(&shared.cfg.node_id)
        .is_some()
}

/// Whether a scale-down is taking this pod away: its ordinal is at or beyond its StatefulSet's
/// replica count now (a restart or a reschedule keeps it below).
async fn scaled_away(shared: &Shared, kube: &KubeApi) -> bool {
    let Some(k) = shared.cfg.kubernetes.as_ref() else {
        return false;
    };
    match kube
        .replicas(&k.membership.namespace, &k.pool.stateful_set)
        .await
    {
        Ok(replicas) => k.ordinal >= replicas,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read this pod's replica count; stopping at once");
            false
        }
    }
}

/// On SIGTERM: a member that a scale-down takes away keeps serving Raft until the leader has
/// removed it (or [`LEAVE_WITHIN`] has passed), so that it still counts toward the quorum that
/// commits its own removal.
pub async fn stay_until_removed(shared: &Shared, kube: &KubeApi) {
    if !in_membership(shared) || !scaled_away(shared, kube).await {
        return;
    }
    tracing::info!("a scale-down takes this pod away: serving until the leader removes it");
    let mut metrics = shared.raft.metrics();
    let removed = async {
        while in_membership(shared) {
            if metrics.changed().await.is_err() {
                return;
            }
        }
    };
    match tokio::time::timeout(LEAVE_WITHIN, removed).await {
        Ok(()) => tracing::info!("removed from the membership"),
        Err(_) => tracing::warn!(within = ?LEAVE_WITHIN, "not removed from the membership in time"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::contract::{KubernetesMembership, KubernetesPool};

    #[test]
    fn only_ordinals_beyond_a_known_count_are_removed() {
        let pool = |name: &str, index| KubernetesPool {
            name: name.into(),
            stateful_set: format!("sw-{name}"),
            index,
            voter: true,
        };
        let membership = KubernetesMembership {
            namespace: "ns".into(),
            service: "sw-peers".into(),
            cluster_domain: "cluster.local".into(),
            service_account: "sw-node".into(),
            pools: vec![pool("p", 0), pool("q", 1)],
        };
        let k = crate::config::KubernetesIdentity {
            pool: membership.pools[0].clone(),
            membership,
            ordinal: 0,
            ports: (1, 2),
        };
        let counts = BTreeMap::from([("sw-p".to_string(), Some(2)), ("sw-q".to_string(), None)]);
        assert_eq!(
            beyond_replicas(&k, &[1, 2, 3, 4, 1001, 1005], &counts),
            vec![3, 4]
        );
    }
}

//! The leader keeps the Raft membership within the StatefulSets' replica counts: a pod that a
//! scale-down took away is removed from the membership (a joint-consensus change), so that the
//! quorum is counted over pods that exist. A pod that is only restarting or rescheduled keeps
//! its ordinal below the count and is never touched.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use openraft::async_runtime::WatchReceiver as _;
use openraft::ServerState;

use crate::admission::KubeApi;
use crate::proto::{command::Op, RemoveMember};
use crate::shared::Shared;

/// How often the leader compares the membership with the replica counts.
const CHECK_EVERY: Duration = Duration::from_secs(10);

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
    let api = crate::api::Api {
        shared: shared.clone(),
        kube: Ok(kube.clone()),
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
        for id in beyond_replicas(&k, &members, &replicas) {
            tracing::info!(node = id, "removing a pod that a scale-down took away");
            if let Err(e) = api
                .membership_change(Op::RemoveMember(RemoveMember { node_id: id }))
                .await
            {
                tracing::warn!(node = id, error = %e, "could not remove it yet");
            }
        }
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

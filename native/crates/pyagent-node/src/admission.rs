//! Who may join a swarm whose members are the pods of its StatefulSets (`membership.mode:
//! kubernetes`), decided by the leader for each `Join` request.
//!
//! A joiner proves three things: that it holds the key it asks to be admitted with (its
//! signature, checked in `api`), that it is the pod its node id names (its name and addresses
//! are those the id derives, [`expected_member`]), and, through the Kubernetes API, that the
//! projected service-account token it sends is the token of that very pod, running as the
//! swarm's service account and controlled by the swarm's StatefulSet ([`KubeApi::admit`]). A
//! stranger pod with a valid-looking name and its own key fails the last check: its token names
//! another pod or service account, or its pod is not the StatefulSet's. This is the design of
//! Vault's Kubernetes auth and SPIRE's k8s_psat attestor (TokenReview, then a pod lookup).

use std::path::PathBuf;
use std::time::Duration;

use http_body_util::BodyExt as _;
use serde_json::{json, Value};
use tonic::codegen::http;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tower::ServiceExt as _;

use crate::config::KubernetesIdentity;
use crate::proto;

/// The audience of the token a joiner sends: a token minted for another audience (the API
/// server's own, or another tool's) is refused by the TokenReview.
pub const JOIN_AUDIENCE: &str = "pyagent.dev/join";
/// Where the pod spec projects the joiner's token (plan/workloads.py renders the volume).
pub const JOIN_TOKEN_FILE: &str = "/var/run/secrets/pyagent.dev/join/token";
/// The leader's own credentials for the Kubernetes API: the standard in-cluster paths.
pub const API_TOKEN_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";
pub const API_CA_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";

const POD_NAME_EXTRA: &str = "authentication.kubernetes.io/pod-name";
const POD_UID_EXTRA: &str = "authentication.kubernetes.io/pod-uid";
const API_TIMEOUT: Duration = Duration::from_secs(10);

/// Checks that `m` is exactly the member entry the pod its node id names would have: the
/// StatefulSet's pod of that ordinal (which must exist at the current replica count), its
/// stable DNS name with the swarm's ports, and its pool's voting role.
pub fn expected_member(k: &KubernetesIdentity, m: &proto::Member) -> Result<(), String> {
    let (pool, ordinal) = k.pod_of(m.node_id).ok_or_else(|| {
        format!(
            "node id {} is not a pod of the swarm's StatefulSets",
            m.node_id
        )
    })?;
    let pod = format!("{}-{ordinal}", pool.stateful_set);
    let host = k.pod_host(&pool.stateful_set, ordinal);
    let (raft, grpc) = (
        format!("{host}:{}", k.ports.0),
        format!("{host}:{}", k.ports.1),
    );
    if m.name != pod || m.raft != raft || m.grpc != grpc {
        return Err(format!(
            "node {} must be pod {pod} at {raft} and {grpc}, not {:?} at {:?} and {:?}",
            m.node_id, m.name, m.raft, m.grpc
        ));
    }
    if m.voter != pool.voter {
        return Err(format!(
            "node {} of pool {} must join with voter={}",
            m.node_id, pool.name, pool.voter
        ));
    }
    Ok(())
}

/// The pod a TokenReview says a token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewedPod {
    pub username: String,
    pub pod_name: String,
    pub pod_uid: String,
}

/// Reads the TokenReview response `status`: authenticated, for our audience, bound to a pod.
pub fn reviewed_pod(review: &Value) -> Result<ReviewedPod, String> {
    let status = &review["status"];
    if status["authenticated"] != Value::Bool(true) {
        let why = status["error"].as_str().unwrap_or("not authenticated");
        return Err(format!("the token is not valid: {why}"));
    }
    let audiences = status["audiences"].as_array().cloned().unwrap_or_default();
    if !audiences.iter().any(|a| a.as_str() == Some(JOIN_AUDIENCE)) {
        return Err(format!("the token is not for the audience {JOIN_AUDIENCE}"));
    }
    let user = &status["user"];
    let extra = |key: &str| {
        user["extra"][key][0]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("the token is not bound to a pod ({key} missing)"))
    };
    Ok(ReviewedPod {
        username: user["username"].as_str().unwrap_or_default().to_string(),
        pod_name: extra(POD_NAME_EXTRA)?,
        pod_uid: extra(POD_UID_EXTRA)?,
    })
}

/// Checks the reviewed pod against the member it asks to be, and the live pod object against
/// the live StatefulSet `sts`: the pod's controller owner reference must be that object, and its
/// ordinal below the StatefulSet's replica count now (a pod left over from a scale-down, or
/// named beyond it, is refused).
pub fn check_pod(
    k: &KubernetesIdentity,
    m: &proto::Member,
    reviewed: &ReviewedPod,
    pod: &Value,
    sts: &Value,
) -> Result<(), String> {
    let sts_uid = sts["metadata"]["uid"].as_str().unwrap_or_default();
    let ms = &k.membership;
    let account = format!(
        "system:serviceaccount:{}:{}",
        ms.namespace, ms.service_account
    );
    if reviewed.username != account {
        return Err(format!(
            "the token is {}'s, not {account}'s",
            reviewed.username
        ));
    }
    if reviewed.pod_name != m.name {
        return Err(format!(
            "the token is pod {}'s, not {}'s",
            reviewed.pod_name, m.name
        ));
    }
    if pod["metadata"]["uid"].as_str() != Some(reviewed.pod_uid.as_str()) {
        return Err(format!(
            "pod {} is not the pod the token was made for (uid)",
            m.name
        ));
    }
    let (pool, ordinal) = k
        .pod_of(m.node_id)
        .ok_or_else(|| format!("node id {} is not a pod of the swarm", m.node_id))?;
    let owners = pod["metadata"]["ownerReferences"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let controlled = owners.iter().any(|o| {
        o["controller"] == Value::Bool(true)
            && o["kind"] == "StatefulSet"
            && o["name"].as_str() == Some(pool.stateful_set.as_str())
            && o["uid"].as_str() == Some(sts_uid)
    });
    if !controlled {
        return Err(format!(
            "pod {} is not controlled by StatefulSet {}",
            m.name, pool.stateful_set
        ));
    }
    let replicas = sts["spec"]["replicas"].as_u64().unwrap_or(0);
    if ordinal >= replicas {
        return Err(format!(
            "StatefulSet {} has {replicas} replicas: pod {} is not one of them",
            pool.stateful_set, m.name
        ));
    }
    Ok(())
}

/// A client of the Kubernetes API with the pod's own service account (in-cluster config).
pub struct KubeApi {
    channel: Channel,
    token_file: PathBuf,
}

impl KubeApi {
    /// From `KUBERNETES_SERVICE_HOST`/`_PORT` and the service account's CA; the token is read
    /// on every call (kubelet rotates it).
    pub fn in_cluster() -> Result<KubeApi, String> {
        let host = std::env::var("KUBERNETES_SERVICE_HOST")
            .map_err(|_| "KUBERNETES_SERVICE_HOST is not set (not in a pod?)".to_string())?;
        let port = std::env::var("KUBERNETES_SERVICE_PORT").unwrap_or_else(|_| "443".into());
        let ca = std::fs::read(API_CA_FILE).map_err(|e| format!("{API_CA_FILE}: {e}"))?;
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(ca))
            // The API server's certificate names the `kubernetes` Service, not its ClusterIP
            // necessarily; this name is in every kube-apiserver serving certificate.
            .domain_name("kubernetes.default.svc");
        let channel = Endpoint::from_shared(format!("https://{host}:{port}"))
            .map_err(|e| e.to_string())?
            .timeout(API_TIMEOUT)
            .connect_timeout(API_TIMEOUT)
            .tls_config(tls)
            .map_err(|e| e.to_string())?
            .connect_lazy();
        Ok(KubeApi {
            channel,
            token_file: PathBuf::from(API_TOKEN_FILE),
        })
    }

    async fn call(
        &self,
        method: http::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let token = std::fs::read_to_string(&self.token_file)
            .map_err(|e| format!("{}: {e}", self.token_file.display()))?;
        let bytes = body.map(|b| b.to_string()).unwrap_or_default();
        let request = http::Request::builder()
            .method(method)
            .uri(path)
            .header(
                http::header::AUTHORIZATION,
                format!("Bearer {}", token.trim()),
            )
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/json")
            .body(tonic::body::Body::new(http_body_util::Full::new(
                bytes::Bytes::from(bytes),
            )))
            .map_err(|e| e.to_string())?;
        let response = self
            .channel
            .clone()
            .oneshot(request)
            .await
            .map_err(|e| format!("Kubernetes API {path}: {e}"))?;
        let status = response.status();
        let collected = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("Kubernetes API {path}: {e}"))?
            .to_bytes();
        let value: Value = serde_json::from_slice(&collected).unwrap_or(Value::Null);
        if !status.is_success() {
            let message = value["message"].as_str().unwrap_or("");
            return Err(format!("Kubernetes API {path}: {status} {message}"));
        }
        Ok(value)
    }

    /// The replica count of the swarm's StatefulSet `name` now.
    pub async fn replicas(&self, namespace: &str, name: &str) -> Result<u64, String> {
        let path = format!("/apis/apps/v1/namespaces/{namespace}/statefulsets/{name}");
        let sts = self.call(http::Method::GET, &path, None).await?;
        sts["spec"]["replicas"]
            .as_u64()
            .ok_or_else(|| format!("StatefulSet {name} has no spec.replicas"))
    }

    /// The whole check for a `Join` of member `m` with `token`.
    pub async fn admit(
        &self,
        k: &KubernetesIdentity,
        m: &proto::Member,
        token: &str,
    ) -> Result<(), String> {
        let review = json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": token, "audiences": [JOIN_AUDIENCE]},
        });
        let review = self
            .call(
                http::Method::POST,
                "/apis/authentication.k8s.io/v1/tokenreviews",
                Some(review),
            )
            .await?;
        let reviewed = reviewed_pod(&review)?;
        let ns = &k.membership.namespace;
        let (pool, _) = k
            .pod_of(m.node_id)
            .ok_or_else(|| format!("node id {} is not a pod of the swarm", m.node_id))?;
        let pod_path = format!("/api/v1/namespaces/{ns}/pods/{}", reviewed.pod_name);
        let pod = self.call(http::Method::GET, &pod_path, None).await?;
        let sts_path = format!(
            "/apis/apps/v1/namespaces/{ns}/statefulsets/{}",
            pool.stateful_set
        );
        let sts = self.call(http::Method::GET, &sts_path, None).await?;
        check_pod(k, m, &reviewed, &pod, &sts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::contract::{KubernetesMembership, KubernetesPool};

    fn identity() -> KubernetesIdentity {
        let pool = |name: &str, index, voter| KubernetesPool {
            name: name.into(),
            stateful_set: format!("sw-{name}"),
            index,
            voter,
        };
        let membership = KubernetesMembership {
            namespace: "ns".into(),
            service: "sw-peers".into(),
            cluster_domain: "cluster.local".into(),
            service_account: "sw-node".into(),
            pools: vec![pool("p", 0, true), pool("gpu", 1, false)],
        };
        KubernetesIdentity {
            pool: membership.pools[0].clone(),
            membership,
            ordinal: 0,
            ports: (7100, 7443),
        }
    }

    fn member(id: u64, name: &str, voter: bool) -> proto::Member {
        let host = format!("{name}.sw-peers.ns.svc.cluster.local");
        proto::Member {
            node_id: id,
            name: name.into(),
            raft: format!("{host}:7100"),
            grpc: format!("{host}:7443"),
            voter,
            public_key: String::new(),
        }
    }

    #[test]
    fn a_member_entry_must_be_the_one_its_id_derives() {
        let k = identity();
        assert_eq!(expected_member(&k, &member(2, "sw-p-1", true)), Ok(()));
        assert_eq!(
            expected_member(&k, &member(1001, "sw-gpu-0", false)),
            Ok(())
        );
        let refused = |m: proto::Member| expected_member(&k, &m).unwrap_err();
        assert!(refused(member(2001, "sw-x-0", true)).contains("not a pod"));
        assert!(refused(member(2, "sw-p-2", true)).contains("must be pod sw-p-1"));
        assert!(refused(member(1001, "sw-gpu-0", true)).contains("voter=false"));
        let mut elsewhere = member(2, "sw-p-1", true);
        elsewhere.raft = "10.0.0.9:7100".into();
        assert!(refused(elsewhere).contains("must be pod sw-p-1"));
    }

    fn review(authenticated: bool, audience: &str, user: &str, pod: &str) -> Value {
        json!({"status": {
            "authenticated": authenticated,
            "audiences": [audience],
            "user": {"username": user, "extra": {
                POD_NAME_EXTRA: [pod], POD_UID_EXTRA: ["uid-1"],
            }},
        }})
    }

    fn sts(replicas: u64) -> Value {
        json!({"metadata": {"uid": "sts-1"}, "spec": {"replicas": replicas}})
    }

    fn pod(uid: &str, owner: &str, owner_uid: &str) -> Value {
        json!({"metadata": {"uid": uid, "ownerReferences": [
            {"kind": "StatefulSet", "name": owner, "uid": owner_uid, "controller": true}
        ]}})
    }

    #[test]
    fn the_token_must_be_the_pods_own_and_the_pod_the_statefulsets() {
        let k = identity();
        let sa = "system:serviceaccount:ns:sw-node";
        let m = member(2, "sw-p-1", true);
        let ok = reviewed_pod(&review(true, JOIN_AUDIENCE, sa, "sw-p-1")).unwrap();
        assert_eq!(
            check_pod(&k, &m, &ok, &pod("uid-1", "sw-p", "sts-1"), &sts(3)),
            Ok(())
        );
        assert!(reviewed_pod(&review(false, JOIN_AUDIENCE, sa, "sw-p-1")).is_err());
        assert!(reviewed_pod(&review(
            true,
            "https://kubernetes.default.svc",
            sa,
            "sw-p-1"
        ))
        .is_err());
        let other_account = reviewed_pod(&review(
            true,
            JOIN_AUDIENCE,
            "system:serviceaccount:ns:x",
            "sw-p-1",
        ))
        .unwrap();
        let refused = |r: &ReviewedPod, p: Value| check_pod(&k, &m, r, &p, &sts(3)).unwrap_err();
        assert!(refused(&other_account, pod("uid-1", "sw-p", "sts-1"))
            .contains("not system:serviceaccount:ns:sw-node"));
        let other_pod = reviewed_pod(&review(true, JOIN_AUDIENCE, sa, "sw-p-2")).unwrap();
        assert!(refused(&other_pod, pod("uid-1", "sw-p", "sts-1")).contains("pod sw-p-2's"));
        // A stranger pod named like a replica, with its own owner reference or none.
        assert!(refused(&ok, pod("uid-1", "sw-p", "forged")).contains("not controlled"));
        assert!(refused(&ok, json!({"metadata": {"uid": "uid-1"}})).contains("not controlled"));
        assert!(refused(&ok, pod("uid-2", "sw-p", "sts-1")).contains("(uid)"));
        // Scaled down to one replica: pod 1 is left over and refused.
        let scaled = check_pod(&k, &m, &ok, &pod("uid-1", "sw-p", "sts-1"), &sts(1));
        assert!(scaled.unwrap_err().contains("has 1 replicas"));
    }
}

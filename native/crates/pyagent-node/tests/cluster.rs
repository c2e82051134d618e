//! An in-process 3-node cluster over loopback: elects a leader, commits signed writes durably,
//! refuses forged and unsigned messages, enforces fencing, and survives a full restart.

mod common;
use common::{key, listeners, rebind, start_nodes, Dir};
use openraft::async_runtime::WatchReceiver as _;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use prost::Message as _;
use pyagent_node::auth::{Envelope, Reject, Signer};
use pyagent_node::config::NodeConfig;
use pyagent_node::metrics::Channel;
use pyagent_node::net::{read_frame, write_frame};
use pyagent_node::node::{self, Listeners, Node};
use pyagent_node::proto::{self, command::Op, node_client::NodeClient};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SWARM: &str = "test-swarm";

fn configs(root: &Path, ls: &[Listeners]) -> Vec<NodeConfig> {
    common::configs(SWARM, root, ls, 500)
}

/// How long a test waits for the cluster to settle. Generous: CI runs on two busy cores, where
/// an election can be lost to a late heartbeat and fought again before everyone agrees.
const SETTLE: Duration = Duration::from_secs(60);

/// What one node believes: (leader, term), and whether it leads itself.
fn leader_view(n: &Node) -> ((Option<u64>, u64), bool) {
    let m = n.shared.raft.metrics().borrow_watched().clone();
    let leads = m.state == openraft::ServerState::Leader;
    ((m.current_leader, m.current_term), leads)
}

/// The leader that every node names in the same term, and that leads in that term itself.
///
/// Two ways the earlier check (node 0's leader, then every node naming that same node) failed
/// on busy machines: openraft's `current_leader` comes from the persisted committed vote, so
/// right after a restart every node names the leader it had before, which no longer leads
/// (`enable_leader_restore` is off) and may lose the election that follows; and under load an
/// election can move leadership between the two waits, after which the old leader is never
/// named again. Both end in "nodes disagree on the leader" although the cluster is healthy.
async fn wait_leader(nodes: &[Node]) -> u64 {
    let deadline = tokio::time::Instant::now() + SETTLE;
    let mut watches: Vec<_> = nodes.iter().map(|n| n.shared.raft.metrics()).collect();
    loop {
        let views: Vec<_> = nodes.iter().map(leader_view).collect();
        if let ((Some(leader), term), _) = views[0] {
            let agreed = views.iter().all(|(v, _)| *v == (Some(leader), term));
            let leads = nodes
                .iter()
                .zip(&views)
                .any(|(n, (_, leads))| n.shared.cfg.node_id == leader && *leads);
            if agreed && leads {
                return leader;
            }
        }
        let changed =
            futures_util::future::select_all(watches.iter_mut().map(|w| Box::pin(w.changed())));
        if tokio::time::timeout_at(deadline, changed).await.is_err() {
            panic!("nodes did not agree on a leader within {SETTLE:?}: {views:?}");
        }
    }
}

async fn client(n: &Node) -> NodeClient<tonic::transport::Channel> {
    let ch =
        tonic::transport::Endpoint::from_shared(format!("http://{}", n.shared.cfg.listen_grpc))
            .unwrap()
            .connect()
            .await
            .unwrap();
    NodeClient::new(ch)
}

fn signed(signer: &Signer, seq: u64, op: Op) -> proto::SignedCommand {
    let command = proto::Command { op: Some(op) }.encode_to_vec();
    let signature = signer.sign_command(seq, &command);
    proto::SignedCommand {
        command,
        signer: signer.node_id,
        seq,
        signature,
    }
}

/// `count` acknowledged writes of 1 MiB each, to keys `{prefix}0`, `{prefix}1`, ...
async fn put_mib_values(
    c: &mut NodeClient<tonic::transport::Channel>,
    signer: &Signer,
    prefix: &str,
    count: usize,
) {
    let value = vec![b'x'; 1 << 20];
    for i in 0..count {
        let op = put(&format!("{prefix}{i}"), &value);
        let r = c
            .submit(signed(signer, signer.next_seq(), op))
            .await
            .unwrap();
        assert!(r.into_inner().applied, "{prefix}{i} not applied");
    }
}

fn put(key: &str, value: &[u8]) -> Op {
    Op::Put(proto::Put {
        key: key.into(),
        value: value.to_vec(),
        fence: None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_elect_commit_and_recover() {
    let root = std::env::temp_dir().join(format!("pyagent-cluster-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let _guard = Dir(root.clone());
    let ls: Vec<Listeners> = (0..3).map(|_| listeners()).collect();
    let cfgs = configs(&root, &ls);
    let mut nodes = start_nodes(&cfgs, ls).await;
    let leader = wait_leader(&nodes).await;
    let li = (leader - 1) as usize;
    let signer = Signer::new(1, SWARM.into(), key(1));
    let mut c = client(&nodes[li]).await;

    // Sequential writes (one client), then concurrent writes (32 clients).
    let n_seq = 200u64;
    let t = Instant::now();
    for i in 0..n_seq {
        let r = c
            .submit(signed(
                &signer,
                signer.next_seq(),
                put(&format!("k{i}"), b"v"),
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(r.applied, "{r:?}");
    }
    let seq_rate = n_seq as f64 / t.elapsed().as_secs_f64();
    let per_client = 100u64;
    let clients = 32u64;
    let t = Instant::now();
    let base = signer.next_seq() + 1;
    let mut handles = Vec::new();
    for w in 0..clients {
        let mut c = c.clone();
        let s = Signer::new(1, SWARM.into(), key(1));
        handles.push(tokio::spawn(async move {
            for i in 0..per_client {
                let r = c
                    .submit(signed(
                        &s,
                        base + i * clients + w, // unique across the writers sharing key 1
                        put(&format!("c{w}-{i}"), b"x"),
                    ))
                    .await;
                assert!(r.unwrap().into_inner().applied);
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let conc_rate = (per_client * clients) as f64 / t.elapsed().as_secs_f64();
    eprintln!(
        "FIGURES: 3 nodes, fsync on: 1 client {seq_rate:.0} writes/s; {clients} clients {conc_rate:.0} writes/s"
    );

    // Concurrent linearizable reads (batched into shared ReadIndex rounds): each sees the
    // writes acknowledged before it was issued.
    let t = Instant::now();
    let mut handles = Vec::new();
    for w in 0..clients {
        let mut c = c.clone();
        handles.push(tokio::spawn(async move {
            for i in 0..per_client {
                let key = format!("c{w}-{i}");
                let g = c
                    .get(proto::GetRequest { key, stale: false })
                    .await
                    .unwrap()
                    .into_inner();
                assert!(g.found);
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let read_rate = (per_client * clients) as f64 / t.elapsed().as_secs_f64();
    eprintln!("FIGURES: {clients} clients {read_rate:.0} linearizable reads/s");

    // Linearizable read on the leader; a follower answers with the leader's address.
    let g = c
        .get(proto::GetRequest {
            key: "k7".into(),
            stale: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(g.found && g.value == b"v");
    let fi = (li + 1) % 3;
    let mut fc = client(&nodes[fi]).await;
    let err = fc
        .get(proto::GetRequest {
            key: "k7".into(),
            stale: false,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert_eq!(
        err.metadata()
            .get("pyagent-leader-id")
            .unwrap()
            .to_str()
            .unwrap(),
        leader.to_string()
    );

    // Unsigned, forged, replayed and non-member commands are refused and counted.
    let good = signed(&signer, signer.next_seq(), put("once", b"1"));
    assert!(c.submit(good.clone()).await.unwrap().into_inner().applied);
    let replay = c.submit(good.clone()).await.unwrap_err();
    assert_eq!(replay.code(), tonic::Code::Unauthenticated);
    let mut forged = signed(&signer, signer.next_seq(), put("evil", b"1"));
    forged.command = proto::Command {
        op: Some(put("evil", b"2")),
    }
    .encode_to_vec();
    assert_eq!(
        c.submit(forged).await.unwrap_err().code(),
        tonic::Code::Unauthenticated
    );
    let mut unsigned = signed(&signer, signer.next_seq(), put("evil", b"1"));
    unsigned.signature.clear();
    assert_eq!(
        c.submit(unsigned).await.unwrap_err().code(),
        tonic::Code::Unauthenticated
    );
    let outsider = Signer::new(9, SWARM.into(), key(9));
    assert_eq!(
        c.submit(signed(&outsider, 1, put("evil", b"1")))
            .await
            .unwrap_err()
            .code(),
        tonic::Code::Unauthenticated
    );
    let m = &nodes[li].shared.metrics;
    assert_eq!(m.rejected(Channel::Client, Reject::Replay), 1);
    assert_eq!(m.rejected(Channel::Client, Reject::BadSignature), 1);
    assert_eq!(m.rejected(Channel::Client, Reject::Unsigned), 1);
    assert_eq!(m.rejected(Channel::Client, Reject::NonMember), 1);

    // The Raft transport opens a channel only for a member's key: a stranger's handshake is
    // refused before anything it sends is read, and counted.
    let target = &nodes[fi];
    let raft_addr = target.shared.cfg.listen_raft;
    let stranger = Signer::new(9, SWARM.into(), key(9));
    let tcp = tokio::net::TcpStream::connect(raft_addr).await.unwrap();
    if let Ok((_, mut s)) = stranger.channel().outbound(tcp).await {
        // XX completes on the dialling side first; the target then closes without reading.
        let env = stranger.envelope(target.shared.cfg.node_id, b"junk".to_vec());
        let _ = write_frame(&mut s, &rmp_serde::to_vec(&env).unwrap()).await;
        assert!(read_frame(&mut s).await.is_err());
    }
    let refused_strangers = || {
        target
            .shared
            .metrics
            .rejected(Channel::Raft, Reject::NonMember)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while refused_strangers() < 1 {
        assert!(
            Instant::now() < deadline,
            "the stranger's channel was not refused"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // On a member's channel, a forged message (the leader's id, the wrong key) is refused and
    // counted, with a signed answer.
    let member = Signer::new(leader, SWARM.into(), key(leader));
    let tcp = tokio::net::TcpStream::connect(raft_addr).await.unwrap();
    let (peer_key, mut s) = member.channel().outbound(tcp).await.unwrap();
    assert_eq!(
        peer_key,
        key(target.shared.cfg.node_id).verifying_key().to_bytes()
    );
    let fake = Signer::new(leader, SWARM.into(), key(42));
    let env = fake.envelope(target.shared.cfg.node_id, b"junk".to_vec());
    write_frame(&mut s, &rmp_serde::to_vec(&env).unwrap())
        .await
        .unwrap();
    let reply: Envelope = rmp_serde::from_slice(&read_frame(&mut s).await.unwrap()).unwrap();
    assert_eq!(reply.from, target.shared.cfg.node_id);
    assert_eq!(
        target
            .shared
            .metrics
            .rejected(Channel::Raft, Reject::BadSignature),
        1
    );

    // Fencing through the API: a stale owner's write is refused.
    let acq = |owner: &str, seq| {
        signed(
            &signer,
            seq,
            Op::Acquire(proto::AcquireTask {
                task: "t".into(),
                owner: owner.into(),
                lease_ms: 200,
            }),
        )
    };
    let a = c
        .submit(acq("A", signer.next_seq()))
        .await
        .unwrap()
        .into_inner();
    let tok_a = a.token.unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await; // A's lease runs out
    let b = c
        .submit(acq("B", signer.next_seq()))
        .await
        .unwrap()
        .into_inner();
    assert!(b.applied);
    let fenced = |tok: proto::FencingToken, seq| {
        signed(
            &signer,
            seq,
            Op::Put(proto::Put {
                key: "out".into(),
                value: b"x".to_vec(),
                fence: Some(proto::Fence {
                    task: "t".into(),
                    token: Some(tok),
                }),
            }),
        )
    };
    let stale = c
        .submit(fenced(tok_a, signer.next_seq()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (stale.applied, stale.refusal.as_str()),
        (false, "stale_token")
    );
    assert!(
        c.submit(fenced(b.token.unwrap(), signer.next_seq()))
            .await
            .unwrap()
            .into_inner()
            .applied
    );

    // Status and metrics.
    let st = c
        .status(proto::StatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(st.leader_id, leader);
    assert_eq!(st.members.len(), 3);
    let kv = st.kv.unwrap();
    assert!(
        kv.available && kv.blocks_total == 64 && kv.block_size == 16,
        "{kv:?}"
    );
    assert!(st
        .members
        .iter()
        .all(|m| m.voter && !m.public_key.is_empty()));
    let text = pyagent_node::http::render(&nodes[li].shared);
    assert!(text.contains("pyagent_raft_is_leader 1"));
    // the leader reports what it replicated to each follower, not to itself
    let lead_id = nodes[li].shared.cfg.node_id;
    assert!(text.contains("pyagent_raft_replication_matched_index{target=\""));
    assert!(!text.contains(&format!(
        "pyagent_raft_replication_matched_index{{target=\"{lead_id}\"}}"
    )));
    assert!(text.contains("pyagent_kv_available 1"));
    // The same over HTTP on the metrics port, and /healthz.
    let http = |path: &'static str, addr: std::net::SocketAddr| async move {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    };
    let metrics_addr = nodes[li].shared.cfg.listen_metrics;
    let health = http("/healthz", metrics_addr).await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let body = http("/metrics", metrics_addr).await;
    assert!(
        body.starts_with("HTTP/1.1 200")
            && body.contains(
                "pyagent_rejected_messages_total{channel=\"client\",reason=\"replay\"} 1"
            ),
        "{body}"
    );
    assert!(http("/nope", metrics_addr)
        .await
        .starts_with("HTTP/1.1 404"));
    assert!(text.contains("pyagent_kv_blocks_total 64"));
    assert!(text.contains("pyagent_commit_latency_seconds_count"));
    // Group commit: concurrent commands share log entries (and fsyncs).
    let commands = n_seq + per_client * clients;
    eprintln!(
        "FIGURES: {commands} sequential+concurrent commands in {} log entries",
        st.last_log_index
    );
    assert!(st.last_log_index < commands);

    // Restart every node from its data dir: the acknowledged writes are all there.
    for n in nodes.drain(..) {
        n.shutdown().await;
    }
    for cfg in cfgs.iter().cloned() {
        let id = cfg.node_id;
        let l = rebind(&cfg);
        nodes.push(node::start(cfg, key(id), l).await.unwrap());
    }
    let leader = wait_leader(&nodes).await;
    let mut c = client(&nodes[(leader - 1) as usize]).await;
    for key in ["k0", "k199", "c31-99", "once", "out"] {
        let g = c
            .get(proto::GetRequest {
                key: key.into(),
                stale: false,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(g.found, "{key} lost after restart");
    }
    let g = c
        .get(proto::GetRequest {
            key: "evil".into(),
            stale: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!g.found);
    let ids: BTreeSet<u64> = c
        .status(proto::StatusRequest {})
        .await
        .unwrap()
        .into_inner()
        .members
        .iter()
        .map(|m| m.node_id)
        .collect();
    assert_eq!(ids, BTreeSet::from([1, 2, 3]));
    for n in nodes {
        n.shutdown().await;
    }
}

/// Replacing a member: a fourth node joins (learner, then voter) through a signed AddMember,
/// catches up, and a former voter leaves through RemoveMember; the group keeps committing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_a_member_through_raft_membership_changes() {
    let root = std::env::temp_dir().join(format!("pyagent-membership-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let _guard = Dir(root.clone());
    let mut ls: Vec<Listeners> = (0..4).map(|_| listeners()).collect();
    let mut cfgs = configs(&root, &ls);
    for c in cfgs.iter_mut() {
        c.snapshot_every_entries = 20; // so the newcomer must be sent a snapshot
    }
    for c in cfgs.iter_mut().take(3) {
        c.members.retain(|m| m.node_id != 4); // the first three do not know the newcomer
    }
    cfgs[3].join = true;
    let l4 = ls.pop().unwrap();
    let nodes = start_nodes(&cfgs[..3], ls).await;
    let leader = wait_leader(&nodes).await;
    let signer = Signer::new(1, SWARM.into(), key(1));
    let mut c = client(&nodes[(leader - 1) as usize]).await;
    assert!(
        c.submit(signed(&signer, signer.next_seq(), put("before", b"1")))
            .await
            .unwrap()
            .into_inner()
            .applied
    );
    // 80 MiB of state: the snapshot the newcomer is sent takes longer to sign, send, check and
    // write than openraft's default budget for one (200 ms), which it never caught up under.
    put_mib_values(&mut c, &signer, "fill", 80).await;
    let ln = &nodes[(leader - 1) as usize];
    ln.shared
        .raft
        .wait(Some(SETTLE))
        .metrics(
            |m| m.purged.is_some_and(|p| p.index >= 20),
            "leader purged its log after a snapshot",
        )
        .await
        .unwrap();

    let n4 = node::start(cfgs[3].clone(), key(4), l4).await.unwrap();
    let m4 = &cfgs[3].members[3];
    let add = Op::AddMember(proto::AddMember {
        member: Some(proto::Member {
            node_id: 4,
            name: m4.name.clone(),
            raft: m4.raft.clone(),
            grpc: m4.grpc.clone(),
            voter: true,
            public_key: m4.public_key.clone().unwrap(),
        }),
    });
    let r = c
        .submit(signed(&signer, signer.next_seq(), add))
        .await
        .unwrap()
        .into_inner();
    assert!(r.applied, "{r:?}");
    let leaving = (1..=3).find(|id| *id != leader).unwrap();
    let remove = Op::RemoveMember(proto::RemoveMember { node_id: leaving });
    let r = c
        .submit(signed(&signer, signer.next_seq(), remove))
        .await
        .unwrap()
        .into_inner();
    assert!(r.applied, "{r:?}");
    let r = c
        .submit(signed(&signer, signer.next_seq(), put("after", b"2")))
        .await
        .unwrap()
        .into_inner();
    assert!(r.applied);

    let st = c
        .status(proto::StatusRequest {})
        .await
        .unwrap()
        .into_inner();
    let voters: BTreeSet<u64> = st
        .members
        .iter()
        .filter(|m| m.voter)
        .map(|m| m.node_id)
        .collect();
    let expected: BTreeSet<u64> = [1, 2, 3, 4]
        .into_iter()
        .filter(|id| *id != leaving)
        .collect();
    assert_eq!(voters, expected);
    // The newcomer holds the replicated state, including what was written before it joined.
    n4.shared
        .raft
        .wait(Some(SETTLE))
        .applied_index_at_least(Some(r.index), "newcomer caught up")
        .await
        .unwrap();
    let mut c4 = client(&n4).await;
    assert!(
        n4.shared.raft.metrics().borrow_watched().snapshot.is_some(),
        "the newcomer was not sent a snapshot"
    );
    for k in ["before", "fill79", "after"] {
        let g = c4
            .get(proto::GetRequest {
                key: k.into(),
                stale: true,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(g.found, "{k} missing on the new member");
    }
    n4.shutdown().await;
    for n in nodes {
        n.shutdown().await;
    }
}

/// The leader stops: the other two elect a new leader (higher term) and keep committing; the old
/// leader comes back as a follower and catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_failover() {
    let root = std::env::temp_dir().join(format!("pyagent-failover-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let _guard = Dir(root.clone());
    let ls: Vec<Listeners> = (0..3).map(|_| listeners()).collect();
    let cfgs = configs(&root, &ls);
    let mut nodes = Vec::new();
    for (cfg, l) in cfgs.iter().cloned().zip(ls) {
        let id = cfg.node_id;
        nodes.push(Some(node::start(cfg, key(id), l).await.unwrap()));
    }
    let live: Vec<Node> = nodes.iter_mut().map(|n| n.take().unwrap()).collect();
    let old = wait_leader(&live).await;
    let old_term = live[0].shared.raft.metrics().borrow_watched().current_term;
    let signer = Signer::new(1, SWARM.into(), key(1));
    let mut c = client(&live[(old - 1) as usize]).await;
    assert!(
        c.submit(signed(&signer, signer.next_seq(), put("a", b"1")))
            .await
            .unwrap()
            .into_inner()
            .applied
    );

    let mut rest = Vec::new();
    for n in live {
        if n.shared.cfg.node_id == old {
            n.shutdown().await;
        } else {
            rest.push(n);
        }
    }
    let m = rest[0]
        .shared
        .raft
        .wait(Some(SETTLE))
        .metrics(
            |m| m.current_leader.is_some_and(|l| l != old),
            "a new leader",
        )
        .await
        .unwrap();
    let new = m.current_leader.unwrap();
    assert!(m.current_term > old_term);
    let ni = rest
        .iter()
        .position(|n| n.shared.cfg.node_id == new)
        .unwrap();
    let mut c = client(&rest[ni]).await;
    // 40 MiB of entries the old leader misses (no snapshot: it catches up from the log, in
    // AppendEntries bounded in bytes; one batch of them never arrived within its budget)
    put_mib_values(&mut c, &signer, "big", 40).await;
    let r = c
        .submit(signed(&signer, signer.next_seq(), put("b", b"2")))
        .await
        .unwrap()
        .into_inner();
    assert!(r.applied);

    let cfg = cfgs[(old - 1) as usize].clone();
    let back = node::start(cfg.clone(), key(old), rebind(&cfg))
        .await
        .unwrap();
    back.shared
        .raft
        .wait(Some(SETTLE))
        .applied_index_at_least(Some(r.index), "old leader caught up")
        .await
        .unwrap();
    let mut cb = client(&back).await;
    for k in ["a", "b"] {
        assert!(
            cb.get(proto::GetRequest {
                key: k.into(),
                stale: true
            })
            .await
            .unwrap()
            .into_inner()
            .found
        );
    }
    back.shutdown().await;
    for n in rest {
        n.shutdown().await;
    }
}

/// A leader that has lost its quorum keeps leading (openraft 0.10's default) but cannot renew
/// its lease: a write waits for one (not for ever: about `batching::LEASE_WAIT`) and is then refused
/// as "no leader known". A write waiting while a follower comes back goes ahead once the
/// follower acknowledges the leader, without the client retrying.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_without_a_quorum_waits_a_bounded_time_for_its_lease() {
    let root = std::env::temp_dir().join(format!("pyagent-lease-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let _guard = Dir(root.clone());
    let ls: Vec<Listeners> = (0..3).map(|_| listeners()).collect();
    let cfgs = configs(&root, &ls);
    let nodes = start_nodes(&cfgs, ls).await;
    let leader = wait_leader(&nodes).await;
    let signer = Signer::new(1, SWARM.into(), key(1));
    let mut lead = None;
    for n in nodes {
        if n.shared.cfg.node_id == leader {
            lead = Some(n);
        } else {
            n.shutdown().await;
        }
    }
    let lead = lead.unwrap();
    let mut c = client(&lead).await;
    // Past the lease (electionTimeoutMs[1] = 2000 in these configs) since the last answer.
    let lease = Duration::from_millis(cfgs[0].election_timeout_ms.1);
    tokio::time::sleep(lease + Duration::from_millis(300)).await;

    let t = Instant::now();
    let err = c
        .submit(signed(&signer, signer.next_seq(), put("alone", b"1")))
        .await
        .unwrap_err();
    let waited = t.elapsed();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
    assert!(err.metadata().get("pyagent-leader-id").is_none());
    assert!(
        waited >= pyagent_node::batching::LEASE_WAIT - Duration::from_millis(50),
        "refused after {waited:?}, without waiting for a lease"
    );
    assert!(
        waited < pyagent_node::batching::LEASE_WAIT + Duration::from_secs(2),
        "refused only after {waited:?}"
    );
    assert_eq!(
        lead.shared.raft.metrics().borrow_watched().state,
        openraft::ServerState::Leader
    );

    // A write that is waiting when a follower comes back commits.
    let mut cw = c.clone();
    let seq = signer.next_seq();
    let cmd = signed(&signer, seq, put("back", b"2"));
    let pending = tokio::spawn(async move { cw.submit(cmd).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let fi = if leader == 1 { 1 } else { 0 };
    let cfg = cfgs[fi].clone();
    let back = node::start(cfg.clone(), key(cfg.node_id), rebind(&cfg))
        .await
        .unwrap();
    let r = tokio::time::timeout(SETTLE, pending)
        .await
        .expect("the waiting write was not answered")
        .unwrap()
        .unwrap()
        .into_inner();
    assert!(r.applied, "{r:?}");

    back.shutdown().await;
    lead.shutdown().await;
}

/// The configuration's non-voters are added as learners by the bootstrapper once it leads (under
/// openraft 0.10, once its lease lets it write).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_non_voters_join_as_learners() {
    let root = std::env::temp_dir().join(format!("pyagent-learners-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let _guard = Dir(root.clone());
    let ls: Vec<Listeners> = (0..4).map(|_| listeners()).collect();
    let mut cfgs = configs(&root, &ls);
    for cfg in &mut cfgs {
        cfg.members[3].voter = false;
    }
    let nodes = start_nodes(&cfgs, ls).await;
    let m = nodes[0]
        .shared
        .raft
        .wait(Some(SETTLE))
        .metrics(
            |m| {
                m.membership_config
                    .membership()
                    .learner_ids()
                    .any(|l| l == 4)
            },
            "node 4 a learner",
        )
        .await
        .expect("the non-voter was not added as a learner");
    let voters: BTreeSet<u64> = m.membership_config.membership().voter_ids().collect();
    assert_eq!(voters, BTreeSet::from([1, 2, 3]));
    for n in nodes {
        n.shutdown().await;
    }
}

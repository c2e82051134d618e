//! Damage to a node's Raft state (docs/raft-recovery.md): the node rejoins by itself, does not
//! vote until it has caught up, and no acknowledged write is lost; a partitioned minority's term
//! stays put (pre-vote). Three nodes in one process on loopback, as in tests/cluster.rs (whose
//! helpers these repeat in small).

mod common;
use common::{key, listeners, rebind, start_nodes, Dir};
use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use openraft::async_runtime::WatchReceiver as _;
use prost::Message as _;
use pyagent_node::auth::Signer;
use pyagent_node::config::NodeConfig;
use pyagent_node::node::{self, Listeners, Node};
use pyagent_node::proto::{self, command::Op, node_client::NodeClient};
use pyagent_node::storage::{self, COMMITTED_FILE, LOG_FILE, VOTE_FILE};
use pyagent_node::types::LogId;

const SWARM: &str = "recovery-swarm";
/// Generous: two busy cores, several in-process clusters at once.
const SETTLE: Duration = Duration::from_secs(90);

fn configs(root: &Path, ls: &[Listeners]) -> Vec<NodeConfig> {
    common::configs(SWARM, root, ls, 100)
}

/// Three nodes started in a fresh folder (removed when the guard drops): their configurations
/// and the running nodes, in node-id order.
async fn three_nodes(tag: &str) -> (Dir, Vec<NodeConfig>, Vec<Node>) {
    let root = std::env::temp_dir().join(format!("pyagent-rec-{tag}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&root);
    let guard = Dir(root.clone());
    let ls: Vec<Listeners> = (0..3).map(|_| listeners()).collect();
    let cfgs = configs(&root, &ls);
    let nodes = start_nodes(&cfgs, ls).await;
    (guard, cfgs, nodes)
}

/// Stops every node but `id`, which it returns.
async fn keep_only(nodes: Vec<Node>, id: u64) -> Node {
    let mut kept = None;
    for n in nodes {
        if n.shared.cfg.node_id == id {
            kept = Some(n);
        } else {
            n.shutdown().await;
        }
    }
    kept.expect("the node to keep")
}

/// Waits until `cond` holds for `n`, re-checking on every change of its Raft metrics (and every
/// second: the recovery flag is not one of them).
async fn wait_until(n: &Node, what: &str, cond: impl Fn(&Node) -> bool) {
    let deadline = tokio::time::Instant::now() + SETTLE;
    let mut rx = n.shared.raft.metrics();
    while !cond(n) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "node {}: not {what} within {SETTLE:?}: {:?}",
            n.shared.cfg.node_id,
            n.shared.raft.metrics().borrow_watched().clone()
        );
        let _ = tokio::time::timeout(Duration::from_secs(1), rx.changed()).await;
    }
}

/// The leader as every running node names it, in one term.
async fn wait_leader(nodes: &[&Node]) -> u64 {
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        let views: Vec<_> = nodes
            .iter()
            .map(|n| {
                let m = n.shared.raft.metrics().borrow_watched().clone();
                (m.current_leader, m.current_term, m.state)
            })
            .collect();
        if let (Some(l), t, _) = views[0] {
            let agree = views.iter().all(|v| v.0 == Some(l) && v.1 == t);
            let leads = nodes
                .iter()
                .zip(&views)
                .any(|(n, v)| n.shared.cfg.node_id == l && v.2 == openraft::ServerState::Leader);
            if agree && leads {
                return l;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no leader: {views:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
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

fn put(signer: &Signer, key: &str, value: &[u8]) -> proto::SignedCommand {
    let command = proto::Command {
        op: Some(Op::Put(proto::Put {
            key: key.into(),
            value: value.to_vec(),
            fence: None,
        })),
    }
    .encode_to_vec();
    let seq = signer.next_seq();
    proto::SignedCommand {
        signature: signer.sign_command(seq, &command),
        command,
        signer: signer.node_id,
        seq,
    }
}

/// Writes `keys` through `leader` (each acknowledged); returns the last write's index.
async fn write(leader: &Node, signer: &Signer, keys: std::ops::Range<usize>) -> u64 {
    let mut c = client(leader).await;
    let mut last = 0;
    for i in keys {
        let r = c
            .submit(put(signer, &format!("k{i}"), format!("v{i}").as_bytes()))
            .await
            .unwrap()
            .into_inner();
        assert!(r.applied, "k{i} not applied: {r:?}");
        last = r.index;
    }
    last
}

/// Every key in `keys` is on `n` with its value (a stale read: what this replica holds).
async fn assert_holds(n: &Node, keys: std::ops::Range<usize>) {
    let mut c = client(n).await;
    for i in keys {
        let got = c
            .get(proto::GetRequest {
                key: format!("k{i}"),
                stale: true,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(
            got.found && got.value == format!("v{i}").as_bytes(),
            "node {} lost k{i}",
            n.shared.cfg.node_id
        );
    }
}

#[derive(Debug, Clone, Copy)]
enum Damage {
    /// One bit flipped in the payload of a record in the middle of the log.
    FlipMidLog,
    /// The log cut before the last records the node knew committed (its committed hint).
    CutTail,
    /// raft/ and snapshots/ removed (the identity key stays: it is who the node is).
    Wipe,
    /// Every snapshot corrupt, while the log was purged past them.
    CorruptSnapshots,
    /// vote.bin removed; the log stays.
    LoseVote,
}

fn records(dir: &Path) -> Vec<(u64, u64)> {
    let bytes = fs::read(dir.join("raft").join(LOG_FILE)).unwrap();
    storage::scan(&bytes)
        .entries
        .iter()
        .map(|(off, e)| (*off, e.log_id.index))
        .collect()
}

fn damage(data: &Path, how: Damage) {
    let log = data.join("raft").join(LOG_FILE);
    match how {
        Damage::FlipMidLog => {
            let recs = records(data);
            assert!(recs.len() >= 4, "too short a log to damage: {recs:?}");
            let (off, _) = recs[recs.len() / 2];
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&log)
                .unwrap();
            let at = off + 36 + 3; // inside the payload
            let mut b = [0u8; 1];
            f.read_exact_at(&mut b, at).unwrap();
            f.write_all_at(&[b[0] ^ 0x10], at).unwrap();
        }
        Damage::CutTail => {
            let hint: Option<LogId> =
                storage::decode_checked(&fs::read(data.join("raft").join(COMMITTED_FILE)).unwrap())
                    .unwrap();
            let hint = hint.expect("a committed hint").index;
            let recs = records(data);
            let (off, _) = *recs
                .iter()
                .find(|(_, i)| *i + 3 > hint)
                .expect("records before the hint");
            OpenOptions::new()
                .write(true)
                .open(&log)
                .unwrap()
                .set_len(off)
                .unwrap();
        }
        Damage::LoseVote => fs::remove_file(data.join("raft").join(VOTE_FILE)).unwrap(),
        Damage::Wipe => {
            fs::remove_dir_all(data.join("raft")).unwrap();
            fs::remove_dir_all(data.join("snapshots")).unwrap();
        }
        Damage::CorruptSnapshots => {
            let mut n = 0;
            for e in fs::read_dir(data.join("snapshots")).unwrap() {
                let p = e.unwrap().path();
                let mut b = fs::read(&p).unwrap();
                let mid = b.len() / 2;
                b[mid] ^= 0x01;
                fs::write(&p, b).unwrap();
                n += 1;
            }
            assert!(n > 0, "no snapshot to corrupt");
        }
    }
}

/// One damage on one node (a follower, or the leader): the node starts (never refuses to),
/// knows it is recovering, does not vote, and rejoins by itself while writes go on; it then holds
/// every acknowledged write. Returns the time from its start to voting again.
async fn damaged_node_rejoins(name: &str, how: Damage, on_leader: bool) -> Duration {
    let (_guard, cfgs, nodes) = three_nodes(name).await;
    let leader = wait_leader(&nodes.iter().collect::<Vec<_>>()).await;
    let signer = Signer::new(1, SWARM.into(), key(1));
    let li = (leader - 1) as usize;
    write(&nodes[li], &signer, 0..350).await;

    let victim = if on_leader { leader } else { leader % 3 + 1 };
    let vi = (victim - 1) as usize;
    // Let the victim's committed hint reach its disk (written when its log writer is idle).
    wait_until(&nodes[vi], "applied", |n| {
        n.shared
            .raft
            .metrics()
            .borrow_watched()
            .last_applied
            .map(|a| a.index)
            >= nodes[li]
                .shared
                .raft
                .metrics()
                .borrow_watched()
                .last_applied
                .map(|a| a.index)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut rest = Vec::new();
    let mut stopped = None;
    for n in nodes {
        if n.shared.cfg.node_id == victim {
            stopped = Some(n);
        } else {
            rest.push(n);
        }
    }
    stopped.unwrap().shutdown().await;
    damage(&cfgs[vi].data_dir, how);

    let started = Instant::now();
    let back = node::start(cfgs[vi].clone(), key(victim), rebind(&cfgs[vi]))
        .await
        .unwrap_or_else(|e| panic!("{name}: the damaged node did not start: {e}"));
    assert!(
        back.shared.recovery.is_recovering(),
        "{name}: damage not detected"
    );
    let ready = back.shared.health().unwrap_or_default();
    assert!(
        ready.starts_with("recovering"),
        "{name}: /healthz said {ready:?}"
    );
    // Writes go on meanwhile (on the leader's side; a new one if the leader was the victim).
    let refs: Vec<&Node> = rest.iter().collect();
    let leader = wait_leader(&refs).await;
    let lead = rest
        .iter()
        .find(|n| n.shared.cfg.node_id == leader)
        .unwrap();
    let last = write(lead, &signer, 350..450).await;
    wait_until(&back, "caught up and voting", |n| {
        !n.shared.recovery.is_recovering()
            && n.shared
                .raft
                .metrics()
                .borrow_watched()
                .last_applied
                .map(|a| a.index)
                >= Some(last)
    })
    .await;
    let rejoined = Duration::from_millis(back.shared.recovery.rejoined_after_ms().unwrap());
    println!(
        "{name}: {:?}, damage: {:?}; rejoined (voting again) {rejoined:?} after its start, caught \
         up to {last} after {:?}",
        how,
        back.shared.recovery.damage(),
        started.elapsed()
    );
    assert_holds(&back, 0..450).await;
    assert_eq!(back.shared.health(), None);
    back.shutdown().await;
    for n in rest {
        n.shutdown().await;
    }
    rejoined
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_with_a_bit_flipped_mid_log_rejoins() {
    damaged_node_rejoins("flip", Damage::FlipMidLog, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_whose_last_records_were_cut_rejoins() {
    damaged_node_rejoins("cut", Damage::CutTail, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_whose_raft_state_was_wiped_rejoins() {
    damaged_node_rejoins("wipe", Damage::Wipe, false).await;
}

/// Issue 24's "Cannot re-apply logs: need logs from index ..., but purged up to ...": the node
/// starts from an older snapshot (here: none) with an empty log and is sent the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_whose_snapshots_are_all_corrupt_starts_and_rejoins() {
    damaged_node_rejoins("snap", Damage::CorruptSnapshots, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_with_a_bit_flipped_mid_log_rejoins_as_a_follower() {
    damaged_node_rejoins("leader-flip", Damage::FlipMidLog, true).await;
}

/// The safety half: a node that forgot its state does not vote. With the leader down, the one
/// intact node cannot be elected by the recovering node's vote, even though it asks (and both
/// would be a majority); once the leader is back there is a leader again, and the recovering
/// node catches up and votes again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovering_node_does_not_vote() {
    let (_guard, cfgs, nodes) = three_nodes("novote").await;
    let leader = wait_leader(&nodes.iter().collect::<Vec<_>>()).await;
    let signer = Signer::new(1, SWARM.into(), key(1));
    write(&nodes[(leader - 1) as usize], &signer, 0..50).await;
    let wiped = leader % 3 + 1;
    let intact = wiped % 3 + 1;
    assert_ne!(intact, leader);
    let intact_node = keep_only(nodes, intact).await;
    let wi = (wiped - 1) as usize;
    damage(&cfgs[wi].data_dir, Damage::Wipe);
    let back = node::start(cfgs[wi].clone(), key(wiped), rebind(&cfgs[wi]))
        .await
        .unwrap();
    assert!(back.shared.recovery.is_recovering());
    // The intact node asks for votes (pre-votes first) and is refused, again and again.
    wait_until(&back, "asked for votes", |n| {
        n.shared.recovery.refused_votes() >= 3
    })
    .await;
    for n in [&intact_node, &back] {
        let m = n.shared.raft.metrics().borrow_watched().clone();
        assert_ne!(
            m.state,
            openraft::ServerState::Leader,
            "node {} was elected with a recovering node's vote",
            n.shared.cfg.node_id
        );
    }
    let li = (leader - 1) as usize;
    let old = node::start(cfgs[li].clone(), key(leader), rebind(&cfgs[li]))
        .await
        .unwrap();
    let all = [&intact_node, &back, &old];
    let now = wait_leader(&all).await;
    assert_ne!(now, wiped);
    wait_until(&back, "caught up and voting", |n| {
        !n.shared.recovery.is_recovering()
    })
    .await;
    assert_holds(&back, 0..50).await;
    for n in [intact_node, back, old] {
        n.shutdown().await;
    }
}

/// A node whose vote was lost takes no entries until `n - m + 1` other voters (here both) have
/// told it their terms (recovery.rs: a stale leader of an older term could otherwise commit
/// through it). With one of the two down it refuses even the current leader and says why on
/// /healthz; once that one is back, it learns the leader's term as its floor and rejoins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_lost_its_vote_waits_for_the_other_voters_terms() {
    let (_guard, cfgs, nodes) = three_nodes("lostvote").await;
    let leader = wait_leader(&nodes.iter().collect::<Vec<_>>()).await;
    let signer = Signer::new(1, SWARM.into(), key(1));
    write(&nodes[(leader - 1) as usize], &signer, 0..50).await;
    let term = nodes[(leader - 1) as usize]
        .shared
        .raft
        .metrics()
        .borrow_watched()
        .current_term;
    let lost = leader % 3 + 1;
    let other = lost % 3 + 1;
    let lead = keep_only(nodes, leader).await;
    let li = (lost - 1) as usize;
    damage(&cfgs[li].data_dir, Damage::LoseVote);
    let back = node::start(cfgs[li].clone(), key(lost), rebind(&cfgs[li]))
        .await
        .unwrap();
    assert!(back.shared.recovery.needs_floor());
    wait_until(&back, "refusing the leader, its term unknown", |n| {
        n.shared.recovery.refused_leaders() >= 3
            && n.shared
                .health()
                .is_some_and(|h| h.contains("vote lost") && h.contains("(1 answered)"))
    })
    .await;
    assert!(back.shared.recovery.needs_floor());
    let oi = (other - 1) as usize;
    let returned = node::start(cfgs[oi].clone(), key(other), rebind(&cfgs[oi]))
        .await
        .unwrap();
    wait_until(&back, "caught up and voting", |n| {
        !n.shared.recovery.is_recovering()
    })
    .await;
    let floor = back.shared.recovery.floor().unwrap();
    assert!(
        floor >= term,
        "floor {floor} below the leader's term {term}"
    );
    assert_holds(&back, 0..50).await;
    assert_eq!(back.shared.health(), None);
    for n in [lead, back, returned] {
        n.shutdown().await;
    }
}

/// Pre-vote: a node cut off from the majority does not raise its term. Measured both ways on
/// the same node (openraft's runtime switch), so the test fails if pre-vote stops working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_minority_keeps_its_term() {
    let (_guard, _, nodes) = three_nodes("prevote").await;
    let leader = wait_leader(&nodes.iter().collect::<Vec<_>>()).await;
    let alone_id = leader % 3 + 1;
    let alone = keep_only(nodes, alone_id).await;
    let term = || alone.shared.raft.metrics().borrow_watched().current_term;
    // Several election timeouts (1-2 s here) each way.
    let window = Duration::from_secs(8);
    let before = term();
    tokio::time::sleep(window).await;
    let with_pre_vote = term() - before;
    alone.shared.raft.runtime_config().pre_vote(false);
    let before = term();
    tokio::time::sleep(window).await;
    let without = term() - before;
    println!("terms gained alone in {window:?}: with pre-vote {with_pre_vote}, without {without}");
    assert_eq!(
        with_pre_vote, 0,
        "a lone node raised its term under pre-vote"
    );
    assert!(
        without >= 1,
        "the comparison is void: no election timeout fired"
    );
    alone.shutdown().await;
}

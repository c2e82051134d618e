//! Real meshes on loopback, in one process: admission, gossip, limits, the neighbour bound and
//! the feed's catch-up.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use pyagent_mesh::{
    keypair_of, Delivered, Lesson, MemberKey, Mesh, MeshConfig, MeshError, Payload, Refusal,
    Rejection, Seed, Topic,
};

/// Generous: a loaded 2-core machine may be slow; a passing run does not wait for it.
const PATIENCE: Duration = Duration::from_secs(60);

fn secret(i: u8) -> [u8; 32] {
    [i; 32]
}

fn member(i: u8) -> MemberKey {
    let public = keypair_of(secret(i))
        .public()
        .try_into_ed25519()
        .unwrap()
        .to_bytes();
    MemberKey {
        node_id: u64::from(i),
        public_key: public,
    }
}

fn config(i: u8) -> MeshConfig {
    let mut cfg = MeshConfig::new("test", secret(i), "127.0.0.1:0".parse().unwrap());
    cfg.redial_every = Duration::from_millis(200);
    cfg.heartbeat = Duration::from_millis(100);
    cfg
}

async fn start(cfg: MeshConfig, members: &[u8]) -> Mesh {
    let keys: Vec<MemberKey> = members.iter().map(|i| member(*i)).collect();
    Mesh::start(cfg, &keys).await.unwrap()
}

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn lesson(text: &str) -> Payload {
    Payload::Lesson(Lesson {
        text: text.into(),
        tags: vec![],
        task: None,
    })
}

/// Publishes until gossipsub has a peer to send to (right after connecting it may have none).
async fn publish(mesh: &Mesh, payload: Payload) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match mesh.publish(payload.clone()).await {
            Ok(()) => return,
            Err(MeshError::Publish { .. }) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("publish: {e}"),
        }
    }
}

async fn next_lesson(rx: &mut tokio::sync::broadcast::Receiver<Delivered>) -> (u64, String) {
    loop {
        let got = tokio::time::timeout(PATIENCE, rx.recv())
            .await
            .unwrap()
            .unwrap();
        if let Payload::Lesson(l) = got.payload {
            return (got.from, l.text);
        }
    }
}

/// Waits until every mesh holds `n` neighbours.
async fn wait_neighbours(meshes: &[Mesh], n: usize) {
    for mesh in meshes {
        eventually("every node has its neighbours", || async {
            mesh.peers().await.unwrap().len() == n
        })
        .await;
    }
}

/// Connections `mesh` refused for `why`.
fn refused(mesh: &Mesh, why: Refusal) -> u64 {
    mesh.stats().refused.get(&why).copied().unwrap_or(0)
}

async fn stop_all(meshes: Vec<Mesh>) {
    for mesh in meshes {
        mesh.stop().await;
    }
}

async fn ring(n: u8, neighbours: u32, tune: impl Fn(&mut MeshConfig)) -> Vec<Mesh> {
    let everyone: Vec<u8> = (1..=n).collect();
    let mut meshes = Vec::new();
    for i in 1..=n {
        let mut cfg = config(i);
        cfg.neighbours = neighbours;
        tune(&mut cfg);
        meshes.push(start(cfg, &everyone).await);
    }
    let addrs: Vec<SocketAddr> = meshes.iter().map(Mesh::listening).collect();
    for (i, mesh) in meshes.iter().enumerate() {
        let next = addrs[(i + 1) % addrs.len()];
        mesh.add_seed(Seed::Addr(next)).await.unwrap();
    }
    meshes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_connect_and_a_lesson_reaches_every_other_member() {
    let meshes = ring(3, 30, |_| {}).await;
    let mut rx: Vec<_> = meshes.iter().map(Mesh::subscribe).collect();
    wait_neighbours(&meshes, 2).await;
    publish(&meshes[2], lesson("pin the toolchain")).await;
    for r in &mut rx[..2] {
        assert_eq!(next_lesson(r).await, (3, "pin the toolchain".into()));
    }
    let peers = meshes[0].peers().await.unwrap();
    let mut ids: Vec<u64> = peers.iter().map(|p| p.node_id).collect();
    ids.sort_unstable();
    assert_eq!(ids, vec![2, 3]);
    assert_eq!(meshes[0].stats().delivered.get(&Topic::Feed), Some(&1));
    assert_eq!(meshes[2].stats().published.get(&Topic::Feed), Some(&1));
    stop_all(meshes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_with_its_own_key_is_refused_and_reads_nothing() {
    let meshes = ring(2, 30, |_| {}).await;
    // The stranger believes node 1 is a member and dials it; node 1 does not know its key.
    let stranger = start(config(66), &[1, 66]).await;
    let mut stranger_rx = stranger.subscribe();
    stranger
        .add_seed(Seed::Addr(meshes[0].listening()))
        .await
        .unwrap();
    eventually("node 1 refuses the stranger", || async {
        refused(&meshes[0], Refusal::NotAMember) >= 1
    })
    .await;
    eventually("the members see each other", || async {
        meshes[0].peers().await.unwrap().len() == 1
    })
    .await;
    publish(&meshes[1], lesson("members only")).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(stranger.peers().await.unwrap().is_empty());
    assert!(stranger_rx.try_recv().is_err());
    assert!(meshes[0]
        .peers()
        .await
        .unwrap()
        .iter()
        .all(|p| p.node_id == 2));
    stranger.stop().await;
    stop_all(meshes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_member_is_cut_off_and_gets_nothing_sent_after() {
    let meshes = ring(3, 30, |_| {}).await;
    wait_neighbours(&meshes, 2).await;
    let mut removed_rx = meshes[2].subscribe();
    for mesh in &meshes[..2] {
        mesh.set_members(&[member(1), member(2)]).await.unwrap();
    }
    for mesh in &meshes[..2] {
        eventually("node 3 is disconnected", || async {
            mesh.peers().await.unwrap().iter().all(|p| p.node_id != 3)
        })
        .await;
    }
    let mut rx = meshes[1].subscribe();
    publish(&meshes[0], lesson("after the removal")).await;
    assert_eq!(next_lesson(&mut rx).await, (1, "after the removal".into()));
    // Node 3 keeps dialling its seed (it still counts node 1 a member) and is refused each
    // time, after the handshake and before any protocol runs.
    eventually("node 1 refuses node 3", || async {
        refused(&meshes[0], Refusal::NotAMember) >= 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(removed_rx.try_recv().is_err());
    stop_all(meshes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neighbours_bound_the_peers_and_gossip_still_reaches_everyone() {
    let meshes = ring(6, 2, |_| {}).await;
    // A ring: every node dials its successor and is dialled by its predecessor.
    wait_neighbours(&meshes, 2).await;
    let mut far = meshes[3].subscribe();
    publish(&meshes[0], lesson("through the overlay")).await;
    assert_eq!(
        next_lesson(&mut far).await,
        (1, "through the overlay".into())
    );
    // A seventh node that dials node 1 is turned away: node 1 already keeps two.
    let everyone: Vec<u8> = (1..=7).collect();
    for mesh in &meshes {
        let keys: Vec<MemberKey> = everyone.iter().map(|i| member(*i)).collect();
        mesh.set_members(&keys).await.unwrap();
    }
    let mut cfg = config(7);
    cfg.neighbours = 2;
    let late = start(cfg, &everyone).await;
    late.add_seed(Seed::Addr(meshes[0].listening()))
        .await
        .unwrap();
    eventually("node 1 turns the seventh away", || async {
        refused(&meshes[0], Refusal::NeighbourLimit) >= 1
    })
    .await;
    for mesh in &meshes {
        assert!(mesh.peers().await.unwrap().len() <= 2);
    }
    late.stop().await;
    stop_all(meshes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_flooding_authors_are_dropped_by_the_receivers() {
    // Node 1 may send large messages; node 2 takes at most 1 KiB and 5 a minute per author.
    let everyone = [1u8, 2];
    let mut big = config(1);
    big.limits.max_message_bytes = 64 * 1024;
    let mut strict = config(2);
    strict.limits.max_message_bytes = 1024;
    strict.limits.per_sender_per_minute = 5;
    let sender = start(big, &everyone).await;
    let receiver = start(strict, &everyone).await;
    receiver
        .add_seed(Seed::Addr(sender.listening()))
        .await
        .unwrap();
    let mut rx = receiver.subscribe();
    eventually("connected", || async {
        receiver.peers().await.unwrap().len() == 1
    })
    .await;

    publish(&sender, lesson(&"x".repeat(2000))).await;
    eventually("the large one is rejected", || async {
        receiver
            .stats()
            .rejected
            .get(&(Topic::Feed, Rejection::TooLarge))
            == Some(&1)
    })
    .await;
    for i in 0..10 {
        publish(&sender, lesson(&format!("flood {i}"))).await;
    }
    // Five pass (gossip does not keep one author's order), the other five are dropped.
    let mut passed = std::collections::BTreeSet::new();
    for _ in 0..5 {
        let text = next_lesson(&mut rx).await.1;
        assert!(text.starts_with("flood "), "{text}");
        passed.insert(text);
    }
    assert_eq!(passed.len(), 5);
    eventually("the rest of the flood is dropped", || async {
        receiver
            .stats()
            .rejected
            .get(&(Topic::Feed, Rejection::RateLimited))
            == Some(&5)
    })
    .await;
    // The sender's own check refuses what is over its own limit before it leaves.
    let refused = sender.publish(lesson(&"y".repeat(70 * 1024))).await;
    assert!(
        matches!(refused, Err(MeshError::TooLarge { .. })),
        "{refused:?}"
    );
    sender.stop().await;
    receiver.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_joins_later_catches_up_with_the_feed_from_a_neighbour() {
    let meshes = ring(2, 30, |_| {}).await;
    eventually("connected", || async {
        meshes[0].peers().await.unwrap().len() == 1
    })
    .await;
    publish(&meshes[0], lesson("first lesson")).await;
    publish(&meshes[1], lesson("second lesson")).await;
    eventually("node 1 holds both", || async {
        meshes[0].feed(10).len() == 2
    })
    .await;
    let late = start(config(3), &[1, 2, 3]).await;
    for mesh in &meshes {
        mesh.set_members(&[member(1), member(2), member(3)])
            .await
            .unwrap();
    }
    late.add_seed(Seed::Addr(meshes[0].listening()))
        .await
        .unwrap();
    eventually("the late node holds the feed", || async {
        late.feed(10).len() == 2
    })
    .await;
    let texts: Vec<String> = late.feed(10).into_iter().map(|(_, l)| l.text).collect();
    assert_eq!(texts, vec!["first lesson", "second lesson"]);
    late.stop().await;
    stop_all(meshes).await;
}

/// Sessions kept across a restart (vodozemac pickles, encrypted with a key derived from the
/// node's own): a member restarted with its saved state keeps its identity, so the others see
/// no new one and re-key nothing; it reads the others' sessions of before at once and is read.
/// The same member restarted without it is a new identity to the others (the control).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_member_resumes_its_encryption_from_its_saved_state() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("pyagent-mesh-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("e2e.json");
    let mut saving = config(1);
    saving.state_file = Some(state.clone());
    let b = start(config(2), &[1, 2]).await;
    let mut from_b = b.subscribe();

    let first = start(saving.clone(), &[1, 2]).await;
    first.add_seed(Seed::Addr(b.listening())).await.unwrap();
    wait_neighbours(std::slice::from_ref(&first), 1).await;
    publish(&first, lesson("before")).await;
    assert_eq!(next_lesson(&mut from_b).await, (1, "before".into()));
    assert!(!first.stats().restored);
    first.stop().await;
    let mode = std::fs::metadata(&state).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");

    let again = start(saving, &[1, 2]).await;
    assert!(again.stats().restored, "the saved state was not used");
    again.add_seed(Seed::Addr(b.listening())).await.unwrap();
    let mut from_again = again.subscribe();
    wait_neighbours(std::slice::from_ref(&again), 1).await;
    publish(&again, lesson("after")).await;
    assert_eq!(next_lesson(&mut from_b).await, (1, "after".into()));
    publish(&b, lesson("to the restarted")).await;
    assert_eq!(
        next_lesson(&mut from_again).await,
        (2, "to the restarted".into())
    );
    assert_eq!(b.stats().identity_changes, 0, "node 2 saw a new identity");
    again.stop().await;

    // Without the saved state: a new identity, which node 2 notices and re-keys with.
    let fresh = start(config(1), &[1, 2]).await;
    fresh.add_seed(Seed::Addr(b.listening())).await.unwrap();
    wait_neighbours(std::slice::from_ref(&fresh), 1).await;
    publish(&fresh, lesson("fresh")).await;
    assert_eq!(next_lesson(&mut from_b).await, (1, "fresh".into()));
    assert_eq!(b.stats().identity_changes, 1);
    stop_all(vec![fresh, b]).await;
    let _ = std::fs::remove_dir_all(&dir);
}

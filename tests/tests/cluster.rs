//! Many broker addresses: a three-node RabbitMQ cluster of private nodes
//! (never the shared broker) that loses the node a processor is on, then
//! the leader of its quorum queue; and addresses that refuse connections
//! or never speak AMQP, skipped within the connect timeout.
//!
//! Each test prints its figures (`cargo test --test cluster -- --nocapture`).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::print_stdout)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use postage::prelude::*;
use postage::{AddressOrder, Stop};
use postage_tests::node::{Cluster, PrivateNode};
use postage_tests::{Seen, init_tracing, netns, next_within, private_pair, unique};
use serde_json::json;

/// The nodes are heavy for a 2-core machine: one test at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn base() -> &'static str {
    env!("CARGO_TARGET_TMPDIR")
}

/// Counts every id it receives, and when it last received one.
struct Counter {
    seen: Seen,
    last: Mutex<Option<Instant>>,
}

impl Counter {
    fn handled_since(&self, at: Instant) -> bool {
        self.last.lock().unwrap().is_some_and(|last| last > at)
    }
}

#[processor]
impl Counter {
    #[handler("command", "count")]
    async fn count(&self, Params(id): Params<u64>) {
        self.seen.record(id);
        *self.last.lock().unwrap() = Some(Instant::now());
    }

    #[rpc_handler("command", "echo")]
    async fn echo(&self, Params(text): Params<String>) -> String {
        text
    }
}

async fn wait_for(what: &str, secs: u64, mut done: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

/// How long after `killed_at` the processor handled a message again (within
/// 30 s; past that the test fails with `state()`).
async fn resumed(counter: &Counter, killed_at: Instant, state: impl Fn() -> String) -> Duration {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !counter.handled_since(killed_at) {
        assert!(
            Instant::now() < deadline,
            "the processor did not resume within 30 s: {}",
            state()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    killed_at.elapsed()
}

/// What the processor, its connection, the senders and the queue say.
fn state(
    cluster: &Cluster,
    queue: &str,
    health: &postage::consumer::ConsumerHandle,
    connection: &Connection,
    failures: &Mutex<HashMap<String, usize>>,
) -> String {
    format!(
        "consumer {:?}, connection on {} ({} recoveries), {} of 3 queue members online, \
         failed sends by error {:?}, members {}",
        health.health(),
        connection.endpoint(),
        connection.recoveries(),
        cluster.online_members(queue),
        failures.lock().unwrap(),
        cluster.quorum_status(queue),
    )
}

/// Waits until the three members of the quorum queue `queue` lead or
/// follow, each having committed at least what the leader had at the
/// poll before: a member that is back online may still be replaying
/// what it missed, and while it does, the two members left when the
/// leader goes may not elect another.
async fn members_in_sync(cluster: &Arc<Cluster>, queue: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut leader_had: Option<u64> = None;
    loop {
        let status = {
            let (cluster, queue) = (cluster.clone(), queue.to_owned());
            tokio::task::spawn_blocking(move || cluster.quorum_status(&queue))
                .await
                .unwrap()
        };
        let members: Vec<serde_json::Value> = serde_json::from_str(&status).unwrap_or_default();
        let committed = |member: &serde_json::Value| member["Commit Index"].as_u64().unwrap_or(0);
        let healthy = members.len() == 3
            && members
                .iter()
                .all(|member| matches!(member["Raft State"].as_str(), Some("leader" | "follower")));
        if healthy && leader_had.is_some_and(|had| members.iter().all(|m| committed(m) >= had)) {
            return;
        }
        leader_had = members
            .iter()
            .find(|member| member["Raft State"] == "leader")
            .map(committed)
            .filter(|_| healthy);
        assert!(
            Instant::now() < deadline,
            "the queue's members did not catch up: {status}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn port_of(endpoint: &str) -> u16 {
    endpoint
        .rsplit(':')
        .next()
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("no port in {endpoint:?}"))
}

/// Kills (SIGKILL) the node on `port`, off the runtime's threads.
async fn kill_node(cluster: &Arc<Cluster>, port: u16) -> Instant {
    let cluster = cluster.clone();
    tokio::task::spawn_blocking(move || {
        let node = cluster.node_on(port).unwrap();
        node.kill();
        Instant::now()
    })
    .await
    .unwrap()
}

/// Boots the node on `port` again: it rejoins the cluster.
async fn boot(cluster: &Arc<Cluster>, port: u16) {
    let cluster = cluster.clone();
    tokio::task::spawn_blocking(move || cluster.node_on(port).unwrap().boot())
        .await
        .unwrap();
}

/// Senders of confirmed persistent `count` commands, until stopped: the
/// ids confirmed, and the failed sends by error.
struct Senders {
    stop: Arc<AtomicBool>,
    confirmed: Arc<Mutex<Vec<u64>>>,
    failures: Arc<Mutex<HashMap<String, usize>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Senders {
    /// Four senders on `producer`.
    fn start(producer: &Producer) -> Self {
        const SENDERS: u64 = 4;
        let stop = Arc::new(AtomicBool::new(false));
        let confirmed = Arc::new(Mutex::new(Vec::new()));
        let failures: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let tasks = (0..SENDERS)
            .map(|first| {
                let (producer, stop, confirmed, failures) = (
                    producer.clone(),
                    stop.clone(),
                    confirmed.clone(),
                    failures.clone(),
                );
                tokio::spawn(async move {
                    let mut id = first;
                    while !stop.load(Ordering::Relaxed) {
                        match producer.command("count", id).await {
                            Ok(()) => confirmed.lock().unwrap().push(id),
                            Err(error) => {
                                *failures
                                    .lock()
                                    .unwrap()
                                    .entry(error.to_string())
                                    .or_insert(0) += 1;
                                tracing::warn!(error = %error.report(), id, "send failed");
                                // As an application would: not again at once.
                                tokio::time::sleep(Duration::from_millis(100)).await;
                            }
                        }
                        id += SENDERS;
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                })
            })
            .collect();
        Senders {
            stop,
            confirmed,
            failures,
            tasks,
        }
    }

    /// Stops the senders; gives the ids confirmed.
    async fn stop(self) -> Vec<u64> {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.unwrap();
        }
        std::mem::take(&mut *self.confirmed.lock().unwrap())
    }

    /// How many sends failed.
    fn failed(&self) -> usize {
        self.failures.lock().unwrap().values().sum()
    }
}

/// How many of the `confirmed` ids `counter` has not seen, once every one
/// arrived or 60 s passed.
async fn lost(confirmed: &[u64], counter: &Counter) -> usize {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !confirmed.iter().all(|id| counter.seen.has(*id)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    confirmed
        .iter()
        .filter(|id| !counter.seen.has(**id))
        .count()
}

/// A counting processor on the quorum queue `queue`, bound to `exchange`.
async fn quorum_processor(
    connection: &Connection,
    exchange: &Exchange,
    queue: &str,
) -> (
    Arc<Counter>,
    Control,
    postage::consumer::ConsumerHandle,
    tokio::task::JoinHandle<postage::Result<Stop>>,
) {
    let counter = Arc::new(Counter {
        seen: Seen::default(),
        last: Mutex::new(None),
    });
    let processor = Processor::builder_arc(counter.clone())
        .bind(exchange.clone(), [(Queue::quorum(queue), queue)])
        .prefetch(100)
        .connect(connection)
        .await
        .unwrap();
    let (control, health) = (processor.control(), processor.consumer());
    (counter, control, health, tokio::spawn(processor.run()))
}

#[derive(Default)]
struct Calls {
    ok: AtomicUsize,
    timed_out: AtomicUsize,
    failed: AtomicUsize,
    longest: Mutex<Duration>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_that_loses_the_processors_node_then_the_queue_leader_loses_no_confirmed_message()
{
    let _serial = ONE_AT_A_TIME.lock().await;
    let started = Instant::now();
    init_tracing();
    let cluster = Arc::new(
        tokio::task::spawn_blocking(|| Cluster::start(base(), 3))
            .await
            .unwrap(),
    );
    let formed = started.elapsed();
    let config = Config::from_url(&cluster.url()).unwrap();
    let processor_connection = Connection::connect(config.clone()).await.unwrap();
    let sender_connection = Connection::connect(config).await.unwrap();

    let exchange = Exchange::new(unique("cluster"), ExchangeKind::Direct);
    let queue = unique("cluster-jobs");
    let (counter, control, health, running) =
        quorum_processor(&processor_connection, &exchange, &queue).await;
    let producer = Producer::builder()
        .ek(exchange.clone(), queue.as_str())
        .persistent(true)
        .rpc_timeout(Duration::from_secs(3))
        .rpc_retries(1)
        .connect(&sender_connection)
        .await
        .unwrap();

    // Senders of confirmed persistent messages, until told to stop.
    let senders = Senders::start(&producer);
    let (stop, failures) = (senders.stop.clone(), senders.failures.clone());
    // RPC calls in a loop: each answered, or failed with a timeout
    // within its attempts; none hangs.
    let calls = Arc::new(Calls::default());
    let caller = {
        let (producer, stop, calls) = (producer.clone(), stop.clone(), calls.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let call = Instant::now();
                let bound = Duration::from_secs(3 * 2 + 2);
                match tokio::time::timeout(bound, producer.rpc("echo", "ping")).await {
                    Err(_) => panic!("an RPC call hung past {bound:?}"),
                    Ok(Ok(reply)) => {
                        assert_eq!(reply.outcome().unwrap().into_value().unwrap(), "ping");
                        calls.ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Err(error)) if error.is_timeout() => {
                        calls.timed_out.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Err(error)) => {
                        tracing::warn!(error = %error.report(), "RPC call failed");
                        calls.failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                let took = call.elapsed();
                {
                    let mut longest = calls.longest.lock().unwrap();
                    *longest = (*longest).max(took);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    wait_for("the first 300 messages", 60, || {
        counter.seen.unique() >= 300
    })
    .await;

    // 1. The node the processor's connection is on.
    let processor_node = port_of(&processor_connection.endpoint());
    let killed_at = kill_node(&cluster, processor_node).await;
    let resumed_after_node = resumed(&counter, killed_at, || {
        state(&cluster, &queue, &health, &processor_connection, &failures)
    })
    .await;
    let moved_to = processor_connection.endpoint();
    assert_ne!(
        port_of(&moved_to),
        processor_node,
        "the processor moved to another node"
    );
    boot(&cluster, processor_node).await;
    // The restarted node's member of the queue must be back before the
    // leader goes, or two of three members would be missing.
    let members = {
        let cluster = cluster.clone();
        let queue = queue.clone();
        move || cluster.online_members(&queue)
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while tokio::task::spawn_blocking(members.clone()).await.unwrap() < 3 {
        assert!(
            Instant::now() < deadline,
            "the restarted node's queue member did not come back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    members_in_sync(&cluster, &queue).await;

    // 2. The leader of the quorum queue.
    let leader = cluster
        .leader_of(&queue)
        .expect("the quorum queue has a leader")
        .port();
    let killed_at = kill_node(&cluster, leader).await;
    let resumed_after_leader = resumed(&counter, killed_at, || {
        state(&cluster, &queue, &health, &processor_connection, &failures)
    })
    .await;
    boot(&cluster, leader).await;

    tokio::time::sleep(Duration::from_millis(500)).await;
    let failed_sends = senders.failed();
    let confirmed = senders.stop().await;
    caller.await.unwrap();
    let lost = lost(&confirmed, &counter).await;
    println!(
        "cluster of 3 formed in {formed:?}; processor on {processor_node}, moved to {moved_to} \
         {resumed_after_node:?} after its node was killed; queue leader on {leader} killed, \
         processor resumed after {resumed_after_leader:?}; confirmed {}, failed sends {}, \
         received {} unique, {} duplicates, lost {lost}; RPC calls: {} answered, {} timed out, \
         {} failed otherwise, longest {:?}; {:?} in all; failed sends by error: {:?}",
        confirmed.len(),
        failed_sends,
        counter.seen.unique(),
        counter.seen.duplicates(),
        calls.ok.load(Ordering::Relaxed),
        calls.timed_out.load(Ordering::Relaxed),
        calls.failed.load(Ordering::Relaxed),
        calls.longest.lock().unwrap(),
        started.elapsed(),
        failures.lock().unwrap(),
    );
    assert_eq!(lost, 0, "every confirmed message arrives");
    assert!(
        resumed_after_node < Duration::from_secs(10),
        "{resumed_after_node:?}"
    );
    assert!(
        resumed_after_leader < Duration::from_secs(10),
        "{resumed_after_leader:?}"
    );
    assert!(calls.ok.load(Ordering::Relaxed) > 0);
    control.quit();
    assert_eq!(running.await.unwrap().unwrap(), Stop::Quit);
    let _ = processor_connection.close().await;
    let _ = sender_connection.close().await;
}

/// `amqp://guest:guest@127.0.0.1:P1,.../%2f` over `ports`, in that order.
fn url_over(ports: &[u16]) -> String {
    let hosts: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    format!("amqp://guest:guest@{}/%2f", hosts.join(","))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_node_pauses_and_its_component_moves_to_the_majority() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let Some(namespace) =
        netns::rerun_inside("a_partitioned_node_pauses_and_its_component_moves_to_the_majority")
    else {
        return;
    };
    init_tracing();
    let cluster = Arc::new(
        tokio::task::spawn_blocking(|| Cluster::start_partitionable(base(), 3))
            .await
            .unwrap(),
    );
    let ports: Vec<u16> = cluster.nodes().iter().map(PrivateNode::port).collect();
    let (minority, majority) = (ports[2], [ports[0], ports[1]]);
    // The processor on the node that will be cut off, the senders on the
    // others.
    let config = |order: &[u16]| {
        Config::from_url(&url_over(order))
            .unwrap()
            .with_address_order(AddressOrder::InOrder)
            .with_heartbeat(1)
            .with_publish_timeout(Duration::from_secs(5))
    };
    let processor_connection = Connection::connect(config(&[minority, majority[0], majority[1]]))
        .await
        .unwrap();
    let sender_connection = Connection::connect(config(&[majority[0], majority[1], minority]))
        .await
        .unwrap();
    assert_eq!(port_of(&processor_connection.endpoint()), minority);

    let exchange = Exchange::new(unique("partition"), ExchangeKind::Direct);
    let queue = unique("partition-jobs");
    let (counter, control, health, running) =
        quorum_processor(&processor_connection, &exchange, &queue).await;
    let producer = Producer::builder()
        .ek(exchange.clone(), queue.as_str())
        .persistent(true)
        .connect(&sender_connection)
        .await
        .unwrap();
    let senders = Senders::start(&producer);
    let failures = senders.failures.clone();
    wait_for("the first 300 messages", 60, || {
        counter.seen.unique() >= 300
    })
    .await;

    cluster.isolate(&namespace, minority);
    // The cut-off node sees itself in the minority and pauses, which
    // closes its clients' connections: the processor moves.
    let moved_after = wait_for("the processor to leave the minority node", 60, || {
        port_of(&processor_connection.endpoint()) != minority && processor_connection.is_connected()
    })
    .await;
    let moved = Instant::now();
    let resumed_after = resumed(&counter, moved, || {
        state(&cluster, &queue, &health, &processor_connection, &failures)
    })
    .await;
    let moved_to = port_of(&processor_connection.endpoint());
    // Healed: the minority node comes back and rejoins.
    namespace.restore_traffic();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let confirmed = senders.stop().await;
    let lost = lost(&confirmed, &counter).await;
    println!(
        "partition (pause_minority): the processor on the cut-off node moved to {moved_to} \
         {moved_after:?} after the cut and handled again {resumed_after:?} later; confirmed {}, received {} unique, \
         {} duplicates, lost {lost}; failed sends by error {:?}",
        confirmed.len(),
        counter.seen.unique(),
        counter.seen.duplicates(),
        failures.lock().unwrap(),
    );
    assert_eq!(
        lost, 0,
        "every confirmed message was delivered (confirmed is a subset of delivered)"
    );
    control.quit();
    assert_eq!(running.await.unwrap().unwrap(), Stop::Quit);
    let _ = processor_connection.close().await;
    let _ = sender_connection.close().await;
}

/// Accepts TCP connections and never says a word.
async fn silent_listener() -> (u16, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (port, task)
}

fn refused_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn addresses_that_refuse_or_never_speak_amqp_are_skipped_within_the_connect_timeout() {
    let _serial = ONE_AT_A_TIME.lock().await;
    init_tracing();
    let node = PrivateNode::start(base(), None);
    let (silent, listener) = silent_listener().await;
    let refused = refused_port();
    let connect_timeout = Duration::from_secs(2);
    let config = Config::from_url(&node.url())
        .unwrap()
        .with_addresses([
            ("127.0.0.1", refused),
            ("127.0.0.1", silent),
            ("127.0.0.1", node.port()),
        ])
        .with_address_order(AddressOrder::InOrder)
        .with_connect_timeout(connect_timeout);

    let started = Instant::now();
    let connection = Connection::connect(config.clone()).await.unwrap();
    let first = started.elapsed();
    assert_eq!(connection.endpoint(), format!("127.0.0.1:{}", node.port()));
    // The refused address costs nothing, the silent one its timeout.
    assert!(first < connect_timeout * 2, "connected after {first:?}");

    // A recovery skips them the same way.
    let (mut consumer, producer) = private_pair(&connection, "skip").await;
    let dropped = Instant::now();
    node.close_all_connections();
    // The consumer's own connection: its queue is declared again and
    // bound once that is recovered (the publishers' may come back first).
    let handle = consumer.handle();
    wait_for("the recovery", 30, || handle.recoveries() >= 1).await;
    let recovered = dropped.elapsed();
    // The server-named queue was declared again (a new name) and bound.
    producer.command("after", "the drop").await.unwrap();
    let delivery = next_within(&mut consumer, 10).await;
    assert_eq!(
        delivery.message().unwrap().content.parameters(),
        Some(&json!("the drop"))
    );
    delivery.ack().await.unwrap();

    // Every address refuses: a clear error naming the last one tried.
    let nothing = Config::default()
        .with_addresses([("127.0.0.1", refused_port()), ("127.0.0.1", refused_port())])
        .with_connect_timeout(connect_timeout);
    let error = Connection::connect(nothing).await.unwrap_err();
    assert!(
        matches!(error, postage::Error::Unreachable { .. }),
        "{}",
        error.report()
    );
    println!(
        "addresses skipped: connected after {first:?} (connect timeout {connect_timeout:?}), \
         recovered after {recovered:?}; with nothing listening: {}",
        error.report()
    );
    connection.close().await.unwrap();
    listener.abort();
}

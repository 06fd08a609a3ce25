//! Faults of the link between a component and its broker: a half-open
//! connection (every packet dropped by `iptables` in a network namespace
//! of the test's own: no reset, no answer), a frozen broker (`SIGSTOP`),
//! a throttled and a stalled link, and a slow consumer behind a full TCP
//! window (both through a proxy).
//!
//! Detection is measured against the heartbeat: Postage's AMQP client
//! takes a connection that heard nothing for two heartbeats for lost, and
//! looks every half heartbeat, so a silence that starts at any moment is
//! found within two and a half heartbeats of it. With a 1 s heartbeat
//! that is within 2 heartbeats + 1 s, the pass criterion.

use std::sync::Arc;
use std::time::{Duration, Instant};

use postage::Health;
use postage::prelude::*;
use postage_tests::netns;
use postage_tests::node::PrivateNode;
use postage_tests::proxy::{Link, Links, Proxy};
use postage_tests::{Seen, unique};
use serde_json::json;

use crate::{Fixture, ONE_AT_A_TIME, base, init_tracing, processor_on, wait_for};

/// The heartbeat of these tests, in seconds.
const HEARTBEAT: u64 = 1;

/// Within 2 heartbeats + 1 s.
const DETECTED_WITHIN: Duration = Duration::from_secs(2 * HEARTBEAT + 1);

/// How long the component waited for what it was doing, and how that
/// ended.
#[derive(Debug)]
struct Waited {
    what: &'static str,
    took: Duration,
    error: Option<String>,
}

/// Runs `work` and says how long it took and how it ended.
async fn timed<T>(
    what: &'static str,
    work: impl IntoFuture<Output = postage::Result<T>>,
) -> Waited {
    let started = Instant::now();
    let result = work.await;
    Waited {
        what,
        took: started.elapsed(),
        error: result.err().map(|e| e.report().to_string()),
    }
}

/// Sends, calls and declares while the link is faulty: each ends with
/// success or an error within its limit (`limit`, plus a second).
async fn pending_work_ends(
    connection: &Connection,
    fixture: &Fixture,
    producer: &Producer,
    limit: Duration,
) -> Vec<Waited> {
    let bind = async {
        let queue = Queue::new(unique("during")).auto_delete(true);
        fixture
            .consumer
            .queue_bind(&fixture.exchange, queue, "during")
            .await
    };
    let (send, call, declare) = tokio::join!(
        timed("a confirmed send", producer.command("count", 1_000_000_u64)),
        timed(
            "an RPC call",
            producer
                .rpc("slow_echo", json!(["during", 0]))
                .timeout(limit)
                .retries(0)
        ),
        timed("a declaration", bind),
    );
    let waited = vec![send, call, declare];
    for w in &waited {
        assert!(
            w.took <= limit + Duration::from_secs(1),
            "{} waited {:?}, past its limit of {limit:?} ({:?}); none may wait forever",
            w.what,
            w.took,
            w.error
        );
    }
    let _ = connection;
    waited
}

fn config(url: &str) -> Config {
    Config::from_url(&format!(
        "{url}?heartbeat={HEARTBEAT}&connection_timeout=2000"
    ))
    .unwrap()
    .with_publish_timeout(Duration::from_secs(8))
    .with_recovery_timeout(Duration::from_secs(8))
}

/// When the component first saw its connection lost (within 30 s): it is
/// down or recovering, or it recovered already (a recovery to another
/// address can begin and end between two looks).
async fn detected(connection: &Connection, fixture: &Fixture, since: Instant) -> Duration {
    let recoveries = connection.recoveries();
    wait_for("the loss to be detected", 30, || {
        !connection.is_connected()
            || fixture.consumer.health() == Health::Recovering
            || connection.recoveries() > recoveries
    })
    .await;
    since.elapsed()
}

/// How long after `since` a message sent now is handled (sending until one
/// is, within 60 s).
async fn resumed(fixture: &Fixture, producer: &Producer, since: Instant) -> Duration {
    let mut id = 2_000_000_u64;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(
            Instant::now() < deadline,
            "the component did not resume within 60 s; consumer {:?}",
            fixture.consumer.health()
        );
        let _ = producer.command("count", id).await;
        let handled = Instant::now() + Duration::from_millis(500);
        while Instant::now() < handled {
            if fixture.counter.seen.has(id) {
                return since.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        id += 1;
    }
}

/// A processor on `queue` and a producer sending to it, the first 50
/// messages handled.
async fn working(connection: &Connection, queue: Queue) -> (Fixture, Producer) {
    let fixture = processor_on(connection, queue, |b| b).await;
    let producer = Producer::builder()
        .ek(fixture.exchange.clone(), fixture.queue.as_str())
        .connect(connection)
        .await
        .unwrap();
    for id in 0..50_u64 {
        producer.command("count", id).await.unwrap();
    }
    wait_for("the first 50", 10, || fixture.counter.seen.unique() == 50).await;
    (fixture, producer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_open_connection_is_found_within_two_heartbeats_and_the_component_resumes() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let Some(namespace) = netns::rerun_inside(
        "links::a_half_open_connection_is_found_within_two_heartbeats_and_the_component_resumes",
    ) else {
        return;
    };
    init_tracing();
    let node = PrivateNode::start(base(), None);
    let connection = Connection::connect(config(&node.url())).await.unwrap();
    // An exclusive queue: if the broker still holds it for the dead
    // connection when the new one declares it (405 RESOURCE_LOCKED), the
    // recovery tries again.
    let queue = Queue::new(unique("half-open")).exclusive(true);
    let (fixture, producer) = working(&connection, queue).await;

    let cut = Instant::now();
    namespace.drop_traffic(node.port());
    let pending = {
        let (connection, fixture, producer) = (connection.clone(), &fixture, producer.clone());
        async move { pending_work_ends(&connection, fixture, &producer, Duration::from_secs(8)).await }
    };
    let (detected_after, pending, resumed_after) = tokio::join!(
        async {
            let after = detected(&connection, &fixture, cut).await;
            // Traffic flows again once the loss is seen: the component
            // comes back to the same node.
            namespace.restore_traffic();
            after
        },
        pending,
        resumed(&fixture, &producer, cut)
    );
    println!(
        "half-open connection (heartbeat {HEARTBEAT} s): detected after {detected_after:?}, \
         resumed after {resumed_after:?}; pending work: {pending:?}"
    );
    assert!(
        detected_after <= DETECTED_WITHIN,
        "the silent connection was found after {detected_after:?}, not within 2 heartbeats + 1 s"
    );
    assert_eq!(fixture.consumer.health(), Health::Consuming);
    fixture.control.quit();
    let _ = fixture.running.await;
    let _ = connection.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_broker_is_left_for_the_next_address_within_two_heartbeats() {
    let _serial = ONE_AT_A_TIME.lock().await;
    init_tracing();
    let frozen = PrivateNode::start(base(), None);
    let other = PrivateNode::start(base(), None);
    let url = format!(
        "amqp://guest:guest@127.0.0.1:{},127.0.0.1:{}/%2f",
        frozen.port(),
        other.port()
    );
    let connection = Connection::connect(config(&url).with_address_order(AddressOrder::InOrder))
        .await
        .unwrap();
    assert_eq!(
        connection.endpoint(),
        format!("127.0.0.1:{}", frozen.port())
    );
    let (fixture, producer) = working(&connection, Queue::new(unique("frozen"))).await;

    let frozen_at = Instant::now();
    frozen.freeze();
    let limit = Duration::from_secs(8);
    let (detected_after, pending, resumed_after) = tokio::join!(
        detected(&connection, &fixture, frozen_at),
        pending_work_ends(&connection, &fixture, &producer, limit),
        resumed(&fixture, &producer, frozen_at)
    );
    let moved_to = connection.endpoint();
    println!(
        "frozen broker (heartbeat {HEARTBEAT} s): detected after {detected_after:?}, \
         resumed on {moved_to} after {resumed_after:?}; pending work: {pending:?}"
    );
    frozen.thaw();
    assert!(
        detected_after <= DETECTED_WITHIN,
        "the frozen broker was found after {detected_after:?}, not within 2 heartbeats + 1 s"
    );
    assert_eq!(
        moved_to,
        format!("127.0.0.1:{}", other.port()),
        "the component moved to the other address"
    );
    fixture.control.quit();
    let _ = fixture.running.await;
    let _ = connection.close().await;
}

/// Sends `count` confirmed messages at once; gives the ids confirmed, and
/// the outcome of each (every send ends: none is left unknown).
async fn send_all(producer: &Producer, ids: std::ops::Range<u64>) -> (Vec<u64>, usize, Duration) {
    let started = Instant::now();
    let sends = ids.map(|id| {
        let producer = producer.clone();
        tokio::spawn(async move { (id, producer.command("count", id).await) })
    });
    let mut confirmed = Vec::new();
    let mut failed = 0;
    for send in sends.collect::<Vec<_>>() {
        let (id, outcome) = send.await.unwrap();
        match outcome {
            Ok(()) => confirmed.push(id),
            Err(error) => {
                assert!(
                    matches!(
                        error,
                        postage::Error::Unconfirmed { .. }
                            | postage::Error::PublishTimeout { .. }
                            | postage::Error::PublishInterrupted { .. }
                            | postage::Error::Amqp { .. }
                    ),
                    "a send failed with an untyped cause: {}",
                    error.report()
                );
                failed += 1;
            }
        }
    }
    (confirmed, failed, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_and_stalled_links_end_every_wait_within_its_limit() {
    let _serial = ONE_AT_A_TIME.lock().await;
    init_tracing();
    let node = PrivateNode::start(base(), None);
    let proxy = Proxy::start(node.port()).await;
    let url = format!("amqp://guest:guest@127.0.0.1:{}/%2f", proxy.port());
    let limit = Duration::from_secs(5);
    let connection = Connection::connect(
        config(&url)
            .with_publish_timeout(limit)
            .with_recovery_timeout(limit),
    )
    .await
    .unwrap();
    let fixture = processor_on(&connection, Queue::new(unique("throttled")), |b| b).await;
    let producer = Producer::builder()
        .ek(fixture.exchange.clone(), fixture.queue.as_str())
        .connect(&connection)
        .await
        .unwrap();
    producer.command("count", 0_u64).await.unwrap();

    // 1 KiB/s both ways: some work is done in time, the rest fails.
    proxy.set(Links::both(Link::Throttled(1024)));
    let throttled_work = pending_work_ends(&connection, &fixture, &producer, limit).await;
    let (throttled_ok, throttled_failed, throttled_took) = send_all(&producer, 1..41).await;
    assert!(
        throttled_took <= limit + Duration::from_secs(2),
        "40 sends over a throttled link took {throttled_took:?}"
    );

    // 0 B/s: nothing moves; every wait ends at its limit.
    proxy.set(Links::both(Link::Stalled));
    let stalled_work = pending_work_ends(&connection, &fixture, &producer, limit).await;
    let (stalled_ok, stalled_failed, stalled_took) = send_all(&producer, 100..120).await;
    assert!(
        stalled_took <= limit + Duration::from_secs(2),
        "20 sends over a stalled link took {stalled_took:?}"
    );

    proxy.set(Links::both(Link::Open));
    let restored = Instant::now();
    let resumed_after = resumed(&fixture, &producer, restored).await;
    // Every confirmed message arrives.
    let confirmed: Vec<u64> = throttled_ok.iter().chain(&stalled_ok).copied().collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !confirmed.iter().all(|id| fixture.counter.seen.has(*id)) {
        let missing: Vec<u64> = confirmed
            .iter()
            .copied()
            .filter(|id| !fixture.counter.seen.has(*id))
            .collect();
        if Instant::now() >= deadline {
            let connections =
                node.rabbitmqctl(&["list_connections", "name", "state", "peer_port", "channels"]);
            let channels = node.rabbitmqctl(&[
                "list_channels",
                "name",
                "consumer_count",
                "messages_unacknowledged",
            ]);
            let queues = node.rabbitmqctl(&[
                "list_queues",
                "name",
                "messages_ready",
                "messages_unacknowledged",
                "consumers",
            ]);
            panic!(
                "every confirmed message arrives within 30 s; missing {missing:?} of {confirmed:?}, \
                 consumer {:?}, {} received\nbroker connections:\n{connections}\nchannels:\n{channels}\nqueues:\n{queues}",
                fixture.consumer.health(),
                fixture.counter.seen.unique()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "throttled link (1 KiB/s): {} confirmed, {throttled_failed} failed in {throttled_took:?}, \
         work {throttled_work:?}; stalled link: {} confirmed, {stalled_failed} failed in {stalled_took:?}, \
         work {stalled_work:?}; resumed {resumed_after:?} after the link came back; \
         {} received, {} duplicates",
        throttled_ok.len(),
        stalled_ok.len(),
        fixture.counter.seen.unique(),
        fixture.counter.seen.duplicates(),
    );
    fixture.control.quit();
    let _ = fixture.running.await;
    let _ = connection.close().await;
}

/// Handles each `big` message slowly.
struct Slow {
    seen: Seen,
}

#[processor]
impl Slow {
    #[handler("command", "big")]
    async fn big(&self, Params((id, _body)): Params<(u64, String)>) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.seen.record(id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_behind_a_full_tcp_window_comes_back_and_resumes() {
    let _serial = ONE_AT_A_TIME.lock().await;
    init_tracing();
    let node = PrivateNode::start(base(), None);
    let proxy = Proxy::start(node.port()).await;
    let url = format!("amqp://guest:guest@127.0.0.1:{}/%2f", proxy.port());
    let exchange = Exchange::new(unique("slow"), ExchangeKind::Direct);
    let queue = unique("slow");
    // Filled beforehand: 300 messages of 8 KiB.
    let loader = Connection::connect(Config::from_url(&node.url()).unwrap())
        .await
        .unwrap();
    let filler = Producer::builder()
        .ek(exchange.clone(), queue.as_str())
        .connect(&loader)
        .await
        .unwrap();
    let bound = Consumer::builder()
        .bind(
            exchange.clone(),
            [(Queue::new(queue.as_str()), queue.as_str())],
        )
        .connect(&loader)
        .await
        .unwrap();
    bound.stop().await;
    const TOTAL: usize = 300;
    let body = "x".repeat(8 * 1024);
    for id in 0..TOTAL as u64 {
        filler.command("big", (id, body.as_str())).await.unwrap();
    }
    loader.close().await.unwrap();

    // The component reads through a link that passes 2 KiB/s towards it:
    // the broker's writes back up into a full window while handlers run.
    proxy.set(Links {
        upstream: Link::Open,
        downstream: Link::Throttled(2048),
    });
    let connection = Connection::connect(config(&url)).await.unwrap();
    let slow = Arc::new(Slow {
        seen: Seen::default(),
    });
    let processor = Processor::builder_arc(slow.clone())
        .bind(
            exchange.clone(),
            [(Queue::new(queue.as_str()), queue.as_str())],
        )
        .prefetch(50)
        .connect(&connection)
        .await
        .unwrap();
    let consumer = processor.consumer();
    let control = processor.control();
    let running = tokio::spawn(processor.run());
    tokio::time::sleep(Duration::from_secs(15)).await;
    let during = slow.seen.unique();
    proxy.set(Links::both(Link::Open));
    let restored = Instant::now();
    let deadline = restored + Duration::from_secs(60);
    while slow.seen.unique() < TOTAL {
        assert!(
            Instant::now() < deadline,
            "the consumer did not resume and finish within 60 s of the link coming back: \
             {} of {TOTAL} handled, consumer {:?}, {} recoveries",
            slow.seen.unique(),
            consumer.health(),
            connection.recoveries()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "slow consumer behind a 2 KiB/s link: {during} handled in the first 15 s, \
         all {TOTAL} {:?} after the link came back ({} duplicates); {} recoveries",
        restored.elapsed(),
        slow.seen.duplicates(),
        connection.recoveries()
    );
    assert_eq!(consumer.health(), Health::Consuming);
    control.quit();
    let _ = running.await;
    let _ = connection.close().await;
}

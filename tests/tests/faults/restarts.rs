//! Dropped connections, clean and hard broker restarts, RPC across a
//! disconnect, and TLS with a throwaway certificate authority.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use postage::prelude::*;
use postage::{Health, Stop};
use postage_tests::node::{PrivateNode, TlsFiles};
use postage_tests::{init_tracing, next_within, private_pair, unique};
use serde_json::json;

use crate::{ONE_AT_A_TIME, base, connect, processor, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connections_recover_producers_processors_and_rpc() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let node = PrivateNode::start(base(), None);
    let connection = connect(&node.url()).await;
    let fixture = processor(&connection, false).await;
    let producer = Producer::builder()
        .ek(fixture.exchange.clone(), fixture.queue.as_str())
        .rpc_timeout(Duration::from_secs(5))
        .connect(&connection)
        .await
        .unwrap();
    for id in 0..100u64 {
        producer.command("count", id).await.unwrap();
    }
    assert_eq!(
        producer
            .rpc("slow_echo", json!(["before", 0]))
            .await
            .unwrap()
            .outcome()
            .unwrap()
            .into_value()
            .unwrap(),
        "before"
    );
    wait_for("the first 100", 20, || fixture.counter.seen.unique() == 100).await;

    let dropped = Instant::now();
    node.close_all_connections();
    // The processor's consumer was restored and says so.
    wait_for("the consumer's recovery", 60, || {
        fixture.consumer.recoveries() >= 1
    })
    .await;
    assert_eq!(fixture.consumer.health(), Health::Consuming);
    let consuming_again = dropped.elapsed();
    producer
        .command("count", 100u64)
        .await
        .expect("a send after the drop");
    let first_send = dropped.elapsed();
    for id in 101..200u64 {
        producer.command("count", id).await.unwrap();
    }
    wait_for("all 200 after the drop", 30, || {
        fixture.counter.seen.unique() == 200
    })
    .await;
    // The direct reply-to consumer came back too.
    let reply = producer
        .rpc("slow_echo", json!(["after", 0]))
        .await
        .expect("RPC after the drop");
    assert_eq!(reply.outcome().unwrap().into_value().unwrap(), "after");
    println!(
        "dropped connection: sent 200, confirmed 200, received {} unique, {} duplicates; \
         consuming again after {consuming_again:?}, first confirmed send after {first_send:?}",
        fixture.counter.seen.unique(),
        fixture.counter.seen.duplicates()
    );
    fixture.control.quit();
    assert_eq!(fixture.running.await.unwrap().unwrap(), Stop::Quit);
    connection.close().await.unwrap();
}

/// The threads of this process whose name starts with `prefix`.
fn threads_named(prefix: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|tasks| {
            tasks
                .filter_map(Result::ok)
                .filter(|task| {
                    std::fs::read_to_string(task.path().join("comm"))
                        .is_ok_and(|name| name.starts_with(prefix))
                })
                .count()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaced_connections_leave_no_thread_or_task_behind() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let node = PrivateNode::start(base(), None);
    // A replaced connection's heartbeat task ends at its next beat: a
    // short heartbeat makes that soon.
    init_tracing();
    let connection = Connection::connect(Config::from_url(&node.url()).unwrap().with_heartbeat(1))
        .await
        .unwrap();
    let fixture = processor(&connection, false).await;
    let producer = Producer::builder()
        .ek(fixture.exchange.clone(), fixture.queue.as_str())
        .connect(&connection)
        .await
        .unwrap();
    producer
        .rpc("slow_echo", json!(["warm up", 0]))
        .await
        .unwrap();
    // Counted once the warm-up's short-lived tasks are gone, as at the end.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let metrics = tokio::runtime::Handle::current().metrics();
    let (threads, tasks) = (threads_named("lapin"), metrics.num_alive_tasks());
    const DROPS: u64 = 5;
    for drop in 1..=DROPS {
        node.close_all_connections();
        wait_for("the recovery", 30, || connection.recoveries() >= drop).await;
        producer.command("count", drop).await.unwrap();
        let reply = producer
            .rpc("slow_echo", json!(["after", 0]))
            .await
            .unwrap();
        assert_eq!(reply.outcome().unwrap().into_value().unwrap(), "after");
    }
    wait_for("every message", 20, || {
        fixture.counter.seen.unique() == DROPS as usize
    })
    .await;
    // Watchers of replaced connections end within a second, their
    // heartbeat tasks at the next beat.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (threads_after, tasks_after) = (threads_named("lapin"), metrics.num_alive_tasks());
    println!(
        "after {DROPS} replaced connections: lapin threads {threads} -> {threads_after}, \
         tasks {tasks} -> {tasks_after}"
    );
    assert_eq!(
        threads_after, threads,
        "a replaced connection's I/O thread ended"
    );
    assert_eq!(tasks_after, tasks, "a replaced connection's tasks ended");
    fixture.control.quit();
    assert_eq!(fixture.running.await.unwrap().unwrap(), Stop::Quit);
    connection.close().await.unwrap();
}

#[derive(Debug, Clone, Copy)]
enum Restart {
    Clean,
    Kill,
}

async fn confirmed_messages_survive(restart: Restart) {
    const TOTAL: u64 = 20_000;
    const SENDERS: u64 = 16;
    let node = Arc::new(PrivateNode::start(base(), None));
    init_tracing();
    let connection = Connection::connect(Config::from_url(&node.url()).unwrap())
        .await
        .unwrap();
    let fixture = processor(&connection, true).await;
    let producer = Producer::builder()
        .ek(fixture.exchange.clone(), fixture.queue.as_str())
        .persistent(true)
        .connect(&connection)
        .await
        .unwrap();
    let confirmed = Arc::new(Mutex::new(Vec::with_capacity(TOTAL as usize)));
    let failed = Arc::new(AtomicUsize::new(0));
    let mut senders = Vec::new();
    for first in 0..SENDERS {
        let producer = producer.clone();
        let confirmed = confirmed.clone();
        let failed = failed.clone();
        senders.push(tokio::spawn(async move {
            let mut id = first;
            while id < TOTAL {
                match producer.command("count", id).await {
                    Ok(()) => confirmed.lock().unwrap().push((id, Instant::now())),
                    Err(error) => {
                        // As an application would: stop and let the
                        // supervisor decide.
                        failed.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(%error, id, "send failed; this sender stops");
                        break;
                    }
                }
                id += SENDERS;
            }
        }));
    }
    wait_for("5,000 confirmed sends", 60, || {
        confirmed.lock().unwrap().len() >= 5_000
    })
    .await;
    let node_for_fault = node.clone();
    let up_at = tokio::task::spawn_blocking(move || {
        match restart {
            Restart::Clean => node_for_fault.stop(),
            Restart::Kill => node_for_fault.kill(),
        }
        std::thread::sleep(Duration::from_secs(1));
        node_for_fault.boot();
        Instant::now()
    })
    .await
    .unwrap();
    for sender in senders {
        sender.await.unwrap();
    }
    wait_for("the connection to recover", 120, || {
        connection.recoveries() >= 1
    })
    .await;
    assert!(
        !connection.recovery_stalled(),
        "the recovery was reported stalled"
    );
    let counter = fixture.counter.clone();
    let confirmed = std::mem::take(&mut *confirmed.lock().unwrap());
    // Confirmations read just after the node went down were received
    // before: count from the moment it was up again.
    let resumed = confirmed
        .iter()
        .filter(|(_, at)| *at > up_at)
        .map(|(_, at)| *at)
        .min()
        .map(|at| at.duration_since(up_at));
    let deadline = Instant::now() + Duration::from_secs(180);
    while !confirmed.iter().all(|(id, _)| counter.seen.has(*id)) {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for every confirmed message: {} of {} missing; consumer {:?}, \
             {} recoveries, on {}; the node says:\n{}",
            confirmed
                .iter()
                .filter(|(id, _)| !counter.seen.has(*id))
                .count(),
            confirmed.len(),
            fixture.consumer.health(),
            connection.recoveries(),
            connection.endpoint(),
            node.rabbitmqctl(&[
                "list_queues",
                "name",
                "messages_ready",
                "messages_unacknowledged",
                "consumers"
            ]),
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let lost = confirmed
        .iter()
        .filter(|(id, _)| !counter.seen.has(*id))
        .count();
    let failed = failed.load(Ordering::Relaxed);
    println!(
        "broker restart ({restart:?}): sent {} of {TOTAL}, confirmed {}, failed {failed}, received {} unique, \
         {} duplicates, lost {lost}; first confirm {resumed:?} after the node was up",
        confirmed.len() + failed,
        confirmed.len(),
        counter.seen.unique(),
        counter.seen.duplicates(),
    );
    assert_eq!(lost, 0, "every confirmed message arrives");
    assert_eq!(failed, 0, "sends ride out the restart");
    assert_eq!(fixture.consumer.health(), Health::Consuming);
    fixture.control.quit();
    let _ = tokio::time::timeout(Duration::from_secs(5), fixture.running).await;
    let _ = connection.close().await;
}

/// A recovery that cannot finish (something accepts TCP on the broker's
/// port but never speaks AMQP, and lapin waits for its handshake forever)
/// is reported: an error log, `recovery_stalled`, consumer health
/// `Failed`, and the processor ends with `ConsumerLost`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovery_that_cannot_finish_is_reported_and_ends_the_processor() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let node = PrivateNode::start(base(), None);
    init_tracing();
    let config = Config::from_url(&node.url())
        .unwrap()
        .with_recovery_timeout(Duration::from_secs(2));
    let connection = Connection::connect(config).await.unwrap();
    let fixture = processor(&connection, false).await;
    node.stop();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", node.port()))
        .await
        .unwrap();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let started = Instant::now();
    wait_for("the stall to be reported", 60, || {
        connection.recovery_stalled()
    })
    .await;
    // The consumers' and the publishers' connections each find their own
    // stall, within moments of each other: the first one found is
    // reported, and the consumer fails with its own connection's.
    wait_for("the consumer to fail", 5, || {
        matches!(fixture.consumer.health(), Health::Failed(_))
    })
    .await;
    let ended = tokio::time::timeout(Duration::from_secs(5), fixture.running)
        .await
        .expect("the processor ends")
        .unwrap();
    assert!(
        matches!(ended, Err(postage::Error::ConsumerLost(_))),
        "{ended:?}"
    );
    println!(
        "stalled recovery reported {:?} after the broker went away (recovery timeout 2 s, grace 10 s)",
        started.elapsed()
    );
    silent.abort();
    let _ = silent.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirmed_messages_survive_a_clean_broker_restart() {
    let _serial = ONE_AT_A_TIME.lock().await;
    confirmed_messages_survive(Restart::Clean).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirmed_messages_survive_a_killed_broker() {
    let _serial = ONE_AT_A_TIME.lock().await;
    confirmed_messages_survive(Restart::Kill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rpc_in_flight_across_a_disconnect_never_hangs_past_its_timeout() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let node = PrivateNode::start(base(), None);
    let connection = connect(&node.url()).await;
    let fixture = processor(&connection, false).await;
    let producer = Producer::builder()
        .ek(fixture.exchange.clone(), fixture.queue.as_str())
        .connect(&connection)
        .await
        .unwrap();
    let timeout = Duration::from_secs(3);
    let retries = 2;
    let started = Instant::now();
    let call = {
        let producer = producer.clone();
        tokio::spawn(async move {
            producer
                .rpc("slow_echo", json!(["in flight", 1000]))
                .timeout(timeout)
                .retries(retries)
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    node.close_all_connections();
    let bound = timeout * (retries + 1) + Duration::from_secs(2);
    let result = tokio::time::timeout(bound, call)
        .await
        .expect("the call ends within its attempts")
        .unwrap();
    let took = started.elapsed();
    let reply = result.expect("a retry after recovery gets the answer");
    assert_eq!(reply.outcome().unwrap().into_value().unwrap(), "in flight");
    // Later calls work at once.
    let later = Instant::now();
    let reply = producer
        .rpc("slow_echo", json!(["later", 0]))
        .timeout(timeout)
        .retries(0)
        .await
        .unwrap();
    assert_eq!(reply.outcome().unwrap().into_value().unwrap(), "later");
    println!(
        "RPC across a disconnect: answered after {took:?}; the next call took {:?}",
        later.elapsed()
    );
    fixture.control.quit();
    let _ = fixture.running.await;
    connection.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqps_with_a_throwaway_certificate_authority() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let tls = TlsFiles::generate(&std::path::Path::new(base()).join(unique("tls")));
    let node = PrivateNode::start(base(), Some(&tls));
    let url = node.tls_url().unwrap();

    let untrusted = Connection::connect(
        Config::from_url(&url)
            .unwrap()
            .with_connect_timeout(Duration::from_secs(3)),
    )
    .await;
    assert!(
        untrusted.is_err(),
        "a certificate from an unknown authority is refused"
    );

    init_tracing();
    let config = Config::from_url(&url).unwrap().with_tls_ca_file(&tls.ca);
    assert!(config.tls());
    let connection = Connection::connect(config).await.expect("TLS connection");
    let (mut consumer, producer) = private_pair(&connection, "tls").await;
    producer.command("secret", "over TLS").await.unwrap();
    let delivery = next_within(&mut consumer, 10).await;
    assert_eq!(
        delivery.message().unwrap().content.parameters(),
        Some(&json!("over TLS"))
    );
    delivery.ack().await.unwrap();
    connection.close().await.unwrap();
    let _ = std::fs::remove_dir_all(tls.ca.parent().unwrap());
}

/// Persistent delayed sends of 60 s, 20 s and 8 s (sent longest first)
/// and a cancelled one of 15 s, with a clean restart of the broker a few
/// seconds after: the three arrive in due order, none before its due time
/// and none long after it (or after the broker was back, for one due
/// while it was down); the cancelled one never arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_sends_survive_a_broker_restart() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let node = Arc::new(PrivateNode::start(base(), None));
    let connection = connect(&node.url()).await;
    let probe = postage_tests::conformance::probe(&connection).await;
    let exchange = Exchange::new(unique("delayed"), ExchangeKind::Direct);
    let queue = unique("delayed");
    probe.declare_exchange(&exchange).await.unwrap();
    probe
        .declare_queue(&Queue::new(&queue).durable(true))
        .await
        .unwrap();
    probe.bind(&queue, exchange.name(), "rk").await.unwrap();
    let producer = Producer::builder()
        .ek(exchange.clone(), "rk")
        .persistent(true)
        .connect(&connection)
        .await
        .unwrap();
    let start = Instant::now();
    let mut due = Vec::new();
    for seconds in [60u64, 20, 8] {
        let delay = Duration::from_secs(seconds);
        producer
            .forward(format!("{seconds}"))
            .send_after(delay)
            .await
            .unwrap();
        due.push((format!("{seconds}"), delay));
    }
    let cancelled = producer
        .forward("cancelled")
        .send_after(Duration::from_secs(15))
        .await
        .unwrap();
    assert!(cancelled.cancel().await.unwrap());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let node_for_fault = node.clone();
    let up_at = tokio::task::spawn_blocking(move || {
        node_for_fault.stop();
        std::thread::sleep(Duration::from_secs(1));
        node_for_fault.boot();
        start.elapsed()
    })
    .await
    .unwrap();
    wait_for("the connection to recover", 120, || {
        connection.recoveries() >= 1
    })
    .await;
    let probe = postage_tests::conformance::probe(&connection).await;
    let mut consumer = probe.consume(&queue).await.unwrap();
    let mut order = Vec::new();
    for _ in 0..3 {
        let delivery = postage_tests::conformance::delivered(&mut consumer, 90_000).await;
        let at = start.elapsed();
        let body = delivery.text();
        assert!(delivery.is_persistent(), "{body}: still persistent");
        delivery.ack().await.unwrap();
        let (_, delay) = due.iter().find(|(b, _)| *b == body).unwrap();
        assert!(
            at >= *delay,
            "{body}: arrived after {at:?}, before it was due"
        );
        let bound = (*delay).max(up_at) + Duration::from_secs(10);
        assert!(
            at <= bound,
            "{body}: arrived after {at:?}, later than {bound:?} (the broker was back after {up_at:?})"
        );
        println!("delayed {body} s: arrived after {at:?} (broker back after {up_at:?})");
        order.push(body);
    }
    assert_eq!(order, ["8", "20", "60"], "nothing lost, in due order");
    assert!(
        postage_tests::conformance::silent(&mut consumer, 2_000).await,
        "the cancelled send never arrives, nothing twice"
    );
    connection.close().await.unwrap();
}

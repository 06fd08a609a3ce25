//! Resource alarms: a private node low on memory or disk blocks every
//! connection that publishes (`connection.blocked`). Consumers go on (they
//! are on a connection of their own), publishers wait within the publish
//! time limit and then fail saying the broker blocked them, and nothing is
//! lost to missed heartbeats.
//!
//! RabbitMQ blocks a connection on its first publish under an alarm, not
//! before: that first message is taken. Every later one waits until both
//! alarms clear.

use std::sync::Arc;
use std::time::{Duration, Instant};

use postage::prelude::*;
use postage::{Error, Health};
use postage_tests::node::PrivateNode;
use postage_tests::unique;

use crate::{ONE_AT_A_TIME, base, init_tracing, processor_on, wait_for};

const PUBLISH_TIMEOUT: Duration = Duration::from_secs(3);

fn config(node: &PrivateNode) -> Config {
    Config::from_url(&format!("{}?heartbeat=1", node.url()))
        .unwrap()
        .with_publish_timeout(PUBLISH_TIMEOUT)
}

/// Sends until a send fails because the broker blocks publishing (the
/// first send under an alarm goes through); gives that error, how long it
/// waited, and how many sends went through before it.
async fn send_until_blocked(producer: &Producer, first_id: u64) -> (Error, Duration, u64) {
    for id in first_id..first_id + 5 {
        let started = Instant::now();
        match producer.command("count", id).await {
            Ok(()) => continue,
            Err(error) => return (error, started.elapsed(), id - first_id),
        }
    }
    panic!("five sends went through under an alarm: the broker did not block publishing");
}

fn assert_blocked(error: &Error, waited: Duration, why: &str) {
    assert!(
        matches!(error, Error::Blocked { reason, .. } if reason.contains(why)),
        "a send under an alarm fails saying the broker blocked it ({why}): {}",
        error.report()
    );
    assert!(
        waited >= PUBLISH_TIMEOUT && waited <= PUBLISH_TIMEOUT + Duration::from_secs(1),
        "the blocked send waited {waited:?}, its publish time limit being {PUBLISH_TIMEOUT:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_alarm_holds_publishers_while_consumers_go_on() {
    let _serial = ONE_AT_A_TIME.lock().await;
    init_tracing();
    let node = Arc::new(PrivateNode::start(base(), None));
    let connection = Connection::connect(config(&node)).await.unwrap();
    let fixture = processor_on(&connection, Queue::new(unique("alarm")), |b| b.prefetch(10)).await;
    let producer = Producer::builder()
        .ek(fixture.exchange.clone(), fixture.queue.as_str())
        .connect(&connection)
        .await
        .unwrap();
    // A backlog the consumer works through during the alarm: 2,000
    // messages handled 3 ms each.
    // Sent 100 at a time, so that it is there long before it is handled.
    fixture.counter.slow_down(Duration::from_millis(3));
    for batch in 0..20_u64 {
        let sends = (0..100).map(|n| {
            let producer = &producer;
            async move { producer.command("count", batch * 100 + n).await }
        });
        for sent in futures_util::future::join_all(sends).await {
            sent.unwrap();
        }
    }
    let before = fixture.counter.seen.unique();
    assert!(
        before < 2_000,
        "the backlog is still there when the alarm goes on"
    );

    let raised = Instant::now();
    node.memory_alarm(true);
    let (error, waited, through) = send_until_blocked(&producer, 10_000).await;
    assert_blocked(&error, waited, "memory");
    assert!(
        connection.blocked().is_some_and(|r| r.contains("memory")),
        "the connection says it is blocked: {:?}",
        connection.blocked()
    );
    assert!(
        matches!(fixture.consumer.health(), Health::Blocked(_)),
        "the consumer's health says blocked: {:?}",
        fixture.consumer.health()
    );
    // The consumer goes on with the backlog meanwhile.
    wait_for(
        "the consumer to work through the backlog under the alarm",
        30,
        || fixture.counter.seen.unique() >= 2_000,
    )
    .await;
    let consumed_during = fixture.counter.seen.unique() - before;
    fixture.counter.slow_down(Duration::ZERO);
    assert!(
        node.alarms().contains("memory"),
        "the alarm is still on while the consumer works: {}",
        node.alarms()
    );
    // Five heartbeats and more under the alarm: the connection is not
    // taken for lost.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let blocked_for = raised.elapsed();
    assert_eq!(
        connection.recoveries(),
        0,
        "a blocked connection is not lost to missed heartbeats"
    );
    assert_eq!(
        node.queue_depth(&fixture.queue),
        Some(0),
        "nothing more was published while blocked"
    );

    // A send held now goes out once the alarm clears.
    let held = {
        let producer = producer.clone();
        tokio::spawn(async move { producer.command("count", 20_000_u64).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !held.is_finished(),
        "the send waits while the broker blocks"
    );
    let cleared = Instant::now();
    node.memory_alarm(false);
    held.await
        .unwrap()
        .expect("the held send goes out once the alarm clears");
    let released_after = cleared.elapsed();
    producer.command("count", 20_001_u64).await.unwrap();
    // The blocked send that had left is taken once the broker reads again.
    let sent_before = matches!(error, Error::Blocked { sent: true, .. });
    wait_for("everything sent after the alarm", 10, || {
        fixture.counter.seen.has(20_000)
            && fixture.counter.seen.has(20_001)
            && (!sent_before || fixture.counter.seen.has(10_000 + through))
    })
    .await;
    assert_eq!(connection.blocked(), None);
    assert_eq!(fixture.consumer.health(), Health::Consuming);
    println!(
        "memory alarm: {through} send(s) through before the block, then {} after {waited:?}; \
         {consumed_during} consumed under the alarm ({blocked_for:?}, 0 recoveries); \
         the held send went out {released_after:?} after the alarm cleared",
        error.report()
    );
    fixture.control.quit();
    let _ = fixture.running.await;
    connection.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alarms_before_connecting_and_both_at_once_block_until_both_clear() {
    let _serial = ONE_AT_A_TIME.lock().await;
    init_tracing();
    let node = PrivateNode::start(base(), None);
    node.memory_alarm(true);
    let connection = Connection::connect(config(&node)).await.unwrap();
    let fixture = processor_on(&connection, Queue::new(unique("alarms")), |b| b).await;
    let producer = Producer::builder()
        .ek(fixture.exchange.clone(), fixture.queue.as_str())
        .connect(&connection)
        .await
        .unwrap();
    let (error, waited, _) = send_until_blocked(&producer, 0).await;
    assert_blocked(&error, waited, "memory");

    // Both at once: clearing one leaves the other blocking.
    node.disk_alarm(true);
    node.memory_alarm(false);
    let (error, waited) = {
        let started = Instant::now();
        let error = producer.command("count", 100_u64).await.unwrap_err();
        (error, started.elapsed())
    };
    assert!(
        matches!(error, Error::Blocked { .. }),
        "still blocked while the disk alarm is on: {}",
        error.report()
    );
    assert!(waited >= PUBLISH_TIMEOUT);

    // A recovery does not forget it.
    node.close_all_connections();
    wait_for("the recovery", 30, || {
        connection.recoveries() >= 1 && connection.is_connected()
    })
    .await;
    assert!(
        connection.blocked().is_some(),
        "the blocked state survives the recovery"
    );
    assert!(
        matches!(fixture.consumer.health(), Health::Blocked(_)),
        "{:?}",
        fixture.consumer.health()
    );
    let (error, waited, _) = send_until_blocked(&producer, 200).await;
    assert_blocked(&error, waited, "disk");

    node.disk_alarm(false);
    let cleared = Instant::now();
    wait_for("the broker to unblock", 10, || {
        connection.blocked().is_none()
    })
    .await;
    producer.command("count", 300_u64).await.unwrap();
    wait_for("the send after both alarms cleared", 10, || {
        fixture.counter.seen.has(300)
    })
    .await;
    let unblocked_after = cleared.elapsed();

    // Closing a blocked connection takes at most 5 s.
    node.memory_alarm(true);
    let (error, _, _) = send_until_blocked(&producer, 400).await;
    assert!(matches!(error, Error::Blocked { .. }), "{}", error.report());
    fixture.control.quit();
    let _ = fixture.running.await;
    let closing = Instant::now();
    connection.close().await.unwrap();
    let closed_after = closing.elapsed();
    println!(
        "alarms before connecting and both at once: blocked until both cleared, \
         unblocked {unblocked_after:?} after; a blocked connection closed in {closed_after:?}"
    );
    assert!(
        closed_after <= Duration::from_secs(6),
        "closing a blocked connection took {closed_after:?}, more than 5 s"
    );
    node.memory_alarm(false);
}

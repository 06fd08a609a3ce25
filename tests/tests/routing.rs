//! Producers and consumers on the real broker: routing, overrides, queues,
//! run-time bindings, confirms.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use postage::prelude::*;
use postage::{Binding, Error, Health};
use postage_tests::{connect, next_within, nothing_within, queue_depth, raw_channel, unique};
use serde_json::json;
use std::future::{Future, IntoFuture};
use std::pin::Pin;

fn direct() -> Exchange {
    Exchange::new(unique("direct"), ExchangeKind::Direct).auto_delete(true)
}

fn params(delivery: &postage::Delivery) -> serde_json::Value {
    delivery
        .message()
        .expect("decodes")
        .content
        .parameters()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn direct_send_reaches_bound_queue_with_fingerprint() {
    let connection = connect().await;
    let exchange = direct();
    let queue = unique("q");
    let mut consumer = Consumer::builder()
        .bind(exchange.clone(), [(queue.as_str(), "rk")])
        .connect(&connection)
        .await
        .expect("consumer");
    let producer = Producer::builder()
        .ek(exchange, "rk")
        .fingerprint(Fingerprint::new("sender", "application"))
        .connect(&connection)
        .await
        .expect("producer");
    producer.command("echo", "hello").await.expect("sent");
    let delivery = next_within(&mut consumer, 5).await;
    let message = delivery.message().expect("decodes");
    assert_eq!(
        (message.kind.as_str(), message.name.as_str()),
        ("command", "echo")
    );
    assert_eq!(params(&delivery), json!("hello"));
    assert_eq!(message.sender().name.as_deref(), Some("sender"));
    assert_eq!(message.sender().pid, Some(std::process::id()));
    assert_eq!(delivery.content_type(), Some("application/json"));
    assert_eq!(delivery.routing_key(), "rk");
    delivery.ack().await.expect("ack");
    connection.close().await.expect("close");
}

#[tokio::test]
async fn plain_send_goes_to_every_pair_key_override_to_the_first() {
    let connection = connect().await;
    let (a, b) = (direct(), direct());
    let (qa, qa2, qb) = (unique("qa"), unique("qa2"), unique("qb"));
    let mut consumer = Consumer::builder()
        .bind(a.clone(), [(qa.as_str(), "ka"), (qa2.as_str(), "other")])
        .bind(b.clone(), [(qb.as_str(), "kb")])
        .connect(&connection)
        .await
        .expect("consumer");
    let producer = Producer::builder()
        .eks([(a.clone(), "ka"), (b.clone(), "kb")])
        .connect(&connection)
        .await
        .expect("producer");

    producer.command("all", 1).await.expect("sent");
    let mut queues = vec![
        next_within(&mut consumer, 5).await,
        next_within(&mut consumer, 5).await,
    ];
    queues.sort_by(|x, y| x.queue().cmp(y.queue()));
    let mut got: Vec<&str> = queues.iter().map(|d| d.queue()).collect();
    got.sort();
    let mut want = vec![qa.as_str(), qb.as_str()];
    want.sort();
    assert_eq!(got, want, "one copy per pair");
    for d in &queues {
        d.ack().await.expect("ack");
    }
    assert!(nothing_within(&mut consumer, 300).await);

    // Key override: first exchange only, with that key.
    producer
        .command("keyed", 2)
        .key("other")
        .await
        .expect("sent");
    let delivery = next_within(&mut consumer, 5).await;
    assert_eq!(delivery.queue(), qa2);
    assert_eq!(delivery.exchange(), a.name());
    delivery.ack().await.expect("ack");
    assert!(nothing_within(&mut consumer, 300).await);

    // Pairs override replaces the list (and a key alongside is ignored).
    producer
        .command("pairs", 3)
        .eks([(b.clone(), "kb")])
        .key("ka")
        .await
        .expect("sent");
    let delivery = next_within(&mut consumer, 5).await;
    assert_eq!(delivery.queue(), qb);
    delivery.ack().await.expect("ack");
    assert!(nothing_within(&mut consumer, 300).await);
    connection.close().await.expect("close");
}

#[tokio::test]
async fn fanout_and_topic_routing() {
    let connection = connect().await;
    let fanout = Exchange::new(unique("fan"), ExchangeKind::Fanout).auto_delete(true);
    let topic = Exchange::new(unique("topic"), ExchangeKind::Topic).auto_delete(true);
    let (f1, f2, t1, t2) = (unique("f1"), unique("f2"), unique("t1"), unique("t2"));
    let mut consumer = Consumer::builder()
        .bind(
            fanout.clone(),
            [(f1.as_str(), "ignored"), (f2.as_str(), "")],
        )
        .bind(
            topic.clone(),
            [(t1.as_str(), "log.*"), (t2.as_str(), "log.error.#")],
        )
        .connect(&connection)
        .await
        .expect("consumer");
    let producer = Producer::builder()
        .ek(fanout, "anything")
        .connect(&connection)
        .await
        .expect("producer");
    producer.command("f", 0).await.expect("sent");
    let mut got = vec![
        next_within(&mut consumer, 5).await.queue().to_owned(),
        next_within(&mut consumer, 5).await.queue().to_owned(),
    ];
    got.sort();
    let mut want = vec![f1.clone(), f2.clone()];
    want.sort();
    assert_eq!(got, want);

    let topics = Producer::builder()
        .ek(topic, "log.info")
        .connect(&connection)
        .await
        .expect("producer");
    topics.command("t", 0).await.expect("sent");
    assert_eq!(next_within(&mut consumer, 5).await.queue(), t1);
    topics
        .command("t", 0)
        .key("log.error.disk.full")
        .await
        .expect("sent");
    assert_eq!(next_within(&mut consumer, 5).await.queue(), t2);
    assert!(nothing_within(&mut consumer, 300).await);
    connection.close().await.expect("close");
}

#[tokio::test]
async fn shared_queue_splits_private_queues_copy() {
    let connection = connect().await;
    let exchange = direct();
    let shared = unique("shared");
    let mut receivers = Vec::new();
    for _ in 0..2 {
        let private = Queue::new(unique("private")).exclusive(true);
        receivers.push(
            Consumer::builder()
                .bind(
                    exchange.clone(),
                    [(Queue::new(shared.as_str()).auto_delete(true), "rk")],
                )
                .binding(Binding::new(exchange.clone(), [(private, "fanout-rk")]))
                .connect(&connection)
                .await
                .expect("consumer"),
        );
    }
    let producer = Producer::builder()
        .ek(exchange, "rk")
        .connect(&connection)
        .await
        .expect("producer");
    for i in 0..10 {
        producer.command("echo", i).await.expect("sent");
    }
    let mut counts = [0usize; 2];
    for (i, receiver) in receivers.iter_mut().enumerate() {
        while let Ok(Some(delivery)) =
            tokio::time::timeout(std::time::Duration::from_millis(500), receiver.next()).await
        {
            assert_eq!(delivery.queue(), shared);
            counts[i] += 1;
            delivery.ack().await.expect("ack");
        }
    }
    assert_eq!(counts[0] + counts[1], 10, "each message once: {counts:?}");
    assert!(counts[0] >= 3 && counts[1] >= 3, "round robin: {counts:?}");

    producer
        .command("echo", "copy")
        .key("fanout-rk")
        .await
        .expect("sent");
    for receiver in &mut receivers {
        let delivery = next_within(receiver, 5).await;
        assert_ne!(delivery.queue(), shared);
        assert_eq!(params(&delivery), json!("copy"));
        delivery.ack().await.expect("ack");
        assert!(nothing_within(receiver, 300).await, "exactly one copy each");
    }
    connection.close().await.expect("close");
}

#[tokio::test]
async fn queue_bound_at_run_time_receives_at_once_with_one_consumer() {
    let connection = connect().await;
    let exchange = direct();
    let queue = unique("late");
    let mut consumer = Consumer::builder()
        .connect(&connection)
        .await
        .expect("consumer");
    let handle = consumer.handle();
    let name = handle
        .queue_bind(&exchange, queue.as_str(), "k1")
        .await
        .expect("bind");
    assert_eq!(name, queue);
    handle
        .queue_bind(&exchange, queue.as_str(), "k2")
        .await
        .expect("second key");
    assert_eq!(handle.queues(), vec![queue.clone()]);
    assert_eq!(handle.health(), Health::Consuming);

    let producer = Producer::builder()
        .ek(exchange.clone(), "k1")
        .connect(&connection)
        .await
        .expect("producer");
    producer.command("a", 1).await.expect("sent");
    producer.command("b", 2).key("k2").await.expect("sent");
    let first = next_within(&mut consumer, 5).await;
    let second = next_within(&mut consumer, 5).await;
    assert_eq!((params(&first), params(&second)), (json!(1), json!(2)));
    first.ack().await.expect("ack");
    second.ack().await.expect("ack");
    assert!(
        nothing_within(&mut consumer, 300).await,
        "one broker consumer: no duplicates"
    );

    // A server-named queue gets its broker name back.
    let generated = handle
        .queue_bind(&exchange, Queue::server_named(), "k3")
        .await
        .expect("bind");
    assert!(generated.starts_with("amq.gen-"), "{generated}");
    connection.close().await.expect("close");
}

#[tokio::test]
async fn unroutable_mandatory_message_is_an_error_nonmandatory_is_not() {
    let connection = connect().await;
    let producer = Producer::builder()
        .ek(direct(), "nobody-listens")
        .connect(&connection)
        .await
        .expect("producer");
    producer
        .command("lost", 0)
        .await
        .expect("Python semantics: dropped silently");
    let error = producer
        .command("lost", 0)
        .mandatory(true)
        .await
        .expect_err("unroutable");
    assert!(matches!(error, Error::Unroutable { .. }), "{error}");
    assert!(error.to_string().contains("nobody-listens"), "{error}");
    // The channel is still usable afterwards.
    producer.command("lost", 0).await.expect("still works");
    connection.close().await.expect("close");
}

#[tokio::test]
async fn empty_eks_is_a_clear_error() {
    let connection = connect().await;
    let producer = Producer::builder()
        .connect(&connection)
        .await
        .expect("producer");
    let error = producer.command("x", 0).await.expect_err("nowhere to go");
    assert!(matches!(error, Error::NoDestination), "{error}");
    connection.close().await.expect("close");
}

#[tokio::test]
async fn persistent_forward_and_generic_sends() {
    let connection = connect().await;
    let exchange = direct();
    let queue = unique("props");
    let mut consumer = Consumer::builder()
        .bind(
            exchange.clone(),
            [(
                Queue::new(queue.as_str()).durable(true).auto_delete(true),
                "rk",
            )],
        )
        .connect(&connection)
        .await
        .expect("consumer");
    let producer = Producer::builder()
        .ek(exchange, "rk")
        .persistent(true)
        .connect(&connection)
        .await
        .expect("producer");
    producer
        .send(MessageStatus::new("online"))
        .await
        .expect("sent");
    let delivery = next_within(&mut consumer, 5).await;
    let message = delivery.message().expect("decodes");
    assert_eq!(
        (message.kind.as_str(), message.name.as_str()),
        ("status", "online")
    );
    delivery.ack().await.expect("ack");

    // A raw body is forwarded byte for byte, without a fingerprint.
    let raw = br#"{"type": "command", "name": "relay", "category": "message", "fingerprint": {"name": "origin"}, "content": {"parameters": "\u00e9"}}"#;
    producer.forward(raw.to_vec()).await.expect("forwarded");
    let delivery = next_within(&mut consumer, 5).await;
    assert_eq!(delivery.body(), raw);
    assert_eq!(
        delivery
            .message()
            .expect("decodes")
            .sender()
            .name
            .as_deref(),
        Some("origin")
    );
    delivery.ack().await.expect("ack");
    connection.close().await.expect("close");
}

#[tokio::test]
async fn python_shaped_bodies_published_raw_are_decoded_bad_ones_reported() {
    use lapin::options::BasicPublishOptions;
    let connection = connect().await;
    let exchange = direct();
    let queue = unique("raw");
    let mut consumer = Consumer::builder()
        .bind(exchange.clone(), [(queue.as_str(), "rk")])
        .connect(&connection)
        .await
        .expect("consumer");
    let channel = raw_channel().await;
    let publish = |body: &'static [u8], content_type: &'static str| {
        let channel = channel.clone();
        let exchange = exchange.name().to_owned();
        async move {
            let mut props = lapin::BasicProperties::default();
            if !content_type.is_empty() {
                props = props.with_content_type(content_type.into());
            }
            channel
                .basic_publish(
                    exchange.as_str().into(),
                    "rk".into(),
                    BasicPublishOptions::default(),
                    body,
                    props,
                )
                .await
                .expect("publish");
        }
    };
    publish(
        br#"{"category": "message", "content": {"parameters": "A test message"}, "fingerprint": {"host": "vm", "name": "echo_send", "pid": "4242", "type": "application", "user": "root", "vhost": "/"}, "name": "echo", "type": "command", "version": "2", "_reserved": {}}"#,
        "application/json",
    )
    .await;
    publish(b"not json", "application/json").await;
    publish(br#"{"type": "command"}"#, "").await;
    publish(br#"{"a": 1}"#, "text/plain").await;

    let good = next_within(&mut consumer, 5).await;
    assert_eq!(good.message().expect("decodes").sender().pid, Some(4242));
    assert!(matches!(
        next_within(&mut consumer, 5).await.message(),
        Err(postage::DecodeError::Syntax(_))
    ));
    assert!(matches!(
        next_within(&mut consumer, 5).await.message(),
        Err(postage::DecodeError::Malformed(_))
    ));
    assert!(matches!(
        next_within(&mut consumer, 5).await.message(),
        Err(postage::DecodeError::ContentType { .. })
    ));
    connection.close().await.expect("close");
    // Nothing was acknowledged: closing gave all four back to the queue.
    let checker = raw_channel().await;
    let mut depth = 0;
    for _ in 0..50 {
        depth = queue_depth(&checker, &queue).await;
        if depth == 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(depth, 4);
    let _ = checker
        .queue_delete(
            queue.as_str().into(),
            lapin::options::QueueDeleteOptions::default(),
        )
        .await;
}

#[tokio::test]
async fn declaration_mismatch_is_reported() {
    let connection = connect().await;
    let name = unique("mismatch");
    let durable = Exchange::new(name.clone(), ExchangeKind::Direct).auto_delete(true);
    Producer::builder()
        .ek(durable, "k")
        .connect(&connection)
        .await
        .expect("first");
    let other = Exchange::new(name, ExchangeKind::Fanout).auto_delete(true);
    let error = Producer::builder()
        .ek(other, "k")
        .connect(&connection)
        .await
        .expect_err("406");
    assert!(error.to_string().contains("exchange.declare"), "{error}");
}

#[tokio::test]
async fn unreachable_broker_is_a_clear_error() {
    let config = Config::default().with_host("127.0.0.1").with_port(1);
    let error = Connection::connect(config)
        .await
        .expect_err("nothing listens on port 1");
    let text = error.to_string();
    assert!(text.contains("127.0.0.1:1"), "{text}");
    assert!(!text.contains("guest:guest"), "{text}");
}

/// A send's future, borrowing its producer.
type Sending<'a> = Pin<Box<dyn Future<Output = postage::Result<()>> + Send + 'a>>;

/// Sends `count` messages on `producer`, 200 at once from as many tasks,
/// message `n` as `send(producer, n)` says, with whether it must fail with
/// an error `failure` recognises; gives the `n` of those whose outcome was
/// not their own. Fails on any other error.
async fn outcomes_of_their_own(
    producer: &Producer,
    count: u64,
    failure: fn(&Error) -> bool,
    send: for<'a> fn(&'a Producer, u64) -> (bool, Sending<'a>),
) -> Vec<u64> {
    let mut wrong = Vec::new();
    for first in (0..count).step_by(200) {
        let sends: Vec<_> = (first..count.min(first + 200))
            .map(|n| {
                let producer = producer.clone();
                tokio::spawn(async move {
                    let (fails, sending) = send(&producer, n);
                    (n, fails, sending.await)
                })
            })
            .collect();
        for task in sends {
            let (n, fails, outcome) = task.await.expect("task");
            let failed = match &outcome {
                Ok(()) => false,
                Err(error) if failure(error) => true,
                Err(error) => panic!("a send failed: {}", error.report()),
            };
            if failed != fails {
                wrong.push(n);
            }
        }
    }
    wrong
}

/// Concurrent sends on one producer (one channel) from several threads:
/// the broker numbers publishes in the order their frames arrive, and
/// each send must get the confirmation of its own message. Half the sends
/// go to a queue that refuses every message (`x-max-length` 0 with
/// `reject-publish`: the broker nacks them), half to one that takes them:
/// a confirmation given to another send shows as a send to the open
/// queue refused, or a send to the full one taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_sends_each_get_their_own_confirmation() {
    let connection = connect().await;
    let exchange = direct();
    let (open, full) = (unique("open"), unique("full"));
    // Bound, never read: the sends to the open queue wait there.
    let consumer = Consumer::builder()
        .bind(
            exchange.clone(),
            [
                (Queue::new(open.as_str()).auto_delete(true), "open"),
                (
                    Queue::new(full.as_str())
                        .auto_delete(true)
                        .argument("x-max-length", 0)
                        .argument("x-overflow", "reject-publish"),
                    "full",
                ),
            ],
        )
        .prefetch(1)
        .connect(&connection)
        .await
        .expect("consumer");
    let producer = Producer::builder()
        .ek(exchange, "open")
        .connect(&connection)
        .await
        .expect("producer");
    let wrong = outcomes_of_their_own(
        &producer,
        1_000,
        |error| matches!(error, Error::Nacked { .. }),
        |producer, n| {
            let refused = n % 2 == 1;
            let key = if refused { "full" } else { "open" };
            (
                refused,
                Box::pin(producer.command("one", n).key(key).into_future()),
            )
        },
    )
    .await;
    assert!(
        wrong.is_empty(),
        "{} sends got another send's confirmation: {wrong:?}",
        wrong.len()
    );
    drop(consumer);
    connection.close().await.expect("close");
}

/// Concurrent mandatory sends on one producer: each unroutable one, and
/// only those, fails with `Unroutable`, however the broker groups its
/// confirmations; a send that is not mandatory is never told of another's
/// returned message.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_mandatory_sends_each_get_their_own_return() {
    let connection = connect().await;
    let exchange = direct();
    let routed = unique("routed");
    // Bound, never read: the routed sends wait there until it goes.
    let consumer = Consumer::builder()
        .bind(
            exchange.clone(),
            [(
                Queue::new(unique("returns")).auto_delete(true),
                routed.as_str(),
            )],
        )
        .prefetch(1)
        .connect(&connection)
        .await
        .expect("consumer");
    let producer = Producer::builder()
        .ek(exchange, routed.as_str())
        .connect(&connection)
        .await
        .expect("producer");
    // Routed and mandatory; unroutable and mandatory; unroutable and not
    // mandatory (dropped, no error).
    let wrong = outcomes_of_their_own(
        &producer,
        1_500,
        |error| matches!(error, Error::Unroutable { .. }),
        |producer, n| {
            let send = producer.command("one", n);
            match n % 3 {
                0 => (false, Box::pin(send.mandatory(true).into_future())),
                1 => (
                    true,
                    Box::pin(send.key("nobody-listens").mandatory(true).into_future()),
                ),
                _ => (false, Box::pin(send.key("nobody-listens").into_future())),
            }
        },
    )
    .await;
    assert!(
        wrong.is_empty(),
        "{} sends got another send's outcome: {wrong:?}",
        wrong.len()
    );
    drop(consumer);
    connection.close().await.expect("close");
}

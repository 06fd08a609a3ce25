//! Queues: server-named, exclusive and auto-delete queues, TTLs, length
//! limits, dead-lettering, quorum delivery counts, and the refusals of
//! declarations and publishes.

use std::time::Duration;

use postage::testing::{Probe, ProbeDelivery};
use postage::{Connection, Exchange, ExchangeKind, Headers, Queue};
use postage_tests::conformance::{delivered, probe, silent};
use postage_tests::{conformance, unique};
use serde_json::{Value, json};

/// Is `queue` gone (a passive declaration refused with 404) within a
/// second? Each refusal closes a channel: a new probe for each try.
async fn gone(connection: &Connection, queue: &str) -> bool {
    for _ in 0..20 {
        let probe = probe(connection).await;
        match probe.declare_queue(&Queue::new(queue).passive(true)).await {
            Err(e) if e.reply_code() == Some(404) => return true,
            Err(e) => panic!("passive declaration of {queue}: {}", e.report()),
            Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    false
}

/// The `x-death` entries of a dead-lettered delivery.
fn deaths(delivery: &ProbeDelivery) -> Vec<Headers> {
    let headers = delivery.headers();
    match headers.get("x-death") {
        Some(Value::Array(entries)) => entries
            .iter()
            .map(|entry| match entry {
                Value::Object(map) => map.clone().into_iter().collect(),
                other => panic!("an x-death entry is not a table: {other}"),
            })
            .collect(),
        other => panic!("no x-death array in {headers:?}: {other:?}"),
    }
}

/// Checks one `x-death` entry: reason, queue, count, exchange and routing
/// keys (and that it has a time).
fn assert_death(
    entry: &Headers,
    reason: &str,
    queue: &str,
    count: u64,
    exchange: &str,
    keys: &[&str],
) {
    assert_eq!(entry.get("reason"), Some(&json!(reason)), "{entry:?}");
    assert_eq!(entry.get("queue"), Some(&json!(queue)), "{entry:?}");
    assert_eq!(
        entry.get("count").and_then(Value::as_u64),
        Some(count),
        "{entry:?}"
    );
    assert_eq!(entry.get("exchange"), Some(&json!(exchange)), "{entry:?}");
    assert_eq!(entry.get("routing-keys"), Some(&json!(keys)), "{entry:?}");
    assert!(entry.contains_key("time"), "{entry:?}");
}

/// A fanout dead-letter exchange and a queue bound to it, consumed.
async fn dead_letter_target(probe: &Probe) -> (String, String) {
    let exchange = unique("dlx");
    let queue = unique("dlq");
    probe
        .declare_exchange(&Exchange::new(exchange.clone(), ExchangeKind::Fanout).auto_delete(true))
        .await
        .unwrap();
    probe
        .declare_queue(&Queue::new(&queue).auto_delete(true))
        .await
        .unwrap();
    probe.bind(&queue, &exchange, "").await.unwrap();
    (exchange, queue)
}

/// The reply code of a refusal, failing the test when it succeeded.
fn refused<T: std::fmt::Debug>(what: &str, result: postage::Result<T>) -> Option<u16> {
    match result {
        Ok(value) => panic!("{what} succeeded: {value:?}"),
        Err(e) => e.reply_code(),
    }
}

conformance! {
    /// A queue declared without a name gets one from the broker
    /// (`amq.gen-...`), and is routed to by it.
    async fn server_named_queue_gets_an_amq_gen_name(broker) {
        let probe = broker.probe().await;
        let declared = probe.declare_queue(&Queue::server_named()).await.unwrap();
        assert!(declared.name.starts_with("amq.gen-"), "{declared:?}");
        assert_eq!((declared.messages, declared.consumers), (0, 0));
        probe.publish("", &declared.name, "to the broker's name").await.unwrap();
        assert_eq!(probe.depth(&declared.name).await.unwrap(), 1);
        let mut consumer = probe.consume(&declared.name).await.unwrap();
        assert_eq!(delivered(&mut consumer, 2000).await.text(), "to the broker's name");
    }

    /// An exclusive queue is locked to its connection (405
    /// `RESOURCE_LOCKED` elsewhere) and goes when that connection closes.
    async fn exclusive_queue_is_private_to_its_connection(broker) {
        let owner = broker.connect().await;
        let queue = unique("exclusive");
        probe(&owner).await.declare_queue(&Queue::new(&queue).exclusive(true)).await.unwrap();
        let other = broker.connect().await;
        let code = refused("consuming another connection's exclusive queue", probe(&other).await.consume(&queue).await);
        assert_eq!(code, Some(405));
        let code = refused(
            "declaring another connection's exclusive queue",
            probe(&other).await.declare_queue(&Queue::new(&queue).exclusive(true)).await,
        );
        assert_eq!(code, Some(405));
        // Its own connection still uses it.
        let own = probe(&owner).await;
        own.publish("", &queue, "mine").await.unwrap();
        let mut consumer = own.consume(&queue).await.unwrap();
        assert_eq!(delivered(&mut consumer, 2000).await.text(), "mine");
        owner.close().await.unwrap();
        assert!(gone(&other, &queue).await, "the exclusive queue outlived its connection");
    }

    /// An auto-delete queue stays until it has had a consumer, and goes
    /// when its last consumer is cancelled.
    async fn auto_delete_queue_goes_with_its_last_consumer(broker) {
        let connection = broker.connect().await;
        let probe = probe(&connection).await;
        let queue = unique("auto-delete");
        probe.declare_queue(&Queue::new(&queue).auto_delete(true)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(probe.depth(&queue).await.unwrap(), 0, "gone before it had a consumer");
        let first = probe.consume(&queue).await.unwrap();
        let second = probe.consume(&queue).await.unwrap();
        assert_eq!(probe.declare_queue(&Queue::new(&queue).passive(true)).await.unwrap().consumers, 2);
        first.cancel().await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            probe.declare_queue(&Queue::new(&queue).passive(true)).await.unwrap().consumers,
            1,
            "gone while it still had a consumer"
        );
        second.cancel().await.unwrap();
        assert!(gone(&connection, &queue).await, "still there after its last consumer went");
    }

    /// `x-message-ttl`: a message not consumed in time is dropped.
    async fn message_ttl_drops_expired_messages(broker) {
        let probe = broker.probe().await;
        let queue = unique("ttl");
        probe
            .declare_queue(&Queue::new(&queue).auto_delete(true).argument("x-message-ttl", 200))
            .await
            .unwrap();
        probe.publish("", &queue, "short-lived").await.unwrap();
        assert_eq!(probe.depth(&queue).await.unwrap(), 1);
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(probe.depth(&queue).await.unwrap(), 0);
        let mut consumer = probe.consume(&queue).await.unwrap();
        assert!(silent(&mut consumer, 100).await);
    }

    /// A message's `expiration` drops it, and not the messages without
    /// one.
    async fn per_message_expiration_drops_the_message(broker) {
        let probe = broker.probe().await;
        let queue = unique("expiration");
        probe.declare_queue(&Queue::new(&queue).auto_delete(true)).await.unwrap();
        probe
            .publish("", &queue, "short-lived")
            .expiration(Duration::from_millis(100))
            .await
            .unwrap();
        probe.publish("", &queue, "lasting").await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(probe.depth(&queue).await.unwrap(), 1);
        let mut consumer = probe.consume(&queue).await.unwrap();
        let delivery = delivered(&mut consumer, 2000).await;
        assert_eq!(delivery.text(), "lasting");
        delivery.ack().await.unwrap();
        assert!(silent(&mut consumer, 100).await);
    }

    /// An expired message goes to the dead-letter exchange with an
    /// `x-death` entry: reason `expired`, its queue, count 1, the exchange
    /// and keys it was published with.
    async fn expired_messages_are_dead_lettered_with_x_death(broker) {
        let probe = broker.probe().await;
        let (dlx, dlq) = dead_letter_target(&probe).await;
        let queue = unique("expiring");
        probe
            .declare_queue(
                &Queue::new(&queue)
                    .auto_delete(true)
                    .argument("x-message-ttl", 100)
                    .dead_letter_exchange(dlx.clone()),
            )
            .await
            .unwrap();
        probe.publish("", &queue, "expiring").header("mine", "kept").await.unwrap();
        let mut dead = probe.consume(&dlq).await.unwrap();
        let delivery = delivered(&mut dead, 2000).await;
        assert_eq!(delivery.text(), "expiring");
        assert_eq!(delivery.exchange(), dlx);
        assert_eq!(delivery.routing_key(), queue);
        let headers = delivery.headers();
        assert_eq!(headers.get("mine"), Some(&json!("kept")));
        assert_eq!(headers.get("x-first-death-reason"), Some(&json!("expired")));
        assert_eq!(headers.get("x-first-death-queue"), Some(&json!(queue)));
        assert_eq!(headers.get("x-first-death-exchange"), Some(&json!("")));
        let deaths = deaths(&delivery);
        assert_eq!(deaths.len(), 1, "{deaths:?}");
        assert_death(&deaths[0], "expired", &queue, 1, "", &[&queue]);
        delivery.ack().await.unwrap();
        assert_eq!(probe.depth(&queue).await.unwrap(), 0);
        probe.delete_queue(&queue).await.unwrap();
    }

    /// `x-max-length` with the default overflow (drop-head): the oldest
    /// messages go (dead-lettered as `maxlen`), the depth stays at the
    /// limit.
    async fn max_length_drops_the_oldest(broker) {
        let probe = broker.probe().await;
        let (dlx, dlq) = dead_letter_target(&probe).await;
        let queue = unique("max-length");
        probe
            .declare_queue(
                &Queue::new(&queue)
                    .auto_delete(true)
                    .argument("x-max-length", 2)
                    .dead_letter_exchange(dlx),
            )
            .await
            .unwrap();
        for body in ["1", "2", "3", "4"] {
            probe.publish("", &queue, body).await.unwrap();
            assert!(probe.depth(&queue).await.unwrap() <= 2);
        }
        assert_eq!(probe.depth(&queue).await.unwrap(), 2);
        let mut consumer = probe.consume(&queue).await.unwrap();
        for body in ["3", "4"] {
            let delivery = delivered(&mut consumer, 2000).await;
            assert_eq!(delivery.text(), body);
            delivery.ack().await.unwrap();
        }
        assert!(silent(&mut consumer, 100).await);
        let mut dead = probe.consume(&dlq).await.unwrap();
        for body in ["1", "2"] {
            let delivery = delivered(&mut dead, 2000).await;
            assert_eq!(delivery.text(), body);
            assert_death(&deaths(&delivery)[0], "maxlen", &queue, 1, "", &[&queue]);
            delivery.ack().await.unwrap();
        }
    }

    /// `x-max-length` with `x-overflow: reject-publish`: a publish to a
    /// full queue is nacked, and the queue keeps what it had.
    async fn max_length_reject_publish_nacks(broker) {
        let probe = broker.probe().await;
        let queue = unique("reject-publish");
        probe
            .declare_queue(
                &Queue::new(&queue)
                    .auto_delete(true)
                    .argument("x-max-length", 1)
                    .argument("x-overflow", "reject-publish"),
            )
            .await
            .unwrap();
        probe.publish("", &queue, "first").await.unwrap();
        let err = probe.publish("", &queue, "second").await.unwrap_err();
        assert!(matches!(err, postage::Error::Nacked { .. }), "{}", err.report());
        assert!(probe.is_open());
        assert_eq!(probe.depth(&queue).await.unwrap(), 1);
        let mut consumer = probe.consume(&queue).await.unwrap();
        let delivery = delivered(&mut consumer, 2000).await;
        assert_eq!(delivery.text(), "first");
        delivery.ack().await.unwrap();
        probe.publish("", &queue, "third").await.unwrap();
        assert_eq!(delivered(&mut consumer, 2000).await.text(), "third");
    }

    /// `x-dead-letter-routing-key` replaces the key of a dead-lettered
    /// message; `x-death` keeps the original.
    async fn dead_letter_routing_key_replaces_the_key(broker) {
        let probe = broker.probe().await;
        let dlx = unique("dlx-direct");
        let dlq = unique("dlq-direct");
        probe
            .declare_exchange(&Exchange::new(dlx.clone(), ExchangeKind::Direct).auto_delete(true))
            .await
            .unwrap();
        probe.declare_queue(&Queue::new(&dlq).auto_delete(true)).await.unwrap();
        probe.bind(&dlq, &dlx, "dead").await.unwrap();
        let queue = unique("dlrk");
        probe
            .declare_queue(
                &Queue::new(&queue)
                    .auto_delete(true)
                    .dead_letter_exchange(dlx.clone())
                    .dead_letter_routing_key("dead"),
            )
            .await
            .unwrap();
        probe.publish("", &queue, "rerouted").await.unwrap();
        let mut consumer = probe.consume(&queue).await.unwrap();
        delivered(&mut consumer, 2000).await.reject(false).await.unwrap();
        let mut dead = probe.consume(&dlq).await.unwrap();
        let delivery = delivered(&mut dead, 2000).await;
        assert_eq!(delivery.text(), "rerouted");
        assert_eq!(delivery.exchange(), dlx);
        assert_eq!(delivery.routing_key(), "dead");
        assert_death(&deaths(&delivery)[0], "rejected", &queue, 1, "", &[&queue]);
        delivery.ack().await.unwrap();
        assert!(silent(&mut consumer, 100).await);
    }

    /// A message rejected without requeueing is dead-lettered with reason
    /// `rejected` and the `x-first-death-*` headers.
    async fn rejected_messages_are_dead_lettered(broker) {
        let probe = broker.probe().await;
        let (dlx, dlq) = dead_letter_target(&probe).await;
        let exchange = unique("rejecting-exchange");
        let queue = unique("rejecting");
        probe
            .declare_exchange(&Exchange::new(exchange.clone(), ExchangeKind::Direct).auto_delete(true))
            .await
            .unwrap();
        probe
            .declare_queue(&Queue::new(&queue).auto_delete(true).dead_letter_exchange(dlx.clone()))
            .await
            .unwrap();
        probe.bind(&queue, &exchange, "k").await.unwrap();
        probe
            .publish(&exchange, "k", "refused")
            .correlation_id("c-1")
            .reply_to("replies")
            .persistent(true)
            .await
            .unwrap();
        let mut consumer = probe.consume(&queue).await.unwrap();
        delivered(&mut consumer, 2000).await.reject(false).await.unwrap();
        assert!(silent(&mut consumer, 100).await);
        let mut dead = probe.consume(&dlq).await.unwrap();
        let delivery = delivered(&mut dead, 2000).await;
        assert_eq!(delivery.text(), "refused");
        assert_eq!(delivery.exchange(), dlx);
        assert_eq!(delivery.routing_key(), "k");
        assert_eq!(delivery.correlation_id(), Some("c-1"));
        assert_eq!(delivery.reply_to(), Some("replies"));
        assert!(delivery.is_persistent());
        let headers = delivery.headers();
        assert_eq!(headers.get("x-first-death-reason"), Some(&json!("rejected")));
        assert_eq!(headers.get("x-first-death-queue"), Some(&json!(queue)));
        assert_eq!(headers.get("x-first-death-exchange"), Some(&json!(exchange)));
        let deaths = deaths(&delivery);
        assert_eq!(deaths.len(), 1, "{deaths:?}");
        assert_death(&deaths[0], "rejected", &queue, 1, &exchange, &["k"]);
        delivery.ack().await.unwrap();
    }

    /// A message dead-lettered twice from the same queue for the same
    /// reason has one `x-death` entry, counted 2.
    async fn dead_lettered_twice_counts_two(broker) {
        let probe = broker.probe().await;
        let dlx = unique("dlx-loop");
        let queue = unique("dead-loop");
        probe
            .declare_exchange(&Exchange::new(dlx.clone(), ExchangeKind::Fanout).auto_delete(true))
            .await
            .unwrap();
        probe
            .declare_queue(&Queue::new(&queue).auto_delete(true).dead_letter_exchange(dlx.clone()))
            .await
            .unwrap();
        // Dead-lettered messages come back to the queue they left.
        probe.bind(&queue, &dlx, "").await.unwrap();
        probe.publish("", &queue, "again").await.unwrap();
        let mut consumer = probe.consume(&queue).await.unwrap();
        let first = delivered(&mut consumer, 2000).await;
        assert!(!first.headers().contains_key("x-death"));
        first.reject(false).await.unwrap();
        let second = delivered(&mut consumer, 2000).await;
        assert_eq!(second.exchange(), dlx);
        assert_death(&deaths(&second)[0], "rejected", &queue, 1, "", &[&queue]);
        second.reject(false).await.unwrap();
        let third = delivered(&mut consumer, 2000).await;
        let entries = deaths(&third);
        assert_eq!(entries.len(), 1, "{entries:?}");
        assert_death(&entries[0], "rejected", &queue, 2, "", &[&queue]);
        assert_eq!(third.headers().get("x-first-death-exchange"), Some(&json!("")));
        third.ack().await.unwrap();
        assert!(silent(&mut consumer, 100).await);
    }

    /// A quorum queue counts deliveries: a requeued message comes back
    /// redelivered with `x-delivery-count`.
    async fn quorum_queue_counts_redeliveries(broker) {
        let probe = broker.probe().await;
        let queue = unique("quorum-count");
        probe.declare_queue(&Queue::quorum(&queue)).await.unwrap();
        probe.publish("", &queue, "counted").await.unwrap();
        let mut consumer = probe.consume(&queue).await.unwrap();
        let first = delivered(&mut consumer, 2000).await;
        assert!(!first.redelivered());
        assert_eq!(first.delivery_count(), None, "{:?}", first.headers());
        first.reject(true).await.unwrap();
        let second = delivered(&mut consumer, 2000).await;
        assert!(second.redelivered());
        assert_eq!(second.delivery_count(), Some(1), "{:?}", second.headers());
        second.reject(true).await.unwrap();
        let third = delivered(&mut consumer, 2000).await;
        assert_eq!(third.delivery_count(), Some(2), "{:?}", third.headers());
        third.ack().await.unwrap();
        assert!(silent(&mut consumer, 100).await);
        consumer.cancel().await.unwrap();
        probe.delete_queue(&queue).await.unwrap();
    }

    /// A quorum queue's `x-delivery-limit`: a message requeued once more
    /// than the limit is dead-lettered (reason `delivery_limit`).
    async fn quorum_delivery_limit_dead_letters(broker) {
        let probe = broker.probe().await;
        let (dlx, dlq) = dead_letter_target(&probe).await;
        let queue = unique("quorum-limit");
        probe
            .declare_queue(&Queue::quorum(&queue).delivery_limit(1).dead_letter_exchange(dlx))
            .await
            .unwrap();
        probe.publish("", &queue, "limited").await.unwrap();
        let mut consumer = probe.consume(&queue).await.unwrap();
        for count in [None, Some(1)] {
            let delivery = delivered(&mut consumer, 2000).await;
            assert_eq!(delivery.delivery_count(), count, "{:?}", delivery.headers());
            delivery.reject(true).await.unwrap();
        }
        assert!(silent(&mut consumer, 200).await);
        let mut dead = probe.consume(&dlq).await.unwrap();
        let delivery = delivered(&mut dead, 2000).await;
        assert_eq!(delivery.text(), "limited");
        assert_death(&deaths(&delivery)[0], "delivery_limit", &queue, 1, "", &[&queue]);
        delivery.ack().await.unwrap();
        consumer.cancel().await.unwrap();
        assert_eq!(probe.delete_queue(&queue).await.unwrap(), 0);
    }

    /// Redeclaring a queue with other arguments or flags is refused with
    /// 406 `PRECONDITION_FAILED`; the same declaration again is fine.
    async fn queue_redeclared_differently_is_refused(broker) {
        let connection = broker.connect().await;
        let queue = unique("redeclare");
        let declared = Queue::new(&queue).auto_delete(true).argument("x-message-ttl", 1000);
        probe(&connection).await.declare_queue(&declared).await.unwrap();
        let others = [
            ("another TTL", Queue::new(&queue).auto_delete(true).argument("x-message-ttl", 2000)),
            ("no TTL", Queue::new(&queue).auto_delete(true)),
            (
                "durable",
                Queue::new(&queue).auto_delete(true).durable(true).argument("x-message-ttl", 1000),
            ),
            ("not auto-delete", Queue::new(&queue).argument("x-message-ttl", 1000)),
        ];
        for (what, other) in others {
            let code = refused(what, probe(&connection).await.declare_queue(&other).await);
            assert_eq!(code, Some(406), "redeclared with {what}");
        }
        let probe = probe(&connection).await;
        probe.declare_queue(&declared).await.unwrap();
        // A passive declaration ignores the rest.
        probe.declare_queue(&Queue::new(&queue).passive(true)).await.unwrap();
        probe.delete_queue(&queue).await.unwrap();
    }

    /// A passive declaration of a missing queue is refused with 404
    /// `NOT_FOUND`, and closes the channel.
    async fn passive_declaration_of_a_missing_queue_is_404(broker) {
        let probe = broker.probe().await;
        let queue = unique("missing");
        let code = refused("passive declaration", probe.declare_queue(&Queue::new(&queue).passive(true)).await);
        assert_eq!(code, Some(404));
        assert!(!probe.is_open());
        let probe = broker.probe().await;
        assert!(refused("consuming", probe.consume(&queue).await) == Some(404));
    }

    /// Redeclaring an exchange with another type is 406; a passive
    /// declaration of a missing exchange is 404.
    async fn exchange_declarations_are_checked(broker) {
        let connection = broker.connect().await;
        let name = unique("typed");
        let exchange = Exchange::new(name.clone(), ExchangeKind::Direct).auto_delete(true);
        probe(&connection).await.declare_exchange(&exchange).await.unwrap();
        let code = refused(
            "redeclaring as topic",
            probe(&connection)
                .await
                .declare_exchange(&Exchange::new(name.clone(), ExchangeKind::Topic).auto_delete(true))
                .await,
        );
        assert_eq!(code, Some(406));
        let probe_ = probe(&connection).await;
        probe_.declare_exchange(&exchange).await.unwrap();
        probe_
            .declare_exchange(&Exchange::new(name.clone(), ExchangeKind::Fanout).passive(true))
            .await
            .unwrap();
        probe_.delete_exchange(&name).await.unwrap();
        let code = refused(
            "passive declaration of a missing exchange",
            probe(&connection)
                .await
                .declare_exchange(&Exchange::new(unique("no-exchange"), ExchangeKind::Direct).passive(true))
                .await,
        );
        assert_eq!(code, Some(404));
    }

    /// A confirmed publish to a missing exchange is refused with 404.
    async fn publish_to_a_missing_exchange_is_404(broker) {
        let probe = broker.probe().await;
        let code = refused("publishing", probe.publish(&unique("no-exchange"), "k", "lost").await);
        assert_eq!(code, Some(404));
        assert!(!probe.is_open());
    }

    /// Deleting a queue ends its consumers with an error (the broker's
    /// `basic.cancel`, no reply code), and the queue is gone.
    async fn deleting_a_queue_cancels_its_consumers(broker) {
        let connection = broker.connect().await;
        let consuming = probe(&connection).await;
        let queue = unique("deleted");
        consuming.declare_queue(&Queue::new(&queue)).await.unwrap();
        let mut consumer = consuming.consume(&queue).await.unwrap();
        let deleter = broker.probe().await;
        assert_eq!(deleter.delete_queue(&queue).await.unwrap(), 0);
        // On RabbitMQ the end is told from a lost connection after a
        // moment (up to 2 s) in which a loss would have been noticed.
        match tokio::time::timeout(Duration::from_secs(5), consumer.next()).await {
            Ok(Some(Err(e))) => {
                assert!(matches!(e, postage::Error::Amqp { .. }), "{}", e.report());
                assert_eq!(e.reply_code(), None, "{}", e.report());
            }
            Ok(Some(Ok(delivery))) => panic!("a delivery after the deletion: {delivery:?}"),
            Ok(None) => panic!("the consumer ended without an error"),
            Err(_) => panic!("the consumer was not ended within 5 s"),
        }
        // The channel stays open, and the queue is gone.
        assert!(consuming.is_open());
        consuming.declare_queue(&Queue::server_named()).await.unwrap();
        assert!(gone(&connection, &queue).await);
    }
}

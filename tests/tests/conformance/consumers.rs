//! Consumers: prefetch, round-robin, acknowledgements, rejections,
//! requeueing when a channel or connection closes, no-ack, cancel, the
//! properties a delivery carries, and order.

use std::time::Duration;

use postage::Queue;
use postage::testing::Probe;
use postage_tests::conformance::{delivered, probe, silent};
use postage_tests::{conformance, unique};
use serde_json::json;

/// A queue that outlives its consumers (a consumer that goes away would
/// delete an auto-delete queue), expiring a minute after it is last used
/// should a failing test leave it behind.
async fn lasting_queue(probe: &Probe, prefix: &str) -> String {
    let name = unique(prefix);
    probe
        .declare_queue(&Queue::new(&name).argument("x-expires", 60_000))
        .await
        .unwrap();
    name
}

/// An auto-delete queue.
async fn auto_delete_queue(probe: &Probe, prefix: &str) -> String {
    let name = unique(prefix);
    probe
        .declare_queue(&Queue::new(&name).auto_delete(true))
        .await
        .unwrap();
    name
}

/// The queue's depth once it is `expected`, or what it is after 2 s.
async fn depth_becomes(probe: &Probe, queue: &str, expected: u32) -> u32 {
    let mut depth = probe.depth(queue).await.unwrap();
    for _ in 0..40 {
        if depth == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        depth = probe.depth(queue).await.unwrap();
    }
    depth
}

conformance! {
    /// With a prefetch of 2, a consumer gets two messages and no third
    /// until it acknowledges one.
    async fn prefetch_is_honoured(broker) {
        let probe = broker.probe().await;
        let queue = auto_delete_queue(&probe, "prefetch").await;
        for i in 0..4 {
            probe.publish("", &queue, format!("m{i}")).await.unwrap();
        }
        probe.qos(2).await.unwrap();
        let mut consumer = probe.consume(&queue).await.unwrap();
        let first = delivered(&mut consumer, 2000).await;
        let second = delivered(&mut consumer, 2000).await;
        assert_eq!((first.text().as_str(), second.text().as_str()), ("m0", "m1"));
        assert!(silent(&mut consumer, 200).await, "no third delivery before an ack");
        assert_eq!(probe.depth(&queue).await.unwrap(), 2, "two messages wait in the queue");
        first.ack().await.unwrap();
        let third = delivered(&mut consumer, 2000).await;
        assert_eq!(third.text(), "m2");
        assert!(silent(&mut consumer, 200).await, "still two unacknowledged");
        second.ack().await.unwrap();
        third.ack().await.unwrap();
        let fourth = delivered(&mut consumer, 2000).await;
        assert_eq!(fourth.text(), "m3");
        fourth.ack().await.unwrap();
    }

    /// Two consumers of one queue get its messages in turn.
    async fn two_consumers_share_a_queue_round_robin(broker) {
        let connection = broker.connect().await;
        let admin = probe(&connection).await;
        let queue = auto_delete_queue(&admin, "round-robin").await;
        let a_probe = probe(&connection).await;
        let b_probe = probe(&connection).await;
        let mut a = a_probe.consume(&queue).await.unwrap();
        let mut b = b_probe.consume(&queue).await.unwrap();
        assert_eq!(admin.declare_queue(&Queue::new(&queue).auto_delete(true)).await.unwrap().consumers, 2);
        for i in 0..6 {
            admin.publish("", &queue, format!("m{i}")).await.unwrap();
        }
        let mut got_a = Vec::new();
        let mut got_b = Vec::new();
        for _ in 0..3 {
            let delivery = delivered(&mut a, 2000).await;
            got_a.push(delivery.text());
            delivery.ack().await.unwrap();
            let delivery = delivered(&mut b, 2000).await;
            got_b.push(delivery.text());
            delivery.ack().await.unwrap();
        }
        assert!(silent(&mut a, 100).await && silent(&mut b, 100).await);
        let evens = ["m0", "m2", "m4"].map(String::from).to_vec();
        let odds = ["m1", "m3", "m5"].map(String::from).to_vec();
        assert!(
            (got_a == evens && got_b == odds) || (got_a == odds && got_b == evens),
            "alternating: a got {got_a:?}, b got {got_b:?}"
        );
    }

    /// A prefetch of 0 sets no limit: every message is delivered at once.
    async fn prefetch_zero_is_unlimited(broker) {
        let probe = broker.probe().await;
        let queue = auto_delete_queue(&probe, "unlimited").await;
        for i in 0..25 {
            probe.publish("", &queue, format!("m{i}")).await.unwrap();
        }
        probe.qos(0).await.unwrap();
        let mut consumer = probe.consume(&queue).await.unwrap();
        let mut deliveries = Vec::new();
        for i in 0..25 {
            let delivery = delivered(&mut consumer, 2000).await;
            assert_eq!(delivery.text(), format!("m{i}"));
            deliveries.push(delivery);
        }
        assert_eq!(probe.depth(&queue).await.unwrap(), 0, "all delivered, none acknowledged");
        for delivery in deliveries {
            delivery.ack().await.unwrap();
        }
    }

    /// An acknowledged message is gone: not ready, and not requeued when
    /// its consumer's channel closes.
    async fn ack_removes_the_message(broker) {
        let connection = broker.connect().await;
        let admin = probe(&connection).await;
        let queue = lasting_queue(&admin, "ack").await;
        admin.publish("", &queue, "once").await.unwrap();
        let worker = probe(&connection).await;
        let mut consumer = worker.consume(&queue).await.unwrap();
        let delivery = delivered(&mut consumer, 2000).await;
        assert_eq!(delivery.text(), "once");
        delivery.ack().await.unwrap();
        worker.close().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(admin.depth(&queue).await.unwrap(), 0);
        let mut again = admin.consume(&queue).await.unwrap();
        assert!(silent(&mut again, 200).await, "an acknowledged message never comes back");
        assert_eq!(admin.delete_queue(&queue).await.unwrap(), 0);
    }

    /// A message rejected with requeue is delivered again, marked
    /// redelivered.
    async fn reject_with_requeue_redelivers(broker) {
        let probe = broker.probe().await;
        let queue = auto_delete_queue(&probe, "requeue").await;
        probe.publish("", &queue, "again").await.unwrap();
        let mut consumer = probe.consume(&queue).await.unwrap();
        let first = delivered(&mut consumer, 2000).await;
        assert!(!first.redelivered());
        first.reject(true).await.unwrap();
        let second = delivered(&mut consumer, 2000).await;
        assert_eq!(second.text(), "again");
        assert!(second.redelivered(), "a requeued message is marked redelivered");
        second.ack().await.unwrap();
        assert!(silent(&mut consumer, 100).await);

        // A requeued message goes back to its place at the head, before
        // the messages behind it.
        let queue = auto_delete_queue(&probe, "requeue-place").await;
        for text in ["first", "second"] {
            probe.publish("", &queue, text).await.unwrap();
        }
        let worker = broker.probe().await;
        worker.qos(1).await.unwrap();
        let mut consumer = worker.consume(&queue).await.unwrap();
        let first = delivered(&mut consumer, 2000).await;
        assert_eq!(first.text(), "first");
        first.reject(true).await.unwrap();
        let again = delivered(&mut consumer, 2000).await;
        assert_eq!(again.text(), "first", "requeued to the head");
        assert!(again.redelivered());
        again.ack().await.unwrap();
        let next = delivered(&mut consumer, 2000).await;
        assert_eq!(next.text(), "second");
        assert!(!next.redelivered());
        next.ack().await.unwrap();
    }

    /// A message rejected without requeue, from a queue with no
    /// dead-letter exchange, is dropped.
    async fn reject_without_requeue_and_no_dlx_drops(broker) {
        let connection = broker.connect().await;
        let admin = probe(&connection).await;
        let queue = lasting_queue(&admin, "drop").await;
        admin.publish("", &queue, "doomed").await.unwrap();
        admin.publish("", &queue, "kept").await.unwrap();
        let worker = probe(&connection).await;
        worker.qos(1).await.unwrap();
        let mut consumer = worker.consume(&queue).await.unwrap();
        let doomed = delivered(&mut consumer, 2000).await;
        assert_eq!(doomed.text(), "doomed");
        doomed.reject(false).await.unwrap();
        let kept = delivered(&mut consumer, 2000).await;
        assert_eq!(kept.text(), "kept", "the rejected message is not delivered again");
        kept.ack().await.unwrap();
        assert!(silent(&mut consumer, 200).await);
        // Closing the channel requeues nothing: the rejection settled it.
        worker.close().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(admin.depth(&queue).await.unwrap(), 0);
        assert_eq!(admin.delete_queue(&queue).await.unwrap(), 0);
    }

    /// Unacknowledged deliveries go back to the queue, marked redelivered,
    /// in their order, when the consumer's channel closes.
    async fn unacked_are_requeued_when_the_channel_closes(broker) {
        let connection = broker.connect().await;
        let admin = probe(&connection).await;
        let queue = lasting_queue(&admin, "channel-close").await;
        for i in 0..3 {
            admin.publish("", &queue, format!("m{i}")).await.unwrap();
        }
        let worker = probe(&connection).await;
        let mut consumer = worker.consume(&queue).await.unwrap();
        let first = delivered(&mut consumer, 2000).await;
        first.ack().await.unwrap();
        let _second = delivered(&mut consumer, 2000).await;
        let _third = delivered(&mut consumer, 2000).await;
        assert_eq!(admin.depth(&queue).await.unwrap(), 0);
        worker.close().await;
        assert!(!worker.is_open());
        assert_eq!(depth_becomes(&admin, &queue, 2).await, 2, "the two unacknowledged are back");
        let mut again = admin.consume(&queue).await.unwrap();
        for text in ["m1", "m2"] {
            let delivery = delivered(&mut again, 2000).await;
            assert_eq!(delivery.text(), text);
            assert!(delivery.redelivered(), "{text} is marked redelivered");
            delivery.ack().await.unwrap();
        }
        assert!(silent(&mut again, 100).await);
        assert_eq!(admin.delete_queue(&queue).await.unwrap(), 0);
    }

    /// Unacknowledged deliveries go back to the queue, marked redelivered,
    /// when the consumer's connection closes.
    async fn unacked_are_requeued_when_the_connection_closes(broker) {
        let admin = broker.probe().await;
        let queue = lasting_queue(&admin, "connection-close").await;
        for i in 0..2 {
            admin.publish("", &queue, format!("m{i}")).await.unwrap();
        }
        let connection = broker.connect().await;
        let worker = probe(&connection).await;
        let mut consumer = worker.consume(&queue).await.unwrap();
        let _first = delivered(&mut consumer, 2000).await;
        let _second = delivered(&mut consumer, 2000).await;
        assert_eq!(admin.depth(&queue).await.unwrap(), 0);
        connection.close().await.unwrap();
        assert_eq!(depth_becomes(&admin, &queue, 2).await, 2, "both unacknowledged are back");
        let mut again = admin.consume(&queue).await.unwrap();
        for text in ["m0", "m1"] {
            let delivery = delivered(&mut again, 2000).await;
            assert_eq!(delivery.text(), text);
            assert!(delivery.redelivered(), "{text} is marked redelivered");
            delivery.ack().await.unwrap();
        }
        assert_eq!(admin.delete_queue(&queue).await.unwrap(), 0);
    }

    /// A no-ack consumer gets every message, ignoring any prefetch, and
    /// leaves nothing unacknowledged: closing its channel requeues nothing.
    async fn no_ack_consumer_gets_everything_and_leaves_nothing(broker) {
        let connection = broker.connect().await;
        let admin = probe(&connection).await;
        let queue = lasting_queue(&admin, "no-ack").await;
        for i in 0..10 {
            admin.publish("", &queue, format!("m{i}")).await.unwrap();
        }
        let worker = probe(&connection).await;
        worker.qos(1).await.unwrap();
        let mut consumer = worker.consume_no_ack(&queue).await.unwrap();
        for i in 0..10 {
            assert_eq!(delivered(&mut consumer, 2000).await.text(), format!("m{i}"));
        }
        assert!(silent(&mut consumer, 100).await);
        worker.close().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(admin.depth(&queue).await.unwrap(), 0, "nothing was left unacknowledged");
        assert_eq!(admin.delete_queue(&queue).await.unwrap(), 0);
    }

    /// A cancelled consumer gets nothing more; what is published after
    /// stays in the queue.
    async fn cancel_stops_deliveries(broker) {
        let connection = broker.connect().await;
        let admin = probe(&connection).await;
        let queue = lasting_queue(&admin, "cancel").await;
        let worker = probe(&connection).await;
        let mut consumer = worker.consume(&queue).await.unwrap();
        admin.publish("", &queue, "before").await.unwrap();
        let before = delivered(&mut consumer, 2000).await;
        assert_eq!(before.text(), "before");
        consumer.cancel().await.unwrap();
        // A delivery unacknowledged at the cancel is still settled on
        // its channel.
        before.ack().await.unwrap();
        assert_eq!(admin.declare_queue(&Queue::new(&queue).argument("x-expires", 60_000)).await.unwrap().consumers, 0);
        admin.publish("", &queue, "after 1").await.unwrap();
        admin.publish("", &queue, "after 2").await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(admin.depth(&queue).await.unwrap(), 2, "they stay in the queue");
        assert!(worker.is_open(), "cancelling leaves the channel open");
        let mut next = worker.consume(&queue).await.unwrap();
        for text in ["after 1", "after 2"] {
            let delivery = delivered(&mut next, 2000).await;
            assert_eq!(delivery.text(), text);
            assert!(!delivery.redelivered(), "never delivered before");
            delivery.ack().await.unwrap();
        }
        assert_eq!(admin.delete_queue(&queue).await.unwrap(), 0);
    }

    /// The persistent flag, headers, correlation id, reply_to and content
    /// type arrive as sent.
    async fn properties_arrive_as_sent(broker) {
        let probe = broker.probe().await;
        let queue = auto_delete_queue(&probe, "properties").await;
        probe
            .publish("", &queue, "with properties")
            .persistent(true)
            .header("text", "value")
            .header("number", 42)
            .header("flag", true)
            .header("list", json!(["a", 1]))
            .header("table", json!({"inner": "x"}))
            .correlation_id("corr-1")
            .reply_to("somewhere")
            .content_type("text/plain")
            .await
            .unwrap();
        probe.publish("", &queue, "plain").await.unwrap();
        let mut consumer = probe.consume(&queue).await.unwrap();
        let rich = delivered(&mut consumer, 2000).await;
        assert_eq!(rich.text(), "with properties");
        assert!(rich.is_persistent());
        let headers = rich.headers();
        assert_eq!(headers.get("text"), Some(&json!("value")));
        assert_eq!(headers.get("number"), Some(&json!(42)));
        assert_eq!(headers.get("flag"), Some(&json!(true)));
        assert_eq!(headers.get("list"), Some(&json!(["a", 1])));
        assert_eq!(headers.get("table"), Some(&json!({"inner": "x"})));
        assert_eq!(headers.len(), 5, "no other header: {headers:?}");
        assert_eq!(rich.correlation_id(), Some("corr-1"));
        assert_eq!(rich.reply_to(), Some("somewhere"));
        assert_eq!(rich.content_type(), Some("text/plain"));
        rich.ack().await.unwrap();
        let plain = delivered(&mut consumer, 2000).await;
        assert_eq!(plain.text(), "plain");
        assert!(!plain.is_persistent());
        assert!(plain.headers().is_empty(), "{:?}", plain.headers());
        assert_eq!(plain.correlation_id(), None);
        assert_eq!(plain.reply_to(), None);
        assert_eq!(plain.content_type(), None);
        plain.ack().await.unwrap();
    }

    /// One queue keeps its messages' order.
    async fn order_is_preserved_on_one_queue(broker) {
        let probe = broker.probe().await;
        let queue = auto_delete_queue(&probe, "order").await;
        for i in 0..100 {
            probe.publish("", &queue, format!("{i}")).await.unwrap();
        }
        let mut consumer = probe.consume(&queue).await.unwrap();
        for i in 0..100 {
            let delivery = delivered(&mut consumer, 2000).await;
            assert_eq!(delivery.text(), format!("{i}"));
            delivery.ack().await.unwrap();
        }
        assert!(silent(&mut consumer, 100).await);
    }
}

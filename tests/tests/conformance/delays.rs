//! Delayed sends through the delay levels: delays sent longest first
//! arrive in due order, never before they are due and within the
//! documented second after; a cancelled send never arrives; a send to the
//! default exchange reaches its queue; what a delayed send refuses.

use std::time::{Duration, Instant, SystemTime};

use postage::producer::{DELAY_ID_HEADER, MAX_DELAY};
use postage::testing::{Probe, ProbeConsumer};
use postage::{Error, Exchange, ExchangeKind, Producer, Queue};
use postage_tests::conformance::{delivered, probe, silent};
use postage_tests::{conformance, unique};

/// What the tests allow beyond the documented second: the broker's and
/// the test's own latency.
const SLACK: Duration = Duration::from_secs(3);

/// A queue of the test, bound to a direct exchange of the test with key
/// `rk`.
async fn target(probe: &Probe, prefix: &str) -> (Exchange, String) {
    let exchange = Exchange::new(unique(prefix), ExchangeKind::Direct);
    probe.declare_exchange(&exchange).await.unwrap();
    let queue = unique(prefix);
    probe.declare_queue(&Queue::new(&queue)).await.unwrap();
    probe.bind(&queue, exchange.name(), "rk").await.unwrap();
    (exchange, queue)
}

/// Removes the delay topology of `prefix` (levels 0 to `top`).
async fn remove_delays(probe: &Probe, prefix: &str, top: u32) {
    for level in 0..=top {
        let name = format!("{prefix}.L{level:02}");
        probe.delete_queue(&name).await.unwrap();
        probe.delete_exchange(&name).await.unwrap();
    }
    probe
        .delete_queue(&format!("{prefix}.to-default"))
        .await
        .unwrap();
    for exchange in ["gate", "deliver"] {
        probe
            .delete_exchange(&format!("{prefix}.{exchange}"))
            .await
            .unwrap();
    }
}

/// The next message within `within`: its body and when it came, after
/// `start`.
async fn arrival(
    consumer: &mut ProbeConsumer,
    start: Instant,
    within: Duration,
) -> (String, Duration) {
    let delivery = delivered(consumer, u64::try_from(within.as_millis()).unwrap()).await;
    let at = start.elapsed();
    delivery.ack().await.unwrap();
    (delivery.text(), at)
}

/// Asserts that a message sent with `delay` (rounded up to whole
/// seconds) came no earlier than due and within a second after, plus
/// slack.
fn assert_on_time(what: &str, delay: Duration, at: Duration) {
    let due = Duration::from_secs(delay.as_secs() + u64::from(delay.subsec_nanos() > 0));
    assert!(
        at >= due,
        "{what}: arrived after {at:?}, before its due time {due:?}"
    );
    assert!(
        at <= due + Duration::from_secs(1) + SLACK,
        "{what}: arrived after {at:?}, long after its due time {due:?}"
    );
}

conformance! {
    /// Delays of 60 s, 5 s and 1 s, sent in that order, arrive in the
    /// opposite order, each on time.
    async fn delayed_sends_arrive_in_due_order(broker) {
        let connection = broker.connect().await;
        let probe = probe(&connection).await;
        let prefix = unique("delays");
        let (exchange, queue) = target(&probe, "delayed").await;
        let producer = Producer::builder()
            .ek(exchange.clone(), "rk")
            .delay_prefix(&prefix)
            .connect(&connection)
            .await
            .unwrap();
        let mut consumer = probe.consume(&queue).await.unwrap();
        let delays = [60u64, 5, 1].map(Duration::from_secs);
        let start = Instant::now();
        for delay in delays {
            let scheduled = producer
                .forward(format!("{delay:?}"))
                .send_after(delay)
                .await
                .unwrap();
            assert!(scheduled.due() >= SystemTime::now() + delay - Duration::from_secs(1));
        }
        let mut order = Vec::new();
        for _ in delays {
            let (body, at) = arrival(&mut consumer, start, Duration::from_secs(70)).await;
            let delay = delays
                .into_iter()
                .find(|d| format!("{d:?}") == body)
                .unwrap();
            assert_on_time(&body, delay, at);
            order.push(body);
        }
        assert_eq!(order, ["1s", "5s", "60s"]);
        assert!(silent(&mut consumer, 500).await, "each arrives once");
        remove_delays(&probe, &prefix, 5).await;
        probe.delete_queue(&queue).await.unwrap();
        probe.delete_exchange(exchange.name()).await.unwrap();
    }

    /// A cancelled send never arrives, while another of the same target
    /// does; sends to the default exchange reach the queue they name, with
    /// their headers and their id.
    async fn a_cancelled_send_never_arrives(broker) {
        let connection = broker.connect().await;
        let probe = probe(&connection).await;
        let prefix = unique("delays");
        let queue = unique("delayed-default");
        probe.declare_queue(&Queue::new(&queue)).await.unwrap();
        let producer = Producer::builder()
            .ek(Exchange::direct(""), queue.as_str())
            .delay_prefix(&prefix)
            .connect(&connection)
            .await
            .unwrap();
        let mut consumer = probe.consume(&queue).await.unwrap();
        let start = Instant::now();
        let cancelled = producer
            .forward("cancelled")
            .send_after(Duration::from_secs(2))
            .await
            .unwrap();
        let kept = producer
            .forward("kept")
            .header("colour", "blue")
            .send_at(SystemTime::now() + Duration::from_secs(3))
            .await
            .unwrap();
        assert!(cancelled.cancel().await.unwrap(), "cancelled before its due time");
        // By id, again: no error.
        assert!(producer.cancel_delayed(cancelled.id()).await.unwrap());
        let delivery = delivered(&mut consumer, 10_000).await;
        assert_eq!(delivery.text(), "kept");
        assert_on_time("kept", Duration::from_secs(3), start.elapsed());
        assert_eq!(delivery.routing_key(), queue);
        let headers = delivery.headers();
        assert_eq!(headers["colour"], "blue");
        assert_eq!(headers[DELAY_ID_HEADER], kept.id());
        delivery.ack().await.unwrap();
        // Past the cancelled one's due time and its precision.
        assert!(silent(&mut consumer, 3_000).await, "the cancelled send never arrives");
        // Too late to cancel: said so.
        assert!(!kept.cancel().await.unwrap());
        assert!(matches!(
            producer.cancel_delayed("not-an-id").await,
            Err(Error::InvalidDelayId(_))
        ));
        probe.delete_queue(&format!("{prefix}.cancelled.{}", cancelled.id())).await.unwrap();
        probe.delete_queue(&format!("{prefix}.cancelled.{}", kept.id())).await.unwrap();
        remove_delays(&probe, &prefix, 1).await;
        probe.delete_queue(&queue).await.unwrap();
    }

    /// A delay beyond the longest, and a delayed send with an expiration,
    /// are refused before anything is sent.
    async fn a_delayed_send_refuses_what_it_cannot_do(broker) {
        let connection = broker.connect().await;
        let probe = probe(&connection).await;
        let (exchange, queue) = target(&probe, "refused").await;
        let producer = Producer::builder()
            .ek(exchange.clone(), "rk")
            .delay_prefix(unique("delays"))
            .connect(&connection)
            .await
            .unwrap();
        let too_long = producer
            .forward("x")
            .send_after(MAX_DELAY + Duration::from_secs(1))
            .await;
        assert!(matches!(too_long, Err(Error::DelayTooLong { .. })), "{too_long:?}");
        let expiring = producer
            .forward("x")
            .expiration(Duration::from_secs(1))
            .send_after(Duration::from_secs(1))
            .await;
        assert!(matches!(expiring, Err(Error::DelayedExpiration)), "{expiring:?}");
        probe.delete_queue(&queue).await.unwrap();
        probe.delete_exchange(exchange.name()).await.unwrap();
    }
}

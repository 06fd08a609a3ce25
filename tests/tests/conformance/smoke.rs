//! The basics: the default exchange, a direct exchange, ack.

use postage::{Exchange, Queue};
use postage_tests::conformance::{delivered, silent};
use postage_tests::{conformance, unique};

conformance! {
    /// The default exchange routes by queue name; an acked message is gone.
    async fn default_exchange_routes_by_queue_name(broker) {
        let probe = broker.probe().await;
        let queue = unique("default");
        probe.declare_queue(&Queue::new(&queue).auto_delete(true)).await.unwrap();
        probe.publish("", &queue, "hello").await.unwrap();
        assert_eq!(probe.depth(&queue).await.unwrap(), 1);
        let mut consumer = probe.consume(&queue).await.unwrap();
        let delivery = delivered(&mut consumer, 2000).await;
        assert_eq!(delivery.text(), "hello");
        assert_eq!(delivery.exchange(), "");
        assert_eq!(delivery.routing_key(), queue);
        assert!(!delivery.redelivered());
        delivery.ack().await.unwrap();
        assert!(silent(&mut consumer, 100).await);
    }

    /// A direct exchange routes on the exact key.
    async fn direct_exchange_routes_on_the_exact_key(broker) {
        let probe = broker.probe().await;
        let exchange = unique("direct");
        let queue = unique("direct-q");
        probe.declare_exchange(&Exchange::new(exchange.clone(), postage::ExchangeKind::Direct).auto_delete(true)).await.unwrap();
        probe.declare_queue(&Queue::new(&queue).auto_delete(true)).await.unwrap();
        probe.bind(&queue, &exchange, "a").await.unwrap();
        probe.publish(&exchange, "b", "no").await.unwrap();
        probe.publish(&exchange, "a", "yes").await.unwrap();
        let mut consumer = probe.consume(&queue).await.unwrap();
        assert_eq!(delivered(&mut consumer, 2000).await.text(), "yes");
        assert!(silent(&mut consumer, 100).await);
    }
}

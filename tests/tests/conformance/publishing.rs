//! Publishing: confirms, mandatory and unroutable messages, direct
//! reply-to and its refusals, a missing exchange, and the producer API.

use std::time::Duration;

use postage::Encoder as _;
use postage::testing::Probe;
use postage::{Consumer, Error, Exchange, ExchangeKind, Fingerprint, Producer, Queue};
use postage_tests::conformance::{delivered, probe, silent};
use postage_tests::{conformance, unique};
use serde_json::json;

const REPLY_TO: &str = "amq.rabbitmq.reply-to";

/// An auto-delete direct exchange.
fn direct(prefix: &str) -> Exchange {
    Exchange::new(unique(prefix), ExchangeKind::Direct).auto_delete(true)
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

conformance! {
    /// A publish the broker confirmed is in the queue.
    async fn a_confirmed_publish_is_in_the_queue(broker) {
        let probe = broker.probe().await;
        let queue = auto_delete_queue(&probe, "confirmed").await;
        for i in 1..=3 {
            probe.publish("", &queue, format!("m{i}")).await.unwrap();
            assert_eq!(probe.depth(&queue).await.unwrap(), i, "confirmed, so already queued");
        }
        let exchange = direct("confirmed");
        probe.declare_exchange(&exchange).await.unwrap();
        probe.bind(&queue, exchange.name(), "k").await.unwrap();
        probe.publish(exchange.name(), "k", "routed").await.unwrap();
        assert_eq!(probe.depth(&queue).await.unwrap(), 4);
    }

    /// A mandatory message no queue takes, published with confirms, is
    /// returned: `Error::Unroutable`; the channel stays open.
    async fn mandatory_unroutable_with_confirms_is_unroutable(broker) {
        let probe = broker.probe().await;
        let exchange = direct("mandatory");
        probe.declare_exchange(&exchange).await.unwrap();
        let queue = auto_delete_queue(&probe, "mandatory").await;
        probe.bind(&queue, exchange.name(), "bound").await.unwrap();

        let error = probe.publish(exchange.name(), "unbound", "lost").mandatory(true).await.unwrap_err();
        assert!(
            matches!(&error, Error::Unroutable { exchange: e, key, reply } if e == exchange.name() && key == "unbound" && reply == "NO_ROUTE"),
            "{error:?}"
        );
        let missing = unique("no-such-queue");
        let error = probe.publish("", &missing, "lost").mandatory(true).await.unwrap_err();
        assert!(matches!(&error, Error::Unroutable { key, .. } if *key == missing), "{error:?}");
        assert!(probe.is_open(), "a returned message does not close the channel");

        // A routable mandatory message is taken.
        probe.publish(exchange.name(), "bound", "kept").mandatory(true).await.unwrap();
        assert_eq!(probe.depth(&queue).await.unwrap(), 1);

        // The producer's mandatory sends too.
        let producer = Producer::builder()
            .ek(exchange.clone(), "unbound")
            .mandatory(true)
            .connect(&broker.connect().await)
            .await
            .unwrap();
        let error = producer.command("echo", "lost").await.unwrap_err();
        assert!(matches!(error, Error::Unroutable { .. }), "{error:?}");
        producer.command("echo", "kept").key("bound").await.unwrap();
        assert_eq!(probe.depth(&queue).await.unwrap(), 2);
    }

    /// A message no queue takes, not mandatory, is confirmed and dropped.
    async fn non_mandatory_unroutable_is_ok_and_dropped(broker) {
        let probe = broker.probe().await;
        let exchange = direct("drop");
        probe.declare_exchange(&exchange).await.unwrap();
        let queue = auto_delete_queue(&probe, "drop").await;
        probe.bind(&queue, exchange.name(), "bound").await.unwrap();
        probe.publish(exchange.name(), "unbound", "lost").await.unwrap();
        probe.publish("", &unique("no-such-queue"), "lost").await.unwrap();
        assert!(probe.is_open());
        probe.publish(exchange.name(), "bound", "kept").await.unwrap();
        assert_eq!(probe.depth(&queue).await.unwrap(), 1, "only the routable message");
        // Binding the key afterwards brings nothing back.
        probe.bind(&queue, exchange.name(), "unbound").await.unwrap();
        let mut consumer = probe.consume(&queue).await.unwrap();
        let kept = delivered(&mut consumer, 2000).await;
        assert_eq!(kept.text(), "kept");
        kept.ack().await.unwrap();
        assert!(silent(&mut consumer, 200).await);
    }

    /// Direct reply-to: a request published with `reply_to`
    /// `amq.rabbitmq.reply-to` by the channel consuming it reaches the
    /// server with a `amq.rabbitmq.reply-to.…` address, and the server's
    /// reply to that address on the default exchange comes back to the
    /// requester's channel with its correlation id.
    async fn direct_reply_to_round_trip(broker) {
        let client = broker.probe().await;
        let server = broker.probe().await;
        let queue = auto_delete_queue(&server, "requests").await;
        let mut requests = server.consume(&queue).await.unwrap();
        let mut replies = client.consume_no_ack(REPLY_TO).await.unwrap();
        for i in 0..2 {
            client
                .publish("", &queue, format!("request {i}"))
                .reply_to(REPLY_TO)
                .correlation_id(format!("call-{i}"))
                .await
                .unwrap();
            let request = delivered(&mut requests, 2000).await;
            assert_eq!(request.text(), format!("request {i}"));
            let address = request.reply_to().expect("a reply address").to_owned();
            assert!(address.starts_with("amq.rabbitmq.reply-to."), "{address}");
            assert_eq!(request.correlation_id(), Some(format!("call-{i}").as_str()));
            server
                .publish("", &address, format!("reply {i}"))
                .correlation_id(request.correlation_id().unwrap())
                .await
                .unwrap();
            request.ack().await.unwrap();
            let reply = delivered(&mut replies, 2000).await;
            assert_eq!(reply.text(), format!("reply {i}"));
            assert_eq!(reply.correlation_id(), Some(format!("call-{i}").as_str()));
            assert_eq!(reply.exchange(), "");
        }
        assert!(silent(&mut replies, 100).await);
    }

    /// A request with `reply_to` `amq.rabbitmq.reply-to` from a channel
    /// that does not consume it is refused: 406, the channel closed.
    async fn direct_reply_to_without_its_consumer_is_refused(broker) {
        let probe = broker.probe().await;
        let queue = auto_delete_queue(&probe, "no-reply-consumer").await;
        let error = probe
            .publish("", &queue, "request")
            .reply_to(REPLY_TO)
            .await
            .unwrap_err();
        assert_eq!(error.reply_code(), Some(406), "{error:?}");
        assert!(!probe.is_open(), "the refusal closes the channel");
        let probe = broker.probe().await;
        assert_eq!(probe.depth(&queue).await.unwrap(), 0, "the request was not queued");
    }

    /// Direct reply-to can only be consumed with no-ack: 406 otherwise.
    async fn direct_reply_to_consumed_with_acks_is_refused(broker) {
        let probe = broker.probe().await;
        let error = probe.consume(REPLY_TO).await.unwrap_err();
        assert_eq!(error.reply_code(), Some(406), "{error:?}");
        assert!(!probe.is_open(), "the refusal closes the channel");
        let probe = broker.probe().await;
        probe.consume_no_ack(REPLY_TO).await.unwrap();
    }

    /// A publish to an exchange that does not exist, with confirms: 404,
    /// the channel closed.
    async fn publish_to_a_missing_exchange_is_not_found(broker) {
        let probe = broker.probe().await;
        let error = probe.publish(&unique("no-such-exchange"), "k", "lost").await.unwrap_err();
        assert_eq!(error.reply_code(), Some(404), "{error:?}");
        assert!(!probe.is_open(), "the refusal closes the channel");
        let probe = broker.probe().await;
        let queue = auto_delete_queue(&probe, "after-404").await;
        probe.publish("", &queue, "fine").await.unwrap();
        assert_eq!(probe.depth(&queue).await.unwrap(), 1);
    }

    /// A producer's commands reach a consumer bound to its exchange and
    /// key, decoded, with the producer's fingerprint.
    async fn producer_delivers_to_a_consumer(broker) {
        let connection = broker.connect().await;
        let exchange = direct("producer");
        let key = unique("key");
        let mut consumer = Consumer::builder()
            .bind(exchange.clone(), [(Queue::new(unique("consumer")).auto_delete(true), key.as_str())])
            .connect(&connection)
            .await
            .unwrap();
        let producer = Producer::builder()
            .ek(exchange.clone(), key.as_str())
            .fingerprint(Fingerprint::new("sender", "test"))
            .connect(&connection)
            .await
            .unwrap();
        producer.command("echo", json!({"n": 1})).await.unwrap();
        producer.command("echo", "second").await.unwrap();
        producer.command("echo", "elsewhere").key("other").await.unwrap();

        let first = postage_tests::next_within(&mut consumer, 5).await;
        let message = first.message().unwrap();
        assert_eq!(message.kind, "command");
        assert_eq!(message.name, "echo");
        assert_eq!(message.content.parameters(), Some(&json!({"n": 1})));
        assert_eq!(message.sender().name.as_deref(), Some("sender"));
        assert_eq!(first.exchange(), exchange.name());
        assert_eq!(first.routing_key(), key);
        assert_eq!(first.content_type(), Some("application/json"));
        assert!(!first.is_persistent(), "transient by default");
        first.ack().await.unwrap();
        let second = postage_tests::next_within(&mut consumer, 5).await;
        assert_eq!(second.message().unwrap().content.parameters(), Some(&json!("second")));
        second.ack().await.unwrap();
        assert!(postage_tests::nothing_within(&mut consumer, 200).await, "the other key is not bound");
        consumer.stop().await;
    }

    /// Parameters of the caller's own type are sent as the JSON of that
    /// type, through the JSON encoder (written straight into the body) and
    /// through another encoder (which gets them as JSON text), and read
    /// back typed.
    async fn typed_parameters_are_sent_through_any_encoder(broker) {
        #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        struct Sum {
            text: String,
            terms: Vec<i64>,
        }
        /// JSON under another content type, without `encode_parts` of its
        /// own: commands reach it as `ParametersJson`.
        #[derive(Debug)]
        struct Tagged;
        impl postage::Encoder for Tagged {
            fn content_type(&self) -> &str {
                "application/x-tagged+json"
            }
            fn encode(&self, message: &postage::Message) -> Result<Vec<u8>, postage::EncodeError> {
                postage::JsonEncoder.encode(message)
            }
            fn decode(&self, body: &[u8]) -> Result<postage::Message, postage::DecodeError> {
                postage::JsonEncoder.decode(body)
            }
        }
        let connection = broker.connect().await;
        let probe = probe(&connection).await;
        let exchange = direct("typed");
        let queue = auto_delete_queue(&probe, "typed").await;
        let json = Producer::builder().ek(exchange.clone(), "k").connect(&connection).await.unwrap();
        probe.bind(&queue, exchange.name(), "k").await.unwrap();
        let tagged = Producer::builder()
            .ek(exchange.clone(), "k")
            .encoder(Tagged)
            .connect(&connection)
            .await
            .unwrap();
        let sum = Sum { text: "h\u{e9} \"q\"".into(), terms: vec![2, 3] };
        json.command("sum", &sum).await.unwrap();
        tagged.command("sum", &sum).await.unwrap();
        let mut consumer = probe.consume(&queue).await.unwrap();
        for content_type in ["application/json", "application/x-tagged+json"] {
            let delivery = delivered(&mut consumer, 2000).await;
            assert_eq!(delivery.content_type(), Some(content_type));
            let message = postage::JsonEncoder.decode(delivery.body()).unwrap();
            assert_eq!(message.name, "sum");
            assert_eq!(message.content.parameters_as::<Sum>().unwrap(), sum, "{content_type}");
            assert_eq!(
                message.content.parameters(),
                Some(&json!({"text": "h\u{e9} \"q\"", "terms": [2, 3]}))
            );
            delivery.ack().await.unwrap();
        }
        assert!(silent(&mut consumer, 200).await);
    }

    /// A send's headers and expiration reach the queue: the header is on
    /// the delivery, and a message whose expiration passed is not
    /// delivered.
    async fn producer_headers_and_expiration_reach_a_probe(broker) {
        let connection = broker.connect().await;
        let probe = probe(&connection).await;
        let exchange = direct("headers");
        let producer = Producer::builder()
            .ek(exchange.clone(), "k")
            .connect(&connection)
            .await
            .unwrap();
        let queue = auto_delete_queue(&probe, "headers").await;
        probe.bind(&queue, exchange.name(), "k").await.unwrap();
        producer
            .command("echo", "short")
            .header("which", "short")
            .expiration(Duration::from_millis(50))
            .await
            .unwrap();
        producer
            .command("echo", "long")
            .header("which", "long")
            .header("attempt", 3)
            .expiration(Duration::from_secs(60))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(250)).await;
        let mut consumer = probe.consume(&queue).await.unwrap();
        let delivery = delivered(&mut consumer, 2000).await;
        let headers = delivery.headers();
        assert_eq!(headers.get("which"), Some(&json!("long")), "the expired message was dropped: {headers:?}");
        assert_eq!(headers.get("attempt"), Some(&json!(3)));
        assert_eq!(delivery.content_type(), Some("application/json"));
        delivery.ack().await.unwrap();
        assert!(silent(&mut consumer, 200).await);
    }
}

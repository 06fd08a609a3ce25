//! Routing: topic patterns, headers matching, fanout, direct, bindings
//! between exchanges, unbinding, and the default exchange.

use std::collections::{BTreeMap, BTreeSet};

use postage::testing::Probe;
use postage::{Exchange, ExchangeKind, Headers, Queue};
use postage_tests::conformance::{delivered, silent};
use postage_tests::{conformance, unique};
use serde_json::{Value, json};

/// `json!({...})` as binding arguments or message headers.
fn table(value: Value) -> Headers {
    match value {
        Value::Object(map) => map.into_iter().collect(),
        other => panic!("not a table: {other}"),
    }
}

/// Every message ready in `queue`, consumed (no ack) and collected by
/// `what` (its body or its routing key), then the queue deleted.
async fn drain(
    probe: &Probe,
    queue: &str,
    what: fn(&postage::testing::ProbeDelivery) -> String,
) -> Vec<String> {
    let depth = probe.depth(queue).await.unwrap();
    let mut consumer = probe.consume_no_ack(queue).await.unwrap();
    let mut got = Vec::new();
    for _ in 0..depth {
        got.push(what(&delivered(&mut consumer, 2000).await));
    }
    consumer.cancel().await.unwrap();
    probe.delete_queue(queue).await.unwrap();
    got
}

/// (pattern, routing key, does the pattern match the key?), as RabbitMQ
/// answers.
const TOPIC_TABLE: &[(&str, &str, bool)] = &[
    // No wildcards: the exact key only.
    ("a.b", "a.b", true),
    ("a.b", "a.b.c", false),
    ("a.b", "a", false),
    ("a.b", "A.b", false),
    // `*`: exactly one word, which may be empty.
    ("a.*", "a.b", true),
    ("a.*", "a", false),
    ("a.*", "a.b.c", false),
    ("a.*", "a.", true),
    ("*", "a", true),
    ("*", "", false),
    ("*", ".a", false),
    ("*.a", ".a", true),
    // `#`: zero or more words.
    ("#", "", true),
    ("#", "a.b.c", true),
    ("#", ".", true),
    ("#.#", "", true),
    ("#.#", "a", true),
    ("#.#", "a.b.c", true),
    ("a.#", "a", true),
    ("a.#", "a.b.c", true),
    ("a.#", "a.", true),
    ("a.#", "b.a", false),
    ("#.a", "a", true),
    ("#.a", "b.c.a", true),
    ("#.a", ".a", true),
    ("#.a", "a.b", false),
    ("a.#.b", "a.b", true),
    ("a.#.b", "a.x.y.b", true),
    ("a.#.b", "a.b.c", false),
    ("#.b.#", "b", true),
    ("#.b.#", "a.b.c", true),
    ("#.b.#", "a.c", false),
    ("a.#.#", "a", true),
    ("a.#.#.b", "a.b", true),
    ("*.*", "a.b", true),
    ("*.*", "a.", true),
    ("*.*", ".", true),
    ("*.*", "a", false),
    ("a.*.#", "a", false),
    ("a.*.#", "a.b", true),
    ("a.*.#", "a.b.c.d", true),
    // Empty words, leading and trailing dots, the empty key.
    ("a..b", "a..b", true),
    ("a..b", "a.b", false),
    ("a.*.b", "a..b", true),
    ("a.*.b", "a.b", false),
    (".a", ".a", true),
    (".a", "a", false),
    ("a.", "a.", true),
    ("a.", "a", false),
    ("", "", true),
    ("", "a", false),
];

/// What a headers binding receives: (binding name, binding arguments,
/// the messages it gets).
fn headers_bindings() -> Vec<(&'static str, Headers, Vec<&'static str>)> {
    vec![
        (
            "all",
            table(json!({"x-match": "all", "format": "pdf", "type": "report"})),
            vec!["pdf-report"],
        ),
        (
            "any",
            table(json!({"x-match": "any", "format": "pdf", "type": "report"})),
            vec!["pdf-report", "pdf", "doc-report", "tagged-pdf"],
        ),
        (
            "no-x-match-is-all",
            table(json!({"format": "pdf", "type": "report"})),
            vec!["pdf-report"],
        ),
        (
            "all-ignores-x",
            table(json!({"x-match": "all", "format": "pdf", "x-tag": "t"})),
            vec!["pdf-report", "pdf", "tagged-pdf"],
        ),
        (
            "any-ignores-x",
            table(json!({"x-match": "any", "x-tag": "t"})),
            vec![],
        ),
        (
            "all-with-x",
            table(json!({"x-match": "all-with-x", "format": "pdf", "x-tag": "t"})),
            vec!["tagged-pdf"],
        ),
        (
            "any-with-x",
            table(json!({"x-match": "any-with-x", "x-tag": "t"})),
            vec!["tagged-pdf", "tagged"],
        ),
        // Numbers compare by value, an integer equal to a float.
        (
            "number",
            table(json!({"n": 1})),
            vec!["n-integer", "n-float"],
        ),
        ("string", table(json!({"n": "1"})), vec!["n-string"]),
        ("boolean", table(json!({"flag": true})), vec!["flag"]),
        (
            "null-is-presence",
            table(json!({"format": null})),
            vec!["pdf-report", "pdf", "doc-report", "tagged-pdf", "doc"],
        ),
        (
            "no-arguments",
            table(json!({})),
            vec![
                "pdf-report",
                "pdf",
                "doc-report",
                "tagged-pdf",
                "tagged",
                "n-integer",
                "n-string",
                "n-float",
                "n-two",
                "bare",
                "doc",
                "flag",
            ],
        ),
        (
            "any-none-present",
            table(json!({"x-match": "any", "colour": "red", "size": 3})),
            vec![],
        ),
    ]
}

/// The messages published to the headers exchange: (body, headers).
fn headers_messages() -> Vec<(&'static str, Headers)> {
    vec![
        (
            "pdf-report",
            table(json!({"format": "pdf", "type": "report"})),
        ),
        ("pdf", table(json!({"format": "pdf"}))),
        (
            "doc-report",
            table(json!({"format": "doc", "type": "report"})),
        ),
        ("tagged-pdf", table(json!({"format": "pdf", "x-tag": "t"}))),
        ("tagged", table(json!({"x-tag": "t"}))),
        ("n-integer", table(json!({"n": 1}))),
        ("n-string", table(json!({"n": "1"}))),
        ("n-float", table(json!({"n": 1.0}))),
        ("n-two", table(json!({"n": 2}))),
        ("bare", table(json!({}))),
        ("doc", table(json!({"format": "doc"}))),
        ("flag", table(json!({"flag": true}))),
    ]
}

conformance! {
    /// Topic patterns: `*` is one word, `#` zero or more, words may be
    /// empty; each (pattern, key) of the table routes as on RabbitMQ.
    async fn topic_patterns_match_as_rabbitmq_matches_them(broker) {
        let probe = broker.probe().await;
        let exchange = unique("topic-table");
        probe
            .declare_exchange(&Exchange::new(exchange.clone(), ExchangeKind::Topic).auto_delete(true))
            .await
            .unwrap();
        let patterns: BTreeSet<&str> = TOPIC_TABLE.iter().map(|(pattern, _, _)| *pattern).collect();
        let keys: BTreeSet<&str> = TOPIC_TABLE.iter().map(|(_, key, _)| *key).collect();
        let mut queues = BTreeMap::new();
        for pattern in &patterns {
            let queue = unique("topic-table-q");
            probe.declare_queue(&Queue::new(&queue).auto_delete(true)).await.unwrap();
            probe.bind(&queue, &exchange, pattern).await.unwrap();
            queues.insert(*pattern, queue);
        }
        for key in &keys {
            probe.publish(&exchange, key, *key).await.unwrap();
        }
        let mut received = BTreeMap::new();
        for (pattern, queue) in &queues {
            let keys = drain(&probe, queue, |d| d.routing_key().to_owned()).await;
            received.insert(*pattern, keys);
        }
        let mut wrong = Vec::new();
        for (pattern, keys) in &received {
            let unique_keys: BTreeSet<&String> = keys.iter().collect();
            if unique_keys.len() != keys.len() {
                wrong.push(format!("pattern {pattern:?} got a key twice: {keys:?}"));
            }
        }
        for (pattern, key, matches) in TOPIC_TABLE {
            let got = received[pattern].iter().any(|k| k == key);
            if got != *matches {
                wrong.push(format!(
                    "pattern {pattern:?} with key {key:?}: expected {}, got {}",
                    if *matches { "a match" } else { "no match" },
                    if got { "a match" } else { "no match" },
                ));
            }
        }
        assert!(wrong.is_empty(), "topic routing differs:\n{}", wrong.join("\n"));
    }

    /// Headers exchanges: `x-match` all (the default), any, all-with-x and
    /// any-with-x; `x-` arguments ignored unless `-with-x`; values compared
    /// by value (a number never equals a string); a null argument asks only
    /// for the header.
    async fn headers_exchange_matches_as_rabbitmq_matches(broker) {
        let probe = broker.probe().await;
        let exchange = unique("headers-table");
        probe
            .declare_exchange(&Exchange::new(exchange.clone(), ExchangeKind::Headers).auto_delete(true))
            .await
            .unwrap();
        let bindings = headers_bindings();
        let mut queues = Vec::new();
        for (name, arguments, _) in &bindings {
            let queue = unique(&format!("headers-{name}"));
            probe.declare_queue(&Queue::new(&queue).auto_delete(true)).await.unwrap();
            probe
                .bind_with(&queue, &exchange, "", arguments)
                .await
                .unwrap_or_else(|e| panic!("binding {name} refused: {}", e.report()));
            queues.push(queue);
        }
        for (body, headers) in headers_messages() {
            let mut publish = probe.publish(&exchange, "", body);
            for (key, value) in headers {
                publish = publish.header(key, value);
            }
            publish.await.unwrap();
        }
        let mut wrong = Vec::new();
        for ((name, _, expected), queue) in bindings.iter().zip(&queues) {
            let mut got = drain(&probe, queue, |d| d.text()).await;
            got.sort();
            let mut expected: Vec<String> = expected.iter().map(|s| (*s).to_owned()).collect();
            expected.sort();
            if got != expected {
                wrong.push(format!("binding {name}: expected {expected:?}, got {got:?}"));
            }
        }
        assert!(wrong.is_empty(), "headers routing differs:\n{}", wrong.join("\n"));
    }

    /// A fanout exchange copies a message to every bound queue, whatever
    /// the keys.
    async fn fanout_copies_to_every_bound_queue(broker) {
        let probe = broker.probe().await;
        let exchange = unique("fanout");
        probe
            .declare_exchange(&Exchange::new(exchange.clone(), ExchangeKind::Fanout).auto_delete(true))
            .await
            .unwrap();
        let mut consumers = Vec::new();
        for key in ["a", "b", ""] {
            let queue = unique("fanout-q");
            probe.declare_queue(&Queue::new(&queue).auto_delete(true)).await.unwrap();
            probe.bind(&queue, &exchange, key).await.unwrap();
            consumers.push(probe.consume(&queue).await.unwrap());
        }
        probe.publish(&exchange, "zzz", "everyone").await.unwrap();
        for consumer in &mut consumers {
            let delivery = delivered(consumer, 2000).await;
            assert_eq!(delivery.text(), "everyone");
            assert_eq!(delivery.routing_key(), "zzz");
            assert_eq!(delivery.exchange(), exchange);
            delivery.ack().await.unwrap();
        }
        for consumer in &mut consumers {
            assert!(silent(consumer, 100).await);
        }
    }

    /// A direct exchange copies a message to every queue bound with its
    /// key, and to no other.
    async fn direct_exchange_copies_to_every_queue_on_the_key(broker) {
        let probe = broker.probe().await;
        let exchange = unique("direct-many");
        probe
            .declare_exchange(&Exchange::new(exchange.clone(), ExchangeKind::Direct).auto_delete(true))
            .await
            .unwrap();
        let mut on_key = Vec::new();
        for _ in 0..3 {
            let queue = unique("direct-many-q");
            probe.declare_queue(&Queue::new(&queue).auto_delete(true)).await.unwrap();
            probe.bind(&queue, &exchange, "k").await.unwrap();
            on_key.push(probe.consume(&queue).await.unwrap());
        }
        let other = unique("direct-other-q");
        probe.declare_queue(&Queue::new(&other).auto_delete(true)).await.unwrap();
        probe.bind(&other, &exchange, "other").await.unwrap();
        let mut other = probe.consume(&other).await.unwrap();
        probe.publish(&exchange, "k", "m").await.unwrap();
        for consumer in &mut on_key {
            let delivery = delivered(consumer, 2000).await;
            assert_eq!(delivery.text(), "m");
            delivery.ack().await.unwrap();
        }
        for consumer in &mut on_key {
            assert!(silent(consumer, 100).await);
        }
        assert!(silent(&mut other, 100).await);
    }

    /// A queue bound twice to a topic exchange gets one copy of a message
    /// both bindings match.
    async fn queue_bound_twice_gets_one_copy(broker) {
        let probe = broker.probe().await;
        let exchange = unique("twice");
        let queue = unique("twice-q");
        probe
            .declare_exchange(&Exchange::new(exchange.clone(), ExchangeKind::Topic).auto_delete(true))
            .await
            .unwrap();
        probe.declare_queue(&Queue::new(&queue).auto_delete(true)).await.unwrap();
        probe.bind(&queue, &exchange, "a.*").await.unwrap();
        probe.bind(&queue, &exchange, "*.b").await.unwrap();
        probe.publish(&exchange, "a.b", "both").await.unwrap();
        probe.publish(&exchange, "a.c", "first").await.unwrap();
        probe.publish(&exchange, "c.b", "second").await.unwrap();
        assert_eq!(probe.depth(&queue).await.unwrap(), 3);
        let mut consumer = probe.consume(&queue).await.unwrap();
        for body in ["both", "first", "second"] {
            let delivery = delivered(&mut consumer, 2000).await;
            assert_eq!(delivery.text(), body);
            delivery.ack().await.unwrap();
        }
        assert!(silent(&mut consumer, 100).await);
    }

    /// An exchange bound to another gets what its bindings there match,
    /// and routes it on with the original exchange and key.
    async fn exchange_to_exchange_binding_routes_through(broker) {
        let probe = broker.probe().await;
        let source = unique("e2e-source");
        let destination = unique("e2e-destination");
        let queue = unique("e2e-q");
        probe
            .declare_exchange(&Exchange::new(source.clone(), ExchangeKind::Topic).auto_delete(true))
            .await
            .unwrap();
        probe
            .declare_exchange(
                &Exchange::new(destination.clone(), ExchangeKind::Direct).auto_delete(true),
            )
            .await
            .unwrap();
        probe.bind_exchange(&destination, &source, "a.#").await.unwrap();
        probe.declare_queue(&Queue::new(&queue).auto_delete(true)).await.unwrap();
        probe.bind(&queue, &destination, "a.x").await.unwrap();
        probe.publish(&source, "b.x", "not bound at the source").await.unwrap();
        probe.publish(&source, "a.y", "not bound at the destination").await.unwrap();
        probe.publish(&source, "a.x", "through").await.unwrap();
        let mut consumer = probe.consume(&queue).await.unwrap();
        let delivery = delivered(&mut consumer, 2000).await;
        assert_eq!(delivery.text(), "through");
        assert_eq!(delivery.exchange(), source);
        assert_eq!(delivery.routing_key(), "a.x");
        delivery.ack().await.unwrap();
        assert!(silent(&mut consumer, 100).await);
        probe.publish(&destination, "a.x", "direct").await.unwrap();
        let delivery = delivered(&mut consumer, 2000).await;
        assert_eq!(delivery.text(), "direct");
        assert_eq!(delivery.exchange(), destination);
        delivery.ack().await.unwrap();
        consumer.cancel().await.unwrap();
        probe.delete_exchange(&destination).await.unwrap();
        probe.delete_exchange(&source).await.unwrap();
    }

    /// Once unbound, a queue gets nothing more from the exchange; its other
    /// bindings still route.
    async fn unbind_stops_routing(broker) {
        let probe = broker.probe().await;
        let exchange = unique("unbind");
        let queue = unique("unbind-q");
        probe
            .declare_exchange(&Exchange::new(exchange.clone(), ExchangeKind::Direct).auto_delete(true))
            .await
            .unwrap();
        probe.declare_queue(&Queue::new(&queue).auto_delete(true)).await.unwrap();
        probe.bind(&queue, &exchange, "a").await.unwrap();
        probe.bind(&queue, &exchange, "b").await.unwrap();
        let mut consumer = probe.consume(&queue).await.unwrap();
        probe.publish(&exchange, "a", "bound").await.unwrap();
        let delivery = delivered(&mut consumer, 2000).await;
        assert_eq!(delivery.text(), "bound");
        delivery.ack().await.unwrap();
        probe.unbind(&queue, &exchange, "a").await.unwrap();
        probe.publish(&exchange, "a", "unbound").await.unwrap();
        assert!(silent(&mut consumer, 200).await);
        probe.publish(&exchange, "b", "still bound").await.unwrap();
        let delivery = delivered(&mut consumer, 2000).await;
        assert_eq!(delivery.text(), "still bound");
        delivery.ack().await.unwrap();
    }

    /// Binding a queue to the default exchange, or unbinding it, is refused
    /// with 403 `ACCESS_REFUSED`; the default exchange still routes by
    /// queue name.
    async fn the_default_exchange_cannot_be_bound_to(broker) {
        let probe = broker.probe().await;
        let queue = unique("default-bind-q");
        probe.declare_queue(&Queue::new(&queue).auto_delete(true)).await.unwrap();
        let err = probe.bind(&queue, "", "other-key").await.unwrap_err();
        assert_eq!(err.reply_code(), Some(403), "{}", err.report());
        assert!(!probe.is_open());
        let probe = broker.probe().await;
        let unbound = probe.unbind(&queue, "", &queue).await;
        assert_eq!(
            unbound.as_ref().err().and_then(postage::Error::reply_code),
            Some(403),
            "unbinding from the default exchange: {unbound:?}"
        );
        let probe = broker.probe().await;
        probe.publish("", &queue, "by name").await.unwrap();
        assert_eq!(probe.depth(&queue).await.unwrap(), 1);
        assert_eq!(probe.delete_queue(&queue).await.unwrap(), 1);
    }
}

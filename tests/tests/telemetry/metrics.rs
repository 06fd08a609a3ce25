//! The metrics of a known sequence of messages and calls, and of a
//! connection's recovery.

use std::collections::BTreeMap;
use std::time::Duration;

use metrics_util::debugging::DebuggingRecorder;
use postage::Error;
use postage::telemetry::{
    CONNECTION_RECOVERIES, CONSUMER_HEALTH, DELIVERIES_FAILED, DELIVERIES_HANDLED,
    DELIVERIES_RECEIVED, DELIVERIES_REJECTED, HANDLER_DURATION, MESSAGES_CONFIRMED,
    MESSAGES_IN_FLIGHT, MESSAGES_PUBLISHED, REJECTION_REASONS, RPC_CALL_DURATION, RPC_OUTCOMES,
    RPC_TIMEOUTS,
};
use postage::testing::MemoryBroker;
use postage_tests::conformance::{TestBroker, probe};
use postage_tests::unique;
use serde_json::json;

use super::capture::{Metrics, Series, Value, WAIT, series, sum};
use super::{SERVER, Server, client};

/// The value of `series`, which must have been registered.
#[track_caller]
fn value<'a>(metrics: &'a BTreeMap<Series, Value>, series: &str) -> &'a Value {
    match metrics.get(series) {
        Some(value) => value,
        None => panic!(
            "{series} was not registered; the series are: {:#?}",
            metrics.keys().collect::<Vec<_>>()
        ),
    }
}

#[track_caller]
fn counter(metrics: &BTreeMap<Series, Value>, name: &str, labels: &[(&str, &str)]) -> u64 {
    match value(metrics, &series(name, labels)) {
        Value::Counter(n) => *n,
        other => panic!("{name} {labels:?} is not a counter: {other:?}"),
    }
}

#[track_caller]
fn gauge(metrics: &BTreeMap<Series, Value>, name: &str, labels: &[(&str, &str)]) -> f64 {
    match value(metrics, &series(name, labels)) {
        Value::Gauge(v) => *v,
        other => panic!("{name} {labels:?} is not a gauge: {other:?}"),
    }
}

/// How many samples the histogram has; each must be a duration.
#[track_caller]
fn samples(metrics: &BTreeMap<Series, Value>, name: &str, labels: &[(&str, &str)]) -> usize {
    match value(metrics, &series(name, labels)) {
        Value::Histogram(samples) => {
            assert!(
                samples.iter().all(|s| s.is_finite() && *s >= 0.0),
                "{name} {labels:?}: {samples:?}"
            );
            samples.len()
        }
        other => panic!("{name} {labels:?} is not a histogram: {other:?}"),
    }
}

/// The health gauge of the server's consumer, state by state.
fn health(metrics: &BTreeMap<Series, Value>) -> Vec<(&'static str, f64)> {
    ["consuming", "recovering", "failed", "stopped"]
        .into_iter()
        .map(|state| {
            let labels = [("consumer", SERVER), ("state", state)];
            (state, gauge(metrics, CONSUMER_HEALTH, &labels))
        })
        .collect()
}

/// After three good commands, a failing handler, an undecodable body, a
/// command no handler takes, two successful calls, an error result and a
/// call that times out on both its attempts, every counter and histogram
/// of the processor and the producer says exactly that; nothing is left
/// in flight; the consumer's health reads consuming, then stopped.
#[tokio::test]
async fn the_metrics_count_a_known_run_exactly() {
    let recorder = DebuggingRecorder::new();
    let _recorder = ::metrics::set_default_local_recorder(&recorder);
    let metrics = Metrics::of(&recorder);
    let server_connection = postage_tests::connect().await;
    let client_connection = postage_tests::connect().await;
    let mut server = Server::start(&server_connection).await;
    let client = client(&client_connection, &server).await;
    let probe = probe(&client_connection).await;
    let exchange = server.exchange.name().to_owned();
    let processor = [("processor", SERVER)];

    // Built and consuming: the health gauge says so.
    let before = metrics.take();
    assert_eq!(
        health(&before),
        [
            ("consuming", 1.0),
            ("recovering", 0.0),
            ("failed", 0.0),
            ("stopped", 0.0)
        ]
    );

    // One queue, one delivery at a time, in order: once the failing
    // handler has run, every delivery before it is done.
    probe
        .publish(&exchange, &server.queue, "{not json")
        .await
        .expect("published");
    client.command("nobody", json!({})).await.expect("sent");
    for i in 0..3 {
        client.command("work", i.to_string()).await.expect("sent");
    }
    client.command("explode", json!({})).await.expect("sent");
    for i in 0..3 {
        assert_eq!(server.next_seen().await, format!("work {i}"));
    }
    assert_eq!(server.next_seen().await, "explode");

    for (a, b) in [(1, 2), (3, 4)] {
        let reply = client.rpc("add", json!([a, b])).await.expect("a reply");
        assert_eq!(reply.outcome().unwrap().into_value(), Ok(json!(a + b)));
    }
    let reply = client.rpc("refuse", json!({})).await.expect("a reply");
    assert!(!reply.is_ok());
    // Nobody serves this key: both attempts time out.
    let lost = client
        .rpc("void", json!({}))
        .key(unique("nobody-listens"))
        .timeout(Duration::from_millis(150))
        .retries(1)
        .await;
    assert!(
        matches!(lost, Err(Error::RpcTimeout { attempts: 2, .. })),
        "{lost:?}"
    );
    server.quit().await;
    let after = metrics.take();
    assert_eq!(
        health(&after),
        [
            ("consuming", 0.0),
            ("recovering", 0.0),
            ("failed", 0.0),
            ("stopped", 1.0)
        ]
    );
    let all = sum(before, after);

    let published = |kind: &str, name: &str| {
        let labels = [
            ("exchange", exchange.as_str()),
            ("type", kind),
            ("name", name),
        ];
        counter(&all, MESSAGES_PUBLISHED, &labels)
    };
    assert_eq!(published("command", "work"), 3);
    assert_eq!(published("command", "explode"), 1);
    assert_eq!(published("command", "nobody"), 1);
    assert_eq!(published("command", "add"), 2);
    assert_eq!(published("command", "refuse"), 1);
    assert_eq!(published("command", "void"), 2, "one per attempt");
    assert_eq!(published("unknown", "unknown"), 1, "the probe's body");
    let confirmed = [
        ("exchange", exchange.as_str()),
        ("type", "command"),
        ("name", "work"),
    ];
    assert_eq!(counter(&all, MESSAGES_CONFIRMED, &confirmed), 3);
    let replies = [("exchange", ""), ("type", "result"), ("name", "none")];
    assert_eq!(counter(&all, MESSAGES_PUBLISHED, &replies), 3);

    assert_eq!(counter(&all, DELIVERIES_RECEIVED, &processor), 9);
    assert_eq!(
        counter(&all, DELIVERIES_HANDLED, &processor),
        6,
        "three commands and three calls answered"
    );
    assert_eq!(counter(&all, DELIVERIES_FAILED, &processor), 1);
    for &reason in REJECTION_REASONS {
        let expected = match reason {
            "undecodable" | "no_handler" => 1,
            _ => 0,
        };
        let labels = [("processor", SERVER), ("reason", reason)];
        assert_eq!(
            counter(&all, DELIVERIES_REJECTED, &labels),
            expected,
            "{reason}"
        );
    }
    assert_eq!(gauge(&all, MESSAGES_IN_FLIGHT, &processor), 0.0);

    let handler = |handler: &str, outcome: &str| {
        let labels = [
            ("processor", SERVER),
            ("handler", handler),
            ("outcome", outcome),
        ];
        samples(&all, HANDLER_DURATION, &labels)
    };
    assert_eq!(handler("work", "ok"), 3);
    assert_eq!(handler("work", "error"), 0);
    assert_eq!(handler("explode", "ok"), 0);
    assert_eq!(handler("explode", "error"), 1);
    assert_eq!(handler("add", "ok"), 2);
    assert_eq!(handler("refuse", "ok"), 1, "an error result is an answer");
    assert_eq!(handler("refuse", "error"), 0);

    for (name, expected) in [("add", "success"), ("refuse", "error"), ("void", "timeout")] {
        for &outcome in RPC_OUTCOMES {
            let labels = [("name", name), ("outcome", outcome)];
            let want = usize::from(outcome == expected);
            assert_eq!(
                samples(&all, RPC_CALL_DURATION, &labels),
                want * if name == "add" { 2 } else { 1 },
                "{name} {outcome}"
            );
        }
    }
    assert_eq!(counter(&all, RPC_TIMEOUTS, &[("name", "void")]), 2);
    assert_eq!(counter(&all, RPC_TIMEOUTS, &[("name", "add")]), 0);
}

/// A connection dropped by the in-memory broker comes back, and the
/// recovery is counted once; the consumer's health reads consuming again.
#[tokio::test]
async fn a_recovered_connection_is_counted() {
    let recorder = DebuggingRecorder::new();
    let _recorder = ::metrics::set_default_local_recorder(&recorder);
    let metrics = Metrics::of(&recorder);
    let broker = MemoryBroker::new();
    let connection = TestBroker::Memory(broker.clone()).connect().await;
    let mut server = Server::start(&connection).await;
    let client = client(&connection, &server).await;
    client.command("work", "before").await.expect("sent");
    assert_eq!(server.next_seen().await, "work before");
    assert_eq!(connection.recoveries(), 0);

    broker.drop_connections();
    let deadline = tokio::time::Instant::now() + WAIT;
    while connection.recoveries() < 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the connection recovers"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The consumer resumed: a command sent now is handled.
    client.command("work", "after").await.expect("sent");
    assert_eq!(server.next_seen().await, "work after");
    // One snapshot: it drains what it reads.
    let after = metrics.take();
    assert_eq!(counter(&after, CONNECTION_RECOVERIES, &[]), 1);
    assert_eq!(connection.recoveries(), 1);
    let consuming = [("consumer", SERVER), ("state", "consuming")];
    assert_eq!(gauge(&after, CONSUMER_HEALTH, &consuming), 1.0);
    let recovering = [("consumer", SERVER), ("state", "recovering")];
    assert_eq!(gauge(&after, CONSUMER_HEALTH, &recovering), 0.0);
    server.quit().await;
}

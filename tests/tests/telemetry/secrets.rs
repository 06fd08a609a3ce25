//! Nothing secret is recorded: neither the connection's password nor
//! what messages carry shows in any span, event or metric, at any level.

use metrics_util::debugging::DebuggingRecorder;
use postage::prelude::*;
use postage::testing::MemoryBroker;
use postage_tests::conformance::probe;
use serde_json::json;
use tracing::instrument::WithSubscriber;
use tracing::subscriber::NoSubscriber;

use super::capture::{Metrics, Traces};
use super::{Server, client};

/// Put in bodies, parameters and replies: must never be recorded.
const MARKER: &str = "MARKER-e3b0c4-body-only";

/// A run touching every path that records something: commands handled,
/// not handled and with parameters that do not fit, an undecodable body,
/// RPC calls answered and refused, each carrying [`MARKER`].
async fn exercise(server_connection: &Connection, client_connection: &Connection) -> String {
    let mut server = Server::start(server_connection).await;
    let client = client(client_connection, &server).await;
    let exchange = server.exchange.name().to_owned();

    client.command("work", MARKER).await.expect("sent");
    assert_eq!(
        server.next_seen().await,
        format!("work {MARKER}"),
        "the marker reaches the handler"
    );
    client
        .command("nobody", json!({"password": MARKER}))
        .await
        .expect("sent");
    client
        .command("work", json!({"token": MARKER}))
        .await
        .expect("sent");
    client.command("explode", MARKER).await.expect("sent");
    assert_eq!(server.next_seen().await, "explode");
    let probe = probe(client_connection).await;
    probe
        .publish(&exchange, &server.queue, format!("{{{MARKER}"))
        .await
        .expect("published");
    // Sent untraced (as Python Postage would): it is only logged.
    async {
        probe
            .publish(&exchange, &server.queue, format!("[\"{MARKER}\"]"))
            .await
    }
    .with_subscriber(NoSubscriber::default())
    .await
    .expect("published");

    let reply = client
        .rpc("echo", json!({"secret": MARKER}))
        .await
        .expect("a reply");
    assert_eq!(
        reply.outcome().unwrap().into_value(),
        Ok(json!({"secret": MARKER}))
    );
    let reply = client.rpc("refuse", MARKER).await.expect("a reply");
    assert!(!reply.is_ok());
    // Not the pair of numbers asked for. (A string where a number is
    // expected would be quoted by serde's message in the handler's error,
    // which the processor logs.)
    let reply = client
        .rpc("add", json!({"a": MARKER}))
        .await
        .expect("a reply");
    assert!(!reply.is_ok(), "parameters that do not fit");
    server.quit().await;
    exchange
}

/// Every text the subscriber and the recorder got: span and event fields
/// (names and values), exported spans (names, attributes, events, status)
/// and metric names and labels, one a line.
fn everything(traces: &Traces, metrics: &Metrics) -> String {
    let mut lines = Vec::new();
    for field in traces.fields() {
        lines.push(format!("{}: {} = {}", field.on, field.name, field.value));
    }
    for span in traces.spans() {
        lines.push(format!("span {} {:?}", span.name, span.status));
        for kv in &span.attributes {
            lines.push(format!("  {} = {}", kv.key, kv.value));
        }
        for event in span.events.iter() {
            lines.push(format!("  event {}", event.name));
            for kv in &event.attributes {
                lines.push(format!("    {} = {}", kv.key, kv.value));
            }
        }
    }
    for series in metrics.take().keys() {
        lines.push(format!("metric {series}"));
    }
    lines.join("\n")
}

/// None of `forbidden` is in `recorded`, which holds what shows the
/// capture worked.
#[track_caller]
fn assert_clean(recorded: &str, forbidden: &[&str], exchange: &str) {
    for secret in forbidden {
        let lines: Vec<&str> = recorded.lines().filter(|l| l.contains(secret)).collect();
        assert!(lines.is_empty(), "{secret:?} was recorded: {lines:#?}");
    }
    // The capture saw spans, trace-level fields, events and metrics.
    for expected in [
        format!("messaging.destination.name = {exchange}"),
        "postage.sender = telemetry-client".to_owned(),
        "no handler for this message".to_owned(),
        "rejecting a message that cannot be decoded".to_owned(),
        "metric postage_deliveries_received_total{processor=telemetry-server}".to_owned(),
    ] {
        assert!(
            recorded.contains(&expected),
            "the capture has no {expected:?}:\n{recorded}"
        );
    }
}

/// With a password of its own in the connection's URL, the in-memory
/// broker's run records neither it nor the URL nor the marker.
#[tokio::test]
async fn neither_the_password_nor_message_contents_are_recorded_in_memory() {
    const PASSWORD: &str = "Pw-5d41402abc4b2a76";
    let url = format!("amqp://telemetry-user:{PASSWORD}@broker.invalid:5672/secret-vhost");
    let traces = Traces::start();
    let recorder = DebuggingRecorder::new();
    let _recorder = ::metrics::set_default_local_recorder(&recorder);
    let metrics = Metrics::of(&recorder);
    let config = Config::from_url(&url).expect("a valid URL");
    let broker = MemoryBroker::new();
    let server_connection = broker.connect_with(config.clone()).await.unwrap();
    let client_connection = broker.connect_with(config).await.unwrap();
    let exchange = exercise(&server_connection, &client_connection).await;
    let recorded = everything(&traces, &metrics);
    assert_clean(
        &recorded,
        &[
            PASSWORD,
            &format!("telemetry-user:{PASSWORD}"),
            &url,
            MARKER,
        ],
        &exchange,
    );
}

/// On RabbitMQ (user and password `guest`), neither the URL nor
/// `user:password` nor the marker is recorded.
#[tokio::test]
async fn neither_the_credentials_nor_message_contents_are_recorded_on_rabbitmq() {
    let traces = Traces::start();
    let recorder = DebuggingRecorder::new();
    let _recorder = ::metrics::set_default_local_recorder(&recorder);
    let metrics = Metrics::of(&recorder);
    let server_connection = postage_tests::connect().await;
    let client_connection = postage_tests::connect().await;
    let exchange = exercise(&server_connection, &client_connection).await;
    let recorded = everything(&traces, &metrics);
    let url = postage_tests::test_url();
    // `user:password`, between the scheme and the host.
    let userinfo = url
        .split_once("://")
        .and_then(|(_, rest)| rest.rsplit_once('@'))
        .map(|(userinfo, _)| userinfo)
        .expect("the test URL has credentials");
    assert!(userinfo.contains(':'), "{userinfo}");
    assert_clean(&recorded, &[&url, userinfo, MARKER], &exchange);
}

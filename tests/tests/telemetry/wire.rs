//! The trace context on the wire: a `traceparent` header in W3C format
//! naming the publish's span, and a body unchanged by it.

use std::time::Duration;

use postage::Error;
use postage::prelude::*;
use postage::testing::{Probe, ProbeConsumer, ProbeDelivery};
use postage_tests::conformance::{TestBroker, delivered, probe};
use postage_tests::unique;
use serde_json::json;
use tracing::instrument::WithSubscriber;
use tracing::subscriber::NoSubscriber;

use super::CLIENT;
use super::capture::{Traces, must, named, the};

/// The parts of a W3C `traceparent` (`00-<trace id>-<span id>-<flags>`),
/// or why it is not one.
fn traceparent(value: &str) -> Result<(String, String, String), String> {
    let parts: Vec<&str> = value.split('-').collect();
    let hex = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    match parts[..] {
        ["00", trace, span, flags]
            if hex(trace, 32)
                && hex(span, 16)
                && hex(flags, 2)
                && trace.bytes().any(|b| b != b'0')
                && span.bytes().any(|b| b != b'0') =>
        {
            Ok((trace.to_owned(), span.to_owned(), flags.to_owned()))
        }
        _ => Err(format!("{value:?} is not a W3C traceparent")),
    }
}

/// The `traceparent` header of `delivery`, if it has one.
fn header(delivery: &ProbeDelivery) -> Option<String> {
    delivery
        .headers()
        .get("traceparent")
        .map(|value| match value.as_str() {
            Some(text) => text.to_owned(),
            None => panic!("traceparent is not a string: {value:?}"),
        })
}

/// A queue bound with `key` to `exchange`, consumed by `probe`: it gets a
/// copy of what is sent there.
async fn tap(probe: &Probe, exchange: &Exchange, key: &str) -> ProbeConsumer {
    let queue = unique("telemetry-tap");
    probe.declare_exchange(exchange).await.expect("exchange");
    probe
        .declare_queue(&Queue::new(queue.as_str()).auto_delete(true))
        .await
        .expect("queue");
    probe
        .bind(&queue, exchange.name(), key)
        .await
        .expect("binding");
    probe.consume_no_ack(&queue).await.expect("consumer")
}

/// A traced send carries `traceparent`, naming its `publish` span, and
/// the same body as the same send made untraced, for an RPC request and
/// a command.
async fn trace_context_on_the_wire(broker: TestBroker) {
    let traces = Traces::start();
    let connection = broker.connect().await;
    let exchange = Exchange::new(unique("telemetry-wire"), ExchangeKind::Direct).auto_delete(true);
    let key = unique("wire");
    let probe = probe(&connection).await;
    let mut tap = tap(&probe, &exchange, &key).await;
    let client = Producer::builder()
        .ek(exchange.clone(), key.as_str())
        .fingerprint(Fingerprint::new(CLIENT, "test"))
        .connect(&connection)
        .await
        .expect("the producer connects");
    let timeout = Duration::from_millis(200);

    // An RPC request nobody answers, traced then not.
    let call = || client.rpc("add", json!([2, 3])).timeout(timeout).retries(0);
    let traced = call().await;
    assert!(
        matches!(traced, Err(Error::RpcTimeout { .. })),
        "{traced:?}"
    );
    let request = delivered(&mut tap, 5_000).await;
    let untraced = async { call().await }
        .with_subscriber(NoSubscriber::default())
        .await;
    assert!(
        matches!(untraced, Err(Error::RpcTimeout { .. })),
        "{untraced:?}"
    );
    let plain_request = delivered(&mut tap, 5_000).await;

    let Some(value) = header(&request) else {
        panic!(
            "a traced request carries traceparent: {:?}",
            request.headers()
        )
    };
    let (trace_id, span_id, flags) = traceparent(&value).unwrap();
    assert_eq!(flags, "01", "sampled");
    assert_eq!(
        header(&plain_request),
        None,
        "nothing to propagate untraced"
    );
    assert_eq!(
        request.body(),
        plain_request.body(),
        "the trace context leaves the body alone"
    );

    let spans = traces
        .spans_once("the call's spans", |spans| {
            named(spans, "call add").len() == 1
        })
        .await;
    let publish = the(
        &spans,
        &format!("publish {}", exchange.name()),
        "postage.message.name",
        "add",
    );
    assert_eq!(publish.span_context.trace_id().to_string(), trace_id);
    assert_eq!(publish.span_context.span_id().to_string(), span_id);
    let call_span = named(&spans, "call add")[0];
    assert_eq!(publish.parent_span_id, call_span.span_context.span_id());
    assert_eq!(
        must(publish, "messaging.message.body.size"),
        request.body().len().to_string()
    );
    assert_eq!(
        Some(must(publish, "messaging.message.conversation_id").as_str()),
        request.correlation_id()
    );

    // A command, traced then not.
    client.command("work", "x").await.expect("sent");
    let command = delivered(&mut tap, 5_000).await;
    async { client.command("work", "x").await }
        .with_subscriber(NoSubscriber::default())
        .await
        .expect("sent");
    let plain_command = delivered(&mut tap, 5_000).await;
    let Some(value) = header(&command) else {
        panic!(
            "a traced command carries traceparent: {:?}",
            command.headers()
        )
    };
    let (command_trace, _, _) = traceparent(&value).unwrap();
    assert_ne!(command_trace, trace_id, "a new trace for a new send");
    assert_eq!(header(&plain_command), None);
    assert_eq!(command.body(), plain_command.body());
    assert_ne!(command.body(), request.body());
}

/// On RabbitMQ: a traced RPC request and command carry a W3C
/// `traceparent` naming their `publish` span, and bodies byte for byte
/// those of the same sends made untraced.
#[tokio::test]
async fn the_trace_context_travels_in_the_headers_on_rabbitmq() {
    trace_context_on_the_wire(TestBroker::rabbitmq()).await;
}

/// On the in-memory broker: a traced RPC request and command carry a W3C
/// `traceparent` naming their `publish` span, and bodies byte for byte
/// those of the same sends made untraced.
#[tokio::test]
async fn the_trace_context_travels_in_the_headers_in_memory() {
    trace_context_on_the_wire(TestBroker::memory()).await;
}

/// The `traceparent` check itself tells a W3C value from others.
#[test]
fn the_traceparent_check_refuses_what_is_not_w3c() {
    let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    assert!(traceparent(good).is_ok());
    for bad in [
        "",
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
    ] {
        assert!(traceparent(bad).is_err(), "{bad:?}");
    }
}

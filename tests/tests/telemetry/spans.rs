//! The span tree of an RPC across two components, of a failing handler
//! and a rejected delivery, and of a message from a peer that sends no
//! trace context.

use lapin::BasicProperties;
use lapin::options::BasicPublishOptions;
use opentelemetry::trace::{SpanId, Status};
use opentelemetry_sdk::trace::SpanData;
use postage_tests::conformance::{TestBroker, probe};
use serde_json::json;
use tracing::Instrument;
use tracing::instrument::WithSubscriber;
use tracing::subscriber::NoSubscriber;

use super::capture::{Traces, attr, children, kind, must, named, the};
use super::{CLIENT, SERVER, Server, client, python_command};

#[track_caller]
fn assert_failed(span: &SpanData, error_type: &str) {
    assert_eq!(
        attr(span, "error.type").as_deref(),
        Some(error_type),
        "{span:#?}"
    );
    assert!(matches!(span.status, Status::Error { .. }), "{span:#?}");
}

#[track_caller]
fn assert_fine(span: &SpanData) {
    assert_eq!(attr(span, "error.type"), None, "{span:#?}");
    assert_eq!(span.status, Status::Unset, "{span:#?}");
}

#[track_caller]
fn assert_same_trace(a: &SpanData, b: &SpanData) {
    assert_eq!(
        a.span_context.trace_id(),
        b.span_context.trace_id(),
        "{:?} and {:?} are not in one trace",
        a.name,
        b.name
    );
}

/// The one child of `parent` among `spans`.
#[track_caller]
fn only_child<'a>(spans: &'a [SpanData], parent: &SpanData) -> &'a SpanData {
    match children(spans, parent)[..] {
        [child] => child,
        ref other => panic!("{:?} has {} children, not one", parent.name, other.len()),
    }
}

/// The span tree of one RPC, a failing handler and an undecodable
/// delivery, on `broker`, with the client and the server on two
/// connections.
async fn rpc_span_tree(broker: TestBroker) {
    let traces = Traces::start();
    let server_connection = broker.connect().await;
    let client_connection = broker.connect().await;
    let mut server = Server::start(&server_connection).await;
    let client = client(&client_connection, &server).await;
    let exchange = server.exchange.name().to_owned();

    let reply = client.rpc("add", json!([2, 3])).await.expect("a reply");
    assert_eq!(
        reply.outcome().expect("a result").into_value(),
        Ok(json!(5))
    );
    assert_eq!(server.next_seen().await, "add 2 3");

    let spans = traces
        .spans_once("the RPC's spans", |spans| {
            named(spans, "call add").len() == 1
                && named(spans, &server.process_span()).len() == 1
                && named(spans, "publish").len() == 1
        })
        .await;

    // The caller's span: the root of the trace.
    let rpc = the(&spans, "call add", "postage.message.name", "add");
    assert_eq!(kind(rpc), "client");
    assert_eq!(
        rpc.parent_span_id,
        SpanId::INVALID,
        "the test is in no span"
    );
    assert_eq!(must(rpc, "messaging.system"), "rabbitmq");
    assert_eq!(must(rpc, "messaging.operation.type"), "send");
    assert_eq!(must(rpc, "messaging.destination.name"), exchange);
    assert_eq!(
        must(rpc, "messaging.rabbitmq.destination.routing_key"),
        server.queue
    );
    assert_eq!(must(rpc, "postage.message.type"), "command");
    assert_eq!(must(rpc, "postage.message.category"), "rpc");
    assert_eq!(must(rpc, "postage.outcome"), "success");
    assert_eq!(must(rpc, "postage.rpc.attempts"), "1");
    assert_fine(rpc);

    // The request's publish, within the call.
    let request = only_child(&spans, rpc);
    assert_eq!(request.name, server.publish_span());
    assert_eq!(kind(request), "producer");
    assert_eq!(must(request, "messaging.system"), "rabbitmq");
    assert_eq!(must(request, "messaging.operation.type"), "send");
    assert_eq!(must(request, "messaging.destination.name"), exchange);
    assert_eq!(
        must(request, "messaging.rabbitmq.destination.routing_key"),
        server.queue
    );
    assert_eq!(must(request, "postage.message.type"), "command");
    assert_eq!(must(request, "postage.message.name"), "add");
    assert_eq!(must(request, "postage.message.category"), "rpc");
    let correlation_id = must(request, "messaging.message.conversation_id");
    assert!(!correlation_id.is_empty());
    let body_size: usize = must(request, "messaging.message.body.size")
        .parse()
        .unwrap();
    assert!(body_size > 0);
    assert_fine(request);

    // The server's span continues the trace from the request's headers:
    // its parent is the request's publish, made on another connection.
    let process = the(
        &spans,
        &server.process_span(),
        "postage.message.name",
        "add",
    );
    assert_same_trace(process, rpc);
    assert_eq!(process.parent_span_id, request.span_context.span_id());
    assert!(
        process.parent_span_is_remote,
        "the parent came in the headers"
    );
    assert_eq!(kind(process), "server", "the server side of an RPC");
    assert_eq!(must(process, "messaging.system"), "rabbitmq");
    assert_eq!(must(process, "messaging.operation.type"), "process");
    assert_eq!(must(process, "messaging.destination.name"), exchange);
    assert_eq!(
        must(process, "messaging.rabbitmq.destination.routing_key"),
        server.queue
    );
    assert_eq!(
        must(process, "messaging.message.conversation_id"),
        correlation_id
    );
    assert_eq!(
        must(process, "messaging.message.body.size"),
        body_size.to_string()
    );
    let tag: u64 = must(process, "messaging.rabbitmq.message.delivery_tag")
        .parse()
        .unwrap();
    assert!(tag >= 1, "delivery tags start at 1");
    assert_eq!(must(process, "postage.message.type"), "command");
    assert_eq!(must(process, "postage.message.category"), "rpc");
    assert_eq!(must(process, "postage.sender"), CLIENT);
    assert_eq!(must(process, "postage.processor"), SERVER);
    assert_eq!(must(process, "postage.queue"), server.queue);
    assert_eq!(must(process, "postage.outcome"), "handled");
    assert_fine(process);

    // The handler, within the delivery's span.
    let handler = only_child(&spans, process);
    assert_eq!(handler.name, "handle add");
    assert_eq!(kind(handler), "internal");
    assert_eq!(must(handler, "postage.handler"), "add");
    assert_eq!(must(handler, "postage.message.type"), "command");
    assert_eq!(must(handler, "postage.message.name"), "add");
    assert_fine(handler);

    // The reply, sent by the handler to the default exchange.
    let answer = only_child(&spans, handler);
    assert_eq!(answer.name, "publish", "the default exchange has no name");
    assert_eq!(kind(answer), "producer");
    assert_eq!(must(answer, "messaging.system"), "rabbitmq");
    assert_eq!(must(answer, "messaging.operation.type"), "send");
    assert_eq!(must(answer, "messaging.destination.name"), "");
    let reply_to = must(answer, "messaging.rabbitmq.destination.routing_key");
    assert!(reply_to.starts_with("amq.rabbitmq.reply-to"), "{reply_to}");
    assert_eq!(
        must(answer, "messaging.message.conversation_id"),
        correlation_id
    );
    assert_eq!(must(answer, "postage.message.type"), "result");
    assert_eq!(must(answer, "postage.message.category"), "message");
    assert_fine(answer);
    for span in [request, process, handler, answer] {
        assert_same_trace(span, rpc);
    }

    // An error result: the call's span says so.
    let reply = client.rpc("refuse", json!({})).await.expect("a reply");
    assert!(!reply.is_ok());
    assert_eq!(server.next_seen().await, "refuse");

    // A failing handler, then a body that is no message (sent untraced,
    // as a foreign peer would).
    client.command("explode", json!({})).await.expect("sent");
    assert_eq!(server.next_seen().await, "explode");
    let probe = probe(&client_connection).await;
    async { probe.publish(&exchange, &server.queue, "{not json").await }
        .with_subscriber(NoSubscriber::default())
        .await
        .expect("published");

    let spans = traces
        .spans_once(
            "the refused call, failed and rejected deliveries",
            |spans| {
                named(spans, "call refuse").len() == 1
                    && named(spans, &server.process_span())
                        .iter()
                        .filter(|span| attr(span, "error.type").is_some())
                        .count()
                        == 2
            },
        )
        .await;
    let refused = the(&spans, "call refuse", "postage.message.name", "refuse");
    assert_eq!(must(refused, "postage.outcome"), "error");
    assert_failed(refused, "error");

    let failed = the(
        &spans,
        &server.process_span(),
        "postage.message.name",
        "explode",
    );
    assert_eq!(kind(failed), "consumer", "a message, not an RPC");
    assert_eq!(must(failed, "postage.message.category"), "message");
    assert_eq!(must(failed, "postage.outcome"), "failed");
    assert_failed(failed, "HandlerError");
    let failed_handler = only_child(&spans, failed);
    assert_eq!(failed_handler.name, "handle explode");
    assert_eq!(must(failed_handler, "postage.handler"), "explode");
    assert_failed(failed_handler, "BadInput");

    let rejected = the(&spans, &server.process_span(), "error.type", "undecodable");
    assert_eq!(must(rejected, "postage.outcome"), "rejected");
    assert_failed(rejected, "undecodable");
    assert_eq!(must(rejected, "messaging.message.body.size"), "9");
    assert_eq!(
        attr(rejected, "postage.message.type"),
        None,
        "never decoded"
    );
    assert_eq!(attr(rejected, "postage.sender"), None);
    assert_eq!(
        rejected.parent_span_id,
        SpanId::INVALID,
        "no trace context came"
    );
    assert!(children(&spans, rejected).is_empty(), "no handler ran");

    server.quit().await;
}

/// On RabbitMQ: one RPC is one trace from the caller through the handler
/// to the reply, every span named, of its kind and with its attributes; a
/// refused call, a failing handler and an undecodable body mark their
/// spans failed with `error.type`.
#[tokio::test]
async fn an_rpc_is_one_trace_across_two_components_on_rabbitmq() {
    rpc_span_tree(TestBroker::rabbitmq()).await;
}

/// On the in-memory broker: one RPC is one trace from the caller through the handler
/// to the reply, every span named, of its kind and with its attributes; a
/// refused call, a failing handler and an undecodable body mark their
/// spans failed with `error.type`.
#[tokio::test]
async fn an_rpc_is_one_trace_across_two_components_in_memory() {
    rpc_span_tree(TestBroker::memory()).await;
}

/// A message published without trace headers, as Python Postage publishes,
/// starts a new trace (even when its publisher was within a span), while
/// a Postage producer's message within the same span continues it.
#[tokio::test]
async fn a_message_without_trace_headers_starts_a_new_trace() {
    let traces = Traces::start();
    let connection = postage_tests::connect().await;
    let mut server = Server::start(&connection).await;
    let client = client(&connection, &server).await;
    let raw = postage_tests::raw_channel().await;

    let outer = tracing::info_span!("test_outer");
    let body = python_command("work", json!("from python"), "python-peer");
    raw.basic_publish(
        server.exchange.name().into(),
        server.queue.as_str().into(),
        BasicPublishOptions::default(),
        &body,
        BasicProperties::default().with_content_type("application/json".into()),
    )
    .instrument(outer.clone())
    .await
    .expect("published");
    assert_eq!(server.next_seen().await, "work from python");
    client
        .command("work", "from rust")
        .into_future()
        .instrument(outer.clone())
        .await
        .expect("sent");
    assert_eq!(server.next_seen().await, "work from rust");
    drop(outer);

    let spans = traces
        .spans_once("both deliveries' spans and the outer span", |spans| {
            named(spans, &server.process_span()).len() == 2 && named(spans, "test_outer").len() == 1
        })
        .await;
    let outer = named(&spans, "test_outer")[0];
    let from_python = the(
        &spans,
        &server.process_span(),
        "postage.sender",
        "python-peer",
    );
    assert_eq!(from_python.parent_span_id, SpanId::INVALID, "a root span");
    assert!(!from_python.parent_span_is_remote);
    assert_ne!(
        from_python.span_context.trace_id(),
        outer.span_context.trace_id(),
        "a trace of its own, not its publisher's"
    );
    let own_trace: Vec<_> = spans
        .iter()
        .filter(|span| span.span_context.trace_id() == from_python.span_context.trace_id())
        .map(|span| span.name.to_string())
        .collect();
    assert_eq!(
        own_trace.len(),
        2,
        "the delivery and its handler: {own_trace:?}"
    );
    let handler = only_child(&spans, from_python);
    assert_eq!(handler.name, "handle work");
    assert_eq!(must(from_python, "postage.message.name"), "work");
    assert_eq!(attr(from_python, "messaging.message.conversation_id"), None);
    assert_fine(from_python);

    // The control: a Postage producer's message continues the trace.
    let from_rust = the(&spans, &server.process_span(), "postage.sender", CLIENT);
    assert_same_trace(from_rust, outer);
    assert!(from_rust.parent_span_is_remote);
    let publish = the(
        &spans,
        &server.publish_span(),
        "postage.message.name",
        "work",
    );
    assert_eq!(publish.parent_span_id, outer.span_context.span_id());
    assert_eq!(from_rust.parent_span_id, publish.span_context.span_id());

    server.quit().await;
}

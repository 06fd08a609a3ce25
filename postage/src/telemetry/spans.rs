//! Spans after OpenTelemetry's semantic conventions for messaging
//! (RabbitMQ), plus Postage's own `postage.*` attributes. Field values are
//! only computed when a subscriber wants the span; none holds a body or a
//! credential.

use std::fmt;

use tracing::Span;
use tracing::field::Empty;

/// What a span says of the message it is about.
#[derive(Debug, Clone, Copy)]
pub(crate) struct About<'a> {
    /// Its type (`command`, `status`, `result`…).
    pub(crate) kind: &'a str,
    /// Its name.
    pub(crate) name: &'a str,
    /// `message` or `rpc`.
    pub(crate) category: &'static str,
}

impl<'a> About<'a> {
    /// A reply (category `message`) of type `kind` called `name`.
    pub(crate) fn of(kind: &'a str, name: &'a str) -> Self {
        About {
            kind,
            name,
            category: "message",
        }
    }

    /// A body of unknown content (forwarded as is).
    pub(crate) const UNKNOWN: About<'static> = About {
        kind: "unknown",
        name: "unknown",
        category: "message",
    };
}

/// `operation` followed by the destination, when there is one (the
/// default exchange has no name).
struct Named<'a>(&'static str, &'a str);

impl fmt::Display for Named<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            "" => f.write_str(self.0),
            destination => write!(f, "{} {destination}", self.0),
        }
    }
}

/// The span of one publish (`send`).
pub(crate) fn publish(
    exchange: &str,
    key: &str,
    body_size: usize,
    correlation_id: Option<&str>,
    about: &About<'_>,
) -> Span {
    tracing::info_span!(
        "publish",
        otel.name = %Named("publish", exchange),
        otel.kind = "producer",
        otel.status_code = Empty,
        messaging.system = "rabbitmq",
        messaging.operation.type = "send",
        messaging.operation.name = "publish",
        messaging.destination.name = exchange,
        messaging.rabbitmq.destination.routing_key = key,
        messaging.message.conversation_id = correlation_id,
        messaging.message.body.size = body_size,
        postage.message.type = about.kind,
        postage.message.name = about.name,
        postage.message.category = about.category,
        error.type = Empty,
    )
}

/// What the span of a delivery says of it before it is decoded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Received<'a> {
    pub(crate) exchange: &'a str,
    pub(crate) routing_key: &'a str,
    pub(crate) queue: &'a str,
    pub(crate) correlation_id: Option<&'a str>,
    pub(crate) body_size: usize,
    pub(crate) delivery_tag: u64,
    pub(crate) processor: &'a str,
}

/// The span of one delivery's receipt and processing (`process`): a new
/// trace, or the sender's when the delivery carries its trace context.
pub(crate) fn process(received: &Received<'_>) -> Span {
    tracing::info_span!(
        parent: None,
        "process",
        otel.name = %Named("process", received.exchange),
        // Recorded once the delivery is decoded (see `decoded`).
        otel.kind = Empty,
        otel.status_code = Empty,
        messaging.system = "rabbitmq",
        messaging.operation.type = "process",
        messaging.operation.name = "process",
        messaging.destination.name = received.exchange,
        messaging.rabbitmq.destination.routing_key = received.routing_key,
        messaging.message.conversation_id = received.correlation_id,
        messaging.message.body.size = received.body_size,
        messaging.rabbitmq.message.delivery_tag = received.delivery_tag,
        postage.queue = received.queue,
        postage.processor = received.processor,
        postage.message.type = Empty,
        postage.message.name = Empty,
        postage.message.category = Empty,
        postage.sender = Empty,
        postage.outcome = Empty,
        error.type = Empty,
    )
}

/// Records what the delivery of `span` turned out to be, before the span
/// is entered: OpenTelemetry takes a span's kind when it starts. `None`
/// for a delivery that is no Postage message.
pub(crate) fn decoded(span: &Span, decoded: Option<(&About<'_>, Option<&str>)>) {
    let Some((about, sender)) = decoded else {
        span.record("otel.kind", "consumer");
        return;
    };
    span.record("postage.message.type", about.kind);
    span.record("postage.message.name", about.name);
    span.record("postage.message.category", about.category);
    span.record("postage.sender", sender);
    // The processor serves an RPC request: the RPC's server side.
    let kind = if about.category == "rpc" {
        "server"
    } else {
        "consumer"
    };
    span.record("otel.kind", kind);
}

/// Records how the delivery of `span` ended: `handled`, or the failure
/// (`error.type`) that ended it.
pub(crate) fn outcome(span: &Span, outcome: &str, error: Option<&str>) {
    span.record("postage.outcome", outcome);
    if let Some(error) = error {
        failed(span, error);
    }
}

/// Marks `span` failed with `error_type`.
pub(crate) fn failed(span: &Span, error_type: &str) {
    span.record("error.type", error_type);
    span.record("otel.status_code", "error");
}

/// The span of one handler's run, a child of its delivery's.
pub(crate) fn handler(label: &str, kind: &str, name: &str) -> Span {
    tracing::info_span!(
        "handler",
        otel.name = %Named("handle", label),
        otel.kind = "internal",
        otel.status_code = Empty,
        postage.handler = label,
        postage.message.type = kind,
        postage.message.name = name,
        error.type = Empty,
    )
}

/// The span of an RPC call (the client side), parent of its attempts'
/// publishes.
pub(crate) fn rpc_call(exchange: &str, key: &str, about: &About<'_>) -> Span {
    tracing::info_span!(
        "rpc",
        otel.name = %Named("call", about.name),
        otel.kind = "client",
        otel.status_code = Empty,
        messaging.system = "rabbitmq",
        messaging.operation.type = "send",
        messaging.operation.name = "call",
        messaging.destination.name = exchange,
        messaging.rabbitmq.destination.routing_key = key,
        postage.message.type = about.kind,
        postage.message.name = about.name,
        postage.message.category = "rpc",
        postage.rpc.attempts = Empty,
        postage.outcome = Empty,
        error.type = Empty,
    )
}

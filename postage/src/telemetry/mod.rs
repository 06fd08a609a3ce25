//! Telemetry: spans through `tracing`, after OpenTelemetry's semantic
//! conventions for messaging, and metrics through the `metrics` facade.
//!
//! Both are recorded always and cost next to nothing when nobody listens:
//! with no `tracing` subscriber a span is one check of a cached flag, and
//! with no `metrics` recorder a metric is one branch. Install the recorder
//! (for example `metrics_exporter_prometheus::PrometheusBuilder`) before
//! building producers and processors: their handles are registered when
//! they are built, or at the first use of a label set.
//!
//! # Spans
//!
//! | span | kind | when | parent |
//! |---|---|---|---|
//! | `publish` | producer | every message sent | the current span |
//! | `process` | consumer (server for an RPC request) | every delivery a processor receives | the sender's `publish`, or none |
//! | `handler` | internal | each handler run for a delivery | its `process` |
//! | `rpc` | client | an RPC call, its attempts' `publish` spans inside | the current span |
//!
//! Each carries `messaging.system = "rabbitmq"`,
//! `messaging.operation.type` (`send` or `process`),
//! `messaging.destination.name` (the exchange, empty for the default
//! one), `messaging.rabbitmq.destination.routing_key`,
//! `messaging.message.conversation_id` (the correlation id),
//! `messaging.message.body.size`, `messaging.rabbitmq.message.delivery_tag`
//! and, on failure, `error.type` with `otel.status_code = "error"`; and
//! Postage's own `postage.message.type`, `postage.message.name`,
//! `postage.message.category`, `postage.sender` (the sender's fingerprint
//! name), `postage.handler`, `postage.processor`, `postage.queue` and
//! `postage.outcome`. `otel.name` and `otel.kind` name the span for
//! `tracing-opentelemetry`. No span holds a body or a credential.
//!
//! With the `opentelemetry` feature, a message published within a traced
//! span carries its W3C trace context in the `traceparent` and
//! `tracestate` headers, and the `process` span of its receiver continues
//! that trace: one trace runs from an RPC's caller through the handler to
//! the reply. The body is unchanged; Python Postage ignores the headers,
//! and its messages (which carry none) start new traces.
//!
//! # Metrics
//!
//! The constants below name them; [`describe_metrics`] gives a recorder
//! their descriptions and units. Labels are bounded: exchanges, message
//! types and names, handlers, processors and outcomes, never routing keys,
//! queue names or correlation ids.
//!
//! ```no_run
//! # fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // With metrics-exporter-prometheus: serve /metrics, then build components.
//! // metrics_exporter_prometheus::PrometheusBuilder::new().install()?;
//! postage::telemetry::describe_metrics();
//! # Ok(()) }
//! ```

mod describe;
mod instruments;
mod names;
mod propagation;
mod spans;

pub use describe::describe_metrics;
pub(crate) use instruments::{
    HealthGauge, ProcessorInstruments, PublishInstruments, Published, Rejection, RpcInstruments,
    RpcOutcome, connection_blocked, connection_recovered, connection_stalled,
};
pub use names::*;
pub(crate) use propagation::{continue_trace, inject};
pub(crate) use spans::{About, Received};
pub(crate) mod span {
    //! The span constructors.
    pub(crate) use super::spans::{decoded, failed, handler, outcome, process, publish, rpc_call};
}

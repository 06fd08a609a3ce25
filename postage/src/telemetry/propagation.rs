//! W3C trace context (`traceparent`, `tracestate`) in the AMQP headers,
//! with the `opentelemetry` feature: written when a message is published
//! within a traced span, read when a processor receives it. Without the
//! feature these do nothing.

use std::collections::BTreeMap;

use serde_json::Value;
use tracing::Span;

/// The headers to publish within `span`: `headers` with the span's trace
/// context added, or `None` when there is nothing to add.
#[cfg(feature = "opentelemetry")]
pub(crate) fn inject(
    span: &Span,
    headers: Option<&BTreeMap<String, Value>>,
) -> Option<BTreeMap<String, Value>> {
    use opentelemetry::propagation::{Injector, TextMapPropagator};
    use opentelemetry::trace::TraceContextExt;
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    struct Into<'a>(&'a mut BTreeMap<String, Value>);

    impl Injector for Into<'_> {
        fn set(&mut self, key: &str, value: String) {
            self.0.insert(key.to_owned(), Value::String(value));
        }
    }

    if span.is_disabled() {
        return None;
    }
    let cx = span.context();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut out = headers.cloned().unwrap_or_default();
    TraceContextPropagator::new().inject_context(&cx, &mut Into(&mut out));
    Some(out)
}

/// Without the `opentelemetry` feature: nothing to add.
#[cfg(not(feature = "opentelemetry"))]
pub(crate) fn inject(
    _span: &Span,
    _headers: Option<&BTreeMap<String, Value>>,
) -> Option<BTreeMap<String, Value>> {
    None
}

/// Makes `span` (not entered yet) continue the trace whose context the
/// headers read by `header` carry; a delivery without one starts a new
/// trace.
#[cfg(feature = "opentelemetry")]
pub(crate) fn continue_trace<'a>(span: &Span, header: impl Fn(&str) -> Option<&'a str>) {
    use opentelemetry::propagation::{Extractor, TextMapPropagator};
    use opentelemetry::trace::TraceContextExt;
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    struct From<'a> {
        parent: &'a str,
        state: Option<&'a str>,
    }

    impl Extractor for From<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            match key {
                "traceparent" => Some(self.parent),
                "tracestate" => self.state,
                _ => None,
            }
        }

        fn keys(&self) -> Vec<&str> {
            let mut keys = vec!["traceparent"];
            if self.state.is_some() {
                keys.push("tracestate");
            }
            keys
        }
    }

    if span.is_disabled() {
        return;
    }
    let Some(parent) = header("traceparent") else {
        return;
    };
    let state = header("tracestate");
    let cx = TraceContextPropagator::new().extract(&From { parent, state });
    if cx.span().span_context().is_valid() {
        // Fails only without an OpenTelemetry layer, where there is no
        // trace to continue.
        let _ = span.set_parent(cx);
    }
}

/// Without the `opentelemetry` feature: every delivery starts a new trace.
#[cfg(not(feature = "opentelemetry"))]
pub(crate) fn continue_trace<'a>(_span: &Span, _header: impl Fn(&str) -> Option<&'a str>) {}

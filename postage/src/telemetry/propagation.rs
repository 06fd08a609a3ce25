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

#[cfg(all(test, feature = "opentelemetry"))]
mod tests {
    use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[test]
    fn a_trace_context_written_into_headers_is_continued_from_them() {
        let provider = SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, || {
            let sender = tracing::info_span!("publish");
            let mut user = BTreeMap::new();
            user.insert("x-mine".to_owned(), Value::from(1));
            let Some(headers) = inject(&sender, Some(&user)) else {
                panic!("a traced span writes its context");
            };
            assert_eq!(headers.get("x-mine"), Some(&Value::from(1)), "kept");
            let Some(Value::String(parent)) = headers.get("traceparent") else {
                panic!("no traceparent in {headers:?}");
            };
            let sent = sender.context().span().span_context().clone();
            assert_eq!(
                *parent,
                format!("00-{}-{}-01", sent.trace_id(), sent.span_id())
            );
            let receiver = tracing::info_span!(parent: None, "process");
            continue_trace(&receiver, |key| headers.get(key).and_then(Value::as_str));
            let received = receiver.context().span().span_context().clone();
            assert_eq!(received.trace_id(), sent.trace_id());
            assert_ne!(received.span_id(), sent.span_id());
            // Without headers: a trace of its own.
            let alone = tracing::info_span!(parent: None, "process");
            continue_trace(&alone, |_| None);
            assert_ne!(
                alone.context().span().span_context().trace_id(),
                sent.trace_id()
            );
        });
        // No subscriber: nothing is written.
        assert_eq!(inject(&tracing::info_span!("publish"), None), None);
    }
}

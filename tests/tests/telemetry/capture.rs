//! What a user's telemetry stack receives, captured on the test's thread:
//! spans through `tracing-opentelemetry` into an in-memory exporter, every
//! span and event field as text, and metrics in a `DebuggingRecorder`.
//!
//! Both are installed for the current thread only, so the tests use a
//! current-thread runtime, where every task polls on the test's thread.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use opentelemetry::trace::{SpanKind, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// How long a test waits for something that should happen at once.
pub(crate) const WAIT: Duration = Duration::from_secs(10);

/// One field as a subscriber saw it: of which span or event, its name and
/// its value as text.
#[derive(Debug, Clone)]
pub(crate) struct Recorded {
    pub(crate) on: String,
    pub(crate) name: String,
    pub(crate) value: String,
}

type Log = Arc<Mutex<Vec<Recorded>>>;

/// A layer keeping every field of every span (at creation and when
/// recorded later) and event, at every level.
struct FieldLog(Log);

struct Visitor<'a> {
    on: String,
    log: &'a Log,
}

impl Visitor<'_> {
    fn push(&self, field: &Field, value: String) {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Recorded {
                on: self.on.clone(),
                name: field.name().to_owned(),
                value,
            });
    }
}

impl Visit for Visitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.push(field, format!("{value:?}"));
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for FieldLog {
    fn on_new_span(&self, attrs: &Attributes<'_>, _id: &Id, _ctx: Context<'_, S>) {
        attrs.record(&mut Visitor {
            on: attrs.metadata().name().to_owned(),
            log: &self.0,
        });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let on = ctx
            .span(id)
            .map_or_else(|| "?".to_owned(), |span| span.name().to_owned());
        values.record(&mut Visitor { on, log: &self.0 });
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        event.record(&mut Visitor {
            on: format!("event {}", event.metadata().target()),
            log: &self.0,
        });
    }
}

/// The spans and fields of this thread, while it is alive.
pub(crate) struct Traces {
    exporter: InMemorySpanExporter,
    fields: Log,
    _provider: SdkTracerProvider,
    _guard: tracing::subscriber::DefaultGuard,
}

impl Traces {
    /// Installs, for this thread, a subscriber with an OpenTelemetry layer
    /// (all spans sampled, exported when they end) and a [`FieldLog`].
    pub(crate) fn start() -> Self {
        postage_tests::init_tracing();
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let fields = Log::default();
        let subscriber = tracing_subscriber::registry()
            .with(FieldLog(fields.clone()))
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("postage-tests")));
        Traces {
            exporter,
            fields,
            _provider: provider,
            _guard: tracing::subscriber::set_default(subscriber),
        }
    }

    /// The spans ended so far.
    pub(crate) fn spans(&self) -> Vec<SpanData> {
        match self.exporter.get_finished_spans() {
            Ok(spans) => spans,
            Err(e) => panic!("the exporter failed: {e}"),
        }
    }

    /// The spans ended once `done` holds of them; the test fails saying
    /// `what` when that takes longer than [`WAIT`].
    pub(crate) async fn spans_once(
        &self,
        what: &str,
        done: impl Fn(&[SpanData]) -> bool,
    ) -> Vec<SpanData> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let spans = self.spans();
            if done(&spans) {
                return spans;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("{what}: not within {WAIT:?}; spans: {:#?}", summary(&spans));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Every span and event field recorded so far.
    pub(crate) fn fields(&self) -> Vec<Recorded> {
        self.fields
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The value of attribute `key` of `span`, as text.
pub(crate) fn attr(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

/// The value of attribute `key` of `span`, which must be there.
#[track_caller]
pub(crate) fn must(span: &SpanData, key: &str) -> String {
    match attr(span, key) {
        Some(value) => value,
        None => panic!("span {:?} has no {key}: {:#?}", span.name, span.attributes),
    }
}

/// The spans called `name`.
pub(crate) fn named<'a>(spans: &'a [SpanData], name: &str) -> Vec<&'a SpanData> {
    spans.iter().filter(|span| span.name == name).collect()
}

/// The one span called `name` of which `attribute` is `value`.
#[track_caller]
pub(crate) fn the<'a>(
    spans: &'a [SpanData],
    name: &str,
    attribute: &str,
    value: &str,
) -> &'a SpanData {
    let found: Vec<_> = named(spans, name)
        .into_iter()
        .filter(|span| attr(span, attribute).as_deref() == Some(value))
        .collect();
    match found[..] {
        [span] => span,
        _ => panic!(
            "expected one span {name:?} with {attribute} = {value:?}, found {}: {:#?}",
            found.len(),
            summary(spans)
        ),
    }
}

/// The children of `parent` among `spans`.
pub(crate) fn children<'a>(spans: &'a [SpanData], parent: &SpanData) -> Vec<&'a SpanData> {
    spans
        .iter()
        .filter(|span| {
            span.parent_span_id == parent.span_context.span_id()
                && span.span_context.trace_id() == parent.span_context.trace_id()
        })
        .collect()
}

/// The span's kind, named for messages.
pub(crate) fn kind(span: &SpanData) -> &'static str {
    match span.span_kind {
        SpanKind::Client => "client",
        SpanKind::Server => "server",
        SpanKind::Producer => "producer",
        SpanKind::Consumer => "consumer",
        SpanKind::Internal => "internal",
    }
}

/// What a failing test prints of the spans: name, kind, ids, parent.
fn summary(spans: &[SpanData]) -> Vec<String> {
    spans
        .iter()
        .map(|span| {
            format!(
                "{:?} {} trace {} span {} parent {}",
                span.name,
                kind(span),
                span.span_context.trace_id(),
                span.span_context.span_id(),
                span.parent_span_id
            )
        })
        .collect()
}

/// A metric's name and labels, sorted: `name{k=v,k=v}`.
pub(crate) type Series = String;

/// A metric's value: a counter's total, a gauge's value, a histogram's
/// samples.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Counter(u64),
    Gauge(f64),
    Histogram(Vec<f64>),
}

/// What a `DebuggingRecorder` holds, read as series.
///
/// A snapshot drains what it reads (counters and gauges back to 0,
/// histograms emptied): [`Metrics::take`] gives what changed since the
/// previous one.
pub(crate) struct Metrics {
    snapshotter: Snapshotter,
}

impl Metrics {
    /// Reads `recorder` (installed by the test, for its thread, with
    /// `metrics::set_default_local_recorder`).
    pub(crate) fn of(recorder: &DebuggingRecorder) -> Self {
        Metrics {
            snapshotter: recorder.snapshotter(),
        }
    }

    /// Every series registered, with what changed since the last take:
    /// counters' increments, gauges' values (a gauge only changed by
    /// increments gives the sum of those), histograms' new samples.
    pub(crate) fn take(&self) -> BTreeMap<Series, Value> {
        self.snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(key, _, _, value)| {
                let key = key.key();
                let mut labels: Vec<String> = key
                    .labels()
                    .map(|label| format!("{}={}", label.key(), label.value()))
                    .collect();
                labels.sort();
                let series = format!("{}{{{}}}", key.name(), labels.join(","));
                let value = match value {
                    DebugValue::Counter(n) => Value::Counter(n),
                    DebugValue::Gauge(v) => Value::Gauge(v.into_inner()),
                    DebugValue::Histogram(samples) => {
                        Value::Histogram(samples.into_iter().map(|v| v.into_inner()).collect())
                    }
                };
                (series, value)
            })
            .collect()
    }
}

/// `earlier` and `later` takes added up (counters and gauges summed,
/// samples put together).
pub(crate) fn sum(
    mut earlier: BTreeMap<Series, Value>,
    later: BTreeMap<Series, Value>,
) -> BTreeMap<Series, Value> {
    for (series, value) in later {
        let merged = match (earlier.remove(&series), value) {
            (None, value) => value,
            (Some(Value::Counter(a)), Value::Counter(b)) => Value::Counter(a + b),
            (Some(Value::Gauge(a)), Value::Gauge(b)) => Value::Gauge(a + b),
            (Some(Value::Histogram(mut a)), Value::Histogram(b)) => {
                a.extend(b);
                Value::Histogram(a)
            }
            (Some(a), b) => panic!("{series} changed kind: {a:?} then {b:?}"),
        };
        earlier.insert(series, merged);
    }
    earlier
}

/// `name{labels}` as [`Metrics::take`] names it; labels in any order.
pub(crate) fn series(name: &str, labels: &[(&str, &str)]) -> Series {
    let mut labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    labels.sort();
    format!("{name}{{{}}}", labels.join(","))
}

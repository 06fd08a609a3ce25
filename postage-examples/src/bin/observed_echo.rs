//! `observed_echo [--calls N | N] [--failing M]`: an RPC echo server that
//! shows what Postage's telemetry gives: Prometheus metrics, spans printed
//! as a tree, and, with the `otlp` feature, traces exported with OTLP.
//!
//! - It answers `rpc` `echo` commands on `echo-exchange` (queue
//!   `echo-queue`, key `echo-rk`, as `rpc_echo_receive` does: `rpc_echo_send
//!   TEXT` reaches it) with their text. A text starting with `fail` makes
//!   its handler fail instead, and the caller gets an exception result:
//!   that is what failed deliveries and error durations look like.
//! - Given counts, it also calls itself through a producer on a second
//!   connection: `N` calls that succeed, then `M` that fail, each within a
//!   `caller` span; then it prints `calls: N succeeded, M failed`.
//! - Metrics: `metrics-exporter-prometheus` serves them at
//!   `http://$POSTAGE_METRICS_ADDR/metrics`. It is installed before the
//!   components are built (their handles are registered then), and
//!   `postage::telemetry::describe_metrics()` gives it the `# HELP` texts.
//!   The `_seconds` metrics are histograms, with buckets from 0.5 ms to
//!   10 s (the exporter would render summaries otherwise).
//! - Spans: printed on standard output as they close (`FmtSpan::CLOSE`).
//!   A close line names the span's ancestry, `caller{…}:rpc{…}:publish{…}`,
//!   so the lines draw the tree: the caller's side (`caller` > `rpc` >
//!   `publish`) and the server's (`process` > `handler` > `publish` of the
//!   reply). In this output a `process` span is a root of its own: the two
//!   sides meet by `messaging.message.conversation_id` (the correlation
//!   id). Exported with OTLP, they are one trace.
//! - It serves until `quit` (`postage quit observed_echo`, or `postage
//!   quit --exchange EXCHANGE --key echo-rk`), Ctrl-C or SIGTERM, then
//!   prints `stopped`.
//!
//! | variable | what | default |
//! |---|---|---|
//! | `POSTAGE_METRICS_ADDR` | where `/metrics` is served | `127.0.0.1:9464` |
//! | `RUST_LOG` | what is printed, spans and logs alike (and exported) | `info,lapin=off` |
//! | `OTEL_EXPORTER_OTLP_ENDPOINT` | with the `otlp` feature, the OTLP/HTTP collector, e.g. `http://127.0.0.1:4318` (spans go to `/v1/traces`); without the feature, set, it gets a warning | unset: nothing exported |
//! | `OTEL_SERVICE_NAME` | the exported spans' service | `observed_echo` |
//! | `OBSERVED_ECHO_EXCHANGE`, `OBSERVED_ECHO_QUEUE` | the exchange and queue served (the key stays `echo-rk`) | `echo-exchange`, `echo-queue` |
//! | `POSTAGE_URL`, `POSTAGE_HOST`, … | the broker, as for every component | `localhost` |
//!
//! A run (long lines shortened with `…`; the handler's close line of the
//! first call is whole):
//!
//! ```text
//! $ cargo run -p postage-examples --bin observed_echo -- --calls 1 --failing 1
//! 2026-12-02T07:30:17.598150Z  INFO connected to RabbitMQ endpoint=localhost:5672
//! ready pid=10817 metrics=http://127.0.0.1:9464/metrics
//! 2026-12-02T07:30:17.677663Z  INFO connected to RabbitMQ endpoint=localhost:5672
//! 2026-12-02T07:30:17.736999Z  INFO caller{call=1 text=hello 1}:rpc{otel.name=call echo otel.kind="client" …}:publish{otel.name=publish echo-exchange otel.kind="producer" … messaging.message.conversation_id="2a41.2b735a24.0" messaging.message.body.size=232 postage.message.type="command" postage.message.name="echo" postage.message.category="rpc"}: close time.busy=916µs time.idle=363µs
//! 2026-12-02T07:30:17.737889Z  INFO process{otel.name=process echo-exchange … otel.kind="server"}:handler{otel.name=handle echo …}:publish{otel.name=publish otel.kind="producer" … messaging.destination.name="" messaging.rabbitmq.destination.routing_key="amq.rabbitmq.reply-to.g1h2…" messaging.message.conversation_id="2a41.2b735a24.0" messaging.message.body.size=249 postage.message.type="result" postage.message.name="none" postage.message.category="message"}: close time.busy=549µs time.idle=105µs
//! 2026-12-02T07:30:17.738026Z  INFO process{otel.name=process echo-exchange messaging.system="rabbitmq" messaging.operation.type="process" messaging.operation.name="process" messaging.destination.name="echo-exchange" messaging.rabbitmq.destination.routing_key="echo-rk" messaging.message.conversation_id="2a41.2b735a24.0" messaging.message.body.size=232 messaging.rabbitmq.message.delivery_tag=1 postage.queue="echo-queue" postage.processor="observed_echo" postage.message.type="command" postage.message.name="echo" postage.message.category="rpc" postage.sender="observed_echo_caller" otel.kind="server"}:handler{otel.name=handle echo otel.kind="internal" postage.handler="echo" postage.message.type="command" postage.message.name="echo"}: close time.busy=851µs time.idle=56.7µs
//! 2026-12-02T07:30:17.738546Z  INFO process{otel.name=process echo-exchange … postage.outcome="handled"}: close time.busy=1.28ms time.idle=246µs
//! 2026-12-02T07:30:17.738671Z  INFO caller{call=1 text=hello 1}:rpc{otel.name=call echo otel.kind="client" … postage.rpc.attempts=1 postage.outcome="success"}: close time.busy=1.88ms time.idle=7.41ms
//! 2026-12-02T07:30:17.738750Z  INFO caller{call=1 text=hello 1}: close time.busy=2.35ms time.idle=7.15ms
//! 2026-12-02T07:30:17.739169Z  INFO caller{call=2 text=fail 2}:rpc{…}:publish{otel.name=publish echo-exchange … messaging.message.conversation_id="2a41.2b735a24.1" …}: close time.busy=80.3µs time.idle=141µs
//! 2026-12-02T07:30:17.740061Z  INFO process{otel.name=process echo-exchange …}:handler{otel.name=handle echo otel.kind="internal" postage.handler="echo" postage.message.type="command" postage.message.name="echo" error.type="EchoError" otel.status_code="error"}: close time.busy=81.8µs time.idle=32.2µs
//! 2026-12-02T07:30:17.740094Z ERROR process{otel.name=process echo-exchange …}: RPC handler failed handler="echo" kind="command" name="echo" error=EchoError: refused "fail 2", as it asked
//! 2026-12-02T07:30:17.740385Z  INFO process{… postage.outcome="failed" error.type="HandlerError" otel.status_code="error"}:publish{otel.name=publish … postage.message.type="result" …}: close time.busy=209µs time.idle=15.1µs
//! 2026-12-02T07:30:17.740745Z  INFO process{otel.name=process echo-exchange … postage.outcome="failed" error.type="HandlerError" otel.status_code="error"}: close time.busy=629µs time.idle=265µs
//! 2026-12-02T07:30:17.740966Z  INFO caller{call=2 text=fail 2}:rpc{otel.name=call echo … postage.rpc.attempts=1 postage.outcome="exception" error.type="exception" otel.status_code="error"}: close time.busy=294µs time.idle=1.80ms
//! 2026-12-02T07:30:17.740999Z  INFO caller{call=2 text=fail 2}: close time.busy=445µs time.idle=1.75ms
//! calls: 1 succeeded, 1 failed
//! 2026-12-02T07:30:22.786136Z  INFO process{… postage.message.name="quit" … postage.sender="postage"}: control command received command=quit sender=postage/tool 11614@vm (root, /)
//! 2026-12-02T07:30:22.793201Z  INFO process{… postage.message.name="quit" … postage.outcome="handled"}: close time.busy=466µs time.idle=6.75ms
//! stopped
//! ```
//!
//! Its metrics meanwhile (the `_bucket` lines and the counters still at 0
//! left out):
//!
//! ```text
//! $ curl -s 127.0.0.1:9464/metrics | grep postage_
//! # HELP postage_deliveries_failed_total Deliveries of which a handler failed
//! # TYPE postage_deliveries_failed_total counter
//! postage_deliveries_failed_total{processor="observed_echo"} 1
//! # HELP postage_deliveries_handled_total Deliveries whose handlers all succeeded
//! # TYPE postage_deliveries_handled_total counter
//! postage_deliveries_handled_total{processor="observed_echo"} 1
//! # HELP postage_deliveries_received_total Deliveries a processor received
//! # TYPE postage_deliveries_received_total counter
//! postage_deliveries_received_total{processor="observed_echo"} 2
//! # HELP postage_messages_published_total Messages sent to the broker
//! # TYPE postage_messages_published_total counter
//! postage_messages_published_total{exchange="echo-exchange",type="command",name="echo"} 2
//! postage_messages_published_total{exchange="",type="result",name="none"} 2
//! # HELP postage_consumer_health 1 for a consumer's current health state, 0 for the others
//! # TYPE postage_consumer_health gauge
//! postage_consumer_health{consumer="observed_echo",state="consuming"} 1
//! # HELP postage_messages_in_flight Deliveries being processed
//! # TYPE postage_messages_in_flight gauge
//! postage_messages_in_flight{processor="observed_echo"} 0
//! # HELP postage_handler_duration_seconds How long a handler ran
//! # TYPE postage_handler_duration_seconds histogram
//! postage_handler_duration_seconds_sum{processor="observed_echo",handler="echo",outcome="ok"} 0.000856738
//! postage_handler_duration_seconds_count{processor="observed_echo",handler="echo",outcome="ok"} 1
//! postage_handler_duration_seconds_sum{processor="observed_echo",handler="echo",outcome="error"} 0.000091341
//! postage_handler_duration_seconds_count{processor="observed_echo",handler="echo",outcome="error"} 1
//! # HELP postage_rpc_call_duration_seconds How long an RPC call took, retries included
//! # TYPE postage_rpc_call_duration_seconds histogram
//! postage_rpc_call_duration_seconds_sum{name="echo",outcome="exception"} 0.002062771
//! postage_rpc_call_duration_seconds_count{name="echo",outcome="exception"} 1
//! postage_rpc_call_duration_seconds_sum{name="echo",outcome="success"} 0.00907952
//! postage_rpc_call_duration_seconds_count{name="echo",outcome="success"} 1
//! ```
//!
//! With `cargo run -p postage-examples --features otlp --bin observed_echo
//! -- 3` and `OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318` (an
//! OpenTelemetry Collector's or Jaeger's OTLP/HTTP port), Postage also
//! writes `traceparent` into the messages' headers, and each call is one
//! trace: `caller` > `call echo` > `publish echo-exchange` > `process
//! echo-exchange` > `handle echo` > `publish` (the reply). A message
//! without trace context (`postage quit --exchange echo-exchange --key
//! echo-rk`) starts a trace of its own.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::fmt;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use postage::prelude::*;
use postage_examples::{ECHO, ECHO_KEY, ECHO_QUEUE, text};
use tracing::Instrument;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::prelude::*;

/// The processor's fingerprint name: its `processor` label.
const NAME: &str = "observed_echo";

/// The fingerprint name of the producer making the self-calls.
const CALLER: &str = "observed_echo_caller";

/// Where /metrics is served unless `POSTAGE_METRICS_ADDR` says otherwise.
const DEFAULT_METRICS_ADDR: &str = "127.0.0.1:9464";

/// What is printed unless `RUST_LOG` says otherwise.
const DEFAULT_FILTER: &str = "info,lapin=off";

/// The bucket bounds, in seconds, of the `_seconds` histograms.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How long a self-call waits for its reply.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// A setting that cannot be used.
#[derive(Debug)]
struct Invalid(String);

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Invalid {}

/// The command line.
#[derive(Debug, Default)]
struct Args {
    /// Calls answered with their text.
    calls: u32,
    /// Calls whose handler fails.
    failing: u32,
}

const USAGE: &str = "usage: observed_echo [--calls N | N] [--failing M]";

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Args, Invalid> {
    let count = |flag: &str, value: Option<String>| -> Result<u32, Invalid> {
        let value = value.ok_or_else(|| Invalid(format!("{flag} needs a number; {USAGE}")))?;
        value
            .parse()
            .map_err(|_| Invalid(format!("{flag} {value:?} is not a count; {USAGE}")))
    };
    let mut parsed = Args::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--calls" => parsed.calls = count("--calls", args.next())?,
            "--failing" => parsed.failing = count("--failing", args.next())?,
            _ => parsed.calls = count("the count", Some(arg))?,
        }
    }
    Ok(parsed)
}

/// A variable's value, or `default` when it is unset or empty.
fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// The RPC echo: answers `echo` with its parameters, and fails (without
/// replying: the caller gets an exception result) for a text starting
/// with `fail`.
struct ObservedEcho;

/// Why the echo handler failed.
#[derive(Debug)]
enum EchoError {
    /// The text asked for a failure.
    Refused(String),
    /// The reply could not be sent.
    Reply(postage::Error),
}

impl fmt::Display for EchoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EchoError::Refused(text) => write!(f, "refused {text:?}, as it asked"),
            EchoError::Reply(error) => write!(f, "cannot reply: {}", error.report()),
        }
    }
}

#[processor]
impl ObservedEcho {
    #[rpc_handler("command", "echo")]
    async fn echo(&self, content: Content, reply: Reply) -> Result<(), EchoError> {
        let parameters = content.parameters().cloned().unwrap_or_default();
        let line = text(&parameters);
        if line.starts_with("fail") {
            return Err(EchoError::Refused(line));
        }
        reply.success(parameters).await.map_err(EchoError::Reply)
    }
}

/// What has to be flushed before the process ends.
struct Telemetry {
    #[cfg(feature = "otlp")]
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Telemetry {
    /// Spans on standard output (their close lines, each with its
    /// ancestry) and, with the `otlp` feature, exported with OTLP when
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` is set. `RUST_LOG` filters both.
    fn init() -> Result<Self, postage::Report> {
        let filter =
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
        let stdout = tracing_subscriber::fmt::layer()
            .with_span_events(FmtSpan::CLOSE)
            .with_target(false)
            .with_ansi(std::io::stdout().is_terminal())
            .with_writer(std::io::stdout);
        let endpoint = std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").filter(|v| !v.is_empty());

        #[cfg(feature = "otlp")]
        {
            use opentelemetry::trace::TracerProvider as _;

            let provider = match endpoint {
                Some(_) => Some(otlp_provider()?),
                None => None,
            };
            let otel = provider
                .as_ref()
                .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer(NAME)));
            tracing_subscriber::registry()
                .with(filter)
                .with(stdout)
                .with(otel)
                .try_init()?;
            if let Some(endpoint) = endpoint {
                tracing::info!(endpoint = %endpoint.to_string_lossy(), "exporting spans with OTLP over HTTP");
            }
            Ok(Telemetry { provider })
        }

        #[cfg(not(feature = "otlp"))]
        {
            tracing_subscriber::registry()
                .with(filter)
                .with(stdout)
                .try_init()?;
            if endpoint.is_some() {
                tracing::warn!(
                    "OTEL_EXPORTER_OTLP_ENDPOINT is set but this build has no OTLP exporter: \
                     spans are only printed. Build with the `otlp` feature to export them: \
                     cargo run -p postage-examples --features otlp --bin observed_echo"
                );
            }
            Ok(Telemetry {})
        }
    }

    /// Exports the spans still buffered.
    async fn shutdown(self) {
        #[cfg(feature = "otlp")]
        if let Some(provider) = self.provider {
            // Blocks until the last batch is sent: off the runtime's threads.
            let flushed = tokio::task::spawn_blocking(move || provider.shutdown()).await;
            if let Ok(Err(error)) = flushed {
                tracing::warn!(%error, "the last spans could not be exported");
            }
        }
    }
}

/// A tracer provider exporting with OTLP over HTTP (protobuf) to
/// `OTEL_EXPORTER_OTLP_ENDPOINT` (`/v1/traces` appended), in batches;
/// the service is `observed_echo` unless `OTEL_SERVICE_NAME` says
/// otherwise.
#[cfg(feature = "otlp")]
fn otlp_provider() -> Result<opentelemetry_sdk::trace::SdkTracerProvider, postage::Report> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()?;
    let mut resource = opentelemetry_sdk::Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name(NAME);
    }
    Ok(opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build())
}

/// Serves Prometheus metrics at `http://ADDR/metrics` (any path, in
/// fact), with the `_seconds` metrics as histograms. Before any
/// component is built: their handles are registered then.
fn serve_metrics(addr: SocketAddr) -> Result<(), postage::Report> {
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)?
        .install()?;
    postage::telemetry::describe_metrics();
    Ok(())
}

/// Makes the calls, each within a `caller` span, on a connection of its
/// own; prints `calls: S succeeded, F failed`.
async fn call_self(connection: Connection, producer: Producer, args: Args) -> postage::Result<()> {
    let (mut succeeded, mut failed) = (0, 0);
    for n in 1..=args.calls + args.failing {
        let text = if n <= args.calls {
            format!("hello {n}")
        } else {
            format!("fail {n}")
        };
        let span = tracing::info_span!("caller", call = n, text = %text);
        let reply = async { producer.rpc("echo", text.as_str()).await }
            .instrument(span)
            .await?;
        match reply.outcome()? {
            Outcome::Success { .. } => succeeded += 1,
            _ => failed += 1,
        }
    }
    connection.close().await?;
    println!("calls: {succeeded} succeeded, {failed} failed");
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), postage::Report> {
    if std::env::args().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return Ok(());
    }
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(usage) => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    };
    let telemetry = Telemetry::init()?;
    let result = run(args).await;
    telemetry.shutdown().await;
    result
}

async fn run(args: Args) -> Result<(), postage::Report> {
    let addr_text = env_or("POSTAGE_METRICS_ADDR", DEFAULT_METRICS_ADDR);
    let addr: SocketAddr = addr_text.parse().map_err(|_| {
        Invalid(format!(
            "POSTAGE_METRICS_ADDR {addr_text:?} is not an address such as {DEFAULT_METRICS_ADDR}"
        ))
    })?;
    serve_metrics(addr)?;

    let exchange = Exchange::new(
        env_or("OBSERVED_ECHO_EXCHANGE", ECHO.name()),
        ExchangeKind::Direct,
    );
    let queue = env_or("OBSERVED_ECHO_QUEUE", ECHO_QUEUE);
    let connection = Connection::from_env().await?;
    let processor = Processor::builder(ObservedEcho)
        .bind(exchange.clone(), [(queue.as_str(), ECHO_KEY)])
        .fingerprint(Fingerprint::new(NAME, "service"))
        .connect(&connection)
        .await?;
    println!(
        "ready pid={} metrics=http://{addr}/metrics",
        std::process::id()
    );

    let mut scheduler = Scheduler::new();
    scheduler.add(processor);
    if args.calls + args.failing > 0 {
        let caller = Connection::from_env().await?;
        let producer = Producer::builder()
            .ek(exchange, ECHO_KEY)
            .fingerprint(Fingerprint::new(CALLER, "application"))
            .rpc_timeout(CALL_TIMEOUT)
            .connect(&caller)
            .await?;
        scheduler.spawn(call_self(caller, producer, args));
    }
    scheduler.run().await?;
    println!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, Invalid> {
        parse_args(args.iter().map(|s| (*s).to_owned()))
    }

    #[test]
    fn counts_come_bare_or_after_their_flag() {
        let bare = parse(&["5"]).ok().map(|a| (a.calls, a.failing));
        assert_eq!(bare, Some((5, 0)));
        let flags = parse(&["--calls", "3", "--failing", "2"])
            .ok()
            .map(|a| (a.calls, a.failing));
        assert_eq!(flags, Some((3, 2)));
        assert!(parse(&["--calls"]).is_err());
        assert!(parse(&["many"]).is_err());
    }
}

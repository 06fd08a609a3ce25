//! `postage-bench <scenario> [--count N] [--impl postage|lapin|both]
//! [--runs R] [--prefetch P] [--json]`: Postage side by side with
//! hand-written lapin code doing the same work, against the broker at
//! `POSTAGE_URL` (default `amqp://guest:guest@127.0.0.1:5672/%2f`).
//!
//! Scenarios: `publish`, `publish-confirm`, `consume`, `pipe`, `rpc-seq`,
//! `rpc-par`, `soak` (a `pipe` of 1,000,000 messages watching RSS), and
//! `all` (every scenario but `soak`).
//!
//! Each run prints one JSON line; at the end a table of medians and the
//! postage/lapin ratios follows (with `--json`, one JSON summary line per
//! scenario instead). See BENCHMARKS.md.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::HashMap;
use std::future::IntoFuture;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_util::stream::{self, FuturesUnordered, StreamExt, TryStreamExt};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, BasicRejectOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Confirmation, ConnectionProperties};
use postage::prelude::*;
use postage::processor::{Handler, HandlerError, HandlerResult};
use postage::{Encoder, Stop};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::{Notify, oneshot};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Res<T> = Result<T, BoxError>;

const DEFAULT_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
const KEY: &str = "bench-rk";
const COMMAND: &str = "bench";
const CONTENT_TYPE: &str = "application/json";
const DIRECT_REPLY_TO: &str = "amq.rabbitmq.reply-to";
/// Pads the command to about 250 bytes on the wire.
const TEXT: &str = "quick brown fox";
const RPC_TIMEOUT: Duration = Duration::from_secs(30);
const WARMUP_CALLS: u64 = 200;

// ---------------------------------------------------------------- arguments

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    Publish,
    PublishConfirm,
    Consume,
    Pipe,
    RpcSeq,
    RpcPar,
    Soak,
}

impl Scenario {
    const ALL: [Scenario; 6] = [
        Scenario::Publish,
        Scenario::PublishConfirm,
        Scenario::Consume,
        Scenario::Pipe,
        Scenario::RpcSeq,
        Scenario::RpcPar,
    ];

    fn name(self) -> &'static str {
        match self {
            Scenario::Publish => "publish",
            Scenario::PublishConfirm => "publish-confirm",
            Scenario::Consume => "consume",
            Scenario::Pipe => "pipe",
            Scenario::RpcSeq => "rpc-seq",
            Scenario::RpcPar => "rpc-par",
            Scenario::Soak => "soak",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .chain([Scenario::Soak])
            .find(|sc| sc.name() == s)
    }

    fn default_count(self) -> u64 {
        match self {
            Scenario::RpcSeq => 5_000,
            Scenario::RpcPar => 20_000,
            Scenario::Soak => 1_000_000,
            _ => 100_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Impl {
    Postage,
    Lapin,
}

impl Impl {
    fn name(self) -> &'static str {
        match self {
            Impl::Postage => "postage",
            Impl::Lapin => "lapin",
        }
    }
}

#[derive(Debug, Clone)]
struct Args {
    scenarios: Vec<Scenario>,
    count: Option<u64>,
    impls: Vec<Impl>,
    runs: usize,
    prefetch: u16,
    window: usize,
    in_flight: usize,
    json: bool,
    /// Set up (and pre-fill) only: a baseline for instruction counts.
    dry: bool,
    url: String,
}

const USAGE: &str = "usage: postage-bench <publish|publish-confirm|consume|pipe|rpc-seq|rpc-par|soak|all> \
[--count N] [--impl postage|lapin|both] [--runs R] [--prefetch P] [--window W] [--in-flight F] [--json] [--dry]";

fn parse_args() -> Res<Args> {
    let mut args = Args {
        scenarios: Vec::new(),
        count: None,
        impls: vec![Impl::Postage, Impl::Lapin],
        runs: 5,
        prefetch: postage::consumer::DEFAULT_PREFETCH,
        window: 1_000,
        in_flight: 64,
        json: false,
        dry: false,
        url: std::env::var("POSTAGE_URL")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| DEFAULT_URL.to_owned()),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--count" | "-n" => args.count = Some(value("--count")?.replace('_', "").parse()?),
            "--runs" => args.runs = value("--runs")?.parse()?,
            "--prefetch" => args.prefetch = value("--prefetch")?.parse()?,
            "--window" => args.window = value("--window")?.parse()?,
            "--in-flight" => args.in_flight = value("--in-flight")?.parse()?,
            "--impl" => {
                args.impls = match value("--impl")?.as_str() {
                    "postage" => vec![Impl::Postage],
                    "lapin" => vec![Impl::Lapin],
                    "both" => vec![Impl::Postage, Impl::Lapin],
                    other => return Err(format!("unknown impl {other:?}\n{USAGE}").into()),
                }
            }
            "--json" => args.json = true,
            "--dry" => args.dry = true,
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            "all" => args.scenarios.extend(Scenario::ALL),
            other => match Scenario::parse(other) {
                Some(scenario) => args.scenarios.push(scenario),
                None => return Err(format!("unknown argument {other:?}\n{USAGE}").into()),
            },
        }
    }
    if args.scenarios.is_empty() {
        return Err(USAGE.into());
    }
    args.runs = args.runs.max(1);
    args.window = args.window.max(1);
    args.in_flight = args.in_flight.max(1);
    Ok(args)
}

// ------------------------------------------------------------ measurements

/// CPU time, context switches and wall clock at one instant.
#[derive(Debug, Clone, Copy)]
struct Snapshot {
    at: Instant,
    user_s: f64,
    sys_s: f64,
    switches: u64,
}

impl Snapshot {
    fn now() -> Self {
        let (user_s, sys_s) = cpu_times().unwrap_or_default();
        Snapshot {
            at: Instant::now(),
            user_s,
            sys_s,
            switches: context_switches(),
        }
    }
}

/// Context switches (voluntary and not) of this process's threads so far,
/// from `/proc/self/task/*/status`. The threads a run measures (tokio's
/// workers, lapin's I/O loops) live across its timed section.
fn context_switches() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("status")).ok())
        .map(|status| {
            status
                .lines()
                .filter(|line| line.contains("ctxt_switches:"))
                .filter_map(|line| line.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum::<u64>()
        })
        .sum()
}

/// Clock ticks per second of `/proc/self/stat` (USER_HZ, 100 on Linux).
fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// User and system CPU seconds of this process (all threads).
fn cpu_times() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) start at field 3.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = clock_ticks();
    let user: f64 = fields.get(11)?.parse().ok()?;
    let sys: f64 = fields.get(12)?.parse().ok()?;
    Some((user / ticks, sys / ticks))
}

/// A `Vm*` line of `/proc/self/status`, in KiB.
fn status_kib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                line.strip_prefix(key)
                    .and_then(|v| v.trim_start_matches(':').split_whitespace().next())
                    .and_then(|v| v.parse().ok())
            })
        })
        .unwrap_or(0)
}

fn rss_kib() -> u64 {
    status_kib("VmRSS")
}

/// Resets the peak RSS (VmHWM) to the current RSS (Linux 4.0+).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// What a scenario measured.
struct Timed {
    start: Snapshot,
    end: Snapshot,
    latencies: Vec<Duration>,
    extra: serde_json::Map<String, Value>,
}

impl Timed {
    fn new(start: Snapshot, end: Snapshot) -> Self {
        Timed {
            start,
            end,
            latencies: Vec::new(),
            extra: serde_json::Map::new(),
        }
    }
}

#[derive(Debug, Clone)]
struct Record {
    scenario: Scenario,
    imp: Impl,
    count: u64,
    secs: f64,
    cpu_user_s: f64,
    cpu_sys_s: f64,
    switches: u64,
    peak_rss_kib: u64,
    p50_us: Option<f64>,
    p99_us: Option<f64>,
    extra: serde_json::Map<String, Value>,
}

impl Record {
    fn msg_per_s(&self) -> f64 {
        self.count as f64 / self.secs
    }

    fn cpu_us_per_msg(&self) -> f64 {
        (self.cpu_user_s + self.cpu_sys_s) * 1e6 / self.count as f64
    }

    fn switches_per_msg(&self) -> f64 {
        self.switches as f64 / self.count as f64
    }

    fn to_json(&self) -> Value {
        let mut v = json!({
            "scenario": self.scenario.name(),
            "impl": self.imp.name(),
            "count": self.count,
            "secs": round(self.secs, 4),
            "msg_per_s": round(self.msg_per_s(), 1),
            "cpu_user_s": round(self.cpu_user_s, 3),
            "cpu_sys_s": round(self.cpu_sys_s, 3),
            "cpu_us_per_msg": round(self.cpu_us_per_msg(), 2),
            "switches_per_msg": round(self.switches_per_msg(), 2),
            "peak_rss_kib": self.peak_rss_kib,
        });
        if let Value::Object(map) = &mut v {
            if let (Some(p50), Some(p99)) = (self.p50_us, self.p99_us) {
                map.insert("p50_us".into(), json!(round(p50, 1)));
                map.insert("p99_us".into(), json!(round(p99, 1)));
            }
            map.extend(self.extra.clone());
        }
        v
    }
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

fn percentile_us(sorted: &[Duration], p: usize) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = (sorted.len() * p / 100).min(sorted.len() - 1);
    Some(sorted[i].as_secs_f64() * 1e6)
}

fn median(mut xs: Vec<f64>) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    Some(if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    })
}

// -------------------------------------------------------------- wire model

/// Command parameters: what both sides put in `content.parameters`.
#[derive(Debug, Serialize)]
struct ParamsOut<'a> {
    text: &'a str,
    seq: u64,
}

#[derive(Debug, Deserialize)]
struct Params {
    text: String,
    seq: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
struct WireFingerprint {
    name: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    pid: Option<String>,
    host: Option<String>,
    user: Option<String>,
    vhost: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, Default)]
struct Empty {}

#[derive(Debug, Serialize)]
struct CommandContent<P> {
    parameters: P,
}

/// A Postage message as a hand-written lapin component would write it.
#[derive(Debug, Serialize)]
struct WireOut<'a, C> {
    #[serde(rename = "type")]
    kind: &'a str,
    name: &'a str,
    category: &'a str,
    version: &'a str,
    fingerprint: &'a WireFingerprint,
    content: C,
    #[serde(rename = "_reserved")]
    reserved: Empty,
}

/// And as it would read it.
#[derive(Debug, Deserialize)]
struct WireIn<C> {
    #[serde(rename = "type")]
    kind: String,
    name: String,
    category: String,
    #[allow(dead_code)]
    version: Value,
    #[serde(default)]
    #[allow(dead_code)]
    fingerprint: WireFingerprint,
    content: C,
    #[serde(rename = "_reserved", default)]
    #[allow(dead_code)]
    reserved: Empty,
}

#[derive(Debug, Deserialize)]
struct CommandIn {
    parameters: Params,
}

#[derive(Debug, Serialize, Deserialize)]
struct ResultContent<V> {
    #[serde(rename = "type")]
    kind: String,
    value: V,
    message: String,
}

fn fingerprint() -> Fingerprint {
    Fingerprint::new("postage-bench", "application")
}

fn wire_fingerprint() -> WireFingerprint {
    let map = fingerprint().as_map();
    let get = |k: &str| map.get(k).and_then(Value::as_str).map(str::to_owned);
    WireFingerprint {
        name: get("name"),
        kind: get("type"),
        pid: get("pid"),
        host: get("host"),
        user: get("user"),
        vhost: get("vhost"),
    }
}

/// Postage parameters, as a user writes them.
fn params(seq: u64) -> Value {
    json!({ "text": TEXT, "seq": seq })
}

/// The lapin side's command body.
fn lapin_command(fp: &WireFingerprint, category: &str, seq: u64) -> Res<Vec<u8>> {
    Ok(serde_json::to_vec(&WireOut {
        kind: "command",
        name: COMMAND,
        category,
        version: "2",
        fingerprint: fp,
        content: CommandContent {
            parameters: ParamsOut { text: TEXT, seq },
        },
        reserved: Empty {},
    })?)
}

/// What a handler does with a command: read the typed parameters.
fn handle(params: &Params) -> u64 {
    black_box(params.text.len());
    black_box(params.seq)
}

// ------------------------------------------------------------ broker set-up

/// A uniquely named exchange and queue, bound with [`KEY`].
struct Fixture {
    exchange: String,
    queue: String,
}

impl Fixture {
    fn exchange(&self) -> Exchange {
        Exchange::new(self.exchange.as_str(), ExchangeKind::Direct)
    }
}

/// The harness's own lapin channel: declares, pre-fills, deletes.
struct Admin {
    _connection: lapin::Connection,
    channel: lapin::Channel,
}

impl Admin {
    async fn connect(url: &str) -> Res<Self> {
        let connection = lapin::Connection::connect(url, ConnectionProperties::default()).await?;
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(Admin {
            _connection: connection,
            channel,
        })
    }

    async fn fixture(&self, scenario: Scenario, imp: Impl, run: usize) -> Res<Fixture> {
        let tag = format!(
            "postage-bench-{}-{}-{}-{run}",
            scenario.name(),
            imp.name(),
            std::process::id()
        );
        let fixture = Fixture {
            exchange: format!("{tag}-x"),
            queue: format!("{tag}-q"),
        };
        self.channel
            .exchange_declare(
                fixture.exchange.as_str().into(),
                lapin::ExchangeKind::Direct,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        self.channel
            .queue_declare(
                fixture.queue.as_str().into(),
                QueueDeclareOptions::default(),
                FieldTable::default(),
            )
            .await?;
        self.channel
            .queue_bind(
                fixture.queue.as_str().into(),
                fixture.exchange.as_str().into(),
                KEY.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok(fixture)
    }

    async fn remove(&self, fixture: &Fixture) -> Res<()> {
        self.channel
            .queue_delete(fixture.queue.as_str().into(), QueueDeleteOptions::default())
            .await?;
        self.channel
            .exchange_delete(
                fixture.exchange.as_str().into(),
                ExchangeDeleteOptions::default(),
            )
            .await?;
        Ok(())
    }

    /// Puts `n` copies of `body` into the fixture's queue.
    async fn prefill(&self, fixture: &Fixture, n: u64, body: &[u8], window: usize) -> Res<()> {
        let props = BasicProperties::default().with_content_type(CONTENT_TYPE.into());
        let mut pending = FuturesUnordered::new();
        for _ in 0..n {
            let confirm = self
                .channel
                .basic_publish(
                    fixture.exchange.as_str().into(),
                    KEY.into(),
                    BasicPublishOptions::default(),
                    body,
                    props.clone(),
                )
                .await?;
            pending.push(confirm);
            if pending.len() >= window {
                check_confirm(pending.next().await)?;
            }
        }
        while !pending.is_empty() {
            check_confirm(pending.next().await)?;
        }
        Ok(())
    }
}

fn check_confirm(next: Option<lapin::Result<Confirmation>>) -> Res<()> {
    match next {
        Some(Ok(Confirmation::Ack(None) | Confirmation::NotRequested)) | None => Ok(()),
        Some(Ok(other)) => Err(format!("publish not confirmed: {other:?}").into()),
        Some(Err(e)) => Err(e.into()),
    }
}

// ------------------------------------------------------- postage components

/// The lapin side connects with lapin's defaults, or with `BENCH_LAPIN_RECOVER=1`
/// with automatic recovery switched on as Postage does.
async fn lapin_connect(url: &str) -> Res<lapin::Connection> {
    let mut properties = ConnectionProperties::default();
    if std::env::var("BENCH_LAPIN_RECOVER").is_ok_and(|v| v == "1") {
        properties = properties.enable_auto_recover();
    }
    Ok(lapin::Connection::connect(url, properties).await?)
}

async fn postage_connect(url: &str) -> Res<Connection> {
    Ok(Connection::connect(Config::from_url(url)?).await?)
}

fn invalid(e: impl std::fmt::Display) -> HandlerError {
    HandlerError::new("InvalidParameters", e.to_string())
}

/// Counts handled commands and says when `target` is reached.
struct Counter {
    handled: AtomicU64,
    target: u64,
    done: Notify,
}

impl Counter {
    fn new(target: u64) -> Arc<Self> {
        Arc::new(Counter {
            handled: AtomicU64::new(0),
            target,
            done: Notify::new(),
        })
    }

    fn tick(&self) {
        if self.handled.fetch_add(1, Ordering::Relaxed) + 1 == self.target {
            self.done.notify_one();
        }
    }

    fn on_command(&self, content: &Content) -> HandlerResult {
        let params: Params = content.parameters_as().map_err(invalid)?;
        handle(&params);
        self.tick();
        Ok(())
    }
}

impl Handlers for Counter {
    fn handlers() -> &'static [Handler<Self>] {
        const TABLE: &[Handler<Counter>] =
            &[Handler::message("command", COMMAND, |this, content| {
                Box::pin(async move { this.on_command(&content) })
            })];
        TABLE
    }
}

/// Answers `bench` RPC commands with the parameters' `seq`.
struct RpcServer;

impl Handlers for RpcServer {
    fn handlers() -> &'static [Handler<Self>] {
        const TABLE: &[Handler<RpcServer>] =
            &[Handler::rpc("command", COMMAND, |_this, content, reply| {
                Box::pin(async move {
                    let params: Params = content.parameters_as().map_err(invalid)?;
                    reply.success(handle(&params)).await?;
                    Ok(())
                })
            })];
        TABLE
    }
}

fn check_reply(reply: &Message, seq: u64) -> Res<()> {
    match reply.outcome()? {
        Outcome::Success { value, .. } if value == json!(seq) => Ok(()),
        other => Err(format!("unexpected reply {other:?} to call {seq}").into()),
    }
}

// -------------------------------------------------------------- scenarios

struct Ctx<'a> {
    args: &'a Args,
    fixture: &'a Fixture,
    n: u64,
    /// The soak test's RSS watch, when on.
    soak: bool,
}

async fn postage_publish(ctx: &Ctx<'_>, confirms: bool) -> Res<Timed> {
    let connection = postage_connect(&ctx.args.url).await?;
    let producer = Producer::builder()
        .ek(ctx.fixture.exchange(), KEY)
        .fingerprint(fingerprint())
        .confirms(confirms)
        .connect(&connection)
        .await?;
    let start = Snapshot::now();
    if confirms {
        stream::iter(0..ctx.n)
            .map(|i| producer.command(COMMAND, params(i)).into_future())
            .buffer_unordered(ctx.args.window)
            .try_for_each(|()| async { Ok(()) })
            .await?;
    } else {
        for i in 0..ctx.n {
            producer.command(COMMAND, params(i)).await?;
        }
    }
    let end = Snapshot::now();
    connection.close().await?;
    Ok(Timed::new(start, end))
}

async fn lapin_publish(ctx: &Ctx<'_>, confirms: bool) -> Res<Timed> {
    let connection = lapin_connect(&ctx.args.url).await?;
    let channel = connection.create_channel().await?;
    if confirms {
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
    }
    let fp = wire_fingerprint();
    let props = BasicProperties::default().with_content_type(CONTENT_TYPE.into());
    let start = Snapshot::now();
    let mut pending = FuturesUnordered::new();
    for i in 0..ctx.n {
        let body = lapin_command(&fp, "message", i)?;
        let confirm = channel
            .basic_publish(
                ctx.fixture.exchange.as_str().into(),
                KEY.into(),
                BasicPublishOptions::default(),
                &body,
                props.clone(),
            )
            .await?;
        if confirms {
            pending.push(confirm);
            if pending.len() >= ctx.args.window {
                check_confirm(pending.next().await)?;
            }
        }
    }
    while !pending.is_empty() {
        check_confirm(pending.next().await)?;
    }
    let end = Snapshot::now();
    lapin_close(&connection).await;
    Ok(Timed::new(start, end))
}

/// The body both consume runs read: a Postage command as Postage encodes it.
fn postage_body(seq: u64) -> Res<Vec<u8>> {
    let message = MessageCommand::new(COMMAND, params(seq))
        .into_message()
        .with_fingerprint(&fingerprint());
    Ok(postage::JsonEncoder.encode(&message)?)
}

async fn postage_consume(ctx: &Ctx<'_>) -> Res<Timed> {
    let connection = postage_connect(&ctx.args.url).await?;
    let counter = Counter::new(ctx.n);
    let start = Snapshot::now();
    let processor = Processor::builder_arc(counter.clone())
        .bind(ctx.fixture.exchange(), [(ctx.fixture.queue.as_str(), KEY)])
        .prefetch(ctx.args.prefetch)
        .fingerprint(fingerprint())
        .connect(&connection)
        .await?;
    let control = processor.control();
    let running = tokio::spawn(processor.run());
    counter.done.notified().await;
    let end = Snapshot::now();
    control.quit();
    running.await??;
    connection.close().await?;
    Ok(Timed::new(start, end))
}

/// A hand-written consumer: decode, dispatch on (type, name), handle, ack
/// each message. Returns when `counter` reaches its target.
async fn lapin_consumer_loop(
    channel: lapin::Channel,
    queue: String,
    prefetch: u16,
    counter: Arc<Counter>,
) -> Res<()> {
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await?;
    let mut consumer = channel
        .basic_consume(
            queue.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    while let Some(delivery) = consumer.next().await {
        let delivery = delivery?;
        let typed = delivery
            .properties
            .content_type()
            .as_ref()
            .is_none_or(|ct| ct.as_str() == CONTENT_TYPE);
        let message = match serde_json::from_slice::<WireIn<CommandIn>>(&delivery.data) {
            Ok(message) if typed => message,
            _ => {
                delivery
                    .reject(BasicRejectOptions { requeue: false })
                    .await?;
                continue;
            }
        };
        let handled = match (
            message.kind.as_str(),
            message.name.as_str(),
            message.category.as_str(),
        ) {
            ("command", COMMAND, "message") => {
                handle(&message.content.parameters);
                true
            }
            _ => false,
        };
        delivery.ack(BasicAckOptions::default()).await?;
        if handled {
            counter.tick();
            if counter.handled.load(Ordering::Relaxed) >= counter.target {
                break;
            }
        }
    }
    Ok(())
}

/// Closes a lapin side's connection once its work is measured. lapin may
/// still be closing a channel whose consumer was just dropped, and then
/// fails the close with `InvalidChannelState(Closing)`: that says nothing
/// about the run, so it is reported, not fatal.
async fn lapin_close(connection: &lapin::Connection) {
    if let Err(error) = connection.close(200, "OK".into()).await {
        eprintln!("postage-bench: closing the lapin connection: {error}");
    }
}

async fn lapin_consume(ctx: &Ctx<'_>) -> Res<Timed> {
    let connection = lapin_connect(&ctx.args.url).await?;
    let counter = Counter::new(ctx.n);
    let start = Snapshot::now();
    let channel = connection.create_channel().await?;
    lapin_consumer_loop(
        channel,
        ctx.fixture.queue.clone(),
        ctx.args.prefetch,
        counter.clone(),
    )
    .await?;
    let end = Snapshot::now();
    lapin_close(&connection).await;
    Ok(Timed::new(start, end))
}

/// Samples RSS while a long run goes on: (messages handled, RSS KiB).
fn spawn_rss_sampler(
    counter: Arc<Counter>,
) -> (tokio::task::JoinHandle<Vec<(u64, u64)>>, Arc<Notify>) {
    let stop = Arc::new(Notify::new());
    let stopped = stop.clone();
    let task = tokio::spawn(async move {
        let mut samples = Vec::new();
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                _ = tick.tick() => samples.push((counter.handled.load(Ordering::Relaxed), rss_kib())),
                () = stopped.notified() => break,
            }
        }
        samples.push((counter.handled.load(Ordering::Relaxed), rss_kib()));
        samples
    });
    (task, stop)
}

fn soak_report(rss_start: u64, n: u64, samples: &[(u64, u64)]) -> serde_json::Map<String, Value> {
    // Warm-up: the first 10 % of the messages.
    let warm_at = n / 10;
    let warm = samples
        .iter()
        .find(|(handled, _)| *handled >= warm_at)
        .map_or(0, |s| s.1);
    let end = samples.last().map_or(0, |s| s.1);
    let max_after = samples
        .iter()
        .filter(|(handled, _)| *handled >= warm_at)
        .map(|s| s.1)
        .max()
        .unwrap_or(0);
    let mut map = serde_json::Map::new();
    map.insert("rss_start_kib".into(), json!(rss_start));
    map.insert("rss_warm_kib".into(), json!(warm));
    map.insert("rss_end_kib".into(), json!(end));
    map.insert("rss_max_after_warm_kib".into(), json!(max_after));
    map.insert(
        "rss_growth_after_warm_kib".into(),
        json!(end as i64 - warm as i64),
    );
    map.insert(
        "rss_samples".into(),
        json!(samples.iter().step_by(4).collect::<Vec<_>>()),
    );
    map
}

async fn postage_pipe(ctx: &Ctx<'_>) -> Res<Timed> {
    let rss_start = rss_kib();
    let connection = postage_connect(&ctx.args.url).await?;
    let counter = Counter::new(ctx.n);
    let sampler = ctx.soak.then(|| spawn_rss_sampler(counter.clone()));
    let start = Snapshot::now();
    let processor = Processor::builder_arc(counter.clone())
        .bind(ctx.fixture.exchange(), [(ctx.fixture.queue.as_str(), KEY)])
        .prefetch(ctx.args.prefetch)
        .fingerprint(fingerprint())
        .connect(&connection)
        .await?;
    let control = processor.control();
    let running = tokio::spawn(processor.run());
    let producer = Producer::builder()
        .ek(ctx.fixture.exchange(), KEY)
        .fingerprint(fingerprint())
        .connect(&connection)
        .await?;
    stream::iter(0..ctx.n)
        .map(|i| producer.command(COMMAND, params(i)).into_future())
        .buffer_unordered(ctx.args.window)
        .try_for_each(|()| async { Ok(()) })
        .await?;
    counter.done.notified().await;
    let end = Snapshot::now();
    control.quit();
    running.await??;
    let mut timed = Timed::new(start, end);
    if let Some((task, stop)) = sampler {
        stop.notify_one();
        timed.extra = soak_report(rss_start, ctx.n, &task.await?);
    }
    connection.close().await?;
    Ok(timed)
}

async fn lapin_pipe(ctx: &Ctx<'_>) -> Res<Timed> {
    let rss_start = rss_kib();
    let connection = lapin_connect(&ctx.args.url).await?;
    let counter = Counter::new(ctx.n);
    let sampler = ctx.soak.then(|| spawn_rss_sampler(counter.clone()));
    let fp = wire_fingerprint();
    let props = BasicProperties::default().with_content_type(CONTENT_TYPE.into());
    let start = Snapshot::now();
    let consumer_channel = connection.create_channel().await?;
    let consumer = tokio::spawn(lapin_consumer_loop(
        consumer_channel,
        ctx.fixture.queue.clone(),
        ctx.args.prefetch,
        counter.clone(),
    ));
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let mut pending = FuturesUnordered::new();
    for i in 0..ctx.n {
        let body = lapin_command(&fp, "message", i)?;
        let confirm = channel
            .basic_publish(
                ctx.fixture.exchange.as_str().into(),
                KEY.into(),
                BasicPublishOptions::default(),
                &body,
                props.clone(),
            )
            .await?;
        pending.push(confirm);
        if pending.len() >= ctx.args.window {
            check_confirm(pending.next().await)?;
        }
    }
    while !pending.is_empty() {
        check_confirm(pending.next().await)?;
    }
    consumer.await??;
    let end = Snapshot::now();
    let mut timed = Timed::new(start, end);
    if let Some((task, stop)) = sampler {
        stop.notify_one();
        timed.extra = soak_report(rss_start, ctx.n, &task.await?);
    }
    lapin_close(&connection).await;
    Ok(timed)
}

/// Starts the Postage RPC server on its own connection.
async fn postage_rpc_server(
    ctx: &Ctx<'_>,
) -> Res<(
    Connection,
    Control,
    tokio::task::JoinHandle<postage::Result<Stop>>,
)> {
    let connection = postage_connect(&ctx.args.url).await?;
    let processor = Processor::builder(RpcServer)
        .bind(ctx.fixture.exchange(), [(ctx.fixture.queue.as_str(), KEY)])
        .prefetch(ctx.args.prefetch)
        .fingerprint(fingerprint())
        .connect(&connection)
        .await?;
    let control = processor.control();
    Ok((connection, control, tokio::spawn(processor.run())))
}

async fn postage_rpc(ctx: &Ctx<'_>, parallel: bool) -> Res<Timed> {
    let (server_connection, control, server) = postage_rpc_server(ctx).await?;
    let connection = postage_connect(&ctx.args.url).await?;
    let producer = Producer::builder()
        .ek(ctx.fixture.exchange(), KEY)
        .fingerprint(fingerprint())
        .rpc_timeout(RPC_TIMEOUT)
        // Default off; `BENCH_RPC_CONFIRMS=1` measures calls with them.
        .rpc_confirms(std::env::var("BENCH_RPC_CONFIRMS").is_ok_and(|v| v == "1"))
        .connect(&connection)
        .await?;
    let call = |seq: u64| {
        let producer = &producer;
        async move {
            let t = Instant::now();
            let reply = producer.rpc(COMMAND, params(seq)).await?;
            check_reply(&reply, seq)?;
            Ok::<Duration, BoxError>(t.elapsed())
        }
    };
    for seq in 0..WARMUP_CALLS {
        call(seq).await?;
    }
    let start = Snapshot::now();
    let latencies = if parallel {
        stream::iter(0..ctx.n)
            .map(call)
            .buffer_unordered(ctx.args.in_flight)
            .try_collect()
            .await?
    } else {
        let mut latencies = Vec::with_capacity(ctx.n as usize);
        for seq in 0..ctx.n {
            latencies.push(call(seq).await?);
        }
        latencies
    };
    let end = Snapshot::now();
    connection.close().await?;
    control.quit();
    server.await??;
    server_connection.close().await?;
    let mut timed = Timed::new(start, end);
    timed.latencies = latencies;
    Ok(timed)
}

/// A hand-written RPC server: decode, compute, publish the result to
/// `reply_to` with the correlation id, ack.
async fn lapin_rpc_server(channel: lapin::Channel, queue: String, prefetch: u16) -> Res<()> {
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await?;
    let mut consumer = channel
        .basic_consume(
            queue.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let fp = wire_fingerprint();
    while let Some(delivery) = consumer.next().await {
        let Ok(delivery) = delivery else { break };
        let request = serde_json::from_slice::<WireIn<CommandIn>>(&delivery.data);
        let reply_to = delivery.properties.reply_to().clone();
        match (request, reply_to) {
            (Ok(request), Some(reply_to))
                if request.kind == "command"
                    && request.name == COMMAND
                    && request.category == "rpc" =>
            {
                let value = handle(&request.content.parameters);
                let body = serde_json::to_vec(&WireOut {
                    kind: "result",
                    name: "none",
                    category: "message",
                    version: "2",
                    fingerprint: &fp,
                    content: ResultContent {
                        kind: "success".to_owned(),
                        value,
                        message: String::new(),
                    },
                    reserved: Empty {},
                })?;
                let mut props = BasicProperties::default().with_content_type(CONTENT_TYPE.into());
                if let Some(id) = delivery.properties.correlation_id() {
                    props = props.with_correlation_id(id.clone());
                }
                channel
                    .basic_publish(
                        "".into(),
                        reply_to,
                        BasicPublishOptions::default(),
                        &body,
                        props,
                    )
                    .await?;
                delivery.ack(BasicAckOptions::default()).await?;
            }
            _ => {
                delivery
                    .reject(BasicRejectOptions { requeue: false })
                    .await?;
            }
        }
    }
    Ok(())
}

fn lapin_reply_value(data: &[u8], seq: u64) -> Res<()> {
    let reply: WireIn<ResultContent<u64>> = serde_json::from_slice(data)?;
    if reply.kind == "result" && reply.content.kind == "success" && reply.content.value == seq {
        Ok(())
    } else {
        Err(format!("unexpected reply {:?} to call {seq}", reply.content).into())
    }
}

fn rpc_props(id: String) -> BasicProperties {
    BasicProperties::default()
        .with_content_type(CONTENT_TYPE.into())
        .with_reply_to(DIRECT_REPLY_TO.into())
        .with_correlation_id(id.into())
}

async fn lapin_rpc(ctx: &Ctx<'_>, parallel: bool) -> Res<Timed> {
    let server_connection = lapin_connect(&ctx.args.url).await?;
    let server = tokio::spawn(lapin_rpc_server(
        server_connection.create_channel().await?,
        ctx.fixture.queue.clone(),
        ctx.args.prefetch,
    ));
    let connection = lapin_connect(&ctx.args.url).await?;
    let channel = connection.create_channel().await?;
    let mut replies = channel
        .basic_consume(
            DIRECT_REPLY_TO.into(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    let fp = wire_fingerprint();
    let exchange = ctx.fixture.exchange.as_str();
    let latencies = if parallel {
        // Many calls in flight: a listener routes replies by correlation id.
        type Waiters = Arc<Mutex<HashMap<String, oneshot::Sender<Vec<u8>>>>>;
        let waiters: Waiters = Arc::default();
        let listener = {
            let waiters = waiters.clone();
            tokio::spawn(async move {
                while let Some(Ok(delivery)) = replies.next().await {
                    let waiter = delivery
                        .properties
                        .correlation_id()
                        .as_ref()
                        .and_then(|id| {
                            waiters
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .remove(id.as_str())
                        });
                    if let Some(waiter) = waiter {
                        let _ = waiter.send(delivery.data);
                    }
                }
            })
        };
        let call = |seq: u64| {
            let (channel, waiters, fp) = (&channel, &waiters, &fp);
            async move {
                let t = Instant::now();
                let id = seq.to_string();
                let (tx, rx) = oneshot::channel();
                waiters
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(id.clone(), tx);
                let body = lapin_command(fp, "rpc", seq)?;
                channel
                    .basic_publish(
                        exchange.into(),
                        KEY.into(),
                        BasicPublishOptions::default(),
                        &body,
                        rpc_props(id),
                    )
                    .await?;
                let data = tokio::time::timeout(RPC_TIMEOUT, rx).await??;
                lapin_reply_value(&data, seq)?;
                Ok::<Duration, BoxError>(t.elapsed())
            }
        };
        for seq in 0..WARMUP_CALLS {
            call(seq).await?;
        }
        let start = Snapshot::now();
        let latencies: Vec<Duration> = stream::iter(WARMUP_CALLS..WARMUP_CALLS + ctx.n)
            .map(call)
            .buffer_unordered(ctx.args.in_flight)
            .try_collect()
            .await?;
        let end = Snapshot::now();
        listener.abort();
        (start, end, latencies)
    } else {
        // One call at a time: read the reply straight off the consumer.
        let mut call = async |seq: u64| -> Res<Duration> {
            let t = Instant::now();
            let id = seq.to_string();
            let body = lapin_command(&fp, "rpc", seq)?;
            channel
                .basic_publish(
                    exchange.into(),
                    KEY.into(),
                    BasicPublishOptions::default(),
                    &body,
                    rpc_props(id.clone()),
                )
                .await?;
            loop {
                let next = tokio::time::timeout(RPC_TIMEOUT, replies.next()).await?;
                let delivery = next.ok_or("reply consumer ended")??;
                let matches = delivery
                    .properties
                    .correlation_id()
                    .as_ref()
                    .is_some_and(|c| c.as_str() == id);
                if matches {
                    lapin_reply_value(&delivery.data, seq)?;
                    return Ok(t.elapsed());
                }
            }
        };
        for seq in 0..WARMUP_CALLS {
            call(seq).await?;
        }
        let start = Snapshot::now();
        let mut latencies = Vec::with_capacity(ctx.n as usize);
        for seq in WARMUP_CALLS..WARMUP_CALLS + ctx.n {
            latencies.push(call(seq).await?);
        }
        let end = Snapshot::now();
        (start, end, latencies)
    };
    lapin_close(&connection).await;
    lapin_close(&server_connection).await;
    let _ = server.await;
    let mut timed = Timed::new(latencies.0, latencies.1);
    timed.latencies = latencies.2;
    Ok(timed)
}

async fn run_one(ctx: &Ctx<'_>, scenario: Scenario, imp: Impl) -> Res<Timed> {
    match (scenario, imp) {
        (Scenario::Publish, Impl::Postage) => postage_publish(ctx, false).await,
        (Scenario::Publish, Impl::Lapin) => lapin_publish(ctx, false).await,
        (Scenario::PublishConfirm, Impl::Postage) => postage_publish(ctx, true).await,
        (Scenario::PublishConfirm, Impl::Lapin) => lapin_publish(ctx, true).await,
        (Scenario::Consume, Impl::Postage) => postage_consume(ctx).await,
        (Scenario::Consume, Impl::Lapin) => lapin_consume(ctx).await,
        (Scenario::Pipe | Scenario::Soak, Impl::Postage) => postage_pipe(ctx).await,
        (Scenario::Pipe | Scenario::Soak, Impl::Lapin) => lapin_pipe(ctx).await,
        (Scenario::RpcSeq, Impl::Postage) => postage_rpc(ctx, false).await,
        (Scenario::RpcSeq, Impl::Lapin) => lapin_rpc(ctx, false).await,
        (Scenario::RpcPar, Impl::Postage) => postage_rpc(ctx, true).await,
        (Scenario::RpcPar, Impl::Lapin) => lapin_rpc(ctx, true).await,
    }
}

async fn measure(
    args: &Args,
    admin: &Admin,
    scenario: Scenario,
    imp: Impl,
    run: usize,
) -> Res<Record> {
    let n = args.count.unwrap_or_else(|| scenario.default_count());
    let fixture = admin.fixture(scenario, imp, run).await?;
    let ctx = Ctx {
        args,
        fixture: &fixture,
        n,
        soak: scenario == Scenario::Soak,
    };
    if scenario == Scenario::Consume {
        admin
            .prefill(&fixture, n, &postage_body(7)?, args.window)
            .await?;
    }
    reset_peak_rss();
    let result = if args.dry {
        let now = Snapshot::now();
        Ok(Timed::new(now, now))
    } else {
        run_one(&ctx, scenario, imp).await
    };
    let peak_rss_kib = status_kib("VmHWM");
    admin.remove(&fixture).await?;
    let mut timed = result?;
    timed.latencies.sort();
    Ok(Record {
        scenario,
        imp,
        count: n,
        secs: timed.end.at.duration_since(timed.start.at).as_secs_f64(),
        cpu_user_s: timed.end.user_s - timed.start.user_s,
        cpu_sys_s: timed.end.sys_s - timed.start.sys_s,
        switches: timed.end.switches.saturating_sub(timed.start.switches),
        peak_rss_kib,
        p50_us: percentile_us(&timed.latencies, 50),
        p99_us: percentile_us(&timed.latencies, 99),
        extra: timed.extra,
    })
}

// ------------------------------------------------------------------ report

struct Metric {
    name: &'static str,
    get: fn(&Record) -> Option<f64>,
    /// The budget on postage/lapin: (bound, higher is better).
    budget: Option<(f64, bool)>,
}

const METRICS: &[Metric] = &[
    Metric {
        name: "msg_per_s",
        get: |r| Some(r.msg_per_s()),
        budget: Some((0.95, true)),
    },
    Metric {
        name: "cpu_us_per_msg",
        get: |r| Some(r.cpu_us_per_msg()),
        budget: Some((1.10, false)),
    },
    Metric {
        name: "switches_per_msg",
        get: |r| Some(r.switches_per_msg()),
        budget: None,
    },
    Metric {
        name: "p50_us",
        get: |r| r.p50_us,
        budget: Some((1.05, false)),
    },
    Metric {
        name: "p99_us",
        get: |r| r.p99_us,
        budget: None,
    },
    Metric {
        name: "peak_rss_kib",
        get: |r| Some(r.peak_rss_kib as f64),
        budget: None,
    },
];

fn report(args: &Args, records: &[Record]) {
    let mut scenarios: Vec<Scenario> = Vec::new();
    for r in records {
        if !scenarios.contains(&r.scenario) {
            scenarios.push(r.scenario);
        }
    }
    if !args.json {
        println!();
        println!(
            "{:<16} {:<15} {:>12} {:>12} {:>8} {:>19}  budget",
            "scenario", "metric", "postage", "lapin", "ratio", "paired (min-max)"
        );
    }
    for scenario in scenarios {
        let mut summary = serde_json::Map::new();
        summary.insert("summary".into(), json!(scenario.name()));
        for metric in METRICS {
            // One side's values, in run order.
            let side = |imp: Impl| -> Vec<f64> {
                records
                    .iter()
                    .filter(|r| r.scenario == scenario && r.imp == imp)
                    .filter_map(metric.get)
                    .collect()
            };
            let (postage, lapin) = (side(Impl::Postage), side(Impl::Lapin));
            // Each run's own postage/lapin ratio (the two sides of a run go
            // back to back): how far drift moves a single ratio.
            let paired: Vec<f64> = postage.iter().zip(&lapin).map(|(p, l)| p / l).collect();
            let spread = (!paired.is_empty()).then(|| {
                let lo = paired.iter().copied().fold(f64::INFINITY, f64::min);
                let hi = paired.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                (lo, hi)
            });
            let (p, l) = (median(postage), median(lapin));
            if p.is_none() && l.is_none() {
                continue;
            }
            let ratio = p.zip(l).map(|(p, l)| p / l);
            let paired_median = median(paired);
            let verdict = match (ratio, metric.budget) {
                (Some(r), Some((bound, true))) => {
                    format!("{} >= {bound}", if r >= bound { "ok  " } else { "MISS" })
                }
                (Some(r), Some((bound, false))) => {
                    format!("{} <= {bound}", if r <= bound { "ok  " } else { "MISS" })
                }
                _ => String::new(),
            };
            if args.json {
                summary.insert(
                    metric.name.into(),
                    json!({"postage": p.map(|x| round(x, 2)), "lapin": l.map(|x| round(x, 2)),
                           "ratio": ratio.map(|x| round(x, 3)),
                           "paired_ratio": paired_median.map(|x| round(x, 3)),
                           "paired_min": spread.map(|s| round(s.0, 3)),
                           "paired_max": spread.map(|s| round(s.1, 3))}),
                );
            } else {
                let show = |x: Option<f64>| x.map_or_else(|| "-".to_owned(), |x| format!("{x:.1}"));
                let paired = match (paired_median, spread) {
                    (Some(m), Some((lo, hi))) => format!("{m:.3} ({lo:.2}-{hi:.2})"),
                    _ => "-".to_owned(),
                };
                println!(
                    "{:<16} {:<15} {:>12} {:>12} {:>8} {paired:>19}  {verdict}",
                    scenario.name(),
                    metric.name,
                    show(p),
                    show(l),
                    ratio.map_or_else(|| "-".to_owned(), |r| format!("{r:.3}")),
                );
            }
        }
        if args.json {
            println!("{}", Value::Object(summary));
        }
    }
}

#[tokio::main]
async fn main() -> Res<()> {
    let args = parse_args()?;
    let admin = Admin::connect(&args.url).await?;
    eprintln!(
        "postage-bench: body {} bytes, prefetch {}, confirm window {}, rpc in flight {}, {} run(s) per impl",
        postage_body(0)?.len(),
        args.prefetch,
        args.window,
        args.in_flight,
        args.runs
    );
    let mut records = Vec::new();
    for &scenario in &args.scenarios {
        for run in 0..args.runs {
            // Alternate which side goes first, to spread drift evenly.
            let mut order = args.impls.clone();
            if run % 2 == 1 {
                order.reverse();
            }
            for imp in order {
                let record = measure(&args, &admin, scenario, imp, run).await?;
                println!("{}", record.to_json());
                records.push(record);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    report(&args, &records);
    Ok(())
}

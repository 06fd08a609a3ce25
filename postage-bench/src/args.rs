//! The command line: scenarios, implementations, counts and knobs, and the
//! usage text.

use crate::common::Res;

const DEFAULT_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scenario {
    Publish,
    PublishConfirm,
    Consume,
    Pipe,
    RpcSeq,
    RpcPar,
    Soak,
    /// Memory per idle queue on the in-memory broker.
    IdleQueues,
    /// How cost grows with load (`scenario::scale`).
    Scale,
    Workers,
    /// The PostgreSQL outbox and inbox (`scenario::outbox`).
    Outbox,
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

    pub(crate) fn name(self) -> &'static str {
        match self {
            Scenario::Publish => "publish",
            Scenario::PublishConfirm => "publish-confirm",
            Scenario::Consume => "consume",
            Scenario::Pipe => "pipe",
            Scenario::RpcSeq => "rpc-seq",
            Scenario::RpcPar => "rpc-par",
            Scenario::Soak => "soak",
            Scenario::IdleQueues => "idle-queues",
            Scenario::Scale => "scale",
            Scenario::Workers => "workers",
            Scenario::Outbox => "outbox",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .chain([
                Scenario::Soak,
                Scenario::IdleQueues,
                Scenario::Scale,
                Scenario::Workers,
                Scenario::Outbox,
            ])
            .find(|sc| sc.name() == s)
    }

    pub(crate) fn default_count(self) -> u64 {
        match self {
            Scenario::RpcSeq => 5_000,
            Scenario::RpcPar => 20_000,
            Scenario::Soak => 1_000_000,
            Scenario::IdleQueues => 100_000,
            Scenario::Scale => 1_000_000,
            _ => 100_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Impl {
    Postage,
    Lapin,
    /// lapin acknowledging a run of 100 messages at once (prefetch 100):
    /// the `consume` and `pipe` scenarios only.
    LapinBatch,
    /// Postage on the in-memory broker (`--broker memory`).
    Memory,
}

impl Impl {
    /// Whether this side has a run of `scenario`: the batching lapin
    /// baseline only consumes.
    pub(crate) fn runs(self, scenario: Scenario) -> bool {
        self != Impl::LapinBatch || matches!(scenario, Scenario::Consume | Scenario::Pipe)
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Impl::Postage => "postage",
            Impl::Lapin => "lapin",
            Impl::LapinBatch => "lapin-batch",
            Impl::Memory => "memory",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Args {
    pub(crate) scenarios: Vec<Scenario>,
    pub(crate) count: Option<u64>,
    pub(crate) impls: Vec<Impl>,
    pub(crate) runs: usize,
    pub(crate) prefetch: u16,
    pub(crate) window: usize,
    pub(crate) in_flight: usize,
    pub(crate) json: bool,
    /// Set up (and pre-fill) only: a baseline for instruction counts.
    pub(crate) dry: bool,
    /// One thread for everything (as `#[tokio::test]`).
    pub(crate) current_thread: bool,
    /// What listens: a `tracing` subscriber at INFO, a Prometheus
    /// recorder, both, or nothing.
    pub(crate) telemetry: Telemetry,
    /// `consume` and `pipe` with a pass-through middleware layer around
    /// the processor's handlers: what a layer costs.
    pub(crate) pass_layer: bool,
    /// `consume`: how many handlers the processor runs at once.
    pub(crate) concurrency: usize,
    /// `consume` with `--concurrency`: keyed lanes, one key per message
    /// (`ordered_by` the `seq` parameter), against unordered.
    pub(crate) ordered: bool,
    /// `workers`: how long each message's handler waits (ms), as if on
    /// I/O.
    pub(crate) work_ms: u64,
    /// `workers`: the worker counts to measure (1, 2, 4 and 8 unless
    /// `--workers` says otherwise).
    pub(crate) workers: Vec<usize>,
    /// `outbox`: the relay counts to measure (1 and 4 unless `--relays`
    /// says otherwise).
    pub(crate) relays: Vec<usize>,
    /// `outbox`: the steady rate of the latency runs (msg/s).
    pub(crate) rate: u64,
    pub(crate) url: String,
    /// Where `scale` writes its plot.
    pub(crate) svg: String,
    /// `scale` measures each of its points in a process of its own, which
    /// it starts with `--point processors:N` or `--point backlog`.
    pub(crate) point: Option<String>,
}

const USAGE: &str = "usage: postage-bench <publish|publish-confirm|consume|pipe|rpc-seq|rpc-par|soak|idle-queues|scale|workers|outbox|all> \
[--count N] [--impl postage|lapin|lapin-batch|both|all] [--broker rabbitmq|memory|both] [--runs R] [--prefetch P] [--window W] \
[--in-flight F] [--svg PATH] [--current-thread] [--telemetry spans|metrics|all] [--pass-layer] [--concurrency C] [--ordered] [--work-ms MS] [--workers 1,2,4,8] [--relays 1,4] [--rate MSG_PER_S] [--json] [--dry]";

/// What `--telemetry` installs before anything is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Telemetry {
    /// Nothing: no subscriber, no recorder.
    Off,
    /// A `tracing` subscriber at INFO, formatting into nothing.
    Spans,
    /// A Prometheus recorder.
    Metrics,
    /// Both.
    All,
}

pub(crate) fn parse_args() -> Res<Args> {
    let mut args = Args {
        scenarios: Vec::new(),
        count: None,
        impls: vec![Impl::Postage, Impl::Lapin, Impl::LapinBatch],
        runs: 5,
        prefetch: postage::consumer::DEFAULT_PREFETCH,
        window: 1_000,
        in_flight: 64,
        json: false,
        dry: false,
        current_thread: false,
        telemetry: Telemetry::Off,
        pass_layer: false,
        concurrency: 1,
        ordered: false,
        work_ms: 0,
        workers: vec![1, 2, 4, 8],
        relays: vec![1, 4],
        rate: 1_000,
        url: std::env::var("POSTAGE_URL")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| DEFAULT_URL.to_owned()),
        svg: "scale.svg".to_owned(),
        point: None,
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
            "--svg" => args.svg = value("--svg")?,
            "--point" => args.point = Some(value("--point")?),
            "--impl" => {
                args.impls = match value("--impl")?.as_str() {
                    "postage" => vec![Impl::Postage],
                    "lapin" => vec![Impl::Lapin],
                    "lapin-batch" => vec![Impl::LapinBatch],
                    "both" => vec![Impl::Postage, Impl::Lapin],
                    "all" => vec![Impl::Postage, Impl::Lapin, Impl::LapinBatch],
                    other => return Err(format!("unknown impl {other:?}\n{USAGE}").into()),
                }
            }
            "--broker" => {
                args.impls = match value("--broker")?.as_str() {
                    "rabbitmq" => vec![Impl::Postage, Impl::Lapin, Impl::LapinBatch],
                    "memory" => vec![Impl::Memory],
                    "both" => vec![Impl::Memory, Impl::Postage],
                    other => return Err(format!("unknown broker {other:?}\n{USAGE}").into()),
                }
            }
            "--json" => args.json = true,
            "--dry" => args.dry = true,
            "--pass-layer" => args.pass_layer = true,
            "--concurrency" => args.concurrency = value("--concurrency")?.parse()?,
            "--ordered" => args.ordered = true,
            "--work-ms" => args.work_ms = value("--work-ms")?.parse()?,
            "--workers" => {
                args.workers = value("--workers")?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?;
            }
            "--relays" => {
                args.relays = value("--relays")?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?;
            }
            "--rate" => args.rate = value("--rate")?.parse()?,
            "--current-thread" => args.current_thread = true,
            "--telemetry" => {
                args.telemetry = match value("--telemetry")?.as_str() {
                    "spans" => Telemetry::Spans,
                    "metrics" => Telemetry::Metrics,
                    "all" => Telemetry::All,
                    other => return Err(format!("unknown telemetry {other:?}\n{USAGE}").into()),
                }
            }
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
    if args.scenarios.contains(&Scenario::IdleQueues) {
        args.impls = vec![Impl::Memory];
    }
    args.runs = args.runs.max(1);
    args.window = args.window.max(1);
    args.in_flight = args.in_flight.max(1);
    Ok(args)
}

//! `postage-bench <scenario> [--count N] [--impl postage|lapin|lapin-batch|both|all]
//! [--runs R] [--prefetch P] [--json]`: Postage side by side with
//! hand-written lapin code doing the same work, against the broker at
//! `POSTAGE_URL` (default `amqp://guest:guest@127.0.0.1:5672/%2f`). The
//! lapin side acknowledges each message; `lapin-batch`, in `consume` and
//! `pipe`, acknowledges 100 at once with prefetch 100.
//!
//! Scenarios: `publish`, `publish-confirm`, `consume`, `pipe`, `rpc-seq`,
//! `rpc-par`, `soak` (a `pipe` of 1,000,000 messages watching RSS),
//! `idle-queues` (memory per idle queue on the in-memory broker), `scale`
//! (how rate and memory grow with load; writes `--svg PATH`, default
//! `scale.svg`), `workers` (a partition group of 1 to 8 processes),
//! `outbox` (the PostgreSQL outbox and inbox against a direct publish),
//! and
//! `all` (every scenario but `soak`, `idle-queues` and `scale`).
//!
//! `--broker memory` runs the Postage side on the in-memory broker
//! instead of RabbitMQ; `--broker both` runs it on each, side by side.
//! `--current-thread` runs everything on one thread, as `#[tokio::test]`
//! runs a test (the default is tokio's multi-threaded runtime).
//! `--telemetry spans|metrics|all` installs what a component in production
//! listens with before anything is built: a `tracing` subscriber at INFO
//! (formatting into nothing), a Prometheus recorder, or both.
//!
//! Each run prints one JSON line; at the end a table of medians and the
//! postage/lapin ratios follows (with `--json`, one JSON summary line per
//! scenario instead). See BENCHMARKS.md.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod args;
mod common;
mod fixture;
mod lapin_side;
mod measure;
mod plot;
mod postage_side;
mod report;
mod scenario;

use std::time::Duration;

use crate::args::{Impl, Scenario, parse_args};
use crate::common::Res;
use crate::fixture::Admin;
use crate::measure::measure;
use crate::postage_side::postage_body;
use crate::report::report;

fn main() -> Res<()> {
    let args = parse_args()?;
    install_telemetry(args.telemetry)?;
    // `--current-thread`: one thread, as `#[tokio::test]` runs a test.
    let runtime = if args.current_thread {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    }
    .enable_all()
    .build()?;
    runtime.block_on(run(args))
}

/// `--telemetry`: what a component in production listens with, a
/// `tracing` subscriber at INFO (formatting into nothing) and a Prometheus
/// recorder, installed before anything is built.
fn install_telemetry(telemetry: args::Telemetry) -> Res<()> {
    use args::Telemetry;
    if matches!(telemetry, Telemetry::Spans | Telemetry::All) {
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_writer(std::io::sink)
            .init();
    }
    if matches!(telemetry, Telemetry::Metrics | Telemetry::All) {
        metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()?;
        postage::telemetry::describe_metrics();
    }
    Ok(())
}

async fn run(args: args::Args) -> Res<()> {
    // RabbitMQ is needed unless every run is on the in-memory broker.
    let admin = if args.impls.iter().all(|imp| *imp == Impl::Memory) {
        None
    } else {
        Some(Admin::connect(&args.url).await?)
    };
    eprintln!(
        "postage-bench: body {} bytes, prefetch {}, confirm window {}, rpc in flight {}, {} run(s) per impl, {} runtime",
        postage_body(0)?.len(),
        args.prefetch,
        args.window,
        args.in_flight,
        args.runs,
        if args.current_thread {
            "current-thread"
        } else {
            "multi-thread"
        }
    );
    let mut records = Vec::new();
    for &scenario in &args.scenarios {
        if scenario == Scenario::Scale {
            let admin = admin.as_ref().ok_or("scale runs on RabbitMQ")?;
            scenario::scale::scale(&args, admin).await?;
            continue;
        }
        if scenario == Scenario::Workers {
            scenario::workers::workers(&args).await?;
            continue;
        }
        if scenario == Scenario::Outbox {
            scenario::outbox::outbox(&args).await?;
            continue;
        }
        for run in 0..args.runs {
            // Alternate which side goes first, to spread drift evenly.
            let mut order = args.impls.clone();
            if run % 2 == 1 {
                order.reverse();
            }
            for imp in order.into_iter().filter(|imp| imp.runs(scenario)) {
                let record = measure(&args, admin.as_ref(), scenario, imp, run).await?;
                println!("{}", record.to_json());
                records.push(record);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    if !records.is_empty() {
        report(&args, &records);
    }
    Ok(())
}

//! `workers`: a partition group's throughput from 1 to 8 worker
//! processes (`--workers` for other counts) on one broker, and how long the workers take to share the
//! partitions. For each count W: a fresh group of 16 partitions is filled
//! with `--count` commands (one key each), W workers (this binary,
//! `--point worker:GROUP`) start at once and drain it. The rate is the
//! messages over the time from the first handled to the last; the time to
//! share is from the start of the processes until each has handled its
//! first message (the group agreeing on who holds which partitions, a
//! rebalance from nothing). Each worker handles four partitions at once
//! (`concurrency(4)`, `ordered_by` the key); `--work-ms` makes each
//! handler wait as if on I/O. Prints a table and JSON lines and writes
//! the plot.

use std::future::IntoFuture;
use std::io::BufRead;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::stream::{self, StreamExt, TryStreamExt};
use postage::flow::{OrderKey, Partitions, routing_key};
use postage::middleware::PartitionLayer;
use postage::prelude::*;
use postage::testing::Probe;
use serde_json::json;

use crate::args::Args;
use crate::common::{COMMAND, Res, fingerprint};
use crate::measure::median;
use crate::plot::{Chart, Series, grid};
use crate::postage_side::{params, postage_connect};

const PARTITIONS: u16 = 16;

/// Nanoseconds since the Unix epoch.
pub(crate) fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
        })
}

fn group_of(name: &str) -> Partitions {
    Partitions::new(name, PARTITIONS).by(OrderKey::parameter("seq"))
}

/// One measured point: workers, msg/s, ms until every worker worked.
struct Point {
    workers: usize,
    rate: f64,
    share_ms: f64,
}

pub(crate) async fn workers(args: &Args) -> Res<()> {
    if let Some(point) = &args.point {
        let group = point
            .strip_prefix("worker:")
            .ok_or("workers runs its points with --point worker:GROUP")?;
        return worker(args, group).await;
    }
    let n = args.count.unwrap_or(100_000);
    let mut points = Vec::new();
    for &workers in &args.workers {
        let mut rates = Vec::new();
        let mut shares = Vec::new();
        for run in 0..args.runs {
            let (rate, share_ms) = measure(args, workers, n, run).await?;
            println!(
                "{}",
                json!({"scenario": "workers", "workers": workers, "count": n,
                       "work_ms": args.work_ms, "msg_per_s": rate.round(),
                       "share_ms": share_ms.round()})
            );
            rates.push(rate);
            shares.push(share_ms);
        }
        points.push(Point {
            workers,
            rate: median(rates).unwrap_or(0.0),
            share_ms: median(shares).unwrap_or(0.0),
        });
    }
    println!();
    println!(
        "{:>8} {:>12} {:>16}",
        "workers", "msg/s", "time to share ms"
    );
    for p in &points {
        println!("{:>8} {:>12.0} {:>16.0}", p.workers, p.rate, p.share_ms);
    }
    let curve =
        |get: fn(&Point) -> f64| points.iter().map(|p| (p.workers as f64, get(p))).collect();
    let charts = [
        Chart::new(
            "partition group: msg/s",
            "worker processes",
            false,
            vec![Series::new("postage", 0, curve(|p| p.rate))],
        ),
        Chart::new(
            "time to share the partitions (ms)",
            "worker processes",
            false,
            vec![Series::new("postage", 0, curve(|p| p.share_ms))],
        ),
    ];
    std::fs::write(&args.svg, grid(&charts, 2))?;
    eprintln!("postage-bench: plot written to {}", args.svg);
    Ok(())
}

/// Fills a fresh group with `n` commands, starts `workers` processes,
/// and waits until they handled all: (msg/s, ms until each worked).
async fn measure(args: &Args, workers: usize, n: u64, run: usize) -> Res<(f64, f64)> {
    let name = format!("bench-workers-{}-{workers}-{run}", std::process::id());
    let partitions = group_of(&name);
    let connection = postage_connect(&args.url).await?;
    let probe = Probe::open(&connection).await?;
    probe.declare_exchange(&partitions.exchange()).await?;
    for p in 0..PARTITIONS {
        let queue = partitions.queue(p);
        probe.declare_queue(&queue).await?;
        probe
            .bind(queue.name(), partitions.exchange().name(), &routing_key(p))
            .await?;
    }
    let producer = Producer::builder()
        .ek(partitions.exchange(), "")
        .layer(PartitionLayer::new(partitions.clone()))
        .fingerprint(fingerprint())
        .connect(&connection)
        .await?;
    stream::iter(0..n)
        .map(|i| producer.command(COMMAND, params(i)).into_future())
        .buffer_unordered(args.window)
        .try_for_each(|()| async { Ok(()) })
        .await?;

    let started = now_ns();
    let mut children = Vec::new();
    let (tx, lines) = std::sync::mpsc::channel::<String>();
    for _ in 0..workers {
        let mut child = std::process::Command::new(std::env::current_exe()?)
            .args(["workers", "--point", &format!("worker:{name}")])
            .args(["--prefetch", &args.prefetch.to_string()])
            .args(["--work-ms", &args.work_ms.to_string()])
            .env("POSTAGE_URL", &args.url)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        children.push(child);
    }
    // Each worker's latest report: (first ns, last ns, handled).
    let mut reports: std::collections::HashMap<u32, (u64, u64, u64)> = Default::default();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let line = tokio::task::block_in_place(|| lines.recv_timeout(Duration::from_secs(1)));
        if let Ok(line) = line {
            let mut words = line.split_whitespace();
            if words.next() == Some("progress") {
                let numbers: Vec<u64> = words.filter_map(|w| w.parse().ok()).collect();
                if let [pid, first, last, handled] = numbers[..] {
                    reports.insert(u32::try_from(pid).unwrap_or(0), (first, last, handled));
                }
            }
        }
        if reports.values().map(|r| r.2).sum::<u64>() >= n {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("{workers} workers did not drain {n} messages in 600 s").into());
        }
    }
    for child in &children {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
    }
    for mut child in children {
        let _ = tokio::task::spawn_blocking(move || child.wait()).await?;
    }
    let first = reports.values().map(|r| r.0).min().unwrap_or(started);
    let last = reports.values().map(|r| r.1).max().unwrap_or(started);
    let everyone = reports.values().map(|r| r.0).max().unwrap_or(started);
    let rate = n as f64 / (last.saturating_sub(first) as f64 / 1e9).max(1e-9);
    let share_ms = everyone.saturating_sub(started) as f64 / 1e6;
    for p in 0..PARTITIONS {
        probe.delete_queue(partitions.queue(p).name()).await?;
    }
    probe.delete_exchange(partitions.exchange().name()).await?;
    probe.delete_exchange(&format!("{name}.members")).await?;
    connection.close().await?;
    Ok((rate, share_ms))
}

/// Counts what the worker handled, and when it handled the first and
/// the last.
#[derive(Default)]
struct Tally {
    first: AtomicU64,
    last: AtomicU64,
    handled: AtomicU64,
    /// How long each handler waits.
    work: Duration,
}

#[processor]
impl Tally {
    #[handler("command", "bench")]
    async fn bench(&self) {
        if !self.work.is_zero() {
            tokio::time::sleep(self.work).await;
        }
        let now = now_ns();
        let _ = self
            .first
            .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
        self.last.store(now, Ordering::Relaxed);
        self.handled.fetch_add(1, Ordering::Relaxed);
    }
}

/// One worker of group `group`: reports `progress <pid> <first ns>
/// <last ns> <handled>` every 100 ms once it handled something, until
/// SIGTERM; logs at INFO on standard error.
async fn worker(args: &Args, group: &str) -> Res<()> {
    // What the worker does with its partitions, on the bench's standard
    // error.
    let _ = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_writer(std::io::stderr)
        .try_init();
    let partitions = group_of(group);
    let connection = postage_connect(&args.url).await?;
    let tally = Arc::new(Tally {
        work: Duration::from_millis(args.work_ms),
        ..Tally::default()
    });
    let processor = Processor::builder_arc(tally.clone())
        .partitions(partitions.clone())
        .concurrency(4)
        .ordered_by(partitions.key().clone())
        .prefetch(args.prefetch)
        .fingerprint(fingerprint())
        .connect(&connection)
        .await?;
    let reporter = tokio::spawn(async move {
        let pid = std::process::id();
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let handled = tally.handled.load(Ordering::Relaxed);
            if handled > 0 {
                println!(
                    "progress {pid} {} {} {handled}",
                    tally.first.load(Ordering::Relaxed),
                    tally.last.load(Ordering::Relaxed)
                );
            }
        }
    });
    let mut scheduler = Scheduler::new();
    scheduler.add(processor);
    scheduler.listen_for_signals()?;
    scheduler.run().await?;
    reporter.abort();
    connection.close().await?;
    Ok(())
}

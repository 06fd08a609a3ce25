//! `scale`: how cost grows with load, Postage beside lapin. Three parts:
//! `rpc-par` at 1, 16, 256 and 1,024 calls in flight (2,000 calls per
//! call in flight, at most 20,000); 1, 10, 100 and
//! 1,000 processors (lapin: consumers, each on its own channel) sharing one
//! connection and one queue; and a backlog of 1,000,000 ready messages
//! consumed, its rate per tenth and its memory watched. Prints a table and
//! JSON lines and writes the plot (see [`crate::plot`]).

use std::future::IntoFuture;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt, TryStreamExt};
use postage::prelude::*;
use serde_json::json;

use crate::args::{Args, Impl, Scenario};
use crate::common::{COMMAND, Counter, KEY, Res, fingerprint};
use crate::fixture::Admin;
use crate::lapin_side::{Acks, lapin_close, lapin_connect, lapin_consumer_loop};
use crate::measure::{Record, measure, median, rss_kib};
use crate::plot::{Chart, Series};
use crate::postage_side::{params, postage_body, postage_connect};

const IN_FLIGHT: [usize; 4] = [1, 16, 256, 1_024];
const PROCESSORS: [usize; 4] = [1, 10, 100, 1_000];
/// Messages the processors of one connection share.
const SHARED: u64 = 50_000;
const SIDES: [Impl; 2] = [Impl::Postage, Impl::Lapin];

/// One point of a curve: the load, and per side the medians measured.
struct Point {
    load: usize,
    rate: [f64; 2],
    memory_kib: [f64; 2],
}

pub(crate) async fn scale(args: &Args, admin: &Admin) -> Res<()> {
    let rpc = rpc_part(args, admin).await?;
    let processors = processors_part(args, admin).await?;
    let backlog = backlog_part(args, admin).await?;
    println!();
    println!(
        "{:<34} {:>12} {:>12} {:>7}   {:>12} {:>12}",
        "load", "postage /s", "lapin /s", "ratio", "postage KiB", "lapin KiB"
    );
    for (what, points) in [
        ("calls in flight (rpc-par)", &rpc),
        ("processors on one connection", &processors),
    ] {
        for p in points {
            println!(
                "{:<34} {:>12.0} {:>12.0} {:>7.2}   {:>12.1} {:>12.1}",
                format!("{what}: {}", p.load),
                p.rate[0],
                p.rate[1],
                p.rate[0] / p.rate[1],
                p.memory_kib[0],
                p.memory_kib[1]
            );
        }
    }
    for (side, tenths) in SIDES.iter().zip(&backlog) {
        let rates: Vec<f64> = tenths.iter().map(|t| t.1).collect();
        println!(
            "backlog ({}): rate per tenth {}..{} msg/s, peak RSS {} KiB",
            side.name(),
            rates.iter().copied().fold(f64::INFINITY, f64::min).round(),
            rates.iter().copied().fold(0.0, f64::max).round(),
            tenths.iter().map(|t| t.2).max().unwrap_or(0)
        );
    }
    let svg = plot(&rpc, &processors, &backlog);
    std::fs::write(&args.svg, svg)?;
    eprintln!("postage-bench: wrote {}", args.svg);
    Ok(())
}

/// rpc-par at each number of calls in flight, `args.runs` runs a side.
async fn rpc_part(args: &Args, admin: &Admin) -> Res<Vec<Point>> {
    let mut points = Vec::new();
    for in_flight in IN_FLIGHT {
        let scaled = Args {
            in_flight,
            count: Some((2_000 * in_flight as u64).min(20_000)),
            ..args.clone()
        };
        let mut records: Vec<Record> = Vec::new();
        for run in 0..args.runs {
            for imp in alternate(run) {
                let record = measure(&scaled, Some(admin), Scenario::RpcPar, imp, run).await?;
                let mut line = record.to_json();
                line["in_flight"] = json!(in_flight);
                println!("{line}");
                records.push(record);
            }
        }
        let med = |imp: Impl, get: fn(&Record) -> f64| {
            median(records.iter().filter(|r| r.imp == imp).map(get).collect()).unwrap_or(0.0)
        };
        for imp in SIDES {
            println!(
                "{}",
                json!({"scale": "rpc-par", "impl": imp.name(), "in_flight": in_flight,
                       "calls_per_s": med(imp, Record::msg_per_s),
                       "p50_us": med(imp, |r| r.p50_us.unwrap_or(0.0)),
                       "p99_us": med(imp, |r| r.p99_us.unwrap_or(0.0)),
                       "peak_rss_kib": med(imp, |r| r.peak_rss_kib as f64)})
            );
        }
        points.push(Point {
            load: in_flight,
            rate: SIDES.map(|imp| med(imp, Record::msg_per_s)),
            memory_kib: SIDES.map(|imp| med(imp, |r| r.peak_rss_kib as f64)),
        });
    }
    Ok(points)
}

/// The order of the sides in run `run`: alternating, to spread drift.
fn alternate(run: usize) -> [Impl; 2] {
    if run.is_multiple_of(2) {
        SIDES
    } else {
        [SIDES[1], SIDES[0]]
    }
}

/// What one side measured with `n` consumers on one connection.
struct Shared {
    start: Duration,
    kib_each: f64,
    rate: f64,
}

async fn processors_part(args: &Args, admin: &Admin) -> Res<Vec<Point>> {
    let mut points = Vec::new();
    for n in PROCESSORS {
        let mut measured: [Vec<Shared>; 2] = [Vec::new(), Vec::new()];
        for run in 0..args.runs {
            for imp in alternate(run) {
                let fixture = admin.fixture(Scenario::Scale, imp, run).await?;
                let shared = match imp {
                    Impl::Postage => postage_shared(args, &fixture, n).await,
                    _ => lapin_shared(args, &fixture, n).await,
                };
                admin.remove(&fixture).await?;
                let shared = shared?;
                println!(
                    "{}",
                    json!({"scale": "processors", "impl": imp.name(), "processors": n,
                           "start_ms": shared.start.as_secs_f64() * 1e3,
                           "kib_per_processor": shared.kib_each, "msg_per_s": shared.rate})
                );
                measured[usize::from(imp != Impl::Postage)].push(shared);
            }
        }
        let med = |side: &[Shared], get: fn(&Shared) -> f64| {
            median(side.iter().map(get).collect()).unwrap_or(0.0)
        };
        points.push(Point {
            load: n,
            rate: [0, 1].map(|i| med(&measured[i], |s| s.rate)),
            memory_kib: [0, 1].map(|i| med(&measured[i], |s| s.kib_each)),
        });
    }
    Ok(points)
}

/// `n` processors on one connection, bound to one queue: the time to start
/// them, the memory each adds, and the rate at which they share
/// [`SHARED`] commands sent by a producer on the same connection.
async fn postage_shared(args: &Args, fixture: &crate::fixture::Fixture, n: usize) -> Res<Shared> {
    let connection = postage_connect(&args.url).await?;
    let counter = Counter::new(SHARED);
    let rss_before = rss_kib();
    let started = Instant::now();
    let mut running = Vec::with_capacity(n);
    for _ in 0..n {
        let processor = Processor::builder_arc(counter.clone())
            .bind(fixture.exchange(), [(fixture.queue.as_str(), KEY)])
            .prefetch(args.prefetch)
            .fingerprint(fingerprint())
            .connect(&connection)
            .await?;
        running.push((processor.control(), tokio::spawn(processor.run())));
    }
    let start = started.elapsed();
    let kib_each = rss_kib().saturating_sub(rss_before) as f64 / n as f64;
    let producer = Producer::builder()
        .ek(fixture.exchange(), KEY)
        .fingerprint(fingerprint())
        .connect(&connection)
        .await?;
    let sending = Instant::now();
    stream::iter(0..SHARED)
        .map(|i| producer.command(COMMAND, params(i)).into_future())
        .buffer_unordered(args.window)
        .try_for_each(|()| async { Ok(()) })
        .await?;
    counter.done.notified().await;
    let rate = SHARED as f64 / sending.elapsed().as_secs_f64();
    for (control, _) in &running {
        control.quit();
    }
    for (_, task) in running {
        task.await??;
    }
    connection.close().await?;
    Ok(Shared {
        start,
        kib_each,
        rate,
    })
}

/// The same with `n` lapin consumers, each on its own channel.
async fn lapin_shared(args: &Args, fixture: &crate::fixture::Fixture, n: usize) -> Res<Shared> {
    let connection = lapin_connect(&args.url).await?;
    let counter = Counter::new(SHARED);
    let rss_before = rss_kib();
    let started = Instant::now();
    let mut running = Vec::with_capacity(n);
    for _ in 0..n {
        let channel = connection.create_channel().await?;
        running.push(tokio::spawn(lapin_consumer_loop(
            channel,
            fixture.queue.clone(),
            args.prefetch,
            Acks::PerMessage,
            counter.clone(),
        )));
    }
    let start = started.elapsed();
    let kib_each = rss_kib().saturating_sub(rss_before) as f64 / n as f64;
    let sending = Instant::now();
    crate::scenario::pipe::lapin_publish_confirmed(args, &connection, fixture, SHARED).await?;
    counter.done.notified().await;
    let rate = SHARED as f64 / sending.elapsed().as_secs_f64();
    // The consumer that saw the last command has returned; the others
    // wait for more.
    for task in running {
        task.abort();
    }
    lapin_close(&connection).await;
    Ok(Shared {
        start,
        kib_each,
        rate,
    })
}

/// A tenth of the backlog: (messages handled at its end, its rate in
/// msg/s, RSS KiB at its end).
type Tenth = (u64, f64, u64);

/// A backlog of ready messages (1,000,000 unless `--count`) consumed by
/// one processor (lapin: one consumer, an ack per message), once a side.
async fn backlog_part(args: &Args, admin: &Admin) -> Res<[Vec<Tenth>; 2]> {
    let n = args.count.unwrap_or(1_000_000);
    let body = postage_body(7)?;
    let mut out: [Vec<Tenth>; 2] = [Vec::new(), Vec::new()];
    for (i, imp) in SIDES.into_iter().enumerate() {
        let fixture = admin.fixture(Scenario::Scale, imp, 99).await?;
        eprintln!("postage-bench: filling {} with {n} messages", fixture.queue);
        admin.prefill(&fixture, n, &body, args.window).await?;
        let counter = Counter::new(n);
        let watch = tokio::spawn(watch(counter.clone()));
        let result = match imp {
            Impl::Postage => postage_drain(args, &fixture, &counter).await,
            _ => lapin_drain(args, &fixture, &counter).await,
        };
        let samples = watch.await?;
        admin.remove(&fixture).await?;
        result?;
        out[i] = tenths(n, &samples);
        println!(
            "{}",
            json!({"scale": "backlog", "impl": imp.name(), "count": n,
                   "tenths": out[i].iter().map(|t| json!({"handled": t.0, "msg_per_s": t.1.round(), "rss_kib": t.2})).collect::<Vec<_>>()})
        );
    }
    Ok(out)
}

async fn postage_drain(
    args: &Args,
    fixture: &crate::fixture::Fixture,
    counter: &Arc<Counter>,
) -> Res<()> {
    let connection = postage_connect(&args.url).await?;
    let processor = Processor::builder_arc(counter.clone())
        .bind(fixture.exchange(), [(fixture.queue.as_str(), KEY)])
        .prefetch(args.prefetch)
        .fingerprint(fingerprint())
        .connect(&connection)
        .await?;
    let control = processor.control();
    let running = tokio::spawn(processor.run());
    counter.done.notified().await;
    control.quit();
    running.await??;
    connection.close().await?;
    Ok(())
}

async fn lapin_drain(
    args: &Args,
    fixture: &crate::fixture::Fixture,
    counter: &Arc<Counter>,
) -> Res<()> {
    let connection = lapin_connect(&args.url).await?;
    let channel = connection.create_channel().await?;
    lapin_consumer_loop(
        channel,
        fixture.queue.clone(),
        args.prefetch,
        Acks::PerMessage,
        counter.clone(),
    )
    .await?;
    lapin_close(&connection).await;
    Ok(())
}

/// Samples (seconds, handled, RSS KiB) every 100 ms until the counter
/// reaches its target.
async fn watch(counter: Arc<Counter>) -> Vec<(f64, u64, u64)> {
    let started = Instant::now();
    let mut samples = vec![(0.0, 0, rss_kib())];
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tick.tick().await;
        let handled = counter.handled.load(Ordering::Relaxed);
        samples.push((started.elapsed().as_secs_f64(), handled, rss_kib()));
        if handled >= counter.target {
            return samples;
        }
    }
}

/// The rate of each tenth of `n` messages, from the first samples past
/// each tenth's end.
fn tenths(n: u64, samples: &[(f64, u64, u64)]) -> Vec<Tenth> {
    let mut out = Vec::new();
    let mut from = samples.first().copied().unwrap_or_default();
    for tenth in 1..=10 {
        let mark = n * tenth / 10;
        let Some(&to) = samples.iter().find(|s| s.1 >= mark) else {
            break;
        };
        let peak = samples
            .iter()
            .filter(|s| s.0 > from.0 && s.0 <= to.0)
            .map(|s| s.2)
            .max()
            .unwrap_or(to.2);
        if to.0 > from.0 {
            out.push((to.1, (to.1 - from.1) as f64 / (to.0 - from.0), peak));
        }
        from = to;
    }
    out
}

/// Rate and memory against load, Postage beside lapin: the SVG.
fn plot(rpc: &[Point], processors: &[Point], backlog: &[Vec<Tenth>; 2]) -> String {
    let curve = |points: &[Point], side: usize, get: fn(&Point, usize) -> f64| -> Vec<(f64, f64)> {
        points
            .iter()
            .map(|p| (p.load as f64, get(p, side)))
            .collect()
    };
    let pair = |points: &[Point], get: fn(&Point, usize) -> f64| -> Vec<Series> {
        SIDES
            .iter()
            .enumerate()
            .map(|(side, imp)| Series::new(imp.name(), side, curve(points, side, get)))
            .collect()
    };
    let backlog_pair = |get: fn(&Tenth) -> f64| -> Vec<Series> {
        SIDES
            .iter()
            .enumerate()
            .map(|(side, imp)| {
                let points = backlog[side]
                    .iter()
                    .map(|t| (t.0 as f64 / 1e3, get(t)))
                    .collect();
                Series::new(imp.name(), side, points)
            })
            .collect()
    };
    let charts = [
        Chart::new(
            "rpc-par: calls/s",
            "calls in flight",
            true,
            pair(rpc, |p, s| p.rate[s]),
        ),
        Chart::new(
            "processors on one connection: msg/s",
            "processors",
            true,
            pair(processors, |p, s| p.rate[s]),
        ),
        Chart::new(
            "backlog: msg/s per tenth",
            "thousand messages handled",
            false,
            backlog_pair(|t| t.1),
        ),
        Chart::new(
            "rpc-par: peak RSS (KiB)",
            "calls in flight",
            true,
            pair(rpc, |p, s| p.memory_kib[s]),
        ),
        Chart::new(
            "KiB per processor",
            "processors",
            true,
            pair(processors, |p, s| p.memory_kib[s]),
        ),
        Chart::new(
            "backlog: RSS (KiB)",
            "thousand messages handled",
            false,
            backlog_pair(|t| t.2 as f64),
        ),
    ];
    crate::plot::grid(&charts, 3)
}

//! `scale`: how cost grows with load, Postage beside lapin. Three parts:
//! `rpc-par` at 1, 16, 256 and 1,024 calls in flight (2,000 calls per
//! call in flight, at most 20,000); 1, 10, 100 and
//! 1,000 processors (lapin: consumers, each on its own channel) sharing one
//! connection and one queue; and a backlog of 1,000,000 ready messages
//! consumed, its rate per tenth and its memory watched. Each point runs in
//! a process of its own (this binary, `--point ...`), so that its memory
//! figures are not those of the points before it. Prints a table and JSON
//! lines and writes the plot (see [`crate::plot`]).

use std::future::IntoFuture;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt, TryStreamExt};
use postage::prelude::*;
use serde_json::{Value, json};

use crate::args::{Args, Impl, Scenario};
use crate::common::{COMMAND, Counter, KEY, Res, fingerprint};
use crate::fixture::Admin;
use crate::lapin_side::{Acks, lapin_close, lapin_connect, lapin_consumer_loop};
use crate::measure::{median, rss_kib};
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
    if let Some(point) = &args.point {
        return one_point(args, admin, point).await;
    }
    let rpc = rpc_part(args).await?;
    let processors = processors_part(args).await?;
    let backlog = backlog_part(args).await?;
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
            "backlog ({}): rate per tenth {}..{} msg/s, RSS {}..{} KiB",
            side.name(),
            rates.iter().copied().fold(f64::INFINITY, f64::min).round(),
            rates.iter().copied().fold(0.0, f64::max).round(),
            tenths.iter().map(|t| t.2).min().unwrap_or(0),
            tenths.iter().map(|t| t.2).max().unwrap_or(0)
        );
    }
    let svg = plot(&rpc, &processors, &backlog);
    std::fs::write(&args.svg, svg)?;
    eprintln!("postage-bench: wrote {}", args.svg);
    Ok(())
}

/// Runs `words` (a scenario and its options) for side `imp` in a process
/// of its own, so that the memory it measures is its own (a process keeps
/// the pages it once used), and returns the JSON line it printed that has
/// `key`.
async fn in_own_process(args: &Args, imp: Impl, words: Vec<String>, key: &str) -> Res<Value> {
    let mut command = std::process::Command::new(std::env::current_exe()?);
    command
        .args(&words)
        .args(["--impl", imp.name(), "--runs", "1"])
        .args(["--prefetch", &args.prefetch.to_string()])
        .args(["--window", &args.window.to_string()])
        .env("POSTAGE_URL", &args.url)
        .stderr(std::process::Stdio::inherit());
    let output = tokio::task::spawn_blocking(move || command.output()).await??;
    if !output.status.success() {
        return Err(format!("postage-bench {words:?} failed: {}", output.status).into());
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|line| line.get(key).is_some())
        .ok_or_else(|| format!("postage-bench {words:?} printed no result").into())
}

/// A number of a child's JSON line (0 when it is missing).
fn number(line: &Value, key: &str) -> f64 {
    line[key].as_f64().unwrap_or(0.0)
}

/// The order of the sides in run `run`: alternating, to spread drift.
fn alternate(run: usize) -> [Impl; 2] {
    if run.is_multiple_of(2) {
        SIDES
    } else {
        [SIDES[1], SIDES[0]]
    }
}

/// The medians of `get` over each side's lines.
fn medians(lines: &[(Impl, Value)], get: impl Fn(&Value) -> f64) -> [f64; 2] {
    SIDES.map(|imp| {
        let values = lines.iter().filter(|l| l.0 == imp).map(|l| get(&l.1));
        median(values.collect()).unwrap_or(0.0)
    })
}

/// rpc-par at each number of calls in flight, `args.runs` runs a side,
/// each in a process of its own.
async fn rpc_part(args: &Args) -> Res<Vec<Point>> {
    let mut points = Vec::new();
    for in_flight in IN_FLIGHT {
        let count = (2_000 * in_flight as u64).min(20_000);
        let mut lines = Vec::new();
        for run in 0..args.runs {
            for imp in alternate(run) {
                let words = vec![
                    "rpc-par".into(),
                    "--in-flight".into(),
                    in_flight.to_string(),
                    "--count".into(),
                    count.to_string(),
                ];
                let mut line = in_own_process(args, imp, words, "scenario").await?;
                line["in_flight"] = json!(in_flight);
                println!("{line}");
                lines.push((imp, line));
            }
        }
        let [calls, p50, p99, rss] = ["msg_per_s", "p50_us", "p99_us", "peak_rss_kib"]
            .map(|key| medians(&lines, |line| number(line, key)));
        for (i, imp) in SIDES.iter().enumerate() {
            println!(
                "{}",
                json!({"scale": "rpc-par", "impl": imp.name(), "in_flight": in_flight,
                       "calls_per_s": calls[i], "p50_us": p50[i], "p99_us": p99[i],
                       "peak_rss_kib": rss[i]})
            );
        }
        points.push(Point {
            load: in_flight,
            rate: calls,
            memory_kib: rss,
        });
    }
    Ok(points)
}

/// 1 to 1,000 processors (lapin: consumers) on one connection, each
/// measured in a process of its own.
async fn processors_part(args: &Args) -> Res<Vec<Point>> {
    let mut points = Vec::new();
    for n in PROCESSORS {
        let mut lines = Vec::new();
        for run in 0..args.runs {
            for imp in alternate(run) {
                let words = vec!["scale".into(), "--point".into(), format!("processors:{n}")];
                let line = in_own_process(args, imp, words, "scale").await?;
                println!("{line}");
                lines.push((imp, line));
            }
        }
        points.push(Point {
            load: n,
            rate: medians(&lines, |line| number(line, "msg_per_s")),
            memory_kib: medians(&lines, |line| number(line, "kib_per_processor")),
        });
    }
    Ok(points)
}

/// The backlog, once a side, each in a process of its own.
async fn backlog_part(args: &Args) -> Res<[Vec<Tenth>; 2]> {
    let mut out: [Vec<Tenth>; 2] = [Vec::new(), Vec::new()];
    for (i, imp) in SIDES.into_iter().enumerate() {
        let mut words = vec!["scale".into(), "--point".into(), "backlog".into()];
        if let Some(count) = args.count {
            words.extend(["--count".into(), count.to_string()]);
        }
        let line = in_own_process(args, imp, words, "tenths").await?;
        println!("{line}");
        out[i] = line["tenths"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| {
                let handled = t["handled"].as_u64().unwrap_or(0);
                (
                    handled,
                    number(t, "msg_per_s"),
                    t["rss_kib"].as_u64().unwrap_or(0),
                )
            })
            .collect();
    }
    Ok(out)
}

/// One point, measured in this process for the side of `--impl`: what a
/// child of [`in_own_process`] does.
async fn one_point(args: &Args, admin: &Admin, point: &str) -> Res<()> {
    let imp = *args.impls.first().ok_or("no side to measure")?;
    let line = match point.split_once(':') {
        Some(("processors", n)) => {
            let n: usize = n.parse()?;
            let fixture = admin.fixture(Scenario::Scale, imp, 0).await?;
            let shared = match imp {
                Impl::Postage => postage_shared(args, &fixture, n).await,
                _ => lapin_shared(args, &fixture, n).await,
            };
            admin.remove(&fixture).await?;
            let shared = shared?;
            json!({"scale": "processors", "impl": imp.name(), "processors": n,
                   "start_ms": shared.start.as_secs_f64() * 1e3, "first_kib": shared.first_kib,
                   "kib_per_processor": shared.kib_each, "msg_per_s": shared.rate})
        }
        None if point == "backlog" => {
            let n = args.count.unwrap_or(1_000_000);
            let tenths = backlog_point(args, admin, imp, n).await?;
            json!({"scale": "backlog", "impl": imp.name(), "count": n,
                   "tenths": tenths.iter().map(|t| json!({"handled": t.0, "msg_per_s": t.1.round(), "rss_kib": t.2})).collect::<Vec<_>>()})
        }
        _ => return Err(format!("unknown point {point:?}: processors:N or backlog").into()),
    };
    println!("{line}");
    Ok(())
}

/// What one side measured with `n` consumers on one connection.
struct Shared {
    start: Duration,
    /// What the first consumer added to the RSS: with it come what the
    /// first of anything costs (buffers, tables, the runtime's pages).
    first_kib: f64,
    /// What each one after the first added, on average (the first's
    /// when there is one).
    kib_each: f64,
    rate: f64,
}

/// (The first's KiB, each further one's) from the RSS before any, after
/// the first and after all `n`.
fn memory_each(before: u64, first: u64, after: u64, n: usize) -> (f64, f64) {
    let first_kib = first.saturating_sub(before) as f64;
    if n > 1 {
        (
            first_kib,
            after.saturating_sub(first) as f64 / (n - 1) as f64,
        )
    } else {
        (first_kib, first_kib)
    }
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
    let mut rss_first = rss_before;
    for i in 0..n {
        let processor = Processor::builder_arc(counter.clone())
            .bind(fixture.exchange(), [(fixture.queue.as_str(), KEY)])
            .prefetch(args.prefetch)
            .fingerprint(fingerprint())
            .connect(&connection)
            .await?;
        running.push((processor.control(), tokio::spawn(processor.run())));
        if i == 0 {
            rss_first = rss_kib();
        }
    }
    let start = started.elapsed();
    let (first_kib, kib_each) = memory_each(rss_before, rss_first, rss_kib(), n);
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
        first_kib,
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
    let mut rss_first = rss_before;
    for i in 0..n {
        let channel = connection.create_channel().await?;
        running.push(tokio::spawn(lapin_consumer_loop(
            channel,
            fixture.queue.clone(),
            args.prefetch,
            Acks::PerMessage,
            counter.clone(),
        )));
        if i == 0 {
            rss_first = rss_kib();
        }
    }
    let start = started.elapsed();
    let (first_kib, kib_each) = memory_each(rss_before, rss_first, rss_kib(), n);
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
        first_kib,
        kib_each,
        rate,
    })
}

/// A tenth of the backlog: (messages handled at its end, its rate in
/// msg/s, RSS KiB at its end).
type Tenth = (u64, f64, u64);

/// A backlog of `n` ready messages consumed by one processor (lapin: one
/// consumer, an ack per message), its rate and RSS per tenth.
async fn backlog_point(args: &Args, admin: &Admin, imp: Impl, n: u64) -> Res<Vec<Tenth>> {
    let body = postage_body(7)?;
    let fixture = admin.fixture(Scenario::Scale, imp, 0).await?;
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
    Ok(tenths(n, &samples))
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
            "KiB per further processor",
            "processors",
            true,
            pair(processors.get(1..).unwrap_or_default(), |p, s| {
                p.memory_kib[s]
            }),
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

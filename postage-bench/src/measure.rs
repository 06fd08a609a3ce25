//! Measurements: CPU time, context switches and RSS from `/proc`, what a
//! run measured ([`Timed`]), one run's [`Record`], percentiles and medians,
//! and [`measure`], which sets up, runs and tears down one run.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::args::{Args, Impl, Scenario};
use crate::common::Res;
use crate::fixture::{Admin, memory_fixture};
use crate::postage_side::postage_body;
use crate::scenario::{Ctx, run_one};
use postage::testing::MemoryBroker;

/// CPU time, context switches and wall clock at one instant.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Snapshot {
    at: Instant,
    user_s: f64,
    sys_s: f64,
    switches: u64,
}

impl Snapshot {
    pub(crate) fn now() -> Self {
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

pub(crate) fn rss_kib() -> u64 {
    status_kib("VmRSS")
}

/// Resets the peak RSS (VmHWM) to the current RSS (Linux 4.0+).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// What a scenario measured.
pub(crate) struct Timed {
    start: Snapshot,
    end: Snapshot,
    pub(crate) latencies: Vec<Duration>,
    pub(crate) extra: serde_json::Map<String, Value>,
}

impl Timed {
    pub(crate) fn new(start: Snapshot, end: Snapshot) -> Self {
        Timed {
            start,
            end,
            latencies: Vec::new(),
            extra: serde_json::Map::new(),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Record {
    pub(crate) scenario: Scenario,
    pub(crate) imp: Impl,
    pub(crate) count: u64,
    pub(crate) secs: f64,
    pub(crate) cpu_user_s: f64,
    pub(crate) cpu_sys_s: f64,
    pub(crate) switches: u64,
    pub(crate) peak_rss_kib: u64,
    pub(crate) p50_us: Option<f64>,
    pub(crate) p99_us: Option<f64>,
    pub(crate) extra: serde_json::Map<String, Value>,
}

impl Record {
    pub(crate) fn msg_per_s(&self) -> f64 {
        self.count as f64 / self.secs
    }

    pub(crate) fn cpu_us_per_msg(&self) -> f64 {
        (self.cpu_user_s + self.cpu_sys_s) * 1e6 / self.count as f64
    }

    pub(crate) fn switches_per_msg(&self) -> f64 {
        self.switches as f64 / self.count as f64
    }

    pub(crate) fn to_json(&self) -> Value {
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

pub(crate) fn round(x: f64, digits: i32) -> f64 {
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

pub(crate) fn median(mut xs: Vec<f64>) -> Option<f64> {
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

pub(crate) async fn measure(
    args: &Args,
    admin: Option<&Admin>,
    scenario: Scenario,
    imp: Impl,
    run: usize,
) -> Res<Record> {
    let n = args.count.unwrap_or_else(|| scenario.default_count());
    let body = postage_body(7)?;
    let prefill = (scenario == Scenario::Consume).then_some((n, body.as_slice()));
    let memory = (imp == Impl::Memory).then(MemoryBroker::new);
    let fixture = match (&memory, admin) {
        (Some(broker), _) => memory_fixture(broker, scenario, run, prefill).await?,
        (None, Some(admin)) => {
            let fixture = admin.fixture(scenario, imp, run).await?;
            if let Some((n, body)) = prefill {
                admin.prefill(&fixture, n, body, args.window).await?;
            }
            fixture
        }
        (None, None) => return Err("no RabbitMQ connection for a RabbitMQ run".into()),
    };
    let ctx = Ctx {
        args,
        memory,
        fixture: &fixture,
        n,
        soak: scenario == Scenario::Soak,
    };
    reset_peak_rss();
    let result = if args.dry {
        let now = Snapshot::now();
        Ok(Timed::new(now, now))
    } else {
        run_one(&ctx, scenario, imp).await
    };
    let peak_rss_kib = status_kib("VmHWM");
    if let (None, Some(admin)) = (&ctx.memory, admin) {
        admin.remove(&fixture).await?;
    }
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

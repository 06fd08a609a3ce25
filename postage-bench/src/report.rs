//! The report after all runs: a table of medians and postage/lapin ratios
//! against their budgets, or one JSON summary line per scenario.

use serde_json::{Value, json};

use crate::args::{Args, Impl, Scenario};
use crate::measure::{Record, median, round};

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

pub(crate) fn report(args: &Args, records: &[Record]) {
    let mut scenarios: Vec<Scenario> = Vec::new();
    for r in records {
        if !scenarios.contains(&r.scenario) {
            scenarios.push(r.scenario);
        }
    }
    // Postage against lapin on RabbitMQ; or, with runs on the in-memory
    // broker, Postage in memory against Postage on RabbitMQ.
    let (a, b) = if records.iter().any(|r| r.imp == Impl::Memory) {
        (Impl::Memory, Impl::Postage)
    } else {
        (Impl::Postage, Impl::Lapin)
    };
    if !args.json {
        println!();
        println!(
            "{:<16} {:<15} {:>12} {:>12} {:>8} {:>19}  budget",
            "scenario",
            "metric",
            a.name(),
            b.name(),
            "ratio",
            "paired (min-max)"
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
            let (postage, lapin) = (side(a), side(b));
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
            let budget = metric.budget.filter(|_| b == Impl::Lapin);
            let verdict = match (ratio, budget) {
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
                    json!({a.name(): p.map(|x| round(x, 2)), b.name(): l.map(|x| round(x, 2)),
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

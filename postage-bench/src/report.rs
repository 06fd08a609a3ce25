//! The report after all runs: a table of medians and postage/lapin ratios
//! against their budgets, or one JSON summary line per scenario.

use serde_json::{Value, json};

use crate::args::{Args, Impl, Scenario};
use crate::measure::{Record, median, round};

struct Metric {
    name: &'static str,
    get: fn(&Record) -> Option<f64>,
    /// The budget on postage/lapin: (bound, higher is better), where no
    /// [`target`] says otherwise.
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

/// The bound on postage/`against` for `metric` in `scenario`: (bound,
/// higher is better). Acknowledgement coalescing sets the consume and pipe
/// targets; elsewhere the budget of parity with lapin holds.
fn target(scenario: Scenario, metric: &Metric, against: Impl) -> Option<(f64, bool)> {
    match (scenario, metric.name, against) {
        (Scenario::Consume, "msg_per_s", Impl::Lapin) => Some((1.8, true)),
        (Scenario::Pipe, "msg_per_s", Impl::Lapin) => Some((1.3, true)),
        (_, "msg_per_s", Impl::LapinBatch) => Some((0.95, true)),
        (_, _, Impl::Lapin) => metric.budget,
        _ => None,
    }
}

/// One side against another for one metric: the other side's median, the
/// ratio of the medians, and each run's own ratio (the sides of a run go
/// back to back, so their spread shows how far drift moves one ratio).
struct Comparison {
    median: Option<f64>,
    ratio: Option<f64>,
    paired: Option<f64>,
    spread: Option<(f64, f64)>,
    verdict: String,
}

impl Comparison {
    fn new(ours: &[f64], theirs: Vec<f64>, bound: Option<(f64, bool)>) -> Self {
        let paired: Vec<f64> = ours.iter().zip(&theirs).map(|(p, l)| p / l).collect();
        let spread = (!paired.is_empty()).then(|| {
            let lo = paired.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = paired.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            (lo, hi)
        });
        let median_theirs = median(theirs);
        let ratio = median(ours.to_vec()).zip(median_theirs).map(|(p, l)| p / l);
        let verdict = match (ratio, bound) {
            (Some(r), Some((bound, true))) => {
                format!("{} >= {bound}", if r >= bound { "ok  " } else { "MISS" })
            }
            (Some(r), Some((bound, false))) => {
                format!("{} <= {bound}", if r <= bound { "ok  " } else { "MISS" })
            }
            _ => String::new(),
        };
        Comparison {
            median: median_theirs,
            ratio,
            paired: median(paired),
            spread,
            verdict,
        }
    }

    fn json(&self, name: &str) -> Value {
        json!({name: self.median.map(|x| round(x, 2)),
               "ratio": self.ratio.map(|x| round(x, 3)),
               "paired_ratio": self.paired.map(|x| round(x, 3)),
               "paired_min": self.spread.map(|s| round(s.0, 3)),
               "paired_max": self.spread.map(|s| round(s.1, 3)),
               "target": self.verdict})
    }

    fn columns(&self) -> String {
        let paired = match (self.paired, self.spread) {
            (Some(m), Some((lo, hi))) => format!("{m:.3} ({lo:.2}-{hi:.2})"),
            _ => "-".to_owned(),
        };
        format!(
            "{:>12} {:>8} {paired:>19}  {:<10}",
            show(self.median),
            self.ratio
                .map_or_else(|| "-".to_owned(), |r| format!("{r:.3}")),
            self.verdict,
        )
    }
}

fn show(x: Option<f64>) -> String {
    x.map_or_else(|| "-".to_owned(), |x| format!("{x:.1}"))
}

pub(crate) fn report(args: &Args, records: &[Record]) {
    let mut scenarios: Vec<Scenario> = Vec::new();
    for r in records {
        if !scenarios.contains(&r.scenario) {
            scenarios.push(r.scenario);
        }
    }
    // Postage against lapin (and the batching lapin) on RabbitMQ; or, with
    // runs on the in-memory broker, Postage in memory against Postage on
    // RabbitMQ.
    let (ours, others) = if records.iter().any(|r| r.imp == Impl::Memory) {
        (Impl::Memory, vec![Impl::Postage])
    } else {
        (Impl::Postage, vec![Impl::Lapin, Impl::LapinBatch])
    };
    if !args.json {
        println!();
        let mut header = format!("{:<16} {:<15} {:>12}", "scenario", "metric", ours.name());
        for other in &others {
            header.push_str(&format!(
                " {:>12} {:>8} {:>19}  {:<10}",
                other.name(),
                "ratio",
                "paired (min-max)",
                "target"
            ));
        }
        println!("{}", header.trim_end());
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
            let values = side(ours);
            let Some(ours_median) = median(values.clone()) else {
                continue;
            };
            let comparisons: Vec<(Impl, Comparison)> = others
                .iter()
                .map(|&other| {
                    let bound = target(scenario, metric, other);
                    (other, Comparison::new(&values, side(other), bound))
                })
                .filter(|(_, c)| c.median.is_some())
                .collect();
            if args.json {
                let mut entry = serde_json::Map::new();
                entry.insert(ours.name().into(), json!(round(ours_median, 2)));
                for (other, comparison) in &comparisons {
                    entry.insert(other.name().into(), comparison.json(other.name()));
                }
                summary.insert(metric.name.into(), Value::Object(entry));
            } else {
                let mut line = format!(
                    "{:<16} {:<15} {:>12}",
                    scenario.name(),
                    metric.name,
                    show(Some(ours_median))
                );
                for (_, comparison) in &comparisons {
                    line.push(' ');
                    line.push_str(&comparison.columns());
                }
                println!("{}", line.trim_end());
            }
        }
        if args.json {
            println!("{}", Value::Object(summary));
        }
    }
}

//! `soak`: a long `pipe` with RSS watched. Its runs are `pipe`'s, with
//! `Ctx::soak` on; here are the RSS sampler and what it reports.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::common::Counter;
use crate::measure::rss_kib;

/// Samples RSS while a long run goes on: (messages handled, RSS KiB).
pub(crate) fn spawn_rss_sampler(
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

pub(crate) fn soak_report(
    rss_start: u64,
    n: u64,
    samples: &[(u64, u64)],
) -> serde_json::Map<String, Value> {
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

//! `idle-queues`: what an idle queue costs the in-memory broker. Declares
//! N queues, each bound to one exchange, and reports the resident memory
//! they added, per queue.

use postage::testing::Probe;
use postage::{Exchange, Queue};
use serde_json::json;

use crate::common::Res;
use crate::measure::{Snapshot, Timed, rss_kib};
use crate::scenario::Ctx;

pub(crate) async fn idle_queues(ctx: &Ctx<'_>) -> Res<Timed> {
    let broker = ctx.memory.clone().unwrap_or_default();
    let probe = Probe::open(&broker.connect().await?).await?;
    let exchange = Exchange::direct("idle-queues");
    probe.declare_exchange(&exchange).await?;
    let before = rss_kib();
    let start = Snapshot::now();
    for i in 0..ctx.n {
        let name = format!("idle-queue-{i}");
        probe.declare_queue(&Queue::new(name.as_str())).await?;
        probe.bind(&name, exchange.name(), &name).await?;
    }
    let end = Snapshot::now();
    let after = rss_kib();
    let mut timed = Timed::new(start, end);
    let added = after.saturating_sub(before);
    timed
        .extra
        .insert("queues".into(), json!(broker.queues().len()));
    timed.extra.insert("rss_added_kib".into(), json!(added));
    timed.extra.insert(
        "bytes_per_queue".into(),
        json!(added as f64 * 1024.0 / ctx.n as f64),
    );
    Ok(timed)
}

//! Acknowledgements coalesced in runs, through a processor: every
//! finished delivery is acknowledged (nothing comes back after a graceful
//! stop), with one queue or several, in order or out of order, with
//! rejections between the acknowledged; and one by one when switched off.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use postage::prelude::*;
use postage_tests::conformance::{TestBroker, probe};
use postage_tests::{conformance, next_seen, quit_and_wait, unique};
use tokio::sync::mpsc;

/// Counts its runs; `odd` ones sleep a little, out of order with the
/// others when the processor runs several at once.
struct Tally {
    seen: mpsc::UnboundedSender<u64>,
    redelivered: Arc<AtomicUsize>,
}

#[processor]
impl Tally {
    #[context_handler("message", "command", "tally")]
    async fn tally(ctx: Context<Self>) {
        let n: u64 = ctx.message.content.parameters_as().unwrap_or(0);
        if ctx.redelivered {
            ctx.processor.redelivered.fetch_add(1, Ordering::SeqCst);
        }
        if n % 2 == 1 {
            tokio::time::sleep(Duration::from_millis(n % 7)).await;
        }
        let _ = ctx.processor.seen.send(n);
    }
}

/// Sends `count` tallies (and, every tenth, a body that cannot be
/// decoded) spread over `queues` queues, runs a processor with
/// `concurrency` and `coalesce` until every tally is handled, stops it,
/// and checks that nothing is left unacknowledged: the queues are empty
/// once its channel is closed.
async fn every_finished_delivery_is_acknowledged(
    broker: &TestBroker,
    queues: usize,
    concurrency: usize,
    coalesce: bool,
) {
    const COUNT: u64 = 120;
    let connection = broker.connect().await;
    let probe = probe(&connection).await;
    let exchange = Exchange::new(unique("acks"), ExchangeKind::Direct).auto_delete(true);
    let names: Vec<String> = (0..queues).map(|_| unique("acks")).collect();
    for name in &names {
        probe
            .declare_queue(&Queue::new(name.as_str()))
            .await
            .unwrap();
    }
    let (tx, mut seen) = mpsc::unbounded_channel();
    let redelivered = Arc::new(AtomicUsize::new(0));
    let processor = Processor::builder(Tally {
        seen: tx,
        redelivered: redelivered.clone(),
    })
    .bind(
        exchange.clone(),
        names.iter().map(|name| (name.as_str(), name.as_str())),
    )
    .prefetch(10)
    .concurrency(concurrency)
    .coalesce_acks(coalesce)
    .connect(&connection)
    .await
    .unwrap();
    let control = processor.control();
    let task = tokio::spawn(processor.run());
    let producer = Producer::builder()
        .ek(exchange.clone(), names[0].as_str())
        .connect(&connection)
        .await
        .unwrap();
    for n in 0..COUNT {
        let key = &names[usize::try_from(n).unwrap() % queues];
        producer
            .command("tally", n)
            .key(key.as_str())
            .await
            .unwrap();
        if n % 10 == 0 {
            probe
                .publish(exchange.name(), key, b"{not json".to_vec())
                .content_type("application/json")
                .await
                .unwrap();
        }
    }
    let mut got = Vec::new();
    while got.len() < usize::try_from(COUNT).unwrap() {
        got.push(next_seen(&mut seen).await);
    }
    quit_and_wait(&control, task).await;
    got.sort_unstable();
    assert_eq!(got, (0..COUNT).collect::<Vec<_>>(), "each tally once");
    assert_eq!(redelivered.load(Ordering::SeqCst), 0);
    // Its channel closed: what it had not acknowledged would be back.
    for name in &names {
        assert_eq!(probe.depth(name).await.unwrap(), 0, "{name}");
        probe.delete_queue(name).await.unwrap();
    }
}

conformance! {
    /// One queue, one handler at a time: runs in order.
    async fn runs_are_acknowledged_in_order(broker) {
        every_finished_delivery_is_acknowledged(&broker, 1, 1, true).await;
    }

    /// Three queues, four handlers at a time: deliveries finish out of
    /// order and across queues; none is acknowledged before it finished,
    /// and all are by the end.
    async fn runs_are_acknowledged_out_of_order_across_queues(broker) {
        every_finished_delivery_is_acknowledged(&broker, 3, 4, true).await;
    }

    /// Switched off: one acknowledgement per delivery, same outcome.
    async fn acknowledgements_one_by_one_when_switched_off(broker) {
        every_finished_delivery_is_acknowledged(&broker, 2, 3, false).await;
    }
}

//! Ordered work: a queue with a single active consumer keeps its order
//! across processors (one stands by and takes over), and keyed lanes keep
//! each key's order inside one processor while other keys run at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use postage::consumer::Health;
use postage::flow::{OrderKey, Partitions};
use postage::middleware::PartitionLayer;
use postage::prelude::*;
use postage::processor::ProcessorBuilder;
use postage::remote::{Destination, Remote};
use postage_tests::conformance::probe;
use postage_tests::{conformance, quit_and_wait, unique};
use serde::Deserialize;
use serde_json::json;

#[derive(Debug, Deserialize)]
struct Step {
    key: String,
    seq: u64,
}

/// What the handlers did: each step in the order handled, by whom, and
/// the order checker's findings.
#[derive(Default)]
struct Ledger {
    handled: Vec<(&'static str, String, u64)>,
    /// Steps of one key running at once.
    overlaps: usize,
    /// Steps of one key handled out of order (or twice).
    out_of_order: usize,
    /// Keys handled at once, and the most seen.
    running: HashMap<String, usize>,
    most_at_once: usize,
}

struct Steps {
    who: &'static str,
    ledger: Arc<Mutex<Ledger>>,
    pause: Duration,
}

#[processor]
impl Steps {
    #[handler("command", "step")]
    async fn step(&self, Params(step): Params<Step>) {
        {
            let mut ledger = self.ledger.lock().unwrap();
            let last = ledger
                .handled
                .iter()
                .rev()
                .find(|(_, key, _)| *key == step.key)
                .map(|(_, _, seq)| *seq);
            if last.is_some_and(|last| step.seq != last + 1) || (last.is_none() && step.seq != 0) {
                ledger.out_of_order += 1;
            }
            let running = ledger.running.entry(step.key.clone()).or_insert(0);
            *running += 1;
            if *running > 1 {
                ledger.overlaps += 1;
            }
            let at_once = ledger.running.values().filter(|&&n| n > 0).count();
            ledger.most_at_once = ledger.most_at_once.max(at_once);
            ledger.handled.push((self.who, step.key.clone(), step.seq));
        }
        // Uneven work: later steps of a key could overtake earlier ones
        // if nothing kept them apart.
        let jitter = Duration::from_millis((step.seq * 7 + step.key.len() as u64 * 3) % 13);
        tokio::time::sleep(self.pause + jitter).await;
        *self
            .ledger
            .lock()
            .unwrap()
            .running
            .get_mut(&step.key)
            .unwrap() -= 1;
    }
}

/// Waits up to `seconds` for `done`.
async fn until(what: &str, seconds: u64, mut done: impl FnMut() -> bool) {
    for _ in 0..seconds * 20 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("waited {seconds} s for {what}");
}

/// A processor of `Steps` on `queue`, bound to `exchange` with the
/// queue's name, running.
async fn start(
    connection: &Connection,
    exchange: &Exchange,
    queue: Queue,
    steps: Steps,
    build: impl FnOnce(ProcessorBuilder<Steps>) -> ProcessorBuilder<Steps>,
) -> (
    postage::consumer::ConsumerHandle,
    Control,
    tokio::task::JoinHandle<postage::Result<postage::Stop>>,
) {
    let key = queue.name().to_owned();
    let processor = build(
        Processor::builder(steps)
            .bind(exchange.clone(), [(queue, key.as_str())])
            .fingerprint(Fingerprint::new(unique("steps"), "service")),
    )
    .connect(connection)
    .await
    .expect("the processor connects");
    (
        processor.consumer(),
        processor.control(),
        tokio::spawn(processor.run()),
    )
}

async fn sender(connection: &Connection, exchange: &Exchange, key: &str) -> Producer {
    Producer::builder()
        .ek(exchange.clone(), key)
        .connect(connection)
        .await
        .expect("the producer connects")
}

conformance! {
    /// Two processors on a queue with a single active consumer: the first
    /// takes every message while the other stands by (and says so); when
    /// the first quits, the other takes over where it stopped. Each
    /// message is handled once, all in the queue's order.
    async fn a_single_active_consumer_keeps_the_order_across_processors(broker) {
        let name = unique("single");
        let exchange = Exchange::new(name.clone(), ExchangeKind::Direct).auto_delete(true);
        let queue = || Queue::new(name.clone()).single_active_consumer();
        let ledger = Arc::new(Mutex::new(Ledger::default()));
        let (first_connection, second_connection) = (broker.connect().await, broker.connect().await);
        let steps = |who| Steps { who, ledger: ledger.clone(), pause: Duration::from_millis(40) };
        let watchdog = |b: ProcessorBuilder<Steps>| b.prefetch(4).watchdog(Duration::from_millis(200));
        let (_, first_control, first) =
            start(&first_connection, &exchange, queue(), steps("first"), watchdog).await;
        let (second_health, second_control, second) =
            start(&second_connection, &exchange, queue(), steps("second"), watchdog).await;
        let producer = sender(&first_connection, &exchange, &name).await;
        const STEPS: u64 = 40;
        for seq in 0..STEPS {
            producer.command("step", json!({"key": "k", "seq": seq})).await.unwrap();
        }
        until("the second to stand by", 10, || second_health.health() == Health::StandingBy).await;
        until("the first to handle some", 10, || ledger.lock().unwrap().handled.len() >= 5).await;
        quit_and_wait(&first_control, first).await;
        let by_first = ledger.lock().unwrap().handled.len();
        assert!(by_first < STEPS as usize, "the first quit before the end ({by_first})");
        until("every step", 20, || ledger.lock().unwrap().handled.len() >= STEPS as usize).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        quit_and_wait(&second_control, second).await;
        first_connection.close().await.unwrap();
        second_connection.close().await.unwrap();
        let ledger = ledger.lock().unwrap();
        let order: Vec<u64> = ledger.handled.iter().map(|(_, _, seq)| *seq).collect();
        assert_eq!(order, (0..STEPS).collect::<Vec<_>>(), "each once, in order");
        let split = ledger.handled.iter().position(|(who, _, _)| *who == "second").unwrap();
        assert!(
            ledger.handled[..split].iter().all(|(who, _, _)| *who == "first")
                && ledger.handled[split..].iter().all(|(who, _, _)| *who == "second"),
            "the second took over where the first stopped: {:?}",
            ledger.handled
        );
        assert_eq!((ledger.overlaps, ledger.out_of_order), (0, 0));
    }

    /// Keyed lanes: with four at once and the order kept by a parameter,
    /// the steps of each of eight keys never overlap and run in order,
    /// while steps of different keys run at once.
    async fn keyed_lanes_keep_each_keys_order_while_keys_run_at_once(broker) {
        let name = unique("lanes");
        let exchange = Exchange::new(name.clone(), ExchangeKind::Direct).auto_delete(true);
        let ledger = Arc::new(Mutex::new(Ledger::default()));
        let connection = broker.connect().await;
        let steps = Steps { who: "one", ledger: ledger.clone(), pause: Duration::from_millis(5) };
        let (_, control, running) = start(
            &connection,
            &exchange,
            Queue::new(name.clone()).auto_delete(true),
            steps,
            |b| b.prefetch(64).concurrency(4).ordered_by(OrderKey::parameter("key")),
        )
        .await;
        let producer = sender(&connection, &exchange, &name).await;
        const KEYS: u64 = 8;
        const EACH: u64 = 25;
        for seq in 0..EACH {
            for key in 0..KEYS {
                let key = format!("account-{key}");
                producer.command("step", json!({"key": key, "seq": seq})).await.unwrap();
            }
        }
        let total = (KEYS * EACH) as usize;
        until("every step", 30, || ledger.lock().unwrap().handled.len() >= total).await;
        quit_and_wait(&control, running).await;
        connection.close().await.unwrap();
        let ledger = ledger.lock().unwrap();
        assert_eq!(ledger.handled.len(), total, "each once");
        assert_eq!(ledger.overlaps, 0, "no key ran two steps at once");
        assert_eq!(ledger.out_of_order, 0, "every key's steps in order");
        assert!(ledger.most_at_once >= 2, "keys ran at once ({})", ledger.most_at_once);
    }

    /// A partition group of 8 over 3 workers: each holds at most
    /// ⌈8/3⌉ + 1 partitions and together they hold all; a worker that
    /// quits and one that joins get the partitions spread again. Steps of
    /// 12 keys sent all along are each handled once, every key's in
    /// order, never two of one key at once.
    async fn partitions_spread_over_workers_and_keep_each_keys_order(broker) {
        const PARTITIONS: u16 = 8;
        let group = unique("accounts");
        let partitions = Partitions::new(group.clone(), PARTITIONS).by(OrderKey::parameter("key"));
        let ledger = Arc::new(Mutex::new(Ledger::default()));
        let worker = |who: &'static str| {
            let (broker, partitions, ledger) = (&broker, partitions.clone(), ledger.clone());
            async move {
                let connection = broker.connect().await;
                let processor = Processor::builder(Steps { who, ledger, pause: Duration::from_millis(2) })
                    .partitions(partitions)
                    .fingerprint(Fingerprint::new(who, "worker"))
                    .connect(&connection)
                    .await
                    .expect("the worker connects");
                let (consumer, control) = (processor.consumer(), processor.control());
                (connection, consumer, control, tokio::spawn(processor.run()))
            }
        };
        let spread = |workers: &[&postage::consumer::ConsumerHandle]| {
            let held: Vec<Vec<String>> = workers.iter().map(|w| w.queues()).collect();
            let all: std::collections::BTreeSet<&String> = held.iter().flatten().collect();
            let most = (usize::from(PARTITIONS)).div_ceil(workers.len()) + 1;
            all.len() == usize::from(PARTITIONS) && held.iter().all(|h| h.len() <= most)
        };
        let (c0, h0, q0, r0) = worker("w0").await;
        let (c1, h1, q1, r1) = worker("w1").await;
        let (c2, h2, q2, r2) = worker("w2").await;
        until("three workers to share the partitions", 15, || spread(&[&h0, &h1, &h2])).await;

        let sender = broker.connect().await;
        let producer = Producer::builder()
            .ek(partitions.exchange(), "")
            .layer(PartitionLayer::new(partitions.clone()))
            .connect(&sender)
            .await
            .unwrap();
        const KEYS: u64 = 12;
        const EACH: u64 = 20;
        let mut sent = 0;
        let send_round = |seq: u64| {
            let producer = &producer;
            async move {
                for key in 0..KEYS {
                    producer
                        .command("step", json!({"key": format!("acct-{key}"), "seq": seq}))
                        .await
                        .unwrap();
                }
            }
        };
        for seq in 0..EACH / 2 {
            send_round(seq).await;
            sent += KEYS;
        }
        quit_and_wait(&q0, r0).await;
        c0.close().await.unwrap();
        let (c3, h3, q3, r3) = worker("w3").await;
        for seq in EACH / 2..EACH {
            send_round(seq).await;
            sent += KEYS;
        }
        until("the workers left to share the partitions", 15, || spread(&[&h1, &h2, &h3])).await;
        let mut remote = Remote::connect(&sender, Fingerprint::new("ops", "tool")).await.unwrap();
        let infos = remote.info(&Destination::new(["w1", "w2", "w3"]), Duration::from_secs(2)).await.unwrap();
        let listed: usize = infos.iter().map(|info| info.queues.len()).sum();
        assert_eq!(listed, usize::from(PARTITIONS), "info lists the partitions each holds: {infos:?}");
        remote.close().await;
        until("every step", 30, || ledger.lock().unwrap().handled.len() >= sent as usize).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        for (control, running) in [(q1, r1), (q2, r2), (q3, r3)] {
            quit_and_wait(&control, running).await;
        }
        let probe = probe(&sender).await;
        for partition in 0..PARTITIONS {
            probe.delete_queue(partitions.queue(partition).name()).await.unwrap();
        }
        probe.delete_exchange(partitions.exchange().name()).await.unwrap();
        probe.delete_exchange(&format!("{group}.members")).await.unwrap();
        for connection in [c1, c2, c3, sender] {
            connection.close().await.unwrap();
        }
        let ledger = ledger.lock().unwrap();
        eprintln!(
            "partitions: {} steps handled, {} overlaps, {} out of order",
            ledger.handled.len(),
            ledger.overlaps,
            ledger.out_of_order
        );
        assert_eq!(ledger.handled.len(), (KEYS * EACH) as usize, "each step once, none lost");
        assert_eq!(ledger.overlaps, 0, "no key ran two steps at once");
        assert_eq!(ledger.out_of_order, 0, "every key's steps in order");
        let by: std::collections::BTreeSet<&str> = ledger.handled.iter().map(|(who, _, _)| *who).collect();
        assert!(by.contains("w3"), "the worker that joined took partitions over: {by:?}");
    }
}

//! The in-memory broker's faults and inspection, which tests use to check
//! their own components' recovery and poison handling: dropped
//! connections recover, a stopped broker holds sends until it starts, a
//! restart keeps durable queues' persistent messages, a stalled recovery
//! is reported, and the broker's state can be read.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::Duration;

use postage::prelude::*;
use postage::testing::{MemoryBroker, Probe};
use postage::{Error, Stop};
use postage_tests::conformance::{delivered, silent};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(5);
const JOBS: Exchange = Exchange::direct("jobs");

struct Worker {
    seen: mpsc::UnboundedSender<String>,
}

#[processor]
impl Worker {
    #[handler("command", "job")]
    async fn job(&self, Params(text): Params<String>) {
        let _ = self.seen.send(text);
    }
}

async fn worker(
    connection: &Connection,
    queue: Queue,
) -> (
    Control,
    tokio::task::JoinHandle<postage::Result<Stop>>,
    mpsc::UnboundedReceiver<String>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let processor = Processor::builder(Worker { seen: tx })
        .bind(JOBS, [(queue, "job")])
        .connect(connection)
        .await
        .unwrap();
    let control = processor.control();
    (control, tokio::spawn(processor.run()), rx)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("a job within 5 s")
        .expect("the worker runs")
}

async fn settled(broker: &MemoryBroker, queue: &str) {
    tokio::time::timeout(WAIT, async {
        while broker.queue(queue).is_none_or(|q| q.unacked > 0) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the deliveries are acknowledged within 5 s");
}

#[tokio::test]
async fn dropped_connections_recover_and_consumers_resume() {
    let broker = MemoryBroker::new();
    let connection = broker.connect().await.unwrap();
    let (control, task, mut seen) = worker(&connection, Queue::new("jobs-q")).await;
    let producer = Producer::builder()
        .ek(JOBS, "job")
        .connect(&connection)
        .await
        .unwrap();
    producer.command("job", "before").await.unwrap();
    assert_eq!(next(&mut seen).await, "before");
    // Acknowledgements are coalesced for up to the processor's ack delay:
    // drop the connection once "before" is settled, or it comes back.
    settled(&broker, "jobs-q").await;

    broker.drop_connections();
    // Sends wait for the recovery, then go through.
    producer.command("job", "after").await.unwrap();
    assert_eq!(next(&mut seen).await, "after");
    assert_eq!(connection.recoveries(), 1);
    assert!(connection.is_connected());
    assert_eq!(broker.connections(), 1);
    assert_eq!(broker.queue("jobs-q").unwrap().consumers, 1);

    control.quit();
    assert_eq!(task.await.unwrap().unwrap(), Stop::Quit);
}

#[tokio::test]
async fn unacknowledged_deliveries_come_back_redelivered_after_a_drop() {
    let broker = MemoryBroker::new();
    let connection = broker.connect().await.unwrap();
    let probe = Probe::open(&connection).await.unwrap();
    probe.declare_queue(&Queue::new("held")).await.unwrap();
    probe.publish("", "held", "one").await.unwrap();
    let mut consumer = probe.consume("held").await.unwrap();
    let first = delivered(&mut consumer, 1000).await;
    assert!(!first.redelivered());
    assert_eq!(broker.queue("held").unwrap().unacked, 1);

    broker.drop_connections();
    // The old delivery cannot be settled; the consumer resumes and gets it
    // again.
    assert!(first.ack().await.is_err());
    let again = delivered(&mut consumer, 2000).await;
    assert_eq!(again.text(), "one");
    assert!(again.redelivered());
    again.ack().await.unwrap();
    assert_eq!(broker.queue("held").unwrap().messages, 0);
}

#[tokio::test]
async fn a_stopped_broker_holds_sends_until_it_starts() {
    let broker = MemoryBroker::new();
    let connection = broker.connect().await.unwrap();
    let probe = Probe::open(&connection).await.unwrap();
    probe.declare_queue(&Queue::new("waiting")).await.unwrap();

    broker.stop();
    assert!(!broker.is_up());
    let refused = broker.connect().await.unwrap_err();
    assert!(matches!(refused, Error::Connect { .. }), "{refused:?}");
    let send = tokio::spawn(async move {
        probe.publish("", "waiting", "held").await.unwrap();
        probe
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!send.is_finished(), "a send waits while the broker is down");
    assert!(!connection.is_connected());

    broker.start();
    let probe = tokio::time::timeout(WAIT, send).await.unwrap().unwrap();
    assert_eq!(probe.depth("waiting").await.unwrap(), 1);
    assert_eq!(connection.recoveries(), 1);
}

#[tokio::test]
async fn a_recovery_longer_than_the_recovery_timeout_is_reported_stalled() {
    let broker = MemoryBroker::new();
    let connection = broker
        .connect_with(Config::default().with_recovery_timeout(Duration::from_millis(200)))
        .await
        .unwrap();
    broker.stop();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !connection.recovery_stalled() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "a stall is reported"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A send gives up at the recovery timeout.
    let probe = Probe::open(&connection).await;
    assert!(probe.is_err());
    broker.start();
    while !connection.is_connected() {
        assert!(tokio::time::Instant::now() < deadline, "it recovers");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!connection.recovery_stalled());
}

#[tokio::test]
async fn a_restart_keeps_durable_queues_persistent_messages_only() {
    let broker = MemoryBroker::new();
    let connection = broker.connect().await.unwrap();
    let probe = Probe::open(&connection).await.unwrap();
    probe
        .declare_queue(&Queue::new("durable").durable(true))
        .await
        .unwrap();
    probe.declare_queue(&Queue::new("transient")).await.unwrap();
    probe
        .publish("", "durable", "kept")
        .persistent(true)
        .await
        .unwrap();
    probe.publish("", "durable", "lost").await.unwrap();
    probe
        .publish("", "transient", "lost too")
        .persistent(true)
        .await
        .unwrap();

    broker.restart();
    // The connection recovers and declares its queues again: the
    // transient one comes back empty.
    let deadline = tokio::time::Instant::now() + WAIT;
    while connection.recoveries() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "it recovers");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(broker.queue("durable").unwrap().messages, 1);
    assert_eq!(broker.queue("transient").unwrap().messages, 0);
    let mut consumer = probe.consume("durable").await.unwrap();
    let kept = delivered(&mut consumer, 1000).await;
    assert_eq!(kept.text(), "kept");
    assert!(kept.is_persistent());
    assert!(silent(&mut consumer, 100).await);
}

#[tokio::test]
async fn the_broker_state_can_be_read() {
    let broker = MemoryBroker::new();
    let connection = broker.connect().await.unwrap();
    let probe = Probe::open(&connection).await.unwrap();
    probe
        .declare_exchange(&Exchange::fanout("dlx"))
        .await
        .unwrap();
    probe.declare_queue(&Queue::new("parked")).await.unwrap();
    probe.bind("parked", "dlx", "").await.unwrap();
    probe
        .declare_queue(&Queue::new("work").dead_letter_exchange("dlx"))
        .await
        .unwrap();
    probe.publish("", "work", "bad").await.unwrap();
    let mut consumer = probe.consume("work").await.unwrap();
    delivered(&mut consumer, 1000)
        .await
        .reject(false)
        .await
        .unwrap();

    assert!(broker.exchanges().contains(&"dlx".to_owned()));
    let bindings = broker.bindings();
    assert_eq!(bindings.len(), 1);
    assert_eq!(
        (
            bindings[0].source.as_str(),
            bindings[0].destination.as_str()
        ),
        ("dlx", "parked")
    );
    let dead = broker.dead_letters();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (
            dead[0].queue.as_str(),
            dead[0].reason.as_str(),
            dead[0].body.as_slice()
        ),
        ("work", "rejected", b"bad".as_slice())
    );
    let work = broker.queue("work").unwrap();
    assert_eq!((work.messages, work.unacked, work.consumers), (0, 0, 1));
    assert_eq!(broker.queue("parked").unwrap().messages, 1);
    let names: Vec<String> = broker.queues().into_iter().map(|q| q.name).collect();
    assert_eq!(names, ["parked", "work"]);
}

#[tokio::test]
async fn a_scheduler_runs_a_component_until_quit() {
    let broker = MemoryBroker::new();
    let connection = broker.connect().await.unwrap();
    let (tx, mut seen) = mpsc::unbounded_channel();
    let processor = Processor::builder(Worker { seen: tx })
        .bind(JOBS, [("scheduled", "job")])
        .connect(&connection)
        .await
        .unwrap();
    let mut scheduler = Scheduler::new().handle_signals(false);
    scheduler.add(processor);
    let running = tokio::spawn(scheduler.run());
    let producer = Producer::builder()
        .ek(JOBS, "job")
        .connect(&connection)
        .await
        .unwrap();
    producer.command("job", "one").await.unwrap();
    assert_eq!(next(&mut seen).await, "one");
    producer
        .command("quit", serde_json::json!({}))
        .await
        .unwrap();
    tokio::time::timeout(WAIT, running)
        .await
        .expect("the scheduler ends")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_restart_command_stops_the_processor_for_a_restart() {
    let broker = MemoryBroker::new();
    let connection = broker.connect().await.unwrap();
    let (_control, task, _seen) = worker(&connection, Queue::new("restarted")).await;
    let producer = Producer::builder()
        .ek(JOBS, "job")
        .connect(&connection)
        .await
        .unwrap();
    producer
        .command("restart", serde_json::json!({}))
        .await
        .unwrap();
    let stop = tokio::time::timeout(WAIT, task).await.unwrap().unwrap();
    assert_eq!(stop.unwrap(), Stop::Restart);
}

#[tokio::test]
async fn a_connection_nothing_uses_is_closed_and_its_deliveries_requeued() {
    let broker = MemoryBroker::new();
    let keeper = Probe::open(&broker.connect().await.unwrap()).await.unwrap();
    keeper.declare_queue(&Queue::new("kept")).await.unwrap();
    keeper.publish("", "kept", "one").await.unwrap();
    {
        let connection = broker.connect().await.unwrap();
        let probe = Probe::open(&connection).await.unwrap();
        let mut consumer = probe.consume("kept").await.unwrap();
        let delivery = delivered(&mut consumer, 1000).await;
        assert_eq!(broker.queue("kept").unwrap().unacked, 1);
        drop(delivery);
        assert_eq!(broker.connections(), 2);
    }
    assert_eq!(broker.connections(), 1);
    let kept = broker.queue("kept").unwrap();
    assert_eq!((kept.messages, kept.unacked, kept.consumers), (1, 0, 0));
}

/// `quit` is for the component: under a scheduler, the processor that
/// gets it ends, and so do the others, and `run` returns.
#[tokio::test]
async fn quit_to_one_processor_of_a_scheduler_stops_the_component() {
    let broker = MemoryBroker::new();
    let connection = broker.connect().await.unwrap();
    let mut scheduler = Scheduler::new().handle_signals(false);
    for name in ["first", "second"] {
        let (tx, _rx) = mpsc::unbounded_channel();
        let processor = Processor::builder(Worker { seen: tx })
            .bind(JOBS, [(Queue::new(name), name)])
            .connect(&connection)
            .await
            .unwrap();
        scheduler.add(processor);
    }
    let running = tokio::spawn(scheduler.run());
    let producer = Producer::builder()
        .ek(JOBS, "first")
        .connect(&connection)
        .await
        .unwrap();
    producer.command("quit", ()).await.unwrap();
    tokio::time::timeout(WAIT, running)
        .await
        .expect("the whole scheduler ends")
        .unwrap()
        .unwrap();
}

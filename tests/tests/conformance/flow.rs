//! Flow control an operator can use: `pause` stops a processor's
//! consumption (the work in flight finishes, new messages wait in the
//! queue), `resume` brings it back, and its health says which; a kill
//! switch pauses it for a cool-down when too many messages fail.

use std::sync::Arc;
use std::time::Duration;

use postage::consumer::Health;
use postage::flow::KillSwitch;
use postage::prelude::*;
use postage::remote::{Destination, Remote};
use postage_tests::conformance::{TestBroker, probe};
use postage_tests::{conformance, next_seen, quit_and_wait, unique};
use tokio::sync::{Semaphore, mpsc};

/// Says each message it handles; `hold` waits for a permit first.
struct Gated {
    seen: mpsc::UnboundedSender<String>,
    gate: Arc<Semaphore>,
}

#[processor]
impl Gated {
    #[handler("command", "hold")]
    async fn hold(&self, Params(text): Params<String>) {
        let _ = self.seen.send(format!("started {text}"));
        let _permit = self.gate.acquire().await;
        let _ = self.seen.send(format!("hold {text}"));
    }

    #[handler("command", "step")]
    async fn step(&self, Params(text): Params<String>) {
        let _ = self.seen.send(format!("step {text}"));
    }

    #[handler("command", "fail")]
    async fn fail(&self, Params(text): Params<String>) -> Result<(), HandlerError> {
        let _ = self.seen.send(format!("fail {text}"));
        Err(HandlerError::new("Down", "the dependency is down"))
    }
}

/// `done` of each answer: whether the command changed anything.
fn done(answers: &[postage::remote::Answer]) -> Vec<bool> {
    answers
        .iter()
        .map(|answer| match &answer.outcome {
            Outcome::Success { value, .. } => value["done"].as_bool().unwrap(),
            other => panic!("refused: {other:?}"),
        })
        .collect()
}

/// A `Gated` processor on a fresh queue (`queue` names it) bound to a
/// fresh exchange, built further by `build`, running, with a producer
/// sending to it.
struct Setup {
    connection: Connection,
    name: String,
    seen: mpsc::UnboundedReceiver<String>,
    gate: Arc<Semaphore>,
    health: postage::consumer::ConsumerHandle,
    control: Control,
    running: tokio::task::JoinHandle<postage::Result<postage::Stop>>,
    producer: Producer,
}

async fn start(
    broker: &TestBroker,
    queue: impl FnOnce(String) -> Queue,
    build: impl FnOnce(
        postage::processor::ProcessorBuilder<Gated>,
    ) -> postage::processor::ProcessorBuilder<Gated>,
) -> Setup {
    let connection = broker.connect().await;
    let name = unique("flow");
    let exchange = Exchange::new(name.clone(), ExchangeKind::Direct).auto_delete(true);
    let (tx, seen) = mpsc::unbounded_channel();
    let gate = Arc::new(Semaphore::new(0));
    let processor = build(
        Processor::builder(Gated {
            seen: tx,
            gate: gate.clone(),
        })
        .bind(exchange.clone(), [(queue(name.clone()), name.as_str())])
        .fingerprint(Fingerprint::new(name.clone(), "service")),
    )
    .connect(&connection)
    .await
    .unwrap();
    let (health, control) = (processor.consumer(), processor.control());
    let running = tokio::spawn(processor.run());
    let producer = Producer::builder()
        .ek(exchange, name.as_str())
        .connect(&connection)
        .await
        .unwrap();
    Setup {
        connection,
        name,
        seen,
        gate,
        health,
        control,
        running,
        producer,
    }
}

conformance! {
    /// Paused, a processor finishes the handler in flight and takes
    /// nothing new: messages wait ready in the queue, its health says
    /// `paused`. Resumed, it handles them in order. Pausing twice, or
    /// resuming a consuming processor, changes nothing and says so.
    async fn pause_lets_the_work_in_flight_finish_and_resume_brings_the_rest(broker) {
        let Setup { connection, name, mut seen, gate, health, control, running, producer } =
            start(&broker, Queue::new, |b| b).await;
        let mut remote = Remote::connect(&connection, Fingerprint::new("ops", "tool")).await.unwrap();
        let destination = Destination::new([name.as_str()]);
        let wait = Duration::from_secs(2);

        producer.command("hold", "first").await.unwrap();
        assert_eq!(next_seen(&mut seen).await, "started first");
        assert_eq!(done(&remote.pause(&destination, wait).await.unwrap()), [true]);
        assert_eq!(health.health(), Health::Paused);
        for n in 0..3 {
            producer.command("step", n.to_string()).await.unwrap();
        }
        gate.add_permits(1);
        assert_eq!(next_seen(&mut seen).await, "hold first", "the work in flight finishes");
        let probe = probe(&connection).await;
        let mut depth = 0;
        for _ in 0..40 {
            depth = probe.depth(&name).await.unwrap();
            if depth == 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(depth, 3, "the new messages wait in the queue");
        assert!(
            tokio::time::timeout(Duration::from_millis(300), seen.recv()).await.is_err(),
            "nothing handled while paused"
        );
        let infos = remote.info(&destination, wait).await.unwrap();
        assert_eq!(infos[0].health, "paused");
        assert_eq!(done(&remote.pause(&destination, wait).await.unwrap()), [false]);

        assert_eq!(done(&remote.resume(&destination, wait).await.unwrap()), [true]);
        for n in 0..3 {
            assert_eq!(next_seen(&mut seen).await, format!("step {n}"));
        }
        assert_eq!(health.health(), Health::Consuming);
        assert_eq!(done(&remote.resume(&destination, wait).await.unwrap()), [false]);
        remote.close().await;
        quit_and_wait(&control, running).await;
        probe.delete_queue(&name).await.unwrap();
    }

    /// A processor on an auto-delete queue refuses to pause: cancelling
    /// its consumer would make the broker delete the queue and its
    /// messages. It goes on consuming.
    async fn a_processor_on_an_auto_delete_queue_refuses_to_pause(broker) {
        let Setup { connection, name, mut seen, health, control, running, producer, .. } =
            start(&broker, |name| Queue::new(name).auto_delete(true), |b| b).await;
        let mut remote = Remote::connect(&connection, Fingerprint::new("ops", "tool")).await.unwrap();
        let answers = remote
            .pause(&Destination::new([name.as_str()]), Duration::from_secs(2))
            .await
            .unwrap();
        match &answers[0].outcome {
            Outcome::Error { message } => assert!(message.contains("auto-delete"), "{message}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert_eq!(health.health(), Health::Consuming);
        producer.command("step", "after").await.unwrap();
        assert_eq!(next_seen(&mut seen).await, "step after");
        remote.close().await;
        quit_and_wait(&control, running).await;
    }
}

conformance! {
    /// Three failures out of four messages trip a kill switch of ratio
    /// 0.5 and activity 4: the processor pauses (health `tripped`, with
    /// why), the messages sent meanwhile wait, and after the cool-down it
    /// resumes and handles them.
    async fn a_kill_switch_rests_the_processor_after_too_many_failures(broker) {
        let cool_down = Duration::from_secs(2);
        let Setup { connection, name, mut seen, health, control, running, producer, .. } =
            start(&broker, Queue::new, |b| {
                b.kill_switch(KillSwitch::new(0.5).activity(4).cool_down(cool_down))
            })
            .await;
        producer.command("step", "0").await.unwrap();
        assert_eq!(next_seen(&mut seen).await, "step 0");
        for n in 1..4 {
            producer.command("fail", n.to_string()).await.unwrap();
            assert_eq!(next_seen(&mut seen).await, format!("fail {n}"));
        }
        let mut tripped = health.health();
        for _ in 0..40 {
            if matches!(tripped, Health::Tripped(_)) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            tripped = health.health();
        }
        match &tripped {
            Health::Tripped(reason) => assert!(reason.contains("3 of 4"), "{reason}"),
            other => panic!("expected the kill switch to trip, health {other:?}"),
        }
        producer.command("step", "4").await.unwrap();
        let early = tokio::time::timeout(Duration::from_millis(300), seen.recv()).await;
        if matches!(health.health(), Health::Tripped(_)) {
            // Tripped from before the send to after the window: nothing
            // could be delivered meanwhile.
            assert!(early.is_err(), "nothing handled while tripped: {early:?}");
        }
        let step = match early {
            Ok(Some(step)) => step,
            _ => next_seen(&mut seen).await,
        };
        assert_eq!(step, "step 4", "handled after the cool-down");
        assert_eq!(health.health(), Health::Consuming);
        quit_and_wait(&control, running).await;
        probe(&connection).await.delete_queue(&name).await.unwrap();
    }
}

//! Remote control through the control exchange, on RabbitMQ and on the
//! in-memory broker: `ping` and `info` answers, destinations, `quit`
//! refused to a sender that is not allowed, answers while a handler is
//! busy, processors that are not discoverable, and no secret in answers.
//!
//! Every processor of every test listens on the same `postage-control`
//! exchange (that is the point of it), so tests on RabbitMQ select their
//! own processors by unique names, and count only those.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use postage::prelude::*;
use postage::remote::{Destination, Remote};
use postage::testing::MemoryBroker;
use postage_tests::{connect, unique};
use serde_json::json;
use tokio::sync::Notify;

const WAIT: Duration = Duration::from_millis(700);

/// Echoes, fails on `fail`, and holds `hold` until told to go on.
struct Worker {
    release: Arc<Notify>,
}

#[processor]
impl Worker {
    #[handler("command", "echo")]
    async fn echo(&self, _content: Content) {}

    #[handler("command", "fail")]
    async fn fail(&self, _content: Content) -> Result<(), String> {
        Err("asked to".into())
    }

    #[handler("command", "hold")]
    async fn hold(&self) {
        self.release.notified().await;
    }

    #[rpc_handler("command", "sum")]
    async fn sum(&self, Params(numbers): Params<Vec<i64>>) -> i64 {
        numbers.iter().sum()
    }
}

struct Running {
    name: String,
    exchange: Exchange,
    release: Arc<Notify>,
    task: tokio::task::JoinHandle<postage::Result<postage::Stop>>,
}

/// A worker named uniquely (type `worker`), on an exchange of its own.
async fn start(
    connection: &Connection,
    configure: impl FnOnce(
        postage::processor::ProcessorBuilder<Worker>,
    ) -> postage::processor::ProcessorBuilder<Worker>,
) -> Running {
    let name = unique("worker");
    let exchange = Exchange::new(unique("remote"), ExchangeKind::Direct).auto_delete(true);
    let release = Arc::new(Notify::new());
    let builder = Processor::builder(Worker {
        release: release.clone(),
    })
    .bind(exchange.clone(), [(Queue::server_named(), "work")])
    .fingerprint(Fingerprint::new(name.clone(), "worker"));
    let processor = configure(builder)
        .connect(connection)
        .await
        .expect("processor");
    Running {
        name,
        exchange,
        release,
        task: tokio::spawn(processor.run()),
    }
}

/// The processor ends, having quit.
async fn assert_quits(task: tokio::task::JoinHandle<postage::Result<postage::Stop>>) {
    let stop = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the processor ends")
        .unwrap()
        .unwrap();
    assert_eq!(stop, postage::Stop::Quit);
}

async fn remote(connection: &Connection, name: &str) -> Remote {
    Remote::connect(connection, Fingerprint::new(name, "tool"))
        .await
        .expect("remote")
}

#[tokio::test]
async fn ping_and_info_describe_the_processor_and_what_it_did() {
    let connection = connect().await;
    let worker = start(&connection, |b| b).await;
    let producer = Producer::builder()
        .ek(worker.exchange.clone(), "work")
        .connect(&connection)
        .await
        .unwrap();
    producer.command("echo", "hi").await.unwrap();
    producer.command("fail", json!({})).await.unwrap();
    producer.command("nobody", json!({})).await.unwrap();
    let reply = producer.rpc("sum", json!([1, 2])).await.unwrap();
    assert!(reply.is_ok());

    let mut remote = remote(&connection, "ops").await;
    let me = Destination::new([worker.name.as_str()]);
    let pongs = remote.ping(&me, WAIT).await.unwrap();
    assert_eq!(pongs.len(), 1, "{pongs:?}");
    assert_eq!(
        pongs[0].fingerprint.name.as_deref(),
        Some(worker.name.as_str())
    );
    assert_eq!(pongs[0].fingerprint.pid, Some(std::process::id()));
    assert_eq!(pongs[0].postage, env!("CARGO_PKG_VERSION"));
    assert!(pongs[0].uptime_secs >= 0.0);

    let infos = remote.info(&me, WAIT).await.unwrap();
    assert_eq!(infos.len(), 1, "{infos:?}");
    let info = &infos[0];
    let handlers: Vec<(&str, &str, &str)> = info
        .handlers
        .iter()
        .map(|h| (h.category.as_str(), h.name.as_str(), h.handler.as_str()))
        .collect();
    assert_eq!(
        handlers,
        [
            ("message", "echo", "echo"),
            ("message", "fail", "fail"),
            ("message", "hold", "hold"),
            ("rpc", "sum", "sum"),
        ]
    );
    let sum = info.handlers[3]
        .params
        .as_ref()
        .expect("Params<T> is described");
    assert_eq!(sum.type_name, "Vec<i64>");
    // The tests build Postage with the `schemars` feature.
    let schema = sum.schema.as_ref().expect("Vec<i64> has a JSON Schema");
    assert_eq!(schema["type"], "array", "{schema}");
    assert_eq!(schema["items"]["type"], "integer", "{schema}");
    assert!(
        info.handlers[0].params.is_none(),
        "Content is not described"
    );
    assert_eq!(info.bindings.len(), 1);
    let binding = &info.bindings[0];
    assert_eq!(binding.exchange, worker.exchange.name());
    assert_eq!(
        (binding.exchange_type.as_str(), binding.key.as_str()),
        ("direct", "work")
    );
    assert!(binding.exclusive && binding.auto_delete && binding.queue.is_empty());
    // echo and sum handled, fail failed, nobody rejected (no handler).
    assert_eq!(
        (
            info.counters.received,
            info.counters.handled,
            info.counters.failed,
            info.counters.rejected,
            info.counters.unhandled
        ),
        (4, 2, 1, 1, 1)
    );
    assert_eq!(info.health, "consuming");
    assert_eq!(info.concurrency, 1);

    worker.release.notify_one();
    remote.close().await;
    worker.task.abort();
    connection.close().await.unwrap();
}

#[tokio::test]
async fn a_destination_selects_by_name_type_or_pid_at_host_and_others_stay_silent() {
    let connection = connect().await;
    let first = start(&connection, |b| b).await;
    let second = start(&connection, |b| b).await;
    let mut remote = remote(&connection, "ops").await;
    let names = |pongs: Vec<postage::remote::Pong>| {
        let mut names: Vec<String> = pongs
            .into_iter()
            .filter_map(|p| p.fingerprint.name)
            .filter(|n| *n == first.name || *n == second.name)
            .collect();
        names.sort();
        names
    };
    let both = {
        let mut both = vec![first.name.clone(), second.name.clone()];
        both.sort();
        both
    };
    let by_name = remote
        .ping(&Destination::new([first.name.as_str()]), WAIT)
        .await
        .unwrap();
    assert_eq!(names(by_name), std::slice::from_ref(&first.name));
    let by_names = Destination::new([first.name.as_str(), second.name.as_str()]);
    assert_eq!(names(remote.ping(&by_names, WAIT).await.unwrap()), both);
    // Type and pid@host select both (and whatever else runs in this process).
    let by_type = remote
        .ping(&Destination::new(["worker"]), WAIT)
        .await
        .unwrap();
    assert_eq!(names(by_type), both);
    let here = format!(
        "{}@{}",
        std::process::id(),
        Fingerprint::anonymous().host.unwrap()
    );
    let by_pid = remote.ping(&Destination::new([here]), WAIT).await.unwrap();
    assert_eq!(names(by_pid), both);
    let nobody = Destination::new([unique("nobody")]);
    assert!(remote.ping(&nobody, WAIT).await.unwrap().is_empty());
    assert!(remote.quit(&nobody, WAIT).await.unwrap().is_empty());
    // Nobody quit: both still answer.
    assert_eq!(names(remote.ping(&by_names, WAIT).await.unwrap()), both);

    remote.close().await;
    first.task.abort();
    second.task.abort();
    connection.close().await.unwrap();
}

#[tokio::test]
async fn quit_from_a_sender_not_allowed_is_refused_with_an_error_and_obeyed_from_one_allowed() {
    let connection = connect().await;
    let worker = start(&connection, |b| b.control_senders(["ops"])).await;
    let me = Destination::new([worker.name.as_str()]);

    let mut intruder = remote(&connection, "intruder").await;
    let answers = intruder.quit(&me, WAIT).await.unwrap();
    assert_eq!(answers.len(), 1, "{answers:?}");
    match &answers[0].outcome {
        Outcome::Error { message } => {
            assert!(message.contains("quit refused"), "{message}");
            assert!(message.contains("intruder"), "{message}");
        }
        other => panic!("expected an error result, got {other:?}"),
    }
    assert_eq!(
        intruder.ping(&me, WAIT).await.unwrap().len(),
        1,
        "still running"
    );
    assert!(!worker.task.is_finished());

    let mut ops = remote(&connection, "ops").await;
    let answers = ops.quit(&me, WAIT).await.unwrap();
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert!(
        matches!(answers[0].outcome, Outcome::Success { .. }),
        "{answers:?}"
    );
    assert_quits(worker.task).await;
    assert!(ops.ping(&me, WAIT).await.unwrap().is_empty(), "gone");

    intruder.close().await;
    ops.close().await;
    connection.close().await.unwrap();
}

#[tokio::test]
async fn ping_is_answered_while_the_only_handler_slot_is_busy() {
    let connection = connect().await;
    let worker = start(&connection, |b| b.concurrency(1)).await;
    let producer = Producer::builder()
        .ek(worker.exchange.clone(), "work")
        .connect(&connection)
        .await
        .unwrap();
    producer.command("hold", json!({})).await.unwrap();
    producer.command("echo", json!({})).await.unwrap();
    let mut remote = remote(&connection, "ops").await;
    let me = Destination::new([worker.name.as_str()]);
    // The hold handler is running (received 1, nothing finished) and
    // the echo behind it waits; info still answers.
    let mut tries = 0..50;
    let info = loop {
        assert!(tries.next().is_some(), "the hold handler never started");
        let infos = remote.info(&me, WAIT).await.unwrap();
        assert_eq!(infos.len(), 1, "answered while busy: {infos:?}");
        if infos[0].counters.received == 1 {
            break infos.into_iter().next().unwrap();
        }
    };
    assert_eq!(info.counters.handled, 0);
    worker.release.notify_one();
    let mut tries = 0..50;
    let handled = loop {
        assert!(
            tries.next().is_some(),
            "the held messages were never handled"
        );
        let infos = remote.info(&me, WAIT).await.unwrap();
        if infos[0].counters.handled == 2 {
            break infos[0].counters;
        }
    };
    assert_eq!(handled.received, 2);

    remote.close().await;
    worker.task.abort();
    connection.close().await.unwrap();
}

#[tokio::test]
async fn answers_carry_no_credentials_urls_or_environment() {
    let connection = connect().await;
    let worker = start(&connection, |b| b).await;
    let mut remote = remote(&connection, "ops").await;
    let me = Destination::new([worker.name.as_str()]);
    let mut texts = Vec::new();
    for command in [postage::remote::PING, postage::remote::INFO] {
        for answer in remote.ask(command, &me, WAIT).await.unwrap() {
            texts.push(format!("{:?} {:?}", answer.sender, answer.outcome));
        }
    }
    assert_eq!(texts.len(), 2, "{texts:?}");
    let config = connection.config();
    let secrets = [
        "amqp://".to_owned(),
        "password".to_owned(),
        format!("{}:", config.user()),
        std::env::var("PATH").unwrap_or_else(|_| "/usr/bin".into()),
        std::env::var("POSTAGE_TEST_URL").unwrap_or_else(|_| postage_tests::test_url()),
    ];
    for text in &texts {
        for secret in &secrets {
            assert!(!text.contains(secret.as_str()), "{secret:?} in {text}");
        }
    }

    remote.close().await;
    worker.task.abort();
    connection.close().await.unwrap();
}

#[tokio::test]
async fn a_processor_that_is_not_discoverable_does_not_answer() {
    let connection = connect().await;
    let hidden = start(&connection, |b| b.discoverable(false)).await;
    let seen = start(&connection, |b| b).await;
    let mut remote = remote(&connection, "ops").await;
    let both = Destination::new([hidden.name.as_str(), seen.name.as_str()]);
    let pongs = remote.ping(&both, WAIT).await.unwrap();
    let names: Vec<_> = pongs
        .iter()
        .filter_map(|p| p.fingerprint.name.clone())
        .collect();
    assert_eq!(names, std::slice::from_ref(&seen.name));

    remote.close().await;
    hidden.task.abort();
    seen.task.abort();
    connection.close().await.unwrap();
}

#[tokio::test]
async fn in_memory_ping_info_and_quit_work_as_on_rabbitmq() {
    let broker = MemoryBroker::new();
    let connection = broker.connect().await.unwrap();
    let worker = start(&connection, |b| b.control_senders(["ops"])).await;
    let mut ops = remote(&connection, "ops").await;
    let pongs = ops.ping(&Destination::all(), WAIT).await.unwrap();
    assert_eq!(pongs.len(), 1);
    assert_eq!(
        pongs[0].fingerprint.name.as_deref(),
        Some(worker.name.as_str())
    );
    let infos = ops.info(&Destination::new(["worker"]), WAIT).await.unwrap();
    assert_eq!(infos[0].handlers.len(), 4);
    assert!(
        ops.ping(&Destination::new(["other"]), WAIT)
            .await
            .unwrap()
            .is_empty()
    );

    let mut intruder = remote(&connection, "intruder").await;
    let refused = intruder.quit(&Destination::all(), WAIT).await.unwrap();
    assert!(
        matches!(refused[0].outcome, Outcome::Error { .. }),
        "{refused:?}"
    );
    let obeyed = ops.quit(&Destination::all(), WAIT).await.unwrap();
    assert!(
        matches!(obeyed[0].outcome, Outcome::Success { .. }),
        "{obeyed:?}"
    );
    assert_quits(worker.task).await;
    // Its control queue went with its consumer.
    assert!(
        ops.ping(&Destination::all(), WAIT)
            .await
            .unwrap()
            .is_empty()
    );
    intruder.close().await;
    ops.close().await;
}

#[tokio::test]
async fn the_control_consumer_comes_back_with_its_connection() {
    let broker = MemoryBroker::new();
    let connection = broker.connect().await.unwrap();
    let worker = start(&connection, |b| b).await;
    let observer = broker.connect().await.unwrap();
    let mut remote = remote(&observer, "ops").await;
    assert_eq!(
        remote.ping(&Destination::all(), WAIT).await.unwrap().len(),
        1
    );
    for lost in 1..=2 {
        broker.drop_connections();
        let mut tries = 0..100;
        while connection.recoveries() < lost || observer.recoveries() < lost {
            assert!(tries.next().is_some(), "the connections came back");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // The remote's reply queue was renamed: a new client.
        let mut remote = Remote::connect(&observer, Fingerprint::new("ops", "tool"))
            .await
            .unwrap();
        let pongs = remote.ping(&Destination::all(), WAIT).await.unwrap();
        assert_eq!(pongs.len(), 1, "after {lost} lost connection(s)");
        assert_eq!(
            pongs[0].fingerprint.name.as_deref(),
            Some(worker.name.as_str())
        );
    }
    assert!(!worker.task.is_finished());
    remote.close().await;
    worker.task.abort();
}

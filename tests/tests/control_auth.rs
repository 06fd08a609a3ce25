//! Control commands authorised by the broker: a processor with
//! `control_users` accepts `quit` only from the broker users listed,
//! read from the AMQP `user_id` that RabbitMQ checks on every publish;
//! a fingerprint naming an allowed sender does not help another user, and
//! a forged `user_id` never reaches the processor.
//!
//! On a private node, which the test gives a second user.

#![allow(clippy::expect_used)]

use std::time::Duration;

use postage::prelude::*;
use postage::processor::Stop;
use postage::remote::{Answer, CONTROL_EXCHANGE, Destination, Remote};
use postage::testing::Probe;
use postage_tests::conformance::TestBroker;
use postage_tests::node::PrivateNode;

struct Guarded;

#[processor]
impl Guarded {
    #[handler("command", "noop")]
    async fn noop(&self) {}
}

async fn connect(url: &str) -> Connection {
    let config = Config::from_url(url).unwrap_or_else(|e| panic!("bad url {url}: {e}"));
    Connection::connect(config)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"))
}

/// The error text of the one answer, or the test fails.
fn refusal(answers: &[Answer]) -> String {
    match answers {
        [
            Answer {
                outcome: Outcome::Error { message },
                ..
            },
        ] => message.clone(),
        other => panic!("expected one refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_allowed_broker_users_may_stop_a_processor_whatever_the_fingerprint_says() {
    postage_tests::init_tracing();
    let node = PrivateNode::start(env!("CARGO_TARGET_TMPDIR"), None);
    node.rabbitmqctl(&["add_user", "intruder", "intruder-secret"]);
    node.rabbitmqctl(&["set_permissions", "-p", "/", "intruder", ".*", ".*", ".*"]);
    let guest = connect(&node.url()).await;
    let intruder = connect(
        &node
            .url()
            .replacen("guest:guest", "intruder:intruder-secret", 1),
    )
    .await;

    let exchange = Exchange::direct("guarded");
    let processor = Processor::builder(Guarded)
        .bind(exchange.clone(), [("guarded", "noop")])
        .fingerprint(Fingerprint::new("guarded", "service"))
        .control_users(["guest"])
        .control_senders(["ops"])
        .connect(&guest)
        .await
        .unwrap_or_else(|e| panic!("no processor: {e}"));
    let running = tokio::spawn(processor.run());
    let only = Destination::new(["guarded"]);
    let wait = Duration::from_secs(3);
    let ops = || Fingerprint::new("ops", "application");

    // Another user, with the allowed sender's name: refused.
    let mut spoofing = Remote::connect(&intruder, ops())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let refused = refusal(
        &spoofing
            .quit(&only, wait)
            .await
            .unwrap_or_else(|e| panic!("{e}")),
    );
    assert!(refused.contains("\"intruder\" is not allowed"), "{refused}");

    // The allowed user under another name: refused by `control_senders`.
    let mut unnamed = Remote::connect(&guest, Fingerprint::new("cron", "application"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let refused = refusal(
        &unnamed
            .quit(&only, wait)
            .await
            .unwrap_or_else(|e| panic!("{e}")),
    );
    assert!(refused.contains("not an allowed sender"), "{refused}");

    // Classic `quit` commands on the processor's queue, from the other
    // user with its user_id, and without one: ignored.
    for user_id in [true, false] {
        let producer = Producer::builder()
            .ek(exchange.clone(), "noop")
            .fingerprint(ops())
            .user_id(user_id)
            .connect(&intruder)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        producer
            .command("quit", serde_json::json!({}))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }

    // A forged user_id: the broker refuses the publish itself.
    let probe = Probe::open(&intruder)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let forged = probe
        .publish(CONTROL_EXCHANGE.name(), "", b"{}".to_vec())
        .user_id("guest")
        .await;
    let error = forged.expect_err("the broker took a forged user_id");
    let report = error.report().to_string();
    assert!(report.contains("PRECONDITION_FAILED"), "{report}");

    // Both classic commands were received and refused, and it still
    // runs: it answers `info`.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let infos = unnamed
            .info(&only, Duration::from_millis(500))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(infos.len(), 1, "the processor stopped on a refused command");
        if infos[0].counters.rejected >= 2 {
            assert_eq!(infos[0].counters.rejected, 2);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the classic quit commands were not refused: {:?}",
            infos[0].counters
        );
    }
    assert!(!running.is_finished());

    // The allowed user under the allowed name: it stops.
    let mut allowed = Remote::connect(&guest, ops())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let answers = allowed
        .quit(&only, wait)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        matches!(
            answers.as_slice(),
            [Answer {
                outcome: Outcome::Success { .. },
                ..
            }]
        ),
        "{answers:?}"
    );
    let stop = tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .unwrap_or_else(|_| panic!("the processor did not stop"))
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(stop, Stop::Quit);
}

/// Both brokers refuse a publish whose `user_id` is not the connection's
/// user, closing the channel, and deliver an honest one as it was.
async fn a_user_id_must_be_the_connections_user(broker: TestBroker) {
    let connection = broker.connect().await;
    let probe = broker.probe().await;
    let queue = postage_tests::unique("user-id");
    probe
        .declare_queue(&Queue::new(queue.as_str()).auto_delete(true))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut consumer = probe
        .consume(&queue)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let forged = Probe::open(&connection)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .publish("", &queue, b"forged".to_vec())
        .user_id("admin")
        .await;
    let error = forged.expect_err("a forged user_id was taken");
    let report = error.report().to_string();
    assert!(report.contains("PRECONDITION_FAILED"), "{report}");
    probe
        .publish("", &queue, b"honest".to_vec())
        .user_id("guest")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let delivery = postage_tests::conformance::delivered(&mut consumer, 5_000).await;
    assert_eq!(delivery.body(), b"honest");
    assert_eq!(delivery.user_id(), Some("guest"));
}

#[tokio::test]
async fn a_user_id_must_be_the_connections_user_on_rabbitmq() {
    a_user_id_must_be_the_connections_user(TestBroker::rabbitmq()).await;
}

#[tokio::test]
async fn a_user_id_must_be_the_connections_user_in_memory() {
    a_user_id_must_be_the_connections_user(TestBroker::memory()).await;
}

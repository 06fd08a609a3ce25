//! The example components in process, on the in-memory broker: what the
//! end-to-end tests check with real processes on RabbitMQ, with no
//! RabbitMQ at all.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::Duration;

use postage::prelude::*;
use postage::testing::MemoryBroker;
use postage_examples::components::{
    AdvancedEchoReceiver, CalcProducer, Calculator, EchoReceiver, Lines, RpcEchoReceiver,
};
use postage_examples::{ECHO_QUEUE, EchoProducer};
use tokio::sync::mpsc;

/// A processor running in a task, and the lines it says.
struct Running {
    control: Control,
    task: tokio::task::JoinHandle<postage::Result<postage::Stop>>,
    lines: mpsc::UnboundedReceiver<String>,
}

async fn run<P: Handlers>(
    processor: Processor<P>,
    lines: mpsc::UnboundedReceiver<String>,
) -> Running {
    let control = processor.control();
    Running {
        control,
        task: tokio::spawn(processor.run()),
        lines,
    }
}

impl Running {
    /// The lines said until none comes for `quiet`.
    async fn lines_until_quiet(&mut self, quiet: Duration) -> Vec<String> {
        let mut lines = Vec::new();
        while let Ok(Some(line)) = tokio::time::timeout(quiet, self.lines.recv()).await {
            lines.push(line);
        }
        lines
    }

    async fn stop(self) {
        self.control.quit();
        self.task.await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn echo_send_reaches_echo_receive() {
    let broker = MemoryBroker::new();
    let connection = broker.connect().await.unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let processor = EchoReceiver {
        lines: Lines::Channel(tx),
    }
    .connect(&connection)
    .await
    .unwrap();
    let mut receiver = run(processor, rx).await;
    let producer = EchoProducer.connect(&connection).await.unwrap();
    producer.message_echo("hello").await.unwrap();
    assert_eq!(
        receiver.lines_until_quiet(Duration::from_millis(200)).await,
        ["echo: hello"]
    );
    assert_eq!(
        broker.queue(ECHO_QUEUE).map(|q| (q.messages, q.unacked)),
        Some((0, 0))
    );
    receiver.stop().await;
}

#[tokio::test]
async fn shared_key_reaches_one_receiver_fanout_key_reaches_both() {
    let broker = MemoryBroker::new();
    let mut receivers = Vec::new();
    for pid in [101, 102] {
        let connection = broker.connect().await.unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        let mut fingerprint = Fingerprint::new("echo_receive", "controller");
        fingerprint.pid = Some(pid);
        let processor = AdvancedEchoReceiver {
            lines: Lines::Channel(tx),
        }
        .connect(fingerprint, &connection)
        .await
        .unwrap();
        receivers.push(run(processor, rx).await);
    }
    let connection = broker.connect().await.unwrap();
    let producer = EchoProducer
        .connect_with(
            Producer::builder().fingerprint(Fingerprint::new("echo_send", "application")),
            &connection,
        )
        .await
        .unwrap();
    for i in 0..4 {
        producer.message_echo(&format!("shared {i}")).await.unwrap();
    }
    producer
        .message_echo("both")
        .key(postage_examples::ECHO_FANOUT_KEY)
        .await
        .unwrap();
    let mut seen = Vec::new();
    for receiver in &mut receivers {
        seen.push(receiver.lines_until_quiet(Duration::from_millis(300)).await);
    }
    for i in 0..4 {
        let line = format!("echo: shared {i}");
        let copies: usize = seen
            .iter()
            .map(|l| l.iter().filter(|x| **x == line).count())
            .sum();
        assert_eq!(copies, 1, "{line:?} reaches exactly one receiver: {seen:?}");
    }
    // Round robin: two each.
    for lines in &seen {
        let shared = lines
            .iter()
            .filter(|l| l.starts_with("echo: shared"))
            .count();
        assert_eq!(shared, 2, "{seen:?}");
        assert!(lines.contains(&"echo: both".to_owned()), "{seen:?}");
        let fingerprint = format!("fingerprint: echo_send pid={}", std::process::id());
        assert!(lines.contains(&fingerprint), "{seen:?}");
    }
    for receiver in receivers {
        receiver.stop().await;
    }
    // The private queues were exclusive: gone with their connections'
    // consumers; the shared queue stays.
    assert!(broker.queue(ECHO_QUEUE).is_some());
}

#[tokio::test]
async fn rpc_echo_answers_with_the_parameters() {
    let broker = MemoryBroker::new();
    let connection = broker.connect().await.unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let processor = RpcEchoReceiver {
        lines: Lines::Channel(tx),
    }
    .connect(&connection)
    .await
    .unwrap();
    let mut receiver = run(processor, rx).await;
    let producer = EchoProducer.connect(&connection).await.unwrap();
    let reply = producer.rpc_echo("ping").await.unwrap();
    assert_eq!(
        reply.outcome().unwrap(),
        Outcome::Success {
            value: "ping".into(),
            message: String::new()
        }
    );
    assert_eq!(
        receiver.lines_until_quiet(Duration::from_millis(100)).await,
        ["rpc echo: ping"]
    );
    receiver.stop().await;
}

#[tokio::test]
async fn the_calculator_answers_errors_and_exceptions() {
    let broker = MemoryBroker::new();
    let server = broker.connect().await.unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let processor = Calculator {
        lines: Lines::Channel(tx),
    }
    .connect(Fingerprint::new("calc_service", "service"), &server)
    .await
    .unwrap();
    let mut calculator = run(processor, rx).await;
    let client = broker.connect().await.unwrap();
    let calc = CalcProducer.connect(&client).await.unwrap();
    let outcome = |reply: Message| reply.outcome().unwrap();
    assert_eq!(
        outcome(calc.rpc_binary("add", 2.0, 3.5).await.unwrap()),
        Outcome::Success {
            value: 5.5.into(),
            message: String::new()
        }
    );
    assert_eq!(
        outcome(calc.rpc_binary("div", 1.0, 0.0).await.unwrap()),
        Outcome::Error {
            message: "division by zero".into()
        }
    );
    match outcome(calc.rpc("sqrt", -1.0).await.unwrap()) {
        Outcome::Exception { name, message } => {
            assert_eq!(
                (name.as_str(), message.as_str()),
                ("ValueError", "math domain error")
            );
        }
        other => panic!("an exception result, not {other:?}"),
    }
    let lines = calculator
        .lines_until_quiet(Duration::from_millis(100))
        .await;
    assert_eq!(lines.len(), 3, "{lines:?}");
    calculator.stop().await;
}

/// The orders application, as a newcomer writes it: a typed RPC answers
/// with the order made, an error result is an error, and billing gets the
/// order from a status, retrying the charge that failed. No message is
/// built by hand, no reply read as JSON.
#[tokio::test]
async fn the_orders_application_goes_from_a_typed_call_to_billing() {
    use postage_examples::orders::{self, NewOrder, OrderCreated, OrdersClient};

    let broker = MemoryBroker::new();
    let connection = broker.connect().await.unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let (service, billing) = orders::connect(&connection, Lines::Channel(tx), 1)
        .await
        .unwrap();
    let service = run(service, mpsc::unbounded_channel().1).await;
    let mut billing = run(billing, rx).await;

    let client = OrdersClient.connect(&connection).await.unwrap();
    let tea = NewOrder {
        item: "tea".into(),
        quantity: 2,
    };
    let created: OrderCreated = client.rpc_create(&tea).await.unwrap();
    assert_eq!(
        created,
        OrderCreated {
            id: 1,
            item: "tea".into(),
            quantity: 2
        }
    );
    let nothing = NewOrder {
        item: "air".into(),
        quantity: 0,
    };
    let refused = client.rpc_create(&nothing).await.unwrap_err();
    assert!(
        matches!(&refused, postage::Error::RpcError { command, message }
            if command == "create" && message == "an order needs a quantity"),
        "{refused:?}"
    );
    // The first charge fails and is tried again after 200 ms.
    let billed = tokio::time::timeout(Duration::from_secs(5), billing.lines.recv())
        .await
        .expect("billing charges the order")
        .unwrap();
    assert_eq!(billed, "billed order 1: 2 x tea");
    assert!(
        billing
            .lines_until_quiet(Duration::from_millis(300))
            .await
            .is_empty()
    );
    // An order announced by anyone but `orders` is refused by billing's
    // layer: parked, never charged.
    let forger = Producer::builder()
        .ek(orders::ORDERS, orders::CREATED_KEY)
        .fingerprint(Fingerprint::new("mallory", "application"))
        .connect(&connection)
        .await
        .unwrap();
    let forged = OrderCreated {
        id: 99,
        item: "gold".into(),
        quantity: 1,
    };
    forger
        .send(MessageStatus::with_parameters("order_created", &forged))
        .await
        .unwrap();
    let probe = postage::testing::Probe::open(&connection).await.unwrap();
    let mut parked = 0;
    for _ in 0..100 {
        parked = probe.depth("billing-queue.parked").await.unwrap_or(0);
        if parked == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(parked, 1, "the forged order is parked");
    assert!(
        billing
            .lines_until_quiet(Duration::from_millis(300))
            .await
            .is_empty(),
        "the forged order is never charged"
    );
    service.stop().await;
    billing.stop().await;
}

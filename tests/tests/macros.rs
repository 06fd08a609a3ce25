//! Components written with `#[producer]` and `#[processor]`, on the real
//! broker: plain echo, fanout echo, RPC echo, typed parameters, returned
//! replies, context handlers, and the static producer API.

#![allow(clippy::expect_used)]

use std::time::Duration;

use postage::prelude::*;
use postage::processor::Stop;
use postage::{ApiParam, MessageApi, ProducerApi};
use postage_tests::{connect, unique};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

const WAIT: Duration = Duration::from_secs(10);

fn direct() -> Exchange {
    Exchange::new(unique("x"), ExchangeKind::Direct).auto_delete(true)
}

fn queue(prefix: &str) -> Queue {
    Queue::new(unique(prefix)).auto_delete(true)
}

// --- The echo producer -------------------------------------------------

/// The echo API: a message, an RPC with the same name, typed sums.
struct EchoProducer {
    exchange: Exchange,
}

#[derive(Debug, Serialize, Deserialize)]
struct Sum {
    a: i64,
    b: i64,
}

#[producer(eks = [(self.exchange.clone(), "echo-rk")])]
impl EchoProducer {
    /// Echo `text` to the receivers.
    fn build_message_echo(&self, text: &str) -> MessageCommand {
        MessageCommand::new("echo", text)
    }

    fn build_rpc_echo(&self, text: &str) -> RpcCommand {
        RpcCommand::new("echo", text)
    }

    fn build_rpc_sum(&self, a: i64, b: i64) -> RpcCommand {
        RpcCommand::new("sum", json!(Sum { a, b }))
    }

    fn build_rpc_div(&self, a: i64, b: i64) -> RpcCommand {
        RpcCommand::new("div", json!([a, b]))
    }

    fn build_rpc_parse(&self, text: String) -> RpcCommand {
        RpcCommand::new("parse", text)
    }

    fn build_rpc_whoami(&self) -> RpcCommand {
        RpcCommand::new("whoami", json!({}))
    }
}

// --- The echo receiver -------------------------------------------------

/// What a receiver saw: (receiver id, handler, text or sender).
type Seen = (u32, &'static str, String);

struct EchoReceiver {
    id: u32,
    seen: mpsc::UnboundedSender<Seen>,
}

impl EchoReceiver {
    fn saw(&self, handler: &'static str, text: String) {
        let _ = self.seen.send((self.id, handler, text));
    }
}

#[processor]
impl EchoReceiver {
    #[handler("command", "echo")]
    async fn echo(&self, content: Content) {
        let text = content.parameters().and_then(|p| p.as_str()).unwrap_or("?");
        self.saw("echo", text.to_owned());
    }

    #[full_body_handler("command", "echo")]
    async fn echo_sender(&self, message: Message) -> Result<(), String> {
        let sender = message.sender().name.ok_or("no sender name")?;
        self.saw("echo_sender", sender);
        Ok(())
    }

    #[rpc_handler("command", "echo")]
    async fn rpc_echo(&self, content: Content, reply: Reply) -> postage::Result<()> {
        let text = content.parameters().cloned().unwrap_or_default();
        reply.success(text).await
    }

    #[rpc_handler("command", "sum")]
    async fn sum(&self, Params(sum): Params<Sum>) -> i64 {
        sum.a + sum.b
    }

    #[rpc_handler("command", "div")]
    async fn div(&self, Params((a, b)): Params<(i64, i64)>) -> Result<i64, RpcError> {
        if b == 0 {
            return Err(RpcError::exception("ZeroDivisionError", "division by zero"));
        }
        Ok(a / b)
    }

    #[rpc_handler("command", "parse")]
    async fn parse(&self, Params(text): Params<String>) -> Result<i64, std::num::ParseIntError> {
        text.trim().parse()
    }

    #[context_handler("rpc", "command", "whoami")]
    async fn whoami(ctx: Context<Self>) -> postage::Result<()> {
        let answer = json!({
            "receiver": ctx.processor.id,
            "routing_key": ctx.routing_key,
            "caller": ctx.message.sender().name,
        });
        match ctx.reply {
            Some(reply) => reply.success(answer).await,
            None => Ok(()),
        }
    }

    #[handler("command", "count")]
    async fn count(&self, Params(n): Params<u32>) {
        self.saw("count", n.to_string());
    }

    #[handler("command", "stop")]
    async fn stop(&self) {
        self.saw("stop", String::new());
    }
}

/// A running receiver: its control and its task.
struct Running {
    control: Control,
    task: JoinHandle<postage::Result<Stop>>,
}

impl Running {
    async fn stop(self) {
        self.control.quit();
        let stop = self
            .task
            .await
            .expect("processor task")
            .expect("processor run");
        assert_eq!(stop, Stop::Quit);
    }
}

async fn start(
    connection: &Connection,
    id: u32,
    exchange: &Exchange,
    queues: Vec<(Queue, &str)>,
    seen: &mpsc::UnboundedSender<Seen>,
) -> Running {
    let receiver = EchoReceiver {
        id,
        seen: seen.clone(),
    };
    let processor = Processor::builder(receiver)
        .bind(exchange.clone(), queues)
        .fingerprint(Fingerprint::new("echo_receive", "controller"))
        .connect(connection)
        .await
        .expect("processor connects");
    let control = processor.control();
    Running {
        control,
        task: tokio::spawn(processor.run()),
    }
}

async fn connect_producer(
    connection: &Connection,
    exchange: &Exchange,
) -> ProducerApi<EchoProducer> {
    EchoProducer {
        exchange: exchange.clone(),
    }
    .connect_with(
        Producer::builder().fingerprint(Fingerprint::new("echo_send", "application")),
        connection,
    )
    .await
    .expect("producer connects")
}

async fn next_seen(seen: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
    match tokio::time::timeout(WAIT, seen.recv()).await {
        Ok(Some(seen)) => seen,
        Ok(None) => panic!("every receiver is gone"),
        Err(_) => panic!("nothing seen within {WAIT:?}"),
    }
}

fn outcome(reply: &Message) -> Outcome {
    reply.outcome().expect("a result message")
}

fn success(value: serde_json::Value) -> Outcome {
    Outcome::Success {
        value,
        message: String::new(),
    }
}

// --- Tests -------------------------------------------------------------

#[tokio::test]
async fn plain_echo_reaches_the_receiver_handlers() {
    let connection = connect().await;
    let exchange = direct();
    let (tx, mut seen) = mpsc::unbounded_channel();
    let receiver = start(
        &connection,
        1,
        &exchange,
        vec![(queue("echo"), "echo-rk")],
        &tx,
    )
    .await;
    let producer = connect_producer(&connection, &exchange).await;

    producer.message_echo("A test message").await.expect("sent");

    // Both message handlers for (command, echo) run, in declaration order.
    assert_eq!(
        next_seen(&mut seen).await,
        (1, "echo", "A test message".to_owned())
    );
    assert_eq!(
        next_seen(&mut seen).await,
        (1, "echo_sender", "echo_send".to_owned())
    );

    // A handler with no argument; the generic sender still works.
    producer.command("stop", json!({})).await.expect("sent");
    assert_eq!(next_seen(&mut seen).await, (1, "stop", String::new()));

    receiver.stop().await;
    connection.close().await.expect("close");
}

#[tokio::test]
async fn fanout_echo_copies_to_private_queues_and_shares_the_common_one() {
    let connection = connect().await;
    let exchange = direct();
    let shared = unique("shared");
    let (tx, mut seen) = mpsc::unbounded_channel();
    let mut receivers = Vec::new();
    for id in [1, 2] {
        let queues = vec![
            (Queue::new(shared.clone()).auto_delete(true), "echo-rk"),
            (queue(&format!("private{id}")), "echo-fanout-rk"),
        ];
        receivers.push(start(&connection, id, &exchange, queues, &tx).await);
    }
    let producer = connect_producer(&connection, &exchange).await;

    let plain = ["one", "two", "three", "four"];
    for text in plain {
        producer.message_echo(text).await.expect("sent");
    }
    producer
        .message_echo("to everyone")
        .key("echo-fanout-rk")
        .await
        .expect("sent");

    // 4 plain messages, once each, plus 2 fanout copies; two handlers each.
    let mut echoes = Vec::new();
    while echoes.len() < plain.len() + 2 {
        let (id, handler, text) = next_seen(&mut seen).await;
        if handler == "echo" {
            echoes.push((id, text));
        }
    }
    for receiver in receivers {
        receiver.stop().await;
    }
    for text in plain {
        let copies = echoes.iter().filter(|(_, t)| t == text).count();
        assert_eq!(
            copies, 1,
            "{text:?} went through the shared queue once: {echoes:?}"
        );
    }
    let mut fanout: Vec<u32> = echoes
        .iter()
        .filter(|(_, t)| t == "to everyone")
        .map(|(id, _)| *id)
        .collect();
    fanout.sort_unstable();
    assert_eq!(fanout, [1, 2], "each private queue got a copy: {echoes:?}");
    connection.close().await.expect("close");
}

#[tokio::test]
async fn rpc_echo_returns_the_reply() {
    let connection = connect().await;
    let exchange = direct();
    let (tx, _seen) = mpsc::unbounded_channel();
    let receiver = start(
        &connection,
        1,
        &exchange,
        vec![(queue("rpc"), "echo-rk")],
        &tx,
    )
    .await;
    let producer = connect_producer(&connection, &exchange).await;

    let reply = producer
        .rpc_echo("hello")
        .timeout(WAIT)
        .retries(0)
        .await
        .expect("reply");
    assert!(reply.is_ok());
    assert_eq!(outcome(&reply), success(json!("hello")));
    assert_eq!(reply.sender().name.as_deref(), Some("echo_receive"));

    // The same call through the generic sender, and queue-only.
    let reply = producer
        .rpc("echo", "generic")
        .timeout(WAIT)
        .await
        .expect("reply");
    assert_eq!(outcome(&reply), success(json!("generic")));
    let pending = producer
        .rpc_echo("later")
        .timeout(WAIT)
        .queue_only()
        .await
        .expect("sent");
    assert_eq!(
        outcome(&pending.await.expect("reply")),
        success(json!("later"))
    );

    receiver.stop().await;
    connection.close().await.expect("close");
}

#[tokio::test]
async fn typed_parameters_and_returned_values_become_results() {
    let connection = connect().await;
    let exchange = direct();
    let (tx, _seen) = mpsc::unbounded_channel();
    let receiver = start(
        &connection,
        1,
        &exchange,
        vec![(queue("typed"), "echo-rk")],
        &tx,
    )
    .await;
    let producer = connect_producer(&connection, &exchange).await;
    fn call(call: postage::rpc::RpcCall<'_>) -> postage::rpc::RpcCall<'_> {
        call.timeout(WAIT).retries(0)
    }

    // A returned value is a success.
    let reply = call(producer.rpc_sum(2, 3)).await.expect("reply");
    assert_eq!(outcome(&reply), success(json!(5)));

    // Parameters that do not fit: an error result, the handler not run.
    let reply = call(producer.rpc("sum", "not an object"))
        .await
        .expect("reply");
    match outcome(&reply) {
        Outcome::Error { message } => assert!(message.contains("Sum"), "says why: {message}"),
        other => panic!("expected an error result, got {other:?}"),
    }

    // Result<T, RpcError>: Ok is a success, an exception is an exception.
    let reply = call(producer.rpc_div(7, 2)).await.expect("reply");
    assert_eq!(outcome(&reply), success(json!(3)));
    let reply = call(producer.rpc_div(1, 0)).await.expect("reply");
    assert_eq!(
        outcome(&reply),
        Outcome::Exception {
            name: "ZeroDivisionError".into(),
            message: "division by zero".into()
        }
    );

    // Result<T, E: Display>: Err is an error result with E's text.
    let reply = call(producer.rpc_parse(" 42 ".into()))
        .await
        .expect("reply");
    assert_eq!(outcome(&reply), success(json!(42)));
    let reply = call(producer.rpc_parse("forty-two".into()))
        .await
        .expect("reply");
    assert_eq!(
        outcome(&reply),
        Outcome::Error {
            message: "invalid digit found in string".into()
        }
    );
    assert!(!reply.is_ok());

    receiver.stop().await;
    connection.close().await.expect("close");
}

#[tokio::test]
async fn message_with_parameters_that_do_not_fit_is_dropped_and_the_processor_goes_on() {
    let connection = connect().await;
    let exchange = direct();
    let (tx, mut seen) = mpsc::unbounded_channel();
    let receiver = start(
        &connection,
        1,
        &exchange,
        vec![(queue("count"), "echo-rk")],
        &tx,
    )
    .await;
    let producer = connect_producer(&connection, &exchange).await;

    // One queue, one handler at a time: "3" is handled after "three".
    producer.command("count", "three").await.expect("sent");
    producer.command("count", 3).await.expect("sent");
    assert_eq!(next_seen(&mut seen).await, (1, "count", "3".to_owned()));

    receiver.stop().await;
    connection.close().await.expect("close");
}

#[tokio::test]
async fn context_handler_sees_the_delivery() {
    let connection = connect().await;
    let exchange = direct();
    let (tx, _seen) = mpsc::unbounded_channel();
    let receiver = start(
        &connection,
        7,
        &exchange,
        vec![(queue("ctx"), "echo-rk")],
        &tx,
    )
    .await;
    let producer = connect_producer(&connection, &exchange).await;

    let reply = producer
        .rpc_whoami()
        .timeout(WAIT)
        .retries(0)
        .await
        .expect("reply");
    assert_eq!(
        outcome(&reply),
        success(json!({"receiver": 7, "routing_key": "echo-rk", "caller": "echo_send"}))
    );

    receiver.stop().await;
    connection.close().await.expect("close");
}

#[test]
fn the_producer_api_is_listed_statically() {
    let api: Vec<String> = EchoProducer::API.iter().map(ToString::to_string).collect();
    assert_eq!(
        api,
        [
            "message echo(text: &str)",
            "rpc echo(text: &str)",
            "rpc sum(a: i64, b: i64)",
            "rpc div(a: i64, b: i64)",
            "rpc parse(text: String)",
            "rpc whoami()",
        ]
    );
    const ECHO: MessageApi =
        MessageApi::message("echo", "message_echo", &[ApiParam::new("text", "&str")]);
    assert_eq!(EchoProducer::API[0], ECHO);
    assert_eq!(EchoProducer::API[2].category, Category::Rpc);
    assert_eq!(EchoProducer::API[2].sender, "rpc_sum");
}

#[test]
fn the_default_pairs_come_from_the_spec() {
    let exchange = direct();
    let spec = EchoProducer {
        exchange: exchange.clone(),
    };
    assert_eq!(spec.default_eks(), vec![(exchange, "echo-rk".to_owned())]);
}

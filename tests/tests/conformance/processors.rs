//! Processors through Postage's public API: acknowledgement after the
//! handler, poison messages, RPC without a handler, `quit`, RPC through
//! the macros with both reply strategies, and an RPC timeout.

use std::sync::Arc;
use std::time::Duration;

use postage::prelude::*;
use postage::{Error, Stop};
use postage_tests::conformance::{TestBroker, delivered, probe, silent};
use postage_tests::{conformance, unique};
use serde_json::json;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

const WAIT: Duration = Duration::from_secs(5);

fn direct(prefix: &str) -> Exchange {
    Exchange::new(unique(prefix), ExchangeKind::Direct).auto_delete(true)
}

/// Handlers that say when they start and finish, and wait to be let go.
struct Slow {
    seen: mpsc::UnboundedSender<String>,
    release: Arc<Notify>,
}

#[processor]
impl Slow {
    #[handler("command", "slow")]
    async fn slow(&self, Params(text): Params<String>) {
        let _ = self.seen.send(format!("started {text}"));
        self.release.notified().await;
        let _ = self.seen.send(format!("done {text}"));
    }

    #[handler("command", "echo")]
    async fn echo(&self, Params(text): Params<String>) {
        let _ = self.seen.send(format!("echo {text}"));
    }

    #[rpc_handler("command", "echo")]
    async fn rpc_echo(&self, Params(value): Params<serde_json::Value>) -> serde_json::Value {
        value
    }
}

/// A processor running in a task.
struct Running {
    control: Control,
    task: JoinHandle<postage::Result<Stop>>,
}

impl Running {
    /// Quits it and waits for it to end.
    async fn quit(self) {
        self.control.quit();
        let stop = tokio::time::timeout(WAIT, self.task)
            .await
            .expect("the processor ends")
            .expect("the processor task");
        assert_eq!(stop.expect("the processor ran"), Stop::Quit);
    }
}

/// Starts a `Slow` processor on `queue`, bound to `exchange` with the
/// queue's name as key.
async fn start_slow(
    connection: &Connection,
    exchange: &Exchange,
    queue: Queue,
) -> (Running, mpsc::UnboundedReceiver<String>, Arc<Notify>) {
    let (tx, seen) = mpsc::unbounded_channel();
    let release = Arc::new(Notify::new());
    let key = queue.name().to_owned();
    let processor = Processor::builder(Slow {
        seen: tx,
        release: release.clone(),
    })
    .bind(exchange.clone(), [(queue, key)])
    .fingerprint(Fingerprint::new("slow", "service"))
    .connect(connection)
    .await
    .expect("the processor connects");
    let control = processor.control();
    let running = Running {
        control,
        task: tokio::spawn(processor.run()),
    };
    (running, seen, release)
}

async fn producer(connection: &Connection, exchange: &Exchange, key: &str) -> Producer {
    Producer::builder()
        .ek(exchange.clone(), key)
        .fingerprint(Fingerprint::new("caller", "test"))
        .rpc_timeout(WAIT)
        .rpc_retries(0)
        .connect(connection)
        .await
        .expect("the producer connects")
}

async fn next_seen(seen: &mut mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(WAIT, seen.recv())
        .await
        .expect("a handler ran in time")
        .expect("the handler object is alive")
}

/// The queue's depth once it is `expected`, or what it is after 2 s.
async fn depth_becomes(probe: &postage::testing::Probe, queue: &str, expected: u32) -> u32 {
    let mut depth = probe.depth(queue).await.unwrap();
    for _ in 0..40 {
        if depth == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        depth = probe.depth(queue).await.unwrap();
    }
    depth
}

/// A fanout dead-letter exchange with a queue bound, consumed by `probe`.
async fn dead_letters(
    probe: &postage::testing::Probe,
) -> (Exchange, String, postage::testing::ProbeConsumer) {
    let dlx = Exchange::new(unique("dlx"), ExchangeKind::Fanout).auto_delete(true);
    probe.declare_exchange(&dlx).await.unwrap();
    let dead = unique("dead");
    probe
        .declare_queue(&Queue::new(&dead).auto_delete(true))
        .await
        .unwrap();
    probe.bind(&dead, dlx.name(), "").await.unwrap();
    let consumer = probe.consume(&dead).await.unwrap();
    (dlx, dead, consumer)
}

// --- RPC through the macros ---------------------------------------------

struct Adder;

#[processor]
impl Adder {
    #[rpc_handler("command", "add")]
    async fn add(&self, Params(numbers): Params<Vec<i64>>) -> i64 {
        numbers.iter().sum()
    }

    #[rpc_handler("command", "boom")]
    async fn boom(&self) -> Result<i64, RpcError> {
        Err(RpcError::exception("ValueError", "no such number"))
    }

    #[context_handler("rpc", "command", "where")]
    async fn where_(ctx: Context<Self>) -> postage::Result<()> {
        let answer = json!({"routing_key": ctx.routing_key, "caller": ctx.message.sender().name});
        match ctx.reply {
            Some(reply) => reply.success(answer).await,
            None => Ok(()),
        }
    }
}

struct AdderProducer {
    exchange: Exchange,
    key: String,
}

#[producer(eks = [(self.exchange.clone(), self.key.clone())])]
impl AdderProducer {
    fn build_rpc_add(&self, numbers: &[i64]) -> RpcCommand {
        RpcCommand::new("add", json!(numbers))
    }

    fn build_rpc_where(&self) -> RpcCommand {
        RpcCommand::new("where", json!({}))
    }

    fn build_rpc_sum(&self, numbers: &[i64]) -> RpcCommand<i64> {
        RpcCommand::new("add", numbers)
    }

    fn build_rpc_sum_as_text(&self, numbers: &[i64]) -> RpcCommand<String> {
        RpcCommand::new("add", numbers)
    }

    fn build_rpc_boom(&self) -> RpcCommand<i64> {
        RpcCommand::new("boom", ())
    }
}

/// Calls `add` and `where` through the macros with `strategy`.
async fn rpc_through_the_macros(broker: TestBroker, strategy: ReplyStrategy) {
    let connection = broker.connect().await;
    let exchange = direct("adder");
    let key = unique("adder");
    let processor = Processor::builder(Adder)
        .bind(
            exchange.clone(),
            [(Queue::new(key.as_str()).auto_delete(true), key.as_str())],
        )
        .fingerprint(Fingerprint::new("adder", "service"))
        .connect(&connection)
        .await
        .expect("the processor connects");
    let running = Running {
        control: processor.control(),
        task: tokio::spawn(processor.run()),
    };
    let adder = AdderProducer {
        exchange: exchange.clone(),
        key: key.clone(),
    }
    .connect_with(
        Producer::builder()
            .fingerprint(Fingerprint::new("calculator", "test"))
            .reply_strategy(strategy)
            .rpc_timeout(WAIT)
            .rpc_retries(0),
        &connection,
    )
    .await
    .expect("the producer connects");

    for (numbers, sum) in [(vec![1, 2, 3], 6), (vec![], 0), (vec![-5, 5, 40], 40)] {
        let reply = adder.rpc_add(&numbers).await.expect("a reply");
        assert!(reply.is_result() && reply.is_ok(), "{reply:?}");
        assert_eq!(
            reply.outcome().expect("a result"),
            Outcome::Success {
                value: json!(sum),
                message: String::new()
            }
        );
        assert_eq!(reply.sender().name.as_deref(), Some("adder"));
    }
    let reply = adder.rpc_where().await.expect("a reply");
    assert_eq!(
        reply.outcome().expect("a result").into_value().ok(),
        Some(json!({"routing_key": key, "caller": "calculator"}))
    );
    // Concurrent calls on one producer each get their own reply.
    let calls = (0..10).map(|i| {
        let adder = &adder;
        async move { (i, adder.rpc_add(&[i, i]).await) }
    });
    for (i, reply) in futures_util::future::join_all(calls).await {
        let reply = reply.expect("a reply");
        assert_eq!(
            reply.outcome().expect("a result").into_value().ok(),
            Some(json!(2 * i))
        );
    }
    // Typed: the success value as the build method's `RpcCommand<T>`
    // says, error and exception results as errors.
    let sum: i64 = adder.rpc_sum(&[20, 22]).await.expect("a typed reply");
    assert_eq!(sum, 42);
    let mismatch = adder.rpc_sum_as_text(&[1]).await.unwrap_err();
    assert!(
        matches!(mismatch, Error::Content(_)),
        "{}",
        mismatch.report()
    );
    let boom = adder.rpc_boom().await.unwrap_err();
    assert!(
        matches!(&boom, Error::RpcException { command, name, message }
            if command == "boom" && name == "ValueError" && message == "no such number"),
        "{boom:?}"
    );
    let untyped = adder.rpc_sum(&[1, 2]).untyped().await.expect("a reply");
    assert_eq!(untyped.outcome().unwrap().into_value().ok(), Some(json!(3)));
    let probe = probe(&connection).await;
    assert_eq!(
        probe.depth(&key).await.unwrap(),
        0,
        "every request was taken"
    );
    running.quit().await;
}

conformance! {
    /// A processor acknowledges a message once its handler has run: while
    /// the handler runs the message is neither ready nor given to another
    /// consumer, and afterwards it is gone for good.
    async fn processor_acks_after_its_handler_ran(broker) {
        let processor_connection = broker.connect().await;
        let exchange = direct("ack");
        let queue = unique("ack");
        let (running, mut seen, release) =
            start_slow(&processor_connection, &exchange, Queue::new(&queue).auto_delete(true)).await;
        let sender = producer(&broker.connect().await, &exchange, &queue).await;
        sender.command("slow", "one").await.unwrap();
        assert_eq!(next_seen(&mut seen).await, "started one");

        let probe = broker.probe().await;
        let declared = probe.declare_queue(&Queue::new(&queue).auto_delete(true)).await.unwrap();
        assert_eq!(declared.messages, 0, "taken by the processor, not ready");
        assert_eq!(declared.consumers, 1);
        let mut other = probe.consume(&queue).await.unwrap();
        assert!(silent(&mut other, 200).await, "an unacknowledged message is not given to another consumer");

        release.notify_one();
        assert_eq!(next_seen(&mut seen).await, "done one");
        running.quit().await;
        // Had it not been acknowledged, closing the processor's
        // connection would requeue it to the other consumer.
        processor_connection.close().await.unwrap();
        assert!(silent(&mut other, 300).await, "acknowledged: never delivered again");
        assert_eq!(probe.depth(&queue).await.unwrap(), 0);
    }

    /// A message that does not decode is rejected without requeue: it
    /// lands in the queue's dead-letter exchange once, and the processor
    /// goes on.
    async fn poison_message_is_dead_lettered(broker) {
        let connection = broker.connect().await;
        let probe = probe(&connection).await;
        let (dlx, _dead, mut dead_letters) = dead_letters(&probe).await;
        let exchange = direct("poison");
        let queue = unique("poison");
        let (running, mut seen, _release) = start_slow(
            &connection,
            &exchange,
            Queue::new(&queue).auto_delete(true).argument("x-dead-letter-exchange", dlx.name()),
        )
        .await;
        let bodies: [&[u8]; 3] = [b"{not json", b"[1, 2, 3]", br#"{"type": "command", "name": "echo"}"#];
        for body in bodies {
            probe
                .publish(exchange.name(), &queue, body)
                .content_type("application/json")
                .await
                .unwrap();
        }
        for body in bodies {
            let dead = delivered(&mut dead_letters, 5000).await;
            assert_eq!(dead.body(), body, "rejected without requeue, in order");
            assert!(!dead.redelivered());
            let headers = dead.headers();
            let death = &headers["x-death"][0];
            assert_eq!(death["reason"], "rejected", "{headers:?}");
            assert_eq!(death["queue"], queue.as_str(), "{headers:?}");
            assert_eq!(death["exchange"], exchange.name(), "{headers:?}");
            assert_eq!(death["routing-keys"], json!([queue]), "{headers:?}");
            assert_eq!(death["count"], 1, "{headers:?}");
            dead.ack().await.unwrap();
        }
        let sender = producer(&connection, &exchange, &queue).await;
        sender.command("echo", "good").await.unwrap();
        assert_eq!(next_seen(&mut seen).await, "echo good");
        assert!(silent(&mut dead_letters, 200).await, "each poison message once: no requeue loop");
        assert_eq!(probe.depth(&queue).await.unwrap(), 0);
        running.quit().await;
    }

    /// A message no handler takes (here a status where the processor
    /// handles a command of that name) is dead-lettered when the
    /// processor says so, and the processor goes on.
    async fn a_message_without_a_handler_is_dead_lettered_when_asked(broker) {
        let connection = broker.connect().await;
        let probe = probe(&connection).await;
        let (dlx, _dead, mut dead_letters) = dead_letters(&probe).await;
        let exchange = direct("unhandled");
        let queue = unique("unhandled");
        let (tx, mut seen) = mpsc::unbounded_channel();
        let processor = Processor::builder(Slow { seen: tx, release: Arc::new(Notify::new()) })
            .bind(
                exchange.clone(),
                [(Queue::new(&queue).auto_delete(true).argument("x-dead-letter-exchange", dlx.name()), queue.as_str())],
            )
            .dead_letter_unhandled(true)
            .connect(&connection)
            .await
            .unwrap();
        let running = Running { control: processor.control(), task: tokio::spawn(processor.run()) };
        let sender = producer(&connection, &exchange, &queue).await;
        sender.send(MessageStatus::with_parameters("echo", "a status")).await.unwrap();
        sender.command("echo", "a command").await.unwrap();
        let dead = delivered(&mut dead_letters, 5000).await;
        let body: serde_json::Value = serde_json::from_str(&dead.text()).unwrap();
        assert_eq!((&body["type"], &body["name"]), (&json!("status"), &json!("echo")), "{body}");
        dead.ack().await.unwrap();
        assert_eq!(next_seen(&mut seen).await, "echo a command");
        assert!(silent(&mut dead_letters, 200).await, "only the unhandled one");
        running.quit().await;
    }

    /// Without a dead-letter exchange, a poison message is dropped: not
    /// requeued, not redelivered, and the processor goes on.
    async fn poison_message_without_dlx_is_dropped(broker) {
        let processor_connection = broker.connect().await;
        let probe = broker.probe().await;
        let exchange = direct("poison-drop");
        let queue = unique("poison-drop");
        let (running, mut seen, _release) =
            start_slow(&processor_connection, &exchange, Queue::new(&queue).argument("x-expires", 60_000)).await;
        probe.publish(exchange.name(), &queue, "{not json").content_type("application/json").await.unwrap();
        let sender = producer(&broker.connect().await, &exchange, &queue).await;
        sender.command("echo", "good").await.unwrap();
        assert_eq!(next_seen(&mut seen).await, "echo good");
        running.quit().await;
        processor_connection.close().await.unwrap();
        assert_eq!(depth_becomes(&probe, &queue, 0).await, 0);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(probe.depth(&queue).await.unwrap(), 0, "the poison message is gone, not requeued");
        assert_eq!(probe.delete_queue(&queue).await.unwrap(), 0);
    }

    /// An RPC call to a command no handler takes is answered at once with
    /// an error result.
    async fn rpc_without_a_handler_gets_an_error_reply(broker) {
        let connection = broker.connect().await;
        let exchange = direct("nohandler");
        let queue = unique("nohandler");
        let (running, _seen, _release) =
            start_slow(&connection, &exchange, Queue::new(&queue).auto_delete(true)).await;
        let caller = producer(&connection, &exchange, &queue).await;
        let started = std::time::Instant::now();
        let reply = caller.rpc("nobody", json!({})).await.expect("a reply, not a timeout");
        assert!(started.elapsed() < Duration::from_secs(3), "answered at once");
        assert!(!reply.is_ok());
        match reply.outcome().expect("a result") {
            Outcome::Error { message } => assert!(message.contains("no handler"), "{message}"),
            other => panic!("expected an error result, got {other:?}"),
        }
        assert_eq!(reply.sender().name.as_deref(), Some("slow"));
        // A message-category handler does not answer an RPC either.
        let reply = caller.rpc("slow", "x").await.expect("a reply");
        assert!(matches!(reply.outcome(), Ok(Outcome::Error { .. })), "{reply:?}");
        // The processor is still there.
        let reply = caller.rpc("echo", json!([1])).await.expect("a reply");
        assert_eq!(reply.outcome().unwrap().into_value().ok(), Some(json!([1])));
        running.quit().await;
    }

    /// A `quit` command stops the processor: `run` returns `Stop::Quit`.
    async fn quit_command_stops_the_processor(broker) {
        let connection = broker.connect().await;
        let exchange = direct("quit");
        let queue = unique("quit");
        let (running, mut seen, _release) =
            start_slow(&connection, &exchange, Queue::new(&queue).argument("x-expires", 60_000)).await;
        let sender = producer(&connection, &exchange, &queue).await;
        sender.command("echo", "before").await.unwrap();
        assert_eq!(next_seen(&mut seen).await, "echo before");
        sender.command("quit", json!({})).await.unwrap();
        let stop = tokio::time::timeout(WAIT, running.task).await.expect("ends").expect("joins");
        assert_eq!(stop.expect("no error"), Stop::Quit);
        // Nothing consumes the queue any more.
        sender.command("echo", "after").await.unwrap();
        let probe = probe(&connection).await;
        assert_eq!(depth_becomes(&probe, &queue, 1).await, 1, "left in the queue");
        let declared = probe.declare_queue(&Queue::new(&queue).argument("x-expires", 60_000)).await.unwrap();
        assert_eq!(declared.consumers, 0);
        probe.delete_queue(&queue).await.unwrap();
    }

    /// RPC through `#[producer]` and `#[processor]` with direct reply-to.
    async fn rpc_through_the_macros_with_direct_reply_to(broker) {
        rpc_through_the_macros(broker, ReplyStrategy::DirectReplyTo).await;
    }

    /// RPC through `#[producer]` and `#[processor]` with a reply queue per
    /// call.
    async fn rpc_through_the_macros_with_a_queue_per_call(broker) {
        rpc_through_the_macros(broker, ReplyStrategy::QueuePerCall).await;
    }

    /// An RPC call nobody answers fails with `Error::RpcTimeout` after
    /// each attempt's timeout.
    async fn rpc_nobody_answers_times_out(broker) {
        let connection = broker.connect().await;
        let probe = probe(&connection).await;
        let exchange = direct("timeout");
        probe.declare_exchange(&exchange).await.unwrap();
        let queue = unique("timeout");
        probe.declare_queue(&Queue::new(&queue).auto_delete(true)).await.unwrap();
        probe.bind(&queue, exchange.name(), &queue).await.unwrap();
        let mut requests = probe.consume_no_ack(&queue).await.unwrap();
        let caller = Producer::builder().ek(exchange.clone(), queue.as_str()).connect(&connection).await.unwrap();
        let started = std::time::Instant::now();
        let error = caller
            .rpc("anything", json!({}))
            .timeout(Duration::from_millis(300))
            .retries(1)
            .await
            .expect_err("nobody answers");
        let elapsed = started.elapsed();
        assert!(error.is_timeout(), "{error}");
        assert!(
            matches!(&error, Error::RpcTimeout { command, attempts: 2, timeout } if command == "anything" && *timeout == Duration::from_millis(300)),
            "{error:?}"
        );
        assert!(elapsed >= Duration::from_millis(600), "two attempts of 300 ms: {elapsed:?}");
        assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
        let mut correlations = Vec::new();
        for _ in 0..2 {
            let request = delivered(&mut requests, 1000).await;
            assert!(request.reply_to().is_some_and(|r| r.starts_with("amq.rabbitmq.reply-to")), "{:?}", request.reply_to());
            correlations.push(request.correlation_id().expect("a correlation id").to_owned());
        }
        assert_ne!(correlations[0], correlations[1], "each attempt has its own correlation id");
        assert!(silent(&mut requests, 200).await, "exactly two sends");
    }
}

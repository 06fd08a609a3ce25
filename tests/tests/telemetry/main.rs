//! Telemetry as a user sees it: the spans of an RPC across two components
//! as one trace, messages from peers without trace context, the trace
//! context on the wire, the metrics of a known run, and no secret in any of
//! it.
//!
//! Spans and metrics are captured per thread, so every test runs on a
//! current-thread runtime (`#[tokio::test]`'s default), where the
//! components' tasks poll on the test's thread.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod capture;
mod metrics;
mod secrets;
mod spans;
mod wire;

use std::fmt;

use postage::Stop;
use postage::prelude::*;
use postage_tests::unique;
use serde_json::json;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use capture::WAIT;

/// The server's fingerprint name: `postage.processor` and the metrics'
/// `processor` label.
const SERVER: &str = "telemetry-server";
/// The client's fingerprint name: `postage.sender` on the server's side.
const CLIENT: &str = "telemetry-client";

/// What the failing handler fails with (`error.type` of its span).
#[derive(Debug)]
struct BadInput;

impl fmt::Display for BadInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the input is bad")
    }
}

/// Handlers that succeed, fail, answer and refuse; each says it ran.
struct Calc {
    seen: mpsc::UnboundedSender<String>,
}

#[processor]
impl Calc {
    #[handler("command", "work")]
    async fn work(&self, Params(text): Params<String>) {
        let _ = self.seen.send(format!("work {text}"));
    }

    #[handler("command", "explode")]
    async fn explode(&self, _content: Content) -> Result<(), BadInput> {
        let _ = self.seen.send("explode".to_owned());
        Err(BadInput)
    }

    #[rpc_handler("command", "add")]
    async fn add(&self, Params((a, b)): Params<(i64, i64)>) -> i64 {
        let _ = self.seen.send(format!("add {a} {b}"));
        a + b
    }

    #[rpc_handler("command", "echo")]
    async fn echo(&self, Params(value): Params<serde_json::Value>) -> serde_json::Value {
        let _ = self.seen.send(format!("echo {value}"));
        value
    }

    #[rpc_handler("command", "refuse")]
    async fn refuse(&self, _content: Content) -> Result<i64, RpcError> {
        let _ = self.seen.send("refuse".to_owned());
        Err(RpcError::error("refused"))
    }
}

/// A running `Calc` processor on a fresh exchange.
struct Server {
    exchange: Exchange,
    /// Its queue's name, also the binding key.
    queue: String,
    control: Control,
    task: JoinHandle<postage::Result<Stop>>,
    seen: mpsc::UnboundedReceiver<String>,
}

impl Server {
    /// Builds the processor (registering its metrics) and runs it.
    async fn start(connection: &Connection) -> Server {
        let exchange = Exchange::new(unique("telemetry"), ExchangeKind::Direct).auto_delete(true);
        let queue = unique("telemetry-calc");
        let (tx, seen) = mpsc::unbounded_channel();
        let processor = Processor::builder(Calc { seen: tx })
            .bind(
                exchange.clone(),
                [(Queue::new(queue.as_str()).auto_delete(true), queue.as_str())],
            )
            .fingerprint(Fingerprint::new(SERVER, "service"))
            .connect(connection)
            .await
            .expect("the processor connects");
        let control = processor.control();
        Server {
            exchange,
            queue,
            control,
            task: tokio::spawn(processor.run()),
            seen,
        }
    }

    /// The next thing a handler says it did.
    async fn next_seen(&mut self) -> String {
        tokio::time::timeout(WAIT, self.seen.recv())
            .await
            .expect("a handler ran in time")
            .expect("the processor is alive")
    }

    /// Quits the processor and waits for it to end.
    async fn quit(self) {
        self.control.quit();
        let stop = tokio::time::timeout(WAIT, self.task)
            .await
            .expect("the processor ends")
            .expect("the processor task");
        assert_eq!(stop.expect("the processor ran"), Stop::Quit);
    }

    /// The processor's span name: `process` and its exchange.
    fn process_span(&self) -> String {
        format!("process {}", self.exchange.name())
    }

    /// The name of the spans of publishes to its exchange.
    fn publish_span(&self) -> String {
        format!("publish {}", self.exchange.name())
    }
}

/// A producer sending to `server`'s queue, with one attempt per call.
async fn client(connection: &Connection, server: &Server) -> Producer {
    Producer::builder()
        .ek(server.exchange.clone(), server.queue.as_str())
        .fingerprint(Fingerprint::new(CLIENT, "test"))
        .rpc_timeout(WAIT)
        .rpc_retries(0)
        .connect(connection)
        .await
        .expect("the producer connects")
}

/// A body as Python Postage writes it: a command `name` with `parameters`
/// from `sender`.
fn python_command(name: &str, parameters: serde_json::Value, sender: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "type": "command",
        "name": name,
        "category": "message",
        "version": "2",
        "fingerprint": {"name": sender, "type": "script", "pid": 4242, "host": "python-host"},
        "content": {"parameters": parameters},
        "_reserved": {},
    }))
    .expect("JSON")
}

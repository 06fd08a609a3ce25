//! The example components' processors, as a library: the binaries run
//! them on RabbitMQ, the in-process tests on the in-memory broker.

use postage::prelude::*;
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::{ECHO, ECHO_FANOUT_KEY, ECHO_KEY, ECHO_QUEUE, text};

/// Where a component's lines go: standard output, or a channel (tests).
#[derive(Debug, Clone)]
pub enum Lines {
    /// Printed.
    Stdout,
    /// Sent, one line per message.
    Channel(mpsc::UnboundedSender<String>),
}

impl Lines {
    /// Says one line.
    #[allow(clippy::print_stdout)]
    pub fn say(&self, line: String) {
        match self {
            Lines::Stdout => println!("{line}"),
            Lines::Channel(tx) => {
                let _ = tx.send(line);
            }
        }
    }
}

/// `echo_receive`: prints `echo: TEXT` for every `echo` command.
pub struct EchoReceiver {
    /// Where its lines go.
    pub lines: Lines,
}

#[processor]
impl EchoReceiver {
    #[handler("command", "echo")]
    async fn echo(&self, content: Content) {
        self.lines.say(format!(
            "echo: {}",
            text(content.parameters().unwrap_or_default())
        ));
    }
}

impl EchoReceiver {
    /// The processor on the shared queue.
    pub async fn connect(self, connection: &Connection) -> postage::Result<Processor<Self>> {
        Processor::builder(self)
            .bind(ECHO, [(ECHO_QUEUE, ECHO_KEY)])
            .fingerprint(Fingerprint::new("echo_receive", "controller"))
            .connect(connection)
            .await
    }
}

/// `echo_advanced_receive`: the echo line, and the sender's fingerprint
/// from a full-body handler; on the shared queue and a private one.
pub struct AdvancedEchoReceiver {
    /// Where its lines go.
    pub lines: Lines,
}

#[processor]
impl AdvancedEchoReceiver {
    #[handler("command", "echo")]
    async fn echo(&self, content: Content) {
        self.lines.say(format!(
            "echo: {}",
            text(content.parameters().unwrap_or_default())
        ));
    }

    #[full_body_handler("command", "echo")]
    async fn echo_fingerprint(&self, message: Message) {
        let sender = message.sender();
        self.lines.say(format!(
            "fingerprint: {} pid={}",
            sender.name.as_deref().unwrap_or("?"),
            sender.pid.map_or_else(|| "?".to_owned(), |p| p.to_string())
        ));
    }
}

impl AdvancedEchoReceiver {
    /// The processor on the shared queue and on a private queue named
    /// after `fingerprint` (which the fanout key reaches).
    pub async fn connect(
        self,
        fingerprint: Fingerprint,
        connection: &Connection,
    ) -> postage::Result<Processor<Self>> {
        let private = format!(
            "echo-queue-{}{}",
            fingerprint.pid.unwrap_or_default(),
            fingerprint.host.as_deref().unwrap_or_default()
        );
        Processor::builder(self)
            .bind(
                ECHO,
                [
                    (Queue::new(ECHO_QUEUE), ECHO_KEY),
                    (
                        Queue::new(private).exclusive(true).auto_delete(true),
                        ECHO_FANOUT_KEY,
                    ),
                ],
            )
            .fingerprint(fingerprint)
            .connect(connection)
            .await
    }
}

/// `rpc_echo_receive`: answers `echo` RPC calls with their parameters.
pub struct RpcEchoReceiver {
    /// Where its lines go.
    pub lines: Lines,
}

#[processor]
impl RpcEchoReceiver {
    #[rpc_handler("command", "echo")]
    async fn echo(&self, content: Content, reply: Reply) -> postage::Result<()> {
        let parameters = content.parameters().cloned().unwrap_or_default();
        self.lines.say(format!("rpc echo: {}", text(&parameters)));
        reply.success(parameters).await
    }
}

impl RpcEchoReceiver {
    /// The processor on the shared queue.
    pub async fn connect(self, connection: &Connection) -> postage::Result<Processor<Self>> {
        Processor::builder(self)
            .bind(ECHO, [(ECHO_QUEUE, ECHO_KEY)])
            .fingerprint(Fingerprint::new("rpc_echo_receive", "controller"))
            .connect(connection)
            .await
    }
}

/// The calculator's exchange.
pub const CALC: Exchange = Exchange::direct("calc-exchange");

/// The calculator's status exchange.
pub const CALC_STATUS: Exchange = Exchange::fanout("calc-status");

/// Two operands.
#[derive(Debug, Deserialize)]
pub struct Operands {
    a: f64,
    b: f64,
}

/// `calc_service`: `add`, `mul`, `div` on `{"a", "b"}`, `sqrt` on a number.
pub struct Calculator {
    /// Where its lines go.
    pub lines: Lines,
}

#[processor]
impl Calculator {
    #[rpc_handler("command", "add")]
    async fn add(&self, Params(ops): Params<Operands>) -> f64 {
        self.lines.say(format!("add {ops:?}"));
        ops.a + ops.b
    }

    #[rpc_handler("command", "mul")]
    async fn mul(&self, Params(ops): Params<Operands>) -> f64 {
        self.lines.say(format!("mul {ops:?}"));
        ops.a * ops.b
    }

    #[rpc_handler("command", "div")]
    async fn div(&self, Params(ops): Params<Operands>) -> Result<f64, RpcError> {
        self.lines.say(format!("div {ops:?}"));
        if ops.b == 0.0 {
            return Err(RpcError::error("division by zero"));
        }
        Ok(ops.a / ops.b)
    }

    #[rpc_handler("command", "sqrt")]
    async fn sqrt(&self, Params(x): Params<f64>) -> Result<f64, RpcError> {
        self.lines.say(format!("sqrt {x}"));
        if x < 0.0 {
            return Err(RpcError::exception("ValueError", "math domain error"));
        }
        Ok(x.sqrt())
    }
}

impl Calculator {
    /// The processor on `calc-queue`, eight calls at a time.
    pub async fn connect(
        self,
        fingerprint: Fingerprint,
        connection: &Connection,
    ) -> postage::Result<Processor<Self>> {
        Processor::builder(self)
            .bind(CALC, [("calc-queue", "calc-rk")])
            .fingerprint(fingerprint)
            .concurrency(8)
            .connect(connection)
            .await
    }
}

/// The calculator's status broadcasts.
pub struct StatusProducer;

#[producer(eks = [(CALC_STATUS, "")])]
impl StatusProducer {
    fn build_message_status(&self, status: &str) -> MessageStatus {
        MessageStatus::new(status)
    }
}

/// The calculator's client API.
pub struct CalcProducer;

#[producer(eks = [(CALC, "calc-rk")])]
impl CalcProducer {
    fn build_rpc_binary(&self, op: &str, a: f64, b: f64) -> RpcCommand {
        RpcCommand::new(op, serde_json::json!({ "a": a, "b": b }))
    }
}

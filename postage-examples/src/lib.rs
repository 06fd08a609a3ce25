//! What the example components share: the echo exchange, the echo
//! producer, logging, and running a processor as a component.
//!
//! The names match the demos of Python Postage (`echo-exchange`, direct and
//! durable; queue `echo-queue`; keys `echo-rk` and `echo-fanout-rk`), so
//! these components interoperate with Python ones.

#![allow(clippy::print_stdout)]

use postage::prelude::*;

pub mod components;
pub mod orders;

/// The exchange every echo component uses.
pub const ECHO: Exchange = Exchange::direct("echo-exchange");

/// The shared queue (round robin between receivers).
pub const ECHO_QUEUE: &str = "echo-queue";

/// The routing key of the shared queue.
pub const ECHO_KEY: &str = "echo-rk";

/// The routing key that reaches every receiver's private queue.
pub const ECHO_FANOUT_KEY: &str = "echo-fanout-rk";

/// Logs to stderr: `RUST_LOG` if set, otherwise `debug` when
/// `POSTAGE_DEBUG_MODE` is true and `warn` when not. Standard output stays
/// for the component's own lines.
///
/// The AMQP client library's own lines are off unless `RUST_LOG` asks for
/// them: Postage reports what they would say (a lost or recovered
/// connection, a refused login) in its own log lines and errors, and a
/// refused login would otherwise be logged twice.
pub fn init_logging() {
    let debug = Config::from_env().is_ok_and(|c| c.debug());
    let default = if debug {
        "debug,lapin=off"
    } else {
        "warn,lapin=off"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// A JSON value as a line of text: strings bare, anything else as JSON.
pub fn text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The echo API every echo sender uses: `message_echo(text)` and
/// `rpc_echo(text)` on `echo-exchange` with key `echo-rk` (Python's
/// `EchoProducer`).
pub struct EchoProducer;

#[producer(eks = [(ECHO, ECHO_KEY)])]
impl EchoProducer {
    fn build_message_echo(&self, text: &str) -> MessageCommand {
        MessageCommand::new("echo", text)
    }

    fn build_rpc_echo(&self, text: &str) -> RpcCommand {
        RpcCommand::new("echo", text)
    }
}

impl EchoProducer {
    /// Connects with a fingerprint named `name` (type `application`).
    pub async fn connect_as(name: &str) -> postage::Result<(Connection, ProducerApi<Self>)> {
        let connection = Connection::from_env().await?;
        let producer = EchoProducer
            .connect_with(
                Producer::builder().fingerprint(Fingerprint::new(name, "application")),
                &connection,
            )
            .await?;
        Ok((connection, producer))
    }
}

/// Runs a processor as a component: prints `ready pid=PID` once it
/// consumes, then serves until `quit`, Ctrl-C or SIGTERM (and restarts in
/// place on `restart`).
pub async fn serve<P: Handlers>(processor: Processor<P>) -> postage::Result<()> {
    let mut scheduler = Scheduler::new();
    scheduler.add(processor);
    // A SIGTERM right after `ready` shuts down gracefully, not by default.
    scheduler.listen_for_signals()?;
    println!("ready pid={}", std::process::id());
    scheduler.run().await
}

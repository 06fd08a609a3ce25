//! `echo_demo`: the whole echo family in one process. A receiver handles
//! `echo` commands and answers `rpc` echoes; a producer sends two commands
//! and makes one call; then the receiver is told to `quit`.
//!
//! ```text
//! $ cargo run -p postage-examples --bin echo_demo
//! received: hello
//! received: {"from":"rust"}
//! reply: ping
//! done
//! ```
#![allow(clippy::print_stdout)]

use postage::prelude::*;
use postage_examples::{ECHO, init_logging, text};
use serde_json::json;

/// The sender's API: one method per message.
struct EchoProducer;

#[producer(eks = [(ECHO, "echo-demo-rk")])]
impl EchoProducer {
    fn build_message_echo(&self, parameters: serde_json::Value) -> MessageCommand {
        MessageCommand::new("echo", parameters)
    }

    fn build_rpc_echo(&self, text: &str) -> RpcCommand {
        RpcCommand::new("echo", text)
    }
}

/// The receiver: one method per message it handles.
struct EchoReceiver;

#[processor]
impl EchoReceiver {
    #[handler("command", "echo")]
    async fn echo(&self, content: Content) {
        println!(
            "received: {}",
            text(content.parameters().unwrap_or_default())
        );
    }

    #[rpc_handler("command", "echo")]
    async fn rpc_echo(&self, Params(text): Params<String>) -> String {
        text
    }
}

#[tokio::main]
async fn main() -> Result<(), postage::Report> {
    init_logging();
    let connection = Connection::from_env().await?;

    let receiver = Processor::builder(EchoReceiver)
        .bind(ECHO, [(Queue::server_named(), "echo-demo-rk")])
        .fingerprint(Fingerprint::new("echo_demo_receiver", "controller"))
        .connect(&connection)
        .await?;
    let control = receiver.control();
    let running = tokio::spawn(receiver.run());

    let producer = EchoProducer
        .connect_with(
            Producer::builder().fingerprint(Fingerprint::new("echo_demo", "application")),
            &connection,
        )
        .await?;
    producer.message_echo("hello".into()).await?;
    producer.message_echo(json!({"from": "rust"})).await?;
    let reply = producer.rpc_echo("ping").await?;
    if let Ok(value) = reply.outcome()?.into_value() {
        println!("reply: {}", text(&value));
    }

    control.quit();
    let _ = running.await;
    connection.close().await?;
    println!("done");
    Ok(())
}

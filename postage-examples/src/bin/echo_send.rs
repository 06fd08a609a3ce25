//! `echo_send [TEXT]`: sends one `echo` command (default text "A test
//! message") to `echo-exchange` with key `echo-rk`, and prints
//! `sent: TEXT`.
#![allow(clippy::print_stdout)]

use postage::prelude::*;
use postage_examples::{ECHO, ECHO_KEY, init_logging};

struct EchoProducer;

#[producer(eks = [(ECHO, ECHO_KEY)])]
impl EchoProducer {
    fn build_message_echo(&self, text: &str) -> MessageCommand {
        MessageCommand::new("echo", text)
    }
}

#[tokio::main]
async fn main() -> postage::Result<()> {
    init_logging();
    let text = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "A test message".to_owned());
    let connection = Connection::from_env().await?;
    let producer = EchoProducer
        .connect_with(
            Producer::builder().fingerprint(Fingerprint::new("echo_send", "application")),
            &connection,
        )
        .await?;
    producer.message_echo(&text).await?;
    println!("sent: {text}");
    connection.close().await
}

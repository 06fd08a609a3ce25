//! `echo_advanced_send [TEXT]`: with its fingerprint, sends one `echo`
//! to the shared queue (key `echo-rk`: one receiver gets it) and one to
//! every receiver's private queue (key `echo-fanout-rk`). Prints
//! `sent: TEXT` and `sent fanout: TEXT`.
#![allow(clippy::print_stdout)]

use postage::prelude::*;
use postage_examples::{ECHO, ECHO_FANOUT_KEY, ECHO_KEY, init_logging};

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
    producer.message_echo(&text).key(ECHO_FANOUT_KEY).await?;
    println!("sent fanout: {text}");
    connection.close().await
}

//! `echo_advanced_send [TEXT]`: with its fingerprint, sends one `echo`
//! to the shared queue (key `echo-rk`: one receiver gets it) and one to
//! every receiver's private queue (key `echo-fanout-rk`). Prints
//! `sent: TEXT` and `sent fanout: TEXT`.
#![allow(clippy::print_stdout)]

use postage_examples::{ECHO_FANOUT_KEY, EchoProducer, init_logging};

#[tokio::main]
async fn main() -> Result<(), postage::Report> {
    init_logging();
    let text = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "A test message".to_owned());
    let (connection, producer) = EchoProducer::connect_as("echo_send").await?;
    producer.message_echo(&text).await?;
    println!("sent: {text}");
    producer.message_echo(&text).key(ECHO_FANOUT_KEY).await?;
    println!("sent fanout: {text}");
    connection.close().await?;
    Ok(())
}

//! `echo_send [TEXT]`: sends one `echo` command (default text "A test
//! message") to `echo-exchange` with key `echo-rk`, and prints
//! `sent: TEXT`.
#![allow(clippy::print_stdout)]

use postage_examples::{EchoProducer, init_logging};

#[tokio::main]
async fn main() -> Result<(), postage::Report> {
    init_logging();
    let text = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "A test message".to_owned());
    let (connection, producer) = EchoProducer::connect_as("echo_send").await?;
    producer.message_echo(&text).await?;
    println!("sent: {text}");
    connection.close().await?;
    Ok(())
}

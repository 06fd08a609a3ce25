//! `rpc_echo_send [TEXT]`: calls `rpc_echo` on `echo-exchange` / `echo-rk`
//! and prints `reply: VALUE` (or `failed: ...` and exits with status 1).
//! Works with Python Postage RPC servers too, which reply without a
//! correlation id.
#![allow(clippy::print_stdout)]

use postage::prelude::*;
use postage_examples::{EchoProducer, init_logging, text};

#[tokio::main]
async fn main() -> Result<(), postage::Report> {
    init_logging();
    let text_arg = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "RPC test message".to_owned());
    let (connection, producer) = EchoProducer::connect_as("rpc_echo_send").await?;
    let reply = producer.rpc_echo(&text_arg).await?;
    let outcome = reply.outcome()?;
    connection.close().await?;
    match outcome {
        Outcome::Success { value, .. } => {
            println!("reply: {}", text(&value));
            Ok(())
        }
        failure => {
            println!("failed: {failure:?}");
            std::process::exit(1);
        }
    }
}

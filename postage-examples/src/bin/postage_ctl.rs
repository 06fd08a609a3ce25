//! `postage_ctl quit|restart [EXCHANGE [KEY]]`: sends the control command
//! to the components consuming KEY on EXCHANGE (default: `echo-exchange`,
//! `echo-rk`). Prints `sent: COMMAND to EXCHANGE/KEY`.
//!
//! The exchange is declared as Python Postage declares it (direct,
//! durable).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use postage::prelude::*;
use postage_examples::init_logging;

#[tokio::main]
async fn main() -> Result<(), postage::Report> {
    init_logging();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match args.first().map(String::as_str) {
        Some(command @ ("quit" | "restart")) => command.to_owned(),
        _ => {
            eprintln!("usage: postage_ctl quit|restart [EXCHANGE [KEY]]");
            std::process::exit(2);
        }
    };
    let exchange = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "echo-exchange".into());
    let key = args.get(2).cloned().unwrap_or_else(|| "echo-rk".into());
    let connection = Connection::from_env().await?;
    let producer = Producer::builder()
        .ek(
            Exchange::new(exchange.clone(), ExchangeKind::Direct),
            key.clone(),
        )
        .fingerprint(Fingerprint::new("postage_ctl", "tool"))
        .connect(&connection)
        .await?;
    producer.command(&command, serde_json::json!({})).await?;
    println!("sent: {command} to {exchange}/{key}");
    connection.close().await?;
    Ok(())
}

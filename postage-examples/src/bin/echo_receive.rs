//! `echo_receive`: consumes `echo-queue` (bound to `echo-exchange` with
//! `echo-rk`) and prints `echo: PARAMETERS` for each `echo` command. Stops
//! on `quit`, on Ctrl-C or SIGTERM; restarts in place on `restart`.
#![allow(clippy::print_stdout)]

use postage::prelude::*;
use postage_examples::{ECHO, ECHO_KEY, ECHO_QUEUE, init_logging, serve, text};

struct EchoReceiver;

#[processor]
impl EchoReceiver {
    #[handler("command", "echo")]
    async fn echo(&self, content: Content) {
        println!("echo: {}", text(content.parameters().unwrap_or_default()));
    }
}

#[tokio::main]
async fn main() -> Result<(), postage::Report> {
    init_logging();
    let connection = Connection::from_env().await?;
    let processor = Processor::builder(EchoReceiver)
        .bind(ECHO, [(ECHO_QUEUE, ECHO_KEY)])
        .fingerprint(Fingerprint::new("echo_receive", "controller"))
        .connect(&connection)
        .await?;
    Ok(serve(processor).await?)
}

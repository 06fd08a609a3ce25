//! `echo_advanced_receive`: binds the shared `echo-queue` (key `echo-rk`,
//! round robin between receivers) and a private queue
//! `echo-queue-<pid><host>` (key `echo-fanout-rk`, a copy for every
//! receiver) on `echo-exchange`. Two handlers run for each `echo`, in
//! this order: the content handler prints `echo: PARAMETERS`, the
//! full-body one `fingerprint: NAME pid=PID` of the sender.
#![allow(clippy::print_stdout)]

use postage::prelude::*;
use postage_examples::{ECHO, ECHO_FANOUT_KEY, ECHO_KEY, ECHO_QUEUE, init_logging, serve, text};

struct EchoReceiver;

#[processor]
impl EchoReceiver {
    #[handler("command", "echo")]
    async fn echo(&self, content: Content) {
        println!("echo: {}", text(content.parameters().unwrap_or_default()));
    }

    #[full_body_handler("command", "echo")]
    async fn echo_fingerprint(&self, message: Message) {
        let sender = message.sender();
        println!(
            "fingerprint: {} pid={}",
            sender.name.as_deref().unwrap_or("?"),
            sender.pid.map_or_else(|| "?".to_owned(), |p| p.to_string())
        );
    }
}

#[tokio::main]
async fn main() -> Result<(), postage::Report> {
    init_logging();
    let fingerprint = Fingerprint::new("echo_receive", "controller");
    let private = format!(
        "echo-queue-{}{}",
        fingerprint.pid.unwrap_or_default(),
        fingerprint.host.as_deref().unwrap_or_default()
    );
    let connection = Connection::from_env().await?;
    let processor = Processor::builder(EchoReceiver)
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
        .connect(&connection)
        .await?;
    Ok(serve(processor).await?)
}

//! A component for the process tests: `test_component EXCHANGE QUEUE`.
//!
//! Prints `ready pid=<pid>` once consuming, `handling <ms>` / `handled <ms>`
//! around each `slow` command (which sleeps its parameter in
//! milliseconds), and `stopped` when the scheduler ends. `quit`,
//! `restart` and SIGTERM behave as the runtime defines.
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::Duration;

use postage::prelude::*;
use postage::processor::{Handler, HandlerResult};

struct Component;

impl Component {
    async fn slow(&self, content: Content) -> HandlerResult {
        let ms: u64 = content.parameters_as().unwrap_or(0);
        println!("handling {ms}");
        tokio::time::sleep(Duration::from_millis(ms)).await;
        println!("handled {ms}");
        Ok(())
    }
}

impl Handlers for Component {
    fn handlers() -> &'static [Handler<Self>] {
        const TABLE: &[Handler<Component>] = &[Handler::message(
            "command",
            "slow",
            |this: Arc<Component>, content| Box::pin(async move { this.slow(content).await }),
        )];
        TABLE
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(exchange), Some(queue)) = (args.next(), args.next()) else {
        return Err("usage: test_component EXCHANGE QUEUE".into());
    };
    let connection = Connection::connect(Config::from_url(&postage_tests::test_url())?).await?;
    let exchange = Exchange::new(exchange, ExchangeKind::Direct).auto_delete(true);
    let processor = Processor::builder(Component)
        .bind(exchange, [(queue.as_str(), queue.as_str())])
        .prefetch(4)
        .fingerprint(Fingerprint::new("test_component", "test"))
        .connect(&connection)
        .await?;
    Ok(postage_tests::serve_component(processor).await?)
}

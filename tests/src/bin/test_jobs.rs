//! A component with a periodic job, for the jobs tests: `test_jobs NAME`.
//!
//! Its processor is called NAME; its job `tick` runs every second and
//! prints `tick <second> pid=<pid>` as it starts (the second since the
//! Unix epoch). Prints `ready pid=<pid>` once consuming and `stopped`
//! when it ends.
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use postage::jobs::Job;
use postage::prelude::*;
use postage::processor::{Handler, HandlerResult};

struct Ticker;

impl Handlers for Ticker {
    fn handlers() -> &'static [Handler<Self>] {
        const TABLE: &[Handler<Ticker>] =
            &[Handler::message("command", "noop", |_: Arc<Ticker>, _| {
                Box::pin(async { HandlerResult::Ok(()) })
            })];
        TABLE
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Some(name) = std::env::args().nth(1) else {
        return Err("usage: test_jobs NAME".into());
    };
    let connection = Connection::connect(Config::from_url(&postage_tests::test_url())?).await?;
    let exchange = Exchange::new(name.clone(), ExchangeKind::Direct).auto_delete(true);
    let work = Queue::new(format!("{name}.work")).auto_delete(true);
    let processor = Processor::builder(Ticker)
        .bind(exchange, [(work, name.as_str())])
        .fingerprint(Fingerprint::new(name.clone(), "test"))
        .job(Job::every("tick", Duration::from_secs(1))?, |_| async {
            let second = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |since| since.as_secs());
            println!("tick {second} pid={}", std::process::id());
        })
        .connect(&connection)
        .await?;
    Ok(postage_tests::serve_component(processor).await?)
}

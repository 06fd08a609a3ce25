//! A component for the acknowledgement tests: `test_counter QUEUE
//! PREFETCH [one-by-one]`.
//!
//! Consumes QUEUE (declared as a plain named queue) with PREFETCH and
//! prints `got <n>` for each `count` command whose parameter is `n`;
//! `ready pid=<pid>` once consuming (signal handlers installed), and
//! `stopped` when it ends. With `one-by-one`, acknowledgements are not
//! coalesced.
#![allow(clippy::print_stdout)]

use postage::prelude::*;

struct Counter;

#[processor]
impl Counter {
    #[handler("command", "count")]
    async fn count(&self, Params(n): Params<u64>) {
        println!("got {n}");
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(queue), Some(prefetch)) = (args.next(), args.next()) else {
        return Err("usage: test_counter QUEUE PREFETCH [one-by-one]".into());
    };
    let coalesce = args.next().as_deref() != Some("one-by-one");
    let connection = Connection::connect(Config::from_url(&postage_tests::test_url())?).await?;
    let processor = Processor::builder(Counter)
        .bind(Exchange::direct(""), [(queue.as_str(), queue.as_str())])
        .prefetch(prefetch.parse()?)
        .coalesce_acks(coalesce)
        .discoverable(false)
        .fingerprint(Fingerprint::new("test_counter", "test"))
        .connect(&connection)
        .await?;
    Ok(postage_tests::serve_component(processor).await?)
}

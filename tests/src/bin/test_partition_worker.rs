//! A worker of a partition group, for the order checker:
//! `test_partition_worker GROUP NAME [quorum]`, connected to
//! `POSTAGE_TEST_URL`.
//!
//! It holds its share of the 16 partitions of GROUP (keyed by the
//! parameter `key`; quorum queues with `quorum`) and handles `step` commands `{"key", "seq"}` four at
//! once, one key at a time; after each it prints
//! `step <key> <seq> <start ns> <end ns> <pid>` (nanoseconds since the
//! Unix epoch). Prints `ready pid=<pid>` once consuming and `stopped`
//! when it ends.
#![allow(clippy::print_stdout)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use postage::flow::{OrderKey, Partitions};
use postage::prelude::*;
use serde::Deserialize;

#[derive(Deserialize)]
struct Step {
    key: String,
    seq: u64,
}

struct Worker;

fn nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos())
}

#[processor]
impl Worker {
    #[handler("command", "step")]
    async fn step(&self, Params(step): Params<Step>) {
        let start = nanos();
        tokio::time::sleep(Duration::from_millis(1 + step.seq % 4)).await;
        println!(
            "step {} {} {start} {} {}",
            step.key,
            step.seq,
            nanos(),
            std::process::id()
        );
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(group), Some(name)) = (args.next(), args.next()) else {
        return Err("usage: test_partition_worker GROUP NAME [quorum]".into());
    };
    let quorum = args.next().as_deref() == Some("quorum");
    let connection = Connection::connect(Config::from_url(&postage_tests::test_url())?).await?;
    let mut partitions = Partitions::new(group, 16).by(OrderKey::parameter("key"));
    if quorum {
        partitions = partitions.quorum();
    }
    let processor = Processor::builder(Worker)
        .partitions(partitions.clone())
        .concurrency(4)
        .ordered_by(partitions.key().clone())
        .prefetch(16)
        .fingerprint(Fingerprint::new(name, "worker"))
        .connect(&connection)
        .await?;
    Ok(postage_tests::serve_component(processor).await?)
}

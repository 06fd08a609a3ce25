//! `calc_service`: a calculator on `calc-exchange` (queue `calc-queue`, key
//! `calc-rk`) with typed parameters:
//!
//! | RPC command | parameters | reply |
//! |---|---|---|
//! | `add`, `mul` | `{"a": x, "b": y}` | success: the number |
//! | `div` | `{"a": x, "b": y}` | success, or an error result for `b = 0` |
//! | `sqrt` | a number | success, or a `ValueError` exception result for a negative |
//!
//! Parameters of the wrong shape get an error result naming the problem.
//! It broadcasts its status (`online`, then `offline`) on the fanout
//! exchange `calc-status`. Prints `ready pid=PID`, then `OP PARAMS` per call.
#![allow(clippy::print_stdout)]

use postage::prelude::*;
use postage_examples::components::{Calculator, Lines, StatusProducer};
use postage_examples::init_logging;

#[tokio::main]
async fn main() -> Result<(), postage::Report> {
    init_logging();
    let fingerprint = Fingerprint::new("calc_service", "service");
    let connection = Connection::from_env().await?;
    let processor = Calculator {
        lines: Lines::Stdout,
    }
    .connect(fingerprint.clone(), &connection)
    .await?;
    let status = StatusProducer
        .connect_with(Producer::builder().fingerprint(fingerprint), &connection)
        .await?;
    status.message_status("online").await?;
    println!("ready pid={}", std::process::id());
    let mut scheduler = Scheduler::new();
    scheduler.add(processor);
    let result = scheduler.run().await;
    // The scheduler closed the connection; say goodbye on a fresh one.
    if let Ok(connection) = Connection::from_env().await {
        if let Ok(status) = StatusProducer.connect(&connection).await {
            let _ = status.message_status("offline").await;
        }
        let _ = connection.close().await;
    }
    Ok(result?)
}

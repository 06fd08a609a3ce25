//! `echo_advanced_receive`: binds the shared `echo-queue` (key `echo-rk`,
//! round robin between receivers) and a private queue
//! `echo-queue-<pid><host>` (key `echo-fanout-rk`, a copy for every
//! receiver) on `echo-exchange`. Two handlers run for each `echo`, in
//! this order: the content handler prints `echo: PARAMETERS`, the
//! full-body one `fingerprint: NAME pid=PID` of the sender.

use postage::prelude::*;
use postage_examples::components::{AdvancedEchoReceiver, Lines};
use postage_examples::{init_logging, serve};

#[tokio::main]
async fn main() -> Result<(), postage::Report> {
    init_logging();
    let connection = Connection::from_env().await?;
    let processor = AdvancedEchoReceiver {
        lines: Lines::Stdout,
    }
    .connect(Fingerprint::new("echo_receive", "controller"), &connection)
    .await?;
    Ok(serve(processor).await?)
}

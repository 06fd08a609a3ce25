//! `echo_receive`: consumes `echo-queue` (bound to `echo-exchange` with
//! `echo-rk`) and prints `echo: PARAMETERS` for each `echo` command. Stops
//! on `quit`, on Ctrl-C or SIGTERM; restarts in place on `restart`.

use postage::prelude::*;
use postage_examples::components::{EchoReceiver, Lines};
use postage_examples::{init_logging, serve};

#[tokio::main]
async fn main() -> Result<(), postage::Report> {
    init_logging();
    let connection = Connection::from_env().await?;
    let processor = EchoReceiver {
        lines: Lines::Stdout,
    }
    .connect(&connection)
    .await?;
    Ok(serve(processor).await?)
}

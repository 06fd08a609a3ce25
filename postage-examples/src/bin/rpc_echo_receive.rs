//! `rpc_echo_receive`: answers `rpc` `echo` commands on `echo-queue` with a
//! success result carrying the text it got, printing `rpc echo: TEXT`.

use postage::prelude::*;
use postage_examples::components::{Lines, RpcEchoReceiver};
use postage_examples::{init_logging, serve};

#[tokio::main]
async fn main() -> Result<(), postage::Report> {
    init_logging();
    let connection = Connection::from_env().await?;
    let processor = RpcEchoReceiver {
        lines: Lines::Stdout,
    }
    .connect(&connection)
    .await?;
    Ok(serve(processor).await?)
}

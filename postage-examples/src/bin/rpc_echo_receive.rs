//! `rpc_echo_receive`: answers `rpc` `echo` commands on `echo-queue` with a
//! success result carrying the text it got, printing `rpc echo: TEXT`.
#![allow(clippy::print_stdout)]

use postage::prelude::*;
use postage_examples::{ECHO, ECHO_KEY, ECHO_QUEUE, init_logging, serve, text};

struct RpcEchoReceiver;

#[processor]
impl RpcEchoReceiver {
    #[rpc_handler("command", "echo")]
    async fn echo(&self, content: Content, reply: Reply) -> postage::Result<()> {
        let parameters = content.parameters().cloned().unwrap_or_default();
        println!("rpc echo: {}", text(&parameters));
        reply.success(parameters).await
    }
}

#[tokio::main]
async fn main() -> Result<(), postage::Report> {
    init_logging();
    let connection = Connection::from_env().await?;
    let processor = Processor::builder(RpcEchoReceiver)
        .bind(ECHO, [(ECHO_QUEUE, ECHO_KEY)])
        .fingerprint(Fingerprint::new("rpc_echo_receive", "controller"))
        .connect(&connection)
        .await?;
    Ok(serve(processor).await?)
}

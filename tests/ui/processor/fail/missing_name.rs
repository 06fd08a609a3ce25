use postage::prelude::*;

struct EchoReceiver;

#[processor]
impl EchoReceiver {
    #[rpc_handler("command")]
    async fn echo(&self) -> i64 {
        1
    }
}

fn main() {}

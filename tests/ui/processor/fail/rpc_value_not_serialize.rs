use postage::prelude::*;

struct Opaque;

struct EchoReceiver;

#[processor]
impl EchoReceiver {
    #[rpc_handler("command", "opaque")]
    async fn opaque(&self) -> Opaque {
        Opaque
    }
}

fn main() {}

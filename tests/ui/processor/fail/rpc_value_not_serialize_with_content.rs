// As rpc_value_not_serialize.rs, with a content argument: the error is
// still on the return type.
use postage::prelude::*;

struct Opaque;

struct EchoReceiver;

#[processor]
impl EchoReceiver {
    #[rpc_handler("command", "opaque")]
    async fn opaque(&self, _content: Content) -> Opaque {
        Opaque
    }
}

fn main() {}

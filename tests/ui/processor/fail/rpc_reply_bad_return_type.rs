// An RPC handler that replies itself returns what other handlers return;
// the error is on its return type, also with a content argument.
use postage::prelude::*;

struct EchoReceiver;

#[processor]
impl EchoReceiver {
    #[rpc_handler("command", "echo")]
    async fn echo(&self, _content: Content, _reply: Reply) -> i64 {
        0
    }
}

fn main() {}

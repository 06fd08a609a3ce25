use postage::prelude::*;

struct EchoReceiver;

impl EchoReceiver {
    #[handler("command", "echo")]
    async fn echo(&self, _content: Content) {}
}

fn main() {}

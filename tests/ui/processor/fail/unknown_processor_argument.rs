use postage::prelude::*;

struct EchoReceiver;

#[processor(prefetch = 10)]
impl EchoReceiver {
    #[handler("command", "echo")]
    async fn echo(&self, _content: Content) {}
}

fn main() {}

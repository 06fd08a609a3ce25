use postage::prelude::*;

struct EchoReceiver;

#[processor]
impl EchoReceiver {
    #[handler("command", "echo", queue = "echo-queue")]
    async fn echo(&self, _content: Content) {}
}

fn main() {}

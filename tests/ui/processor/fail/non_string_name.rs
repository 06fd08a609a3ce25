use postage::prelude::*;

struct EchoReceiver;

#[processor]
impl EchoReceiver {
    #[handler(command, "echo")]
    async fn echo(&self, _content: Content) {}

    #[handler("command", 42)]
    async fn answer(&self, _content: Content) {}
}

fn main() {}

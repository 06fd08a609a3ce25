use postage::prelude::*;

struct EchoReceiver;

#[processor]
impl EchoReceiver {
    #[handler]
    async fn echo(&self, _content: Content) {}
}

fn main() {}

use postage::prelude::*;

struct EchoReceiver;

#[processor]
impl EchoReceiver {
    #[handler("command", "echo")]
    async fn echo(&self, _content: Content) -> i32 {
        0
    }
}

fn main() {}

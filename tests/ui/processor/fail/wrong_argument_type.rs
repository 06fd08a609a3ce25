use postage::prelude::*;

struct EchoReceiver;

#[processor]
impl EchoReceiver {
    #[handler("command", "echo")]
    async fn echo(&self, text: String) {
        let _ = text;
    }
}

fn main() {}

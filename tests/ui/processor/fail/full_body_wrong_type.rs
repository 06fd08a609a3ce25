use postage::prelude::*;

struct EchoReceiver;

#[processor]
impl EchoReceiver {
    #[full_body_handler("command", "echo")]
    async fn echo(&self, content: Content) {
        let _ = content;
    }
}

fn main() {}

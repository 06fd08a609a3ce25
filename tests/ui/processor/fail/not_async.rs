use postage::prelude::*;

struct EchoReceiver;

#[processor]
impl EchoReceiver {
    #[handler("command", "echo")]
    fn echo(&self, content: Content) {
        let _ = content;
    }
}

fn main() {}

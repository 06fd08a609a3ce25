use postage::prelude::*;

struct EchoReceiver {
    count: u32,
}

#[processor]
impl EchoReceiver {
    #[handler("command", "echo")]
    async fn echo(&mut self, _content: Content) {
        self.count += 1;
    }
}

fn main() {}

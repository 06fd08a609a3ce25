use postage::prelude::*;

struct EchoProducer;

#[producer]
impl EchoProducer {
    fn build_message_echo(&self, text: &str) -> String {
        text.to_owned()
    }
}

fn main() {}

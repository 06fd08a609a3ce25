use postage::prelude::*;

struct EchoProducer;

#[producer]
impl EchoProducer {
    async fn build_message_echo(&self, text: &str) -> MessageCommand {
        MessageCommand::new("echo", text)
    }
}

fn main() {}

// A build method takes `&self`: not `&mut self`, not nothing.
use postage::prelude::*;

struct EchoProducer;

#[producer]
impl EchoProducer {
    fn build_message_echo(&mut self, text: &str) -> MessageCommand {
        MessageCommand::new("echo", text)
    }

    fn build_message_ping() -> MessageCommand {
        MessageCommand::new("ping", 0)
    }
}

fn main() {}

// The runtime crate under another path.
mod my {
    pub use ::postage;
}

use my::postage::{Exchange, MessageCommand, ProducerSpec};

struct Echo;

#[my::postage::producer(crate = "my::postage", eks = [(Exchange::direct("echo"), "echo-rk")])]
impl Echo {
    fn build_message_echo(&self, text: &str) -> MessageCommand {
        MessageCommand::new("echo", text)
    }
}

fn main() {
    assert_eq!(Echo::API[0].sender, "message_echo");
}

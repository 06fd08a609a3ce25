// Too many arguments for a content handler, none for a full-body one.
use postage::prelude::*;

struct EchoReceiver;

#[processor]
impl EchoReceiver {
    #[handler("command", "echo")]
    async fn echo(&self, content: Content, extra: Content) {
        let _ = (content, extra);
    }

    #[full_body_handler("command", "echo")]
    async fn body(&self) {}
}

fn main() {}

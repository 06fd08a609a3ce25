use postage::prelude::*;

struct EchoProducer;

#[producer]
impl EchoProducer {
    fn build_rpc_echo(&self, text: &str) {
        let _ = text;
    }
}

fn main() {}

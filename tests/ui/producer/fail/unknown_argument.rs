use postage::prelude::*;

struct EchoProducer;

#[producer(eks = [], name = "echo_send")]
impl EchoProducer {}

fn main() {}

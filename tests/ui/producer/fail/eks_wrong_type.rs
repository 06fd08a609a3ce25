use postage::prelude::*;

struct EchoProducer;

#[producer(eks = [("echo-exchange", "echo-rk")])]
impl EchoProducer {}

fn main() {}

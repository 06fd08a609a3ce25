use postage::prelude::*;

#[producer(eks = [])]
struct EchoProducer;

fn main() {}

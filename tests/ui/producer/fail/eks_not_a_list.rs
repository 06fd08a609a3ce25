use postage::prelude::*;

const ECHO: Exchange = Exchange::direct("echo-exchange");

struct EchoProducer;

#[producer(eks = (ECHO, "echo-rk"))]
impl EchoProducer {}

fn main() {}

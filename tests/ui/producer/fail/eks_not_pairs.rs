// Every element that is not a pair is reported, together.
use postage::prelude::*;

const ECHO: Exchange = Exchange::direct("echo-exchange");

struct EchoProducer;

#[producer(eks = [ECHO, (ECHO, "echo-rk"), (ECHO, "a", "b")])]
impl EchoProducer {}

fn main() {}

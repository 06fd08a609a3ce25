use postage::prelude::*;

struct Point {
    x: i64,
}

struct EchoReceiver;

#[processor]
impl EchoReceiver {
    #[rpc_handler("command", "point")]
    async fn point(&self, Params(point): Params<Point>) -> i64 {
        point.x
    }
}

fn main() {}

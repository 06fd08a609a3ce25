// Every error of the impl block is reported at once; the handlers that
// are fine still make the table, so `Processor::builder` compiles.
use postage::prelude::*;

struct EchoReceiver;

#[processor]
impl EchoReceiver {
    #[handler("command", "echo")]
    async fn echo(&self, _content: Content) {}

    #[handler("command", "")]
    async fn empty(&self) {}

    #[rpc_handler("command", "sum")]
    fn sum(&self) -> i64 {
        1
    }

    #[handler("command", "two", "three")]
    async fn three(&self) {}
}

fn main() {
    let _ = Processor::builder(EchoReceiver);
}

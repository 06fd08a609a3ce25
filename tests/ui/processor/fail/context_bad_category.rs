use postage::prelude::*;

struct EchoReceiver;

#[processor]
impl EchoReceiver {
    #[context_handler("event", "command", "echo")]
    async fn echo(ctx: Context<Self>) {
        let _ = ctx;
    }
}

fn main() {}

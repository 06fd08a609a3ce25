use postage::prelude::*;

struct EchoReceiver;

#[processor]
impl EchoReceiver {
    #[rpc_handler("command", "echo")]
    async fn rpc_echo(&self, content: Content, reply: Reply) -> postage::Result<()> {
        reply.success(content.parameters().cloned().unwrap_or_default()).await
    }

    #[context_handler("rpc", "command", "echo")]
    async fn echo_again(ctx: Context<Self>) {
        let _ = ctx;
    }
}

fn main() {}

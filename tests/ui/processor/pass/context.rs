// Context handlers with and without a receiver, for both categories;
// handlers without a receiver.
use postage::prelude::*;

struct Watcher {
    name: &'static str,
}

#[processor]
impl Watcher {
    #[context_handler("message", "status", "online")]
    async fn online(ctx: Context<Self>) {
        let _ = (ctx.processor.name, &ctx.routing_key, ctx.redelivered);
    }

    #[context_handler("rpc", "command", "who")]
    async fn who(&self, ctx: Context<Watcher>) -> postage::Result<()> {
        match ctx.reply {
            Some(reply) => reply.success(self.name).await,
            None => Ok(()),
        }
    }

    #[context_handler("message", "command", "stop")]
    async fn stop(&self, ctx: postage::Context<Self>) {
        ctx.control.quit();
    }

    #[handler("command", "tick")]
    async fn tick(content: Content) {
        let _ = content;
    }

    #[rpc_handler("command", "version")]
    async fn version() -> &'static str {
        "1"
    }
}

fn main() {
    let table = <Watcher as Handlers>::handlers();
    assert_eq!(table.len(), 5);
    assert_eq!(table[1].category, Category::Rpc);
}

// The echo receiver: content, full-body and RPC handlers; several
// message handlers for one (type, name); the processor builds with it.
use postage::prelude::*;

struct EchoReceiver;

#[processor]
impl EchoReceiver {
    #[handler("command", "echo")]
    async fn echo(&self, content: Content) {
        let _ = content.parameters();
    }

    #[full_body_handler("command", "echo")]
    async fn echo_body(&self, message: Message) -> Result<(), String> {
        message.sender().name.map(drop).ok_or_else(|| "anonymous".to_owned())
    }

    #[rpc_handler("command", "echo")]
    async fn rpc_echo(&self, content: Content, reply: Reply) -> postage::Result<()> {
        reply.success(content.parameters().cloned().unwrap_or_default()).await
    }

    #[rpc_handler("command", "ping")]
    async fn ping(&self, reply: postage::Reply) -> postage::Result<()> {
        reply.success("pong").await
    }

    #[handler("command", "quit")]
    #[handler("command", "restart")]
    async fn control(&self) {}

    fn not_a_handler(&self) -> u8 {
        1
    }
}

async fn use_it(connection: &Connection) -> postage::Result<()> {
    let processor = Processor::builder(EchoReceiver)
        .bind(Exchange::direct("echo-exchange"), [("echo-queue", "echo-rk")])
        .connect(connection)
        .await?;
    let _stop = processor.run().await?;
    Ok(())
}

fn main() {
    let _ = use_it;
    let table = <EchoReceiver as Handlers>::handlers();
    let labels: Vec<_> = table.iter().map(|h| (h.category, h.kind, h.name, h.label)).collect();
    assert_eq!(
        labels,
        [
            (Category::Message, "command", "echo", "echo"),
            (Category::Message, "command", "echo", "echo_body"),
            (Category::Rpc, "command", "echo", "rpc_echo"),
            (Category::Rpc, "command", "ping", "ping"),
            (Category::Message, "command", "quit", "control"),
            (Category::Message, "command", "restart", "control"),
        ]
    );
    assert_eq!(EchoReceiver.not_a_handler(), 1);
}

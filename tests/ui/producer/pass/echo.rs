// The echo producer of the design: typed senders with options, the
// generic senders through Deref, the API type named in a field.
use std::future::IntoFuture;
use std::time::Duration;

use postage::prelude::*;

const ECHO: Exchange = Exchange::direct("echo-exchange");

struct EchoProducer;

#[producer(eks = [(ECHO, "echo-rk")])]
impl EchoProducer {
    fn build_message_echo(&self, text: &str) -> MessageCommand {
        MessageCommand::new("echo", text)
    }

    fn build_rpc_sum(&self, a: i64, b: i64) -> RpcCommand {
        RpcCommand::new("sum", serde_json::json!({ "a": a, "b": b }))
    }
}

struct Component {
    producer: ProducerApi<EchoProducer>,
}

async fn use_it(connection: &Connection) -> postage::Result<()> {
    let producer = EchoProducer.connect(connection).await?;
    producer.message_echo("hi").await?;
    producer.message_echo("hi").key("echo-fanout-rk").persistent(true).await?;
    producer.message_echo("hi").eks([(ECHO, "other-rk")]).mandatory(true).await?;
    let reply: Message = producer
        .rpc_sum(2, 3)
        .timeout(Duration::from_secs(5))
        .retries(1)
        .strategy(ReplyStrategy::QueuePerCall)
        .await?;
    let _ = reply.outcome()?;
    let pending = producer.rpc_sum(1, 1).key("math-rk").queue_only().await?;
    let _reply: Message = pending.await?;
    producer.command("echo", "no build method").await?;
    producer.rpc("echo", "no build method").await?;
    let component = Component { producer: producer.clone() };
    let _: &EchoProducer = component.producer.spec();
    let _: &[(Exchange, String)] = component.producer.eks();
    Ok(())
}

fn is_send<T: Send>(_: &T) {}

async fn futures_are_send(connection: &Connection) {
    let connect = EchoProducer.connect(connection);
    is_send(&connect);
    let producer = connect.await.expect("connects");
    is_send(&producer.message_echo("hi").into_future());
    is_send(&producer.rpc_sum(1, 2).into_future());
    is_send(&use_it(connection));
}

fn main() {
    let _ = use_it;
    let _ = futures_are_send;
    assert_eq!(EchoProducer::API.len(), 2);
    assert_eq!(EchoProducer.default_eks(), vec![(ECHO, "echo-rk".to_owned())]);
}

//! `postage tail`: a private queue bound to an exchange, every message
//! printed as it arrives.

use postage::{Consumer, Delivery, Exchange, ExchangeKind, Queue};
use serde_json::{Value, json};

use crate::args::TailArgs;
use crate::failure::Failure;
use crate::output;

/// Binds a queue the broker names (exclusive, deleted with the command)
/// with each key and prints what arrives, until `--count` messages or
/// Ctrl-C.
pub(crate) async fn tail(url: Option<&str>, args: TailArgs) -> Result<(), Failure> {
    let connection = output::connect(url).await?;
    let exchange = Exchange::new(args.exchange.clone(), ExchangeKind::Direct).passive(true);
    let keys = if args.keys.is_empty() {
        vec!["#".to_owned()]
    } else {
        args.keys.clone()
    };
    let mut consumer = Consumer::builder()
        .bind(exchange.clone(), [(Queue::server_named(), &keys[0])])
        .name("postage-tail")
        .connect(&connection)
        .await?;
    // One queue, bound with every key.
    if let Some(queue) = consumer.handle().queues().into_iter().next() {
        let queue = Queue::new(queue).exclusive(true).auto_delete(true);
        for key in &keys[1..] {
            consumer.queue_bind(&exchange, queue.clone(), key).await?;
        }
    }
    eprintln!(
        "tailing {} (keys: {}); Ctrl-C to stop",
        args.exchange,
        keys.join(", ")
    );
    let mut seen = 0;
    while args.count.is_none_or(|count| seen < count) {
        let delivery = tokio::select! {
            delivery = consumer.next() => delivery,
            _ = tokio::signal::ctrl_c() => None,
        };
        let Some(delivery) = delivery else { break };
        println!("{}", line(&delivery, args.json));
        delivery.ack().await?;
        seen += 1;
    }
    consumer.stop().await;
    connection.close().await?;
    Ok(())
}

/// One message: time, sender, type, name, category, content; a body that
/// is not a Postage message raw, marked `(not a Postage message: WHY)`.
fn line(delivery: &Delivery, json: bool) -> String {
    let time = output::now();
    let routing_key = delivery.routing_key();
    match delivery.message() {
        Ok(message) => {
            let sender = message.sender();
            if json {
                let record = json!({
                    "time": time,
                    "routing_key": routing_key,
                    "fingerprint": sender,
                    "type": message.kind,
                    "name": message.name,
                    "category": message.category.as_str(),
                    "content": message.content,
                });
                output::json_text(&record, true)
            } else {
                format!(
                    "{time} {} {} {} {} {}",
                    output::who(&sender),
                    message.kind,
                    message.name,
                    message.category,
                    output::json_text(&message.content, true)
                )
            }
        }
        Err(reason) => {
            let body = String::from_utf8_lossy(delivery.body());
            let reason = postage::Report::from(reason.clone()).to_string();
            if json {
                let record: Value = json!({
                    "time": time,
                    "routing_key": routing_key,
                    "not_postage": reason,
                    "body": body,
                });
                output::json_text(&record, true)
            } else {
                format!("{time} (not a Postage message: {reason}) {body}")
            }
        }
    }
}

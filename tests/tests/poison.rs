//! Bad input: every kind is rejected without requeue (dead-lettered), logged
//! once with its reason, and the processor goes on with the next good
//! message. Credentials never show in logs or errors.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::Duration;

use lapin::BasicProperties;
use lapin::options::BasicPublishOptions;
use lapin::types::{AMQPValue, FieldTable};
use postage::Stop;
use postage::prelude::*;
use postage_tests::{LogCapture, connect, next_within, nothing_within, raw_channel, unique};
use serde_json::json;
use tokio::sync::mpsc;

struct Target {
    seen: mpsc::UnboundedSender<String>,
}

#[processor]
impl Target {
    #[handler("command", "echo")]
    async fn echo(&self, content: Content) {
        let _ = self.seen.send(format!(
            "echo {}",
            content.parameters().cloned().unwrap_or_default()
        ));
    }

    #[rpc_handler("command", "echo")]
    async fn rpc_echo(&self, content: Content) -> serde_json::Value {
        let _ = self.seen.send("rpc echo".to_owned());
        content.parameters().cloned().unwrap_or_default()
    }
}

fn message(category: &str, extra: serde_json::Value) -> Vec<u8> {
    let mut body = json!({"type": "command", "name": "echo", "category": category,
        "version": "2", "fingerprint": {"name": "poisoner", "pid": "77"},
        "content": {"parameters": "x"}, "_reserved": {}});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            body.insert(k.clone(), v.clone());
        }
    }
    serde_json::to_vec(&body).unwrap()
}

fn json_props() -> BasicProperties {
    BasicProperties::default().with_content_type("application/json".into())
}

#[tokio::test]
async fn every_kind_of_bad_input_is_dead_lettered_once_and_logged() {
    let logs = LogCapture::start();
    let connection = connect().await;
    let dlx = Exchange::new(unique("poison-dlx"), ExchangeKind::Fanout).auto_delete(true);
    let mut dead_letters = Consumer::builder()
        .bind(
            dlx.clone(),
            [(Queue::new(unique("dead")).auto_delete(true), "")],
        )
        .connect(&connection)
        .await
        .unwrap();
    let exchange = Exchange::new(unique("poison"), ExchangeKind::Direct).auto_delete(true);
    let queue = unique("poison");
    let (tx, mut seen) = mpsc::unbounded_channel();
    let processor = Processor::builder(Target { seen: tx })
        .bind(
            exchange.clone(),
            [(
                Queue::new(queue.as_str())
                    .auto_delete(true)
                    .argument("x-dead-letter-exchange", dlx.name()),
                queue.as_str(),
            )],
        )
        .max_body_size(64 * 1024)
        .connect(&connection)
        .await
        .unwrap();
    let control = processor.control();
    let running = tokio::spawn(processor.run());

    let mut nested = String::new();
    for _ in 0..200 {
        nested.push_str("{\"a\":");
    }
    nested.push('1');
    for _ in 0..200 {
        nested.push('}');
    }
    let enormous = message(
        "message",
        json!({"content": {"parameters": "x".repeat(1024 * 1024)}}),
    );
    let mut over_limit = FieldTable::default();
    over_limit.insert("x-delivery-count".into(), AMQPValue::LongLongInt(20));
    let corpus: Vec<(&str, Vec<u8>, BasicProperties)> = vec![
        ("not JSON", b"{not json".to_vec(), json_props()),
        ("empty body", Vec::new(), json_props()),
        ("truncated JSON", br#"{"type": "command", "name""#.to_vec(), json_props()),
        ("JSON array", b"[1, 2, 3]".to_vec(), json_props()),
        ("JSON string", b"\"echo\"".to_vec(), json_props()),
        ("JSON null", b"null".to_vec(), json_props()),
        ("JSON number", b"42".to_vec(), json_props()),
        ("non-UTF-8 bytes", b"\xff\xfe\xfd{}".to_vec(), json_props()),
        ("missing type", br#"{"name": "echo", "category": "message", "content": {}}"#.to_vec(), json_props()),
        ("missing content", br#"{"type": "command", "name": "echo", "category": "message"}"#.to_vec(), json_props()),
        ("content not an object", message("message", json!({"content": "text"})), json_props()),
        ("type not a string", message("message", json!({"type": 7})), json_props()),
        ("unknown category", message("broadcast", json!({})), json_props()),
        ("version a list", message("message", json!({"version": [2]})), json_props()),
        ("nesting past the recursion limit", format!("{{\"type\": \"command\", \"name\": \"echo\", \"category\": \"message\", \"content\": {nested}}}").into_bytes(), json_props()),
        ("wrong content type", message("message", json!({})), BasicProperties::default().with_content_type("text/plain".into())),
        ("enormous body", enormous, json_props()),
        ("RPC without reply_to", message("rpc", json!({})), json_props()),
        ("a result where a command is expected", message("message", json!({"type": "result", "name": "none", "content": {"type": "success", "value": 1, "message": ""}})), json_props()),
        ("delivered too many times", message("message", json!({})), json_props().with_headers(over_limit)),
    ];
    let channel = raw_channel().await;
    let publish = |body: Vec<u8>, props: BasicProperties| {
        let channel = channel.clone();
        let (exchange, key) = (exchange.name().to_owned(), queue.clone());
        async move {
            channel
                .basic_publish(
                    exchange.as_str().into(),
                    key.as_str().into(),
                    BasicPublishOptions::default(),
                    &body,
                    props,
                )
                .await
                .unwrap();
        }
    };
    for (_, body, props) in &corpus {
        publish(body.clone(), props.clone()).await;
    }
    // A reply_to that leads nowhere: handled, the reply is dropped by the
    // broker, and the processor goes on.
    publish(
        message("rpc", json!({})),
        json_props().with_reply_to("amq.gen-nobody-listens-here".into()),
    )
    .await;
    publish(
        message("message", json!({"content": {"parameters": "good"}})),
        json_props(),
    )
    .await;

    for (kind, body, _) in &corpus {
        let dead = next_within(&mut dead_letters, 10).await;
        assert_eq!(dead.body(), &body[..], "{kind}: dead-lettered, in order");
        dead.ack().await.unwrap();
    }
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(10), seen.recv())
            .await
            .unwrap()
            .unwrap(),
        "rpc echo"
    );
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(10), seen.recv())
            .await
            .unwrap()
            .unwrap(),
        "echo \"good\""
    );
    assert!(
        nothing_within(&mut dead_letters, 500).await,
        "each bad input exactly once: no requeue loop"
    );

    control.quit();
    assert_eq!(running.await.unwrap().unwrap(), Stop::Quit);
    let text = logs.text();
    let rejections: Vec<&str> = text.lines().filter(|l| l.contains("rejecting")).collect();
    assert_eq!(
        rejections.len(),
        corpus.len(),
        "one log line per bad input:\n{}",
        rejections.join("\n")
    );
    assert!(
        rejections.iter().any(|l| l.contains("poisoner/? 77@?")),
        "the sender's fingerprint is logged when known:\n{}",
        rejections.join("\n")
    );
    assert!(
        rejections.iter().any(|l| l.contains("exceeds the limit")),
        "the reason is logged"
    );
    connection.close().await.unwrap();
}

#[tokio::test]
async fn credentials_never_appear_in_errors_or_logs() {
    let logs = LogCapture::start();
    let secret = "pa55-very-s3cret";
    let config = postage_tests::test_config().with_credentials("guest", secret);
    let error = Connection::connect(config)
        .await
        .expect_err("wrong password");
    // The broker was reached and refused the login (not an unreachable broker).
    assert!(matches!(error, postage::Error::Connect { .. }), "{error:?}");
    let text = format!("{error} {error:?} {}", logs.text());
    assert!(!text.contains(secret), "{text}");
    assert!(
        text.contains("guest@"),
        "the error says where it tried: {text}"
    );
}

//! RPC against the broker: results, timeouts and retries, concurrency,
//! both reply strategies, queue-only calls, expiration, and a server that
//! answers as Python Postage does.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicPublishOptions};
use postage::prelude::*;
use postage::processor::{Handler, HandlerError};
use postage::{Error, rpc::DIRECT_REPLY_TO};
use postage_tests::{connect, queue_depth, raw_channel, unique};
use serde_json::{Value, json};

struct Calc;

impl Handlers for Calc {
    fn handlers() -> &'static [Handler<Self>] {
        const TABLE: &[Handler<Calc>] = &[
            Handler::rpc("command", "echo", |_, content, reply| {
                Box::pin(async move {
                    let value = content.parameters().cloned().unwrap_or_default();
                    reply.success(value).await?;
                    Ok(())
                })
            }),
            Handler::rpc("command", "refuse", |_, _, reply| {
                Box::pin(async move { Ok(reply.error("refused").await?) })
            }),
            Handler::rpc("command", "panic", |_, _, _reply| {
                Box::pin(async move { panic!("boom") })
            }),
            Handler::rpc("command", "fail", |_, _, _reply| {
                Box::pin(async move { Err(HandlerError::new("ValueError", "bad value")) })
            }),
            Handler::rpc("command", "silent", |_, _, _reply| {
                Box::pin(async move { Ok(()) })
            }),
            Handler::rpc("command", "late_work", |_, _, reply| {
                Box::pin(async move {
                    reply.success("early").await?;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Ok(())
                })
            }),
        ];
        TABLE
    }
}

struct Server {
    exchange: Exchange,
    key: String,
    control: Control,
}

async fn server(connection: &Connection) -> Server {
    let exchange = Exchange::new(unique("rpc"), ExchangeKind::Direct).auto_delete(true);
    let key = unique("calc");
    let processor = Processor::builder(Calc)
        .bind(
            exchange.clone(),
            [(Queue::new(key.as_str()).auto_delete(true), key.as_str())],
        )
        .fingerprint(Fingerprint::new("calc", "service"))
        .concurrency(16)
        .connect(connection)
        .await
        .expect("processor");
    let control = processor.control();
    tokio::spawn(processor.run());
    Server {
        exchange,
        key,
        control,
    }
}

/// `reply` is a success result carrying `value`.
#[track_caller]
fn assert_success(reply: &Message, value: Value) {
    assert_eq!(
        reply.outcome().expect("result").into_value().ok(),
        Some(value)
    );
}

async fn client(connection: &Connection, server: &Server) -> Producer {
    Producer::builder()
        .ek(server.exchange.clone(), server.key.as_str())
        .fingerprint(Fingerprint::new("client", "test"))
        .rpc_timeout(Duration::from_secs(10))
        .connect(connection)
        .await
        .expect("producer")
}

#[tokio::test]
async fn success_error_and_exception_results() {
    let connection = connect().await;
    let server = server(&connection).await;
    let client = client(&connection, &server).await;

    let reply = client
        .rpc("echo", json!({"x": [1, 2]}))
        .await
        .expect("reply");
    assert!(reply.is_ok());
    assert_success(&reply, json!({"x": [1, 2]}));
    assert_eq!(
        reply.sender().name.as_deref(),
        Some("calc"),
        "reply keeps the server's fingerprint"
    );

    let reply = client.rpc("refuse", json!({})).await.expect("reply");
    assert!(!reply.is_ok());
    assert_eq!(
        reply.outcome(),
        Ok(Outcome::Error {
            message: "refused".into()
        })
    );

    let reply = client.rpc("panic", json!({})).await.expect("reply");
    assert_eq!(
        reply.outcome(),
        Ok(Outcome::Exception {
            name: "Panic".into(),
            message: "boom".into()
        })
    );

    let reply = client.rpc("fail", json!({})).await.expect("reply");
    assert_eq!(
        reply.outcome(),
        Ok(Outcome::Exception {
            name: "ValueError".into(),
            message: "bad value".into()
        })
    );

    let reply = client.rpc("silent", json!({})).await.expect("reply");
    assert!(
        matches!(reply.outcome(), Ok(Outcome::Error { message }) if message.contains("without replying"))
    );

    let reply = client.rpc("late_work", json!({})).await.expect("reply");
    assert_success(&reply, json!("early"));

    // No handler: an error result at once, not a timeout.
    let reply = client
        .rpc("nobody", json!({}))
        .timeout(Duration::from_secs(30))
        .retries(0)
        .await
        .expect("reply");
    assert!(
        matches!(reply.outcome(), Ok(Outcome::Error { message }) if message.contains("no handler"))
    );

    // The processor survived all of it.
    let reply = client.rpc("echo", "still here").await.expect("reply");
    assert_success(&reply, json!("still here"));
    server.control.quit();
}

#[tokio::test]
async fn two_hundred_concurrent_calls_on_one_producer() {
    let connection = connect().await;
    let server = server(&connection).await;
    let client = client(&connection, &server).await;
    let calls = (0..200).map(|i| {
        let client = client.clone();
        async move { (i, client.rpc("echo", i).await) }
    });
    let results = futures_util::future::join_all(calls).await;
    for (i, result) in results {
        let reply = result.expect("reply");
        assert_success(&reply, json!(i));
    }
    server.control.quit();
}

/// A raw channel with `key` declared as a queue bound to `exchange` with
/// the same key, as a non-Postage peer would set it up.
async fn bound_queue(exchange: &Exchange, key: &str) -> lapin::Channel {
    let channel = raw_channel().await;
    channel
        .exchange_declare(
            exchange.name().into(),
            lapin::ExchangeKind::Direct,
            lapin::options::ExchangeDeclareOptions {
                durable: true,
                auto_delete: true,
                ..Default::default()
            },
            Default::default(),
        )
        .await
        .expect("exchange");
    channel
        .queue_declare(
            key.into(),
            lapin::options::QueueDeclareOptions {
                auto_delete: true,
                ..Default::default()
            },
            Default::default(),
        )
        .await
        .expect("queue");
    channel
        .queue_bind(
            key.into(),
            exchange.name().into(),
            key.into(),
            Default::default(),
            Default::default(),
        )
        .await
        .expect("bind");
    channel
}

/// Counts requests on a queue and never answers.
async fn black_hole(
    exchange: &Exchange,
    key: &str,
) -> tokio::sync::mpsc::UnboundedReceiver<lapin::BasicProperties> {
    let channel = bound_queue(exchange, key).await;
    let mut consumer = channel
        .basic_consume(
            key.into(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            Default::default(),
        )
        .await
        .expect("consume");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let _channel = channel;
        while let Some(Ok(delivery)) = consumer.next().await {
            if tx.send(delivery.properties).is_err() {
                break;
            }
        }
    });
    rx
}

#[tokio::test]
async fn timeout_retries_with_fresh_correlation_and_expiration() {
    let connection = connect().await;
    let exchange = Exchange::new(unique("silent"), ExchangeKind::Direct).auto_delete(true);
    let key = unique("silent");
    let mut seen = black_hole(&exchange, &key).await;
    let client = Producer::builder()
        .ek(exchange, key.as_str())
        .connect(&connection)
        .await
        .expect("producer");
    let error = client
        .rpc("anything", json!({}))
        .timeout(Duration::from_millis(300))
        .retries(2)
        .await
        .expect_err("nobody answers");
    assert!(error.is_timeout(), "{error}");
    assert!(
        matches!(error, Error::RpcTimeout { attempts: 3, .. }),
        "{error}"
    );
    let python = error.to_result_message();
    assert_eq!(
        python.outcome().expect("result"),
        Outcome::Exception {
            name: "TimeoutError".into(),
            message: error.to_string()
        }
    );
    let mut correlations = Vec::new();
    for _ in 0..3 {
        let props = tokio::time::timeout(Duration::from_secs(5), seen.recv())
            .await
            .expect("a send")
            .expect("open");
        assert_eq!(props.expiration().as_ref().map(|e| e.as_str()), Some("300"));
        assert_eq!(
            props
                .reply_to()
                .as_ref()
                .map(|r| r.as_str())
                .map(|r| r.starts_with(DIRECT_REPLY_TO)),
            Some(true)
        );
        correlations.push(props.correlation_id().clone().expect("correlation id"));
    }
    correlations.dedup();
    assert_eq!(
        correlations.len(),
        3,
        "every retry has a fresh correlation id"
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(300), seen.recv())
            .await
            .is_err(),
        "exactly 3 sends"
    );
}

#[tokio::test]
async fn a_request_nobody_takes_expires() {
    let connection = connect().await;
    let exchange = Exchange::new(unique("expire"), ExchangeKind::Direct).auto_delete(true);
    let queue = unique("expire");
    // A queue with no consumer.
    let _consumer_owner = Consumer::builder()
        .bind(exchange.clone(), [(queue.as_str(), queue.as_str())])
        .connect(&connection)
        .await
        .expect("declares");
    _consumer_owner.stop().await;
    let client = Producer::builder()
        .ek(exchange, queue.as_str())
        .connect(&connection)
        .await
        .expect("producer");
    let error = client
        .rpc("x", 1)
        .timeout(Duration::from_millis(200))
        .retries(0)
        .await
        .expect_err("timeout");
    assert!(error.is_timeout());
    let channel = raw_channel().await;
    let mut depth = u32::MAX;
    for _ in 0..30 {
        depth = queue_depth(&channel, &queue).await;
        if depth == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(depth, 0, "the broker dropped the expired request");
    let _ = channel
        .queue_delete(queue.as_str().into(), Default::default())
        .await;
}

/// Answers like a Python Postage processor: a reply on the default
/// exchange to `reply_to`, no properties at all, fingerprint `{}`.
async fn python_server(exchange: &Exchange, key: &str) {
    let channel = bound_queue(exchange, key).await;
    let mut consumer = channel
        .basic_consume(
            key.into(),
            "".into(),
            BasicConsumeOptions::default(),
            Default::default(),
        )
        .await
        .expect("consume");
    tokio::spawn(async move {
        while let Some(Ok(delivery)) = consumer.next().await {
            let request: Value = serde_json::from_slice(&delivery.data).expect("JSON");
            let reply_to = delivery.properties.reply_to().clone().expect("reply_to");
            let body = json!({"type": "result", "name": "none", "category": "message", "version": "2",
                "fingerprint": {}, "content": {"type": "success",
                "value": request["content"]["parameters"], "message": ""}, "_reserved": {}});
            channel
                .basic_publish(
                    "".into(),
                    reply_to,
                    BasicPublishOptions::default(),
                    &serde_json::to_vec(&body).expect("encode"),
                    lapin::BasicProperties::default(),
                )
                .await
                .expect("reply");
            delivery.ack(BasicAckOptions::default()).await.expect("ack");
        }
    });
}

#[tokio::test]
async fn python_server_without_correlation_id_is_answered_both_ways() {
    let connection = connect().await;
    let exchange = Exchange::new(unique("py"), ExchangeKind::Direct).auto_delete(true);
    let key = unique("py");
    python_server(&exchange, &key).await;
    let per_call = Producer::builder()
        .ek(exchange.clone(), key.as_str())
        .reply_strategy(ReplyStrategy::QueuePerCall)
        .connect(&connection)
        .await
        .expect("producer");
    // Concurrent calls: each has its own reply queue, so no correlation id
    // is needed.
    let calls = (0..20).map(|i| {
        let p = per_call.clone();
        async move { (i, p.rpc("echo", i).timeout(Duration::from_secs(10)).await) }
    });
    for (i, result) in futures_util::future::join_all(calls).await {
        let reply = result.expect("reply");
        assert_success(&reply, json!(i));
    }
    // Direct reply-to accepts an uncorrelated reply when one call waits.
    let direct = Producer::builder()
        .ek(exchange, key.as_str())
        .connect(&connection)
        .await
        .expect("producer");
    for i in 0..3 {
        let reply = direct
            .rpc("echo", i)
            .timeout(Duration::from_secs(10))
            .await
            .expect("reply");
        assert_success(&reply, json!(i));
    }
}

#[tokio::test]
async fn queue_only_calls_return_a_handle_at_once() {
    let connection = connect().await;
    let server = server(&connection).await;
    let client = client(&connection, &server).await;
    let pending = client
        .rpc("echo", "later")
        .queue_only()
        .await
        .expect("sent");
    assert_eq!(pending.reply_queue(), DIRECT_REPLY_TO);
    assert!(!pending.correlation_id().is_empty());
    let reply = pending.await.expect("reply");
    assert_success(&reply, json!("later"));

    let pending = client
        .rpc("echo", "queued")
        .strategy(ReplyStrategy::QueuePerCall)
        .queue_only()
        .await
        .expect("sent");
    assert!(
        pending.reply_queue().starts_with("amq.gen-"),
        "{}",
        pending.reply_queue()
    );
    let reply = pending.await.expect("reply");
    assert_success(&reply, json!("queued"));
    server.control.quit();
}

#[tokio::test]
async fn with_rpc_confirms_a_call_to_an_unbound_key_fails_at_once() {
    let connection = connect().await;
    let server = server(&connection).await;
    let client = Producer::builder()
        .ek(server.exchange.clone(), server.key.as_str())
        .rpc_confirms(true)
        .rpc_timeout(Duration::from_secs(30))
        .connect(&connection)
        .await
        .expect("producer");
    let error = client
        .rpc("echo", 1)
        .key("no-such-key")
        .await
        .expect_err("unroutable");
    assert!(matches!(error, Error::Unroutable { .. }), "{error}");
    // The same producer's calls that can be routed are answered.
    let reply = client.rpc("echo", 2).await.expect("reply");
    assert_success(&reply, json!(2));
    server.control.quit();
}

#[tokio::test]
async fn without_rpc_confirms_a_call_to_an_unbound_key_times_out() {
    let connection = connect().await;
    let server = server(&connection).await;
    let client = client(&connection, &server).await;
    let error = client
        .rpc("echo", 1)
        .key("no-such-key")
        .timeout(Duration::from_millis(300))
        .retries(1)
        .await
        .expect_err("unroutable");
    assert!(
        matches!(error, Error::RpcTimeout { attempts: 2, .. }),
        "{error}"
    );
    server.control.quit();
}

//! Processor dispatch on the broker: order, full body, context form, no
//! handler, malformed input, panics, quit, control restrictions and
//! concurrency.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::print_stdout)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use lapin::options::BasicPublishOptions;
use postage::Stop;
use postage::prelude::*;
use postage::processor::{Handler, HandlerError};
use postage_tests::{connect, next_within, raw_channel, unique};
use serde_json::json;
use tokio::sync::mpsc;

struct Recorder {
    log: mpsc::UnboundedSender<String>,
    running: AtomicUsize,
    peak: AtomicUsize,
}

impl Recorder {
    fn note(&self, text: String) {
        let _ = self.log.send(text);
    }
}

impl Handlers for Recorder {
    fn handlers() -> &'static [Handler<Self>] {
        const TABLE: &[Handler<Recorder>] = &[
            Handler::message("command", "echo", |this, content| {
                Box::pin(async move {
                    this.note(format!(
                        "first {}",
                        content.parameters().cloned().unwrap_or_default()
                    ));
                    Ok(())
                })
            }),
            Handler::full_body("command", "echo", |this, message| {
                Box::pin(async move {
                    this.note(format!(
                        "full {}",
                        message.sender().name.unwrap_or_default()
                    ));
                    Ok(())
                })
            }),
            Handler::context(Category::Message, "command", "echo", |ctx| {
                Box::pin(async move {
                    ctx.processor
                        .note(format!("context {} {}", ctx.message.name, ctx.routing_key));
                    Ok(())
                })
            }),
            Handler::message("command", "panic", |_, _| {
                Box::pin(async move { panic!("handler bug") })
            }),
            Handler::message("command", "fail", |_, _| {
                Box::pin(async move { Err(HandlerError::new("Oops", "failed")) })
            }),
            Handler::message("command", "slow", |this, _| {
                Box::pin(async move {
                    let now = this.running.fetch_add(1, Ordering::SeqCst) + 1;
                    this.peak.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    this.running.fetch_sub(1, Ordering::SeqCst);
                    this.note("slow".into());
                    Ok(())
                })
            }),
            Handler::context(Category::Message, "command", "stop_me", |ctx| {
                Box::pin(async move {
                    ctx.control.quit();
                    Ok(())
                })
            }),
        ];
        TABLE
    }
}

struct Setup {
    exchange: Exchange,
    key: String,
    log: mpsc::UnboundedReceiver<String>,
    processor: Processor<Recorder>,
}

async fn setup(
    connection: &Connection,
    queue: Queue,
    configure: impl FnOnce(
        postage::processor::ProcessorBuilder<Recorder>,
    ) -> postage::processor::ProcessorBuilder<Recorder>,
) -> Setup {
    let exchange = Exchange::new(unique("proc"), ExchangeKind::Direct).auto_delete(true);
    let key = queue.name().to_owned();
    let (tx, log) = mpsc::unbounded_channel();
    let recorder = Recorder {
        log: tx,
        running: AtomicUsize::new(0),
        peak: AtomicUsize::new(0),
    };
    let builder = Processor::builder(recorder).bind(exchange.clone(), [(queue, key.as_str())]);
    let processor = configure(builder)
        .connect(connection)
        .await
        .expect("processor");
    Setup {
        exchange,
        key,
        log,
        processor,
    }
}

async fn producer(connection: &Connection, exchange: &Exchange, key: &str, name: &str) -> Producer {
    Producer::builder()
        .ek(exchange.clone(), key)
        .fingerprint(Fingerprint::new(name, "test"))
        .connect(connection)
        .await
        .expect("producer")
}

async fn next_log(log: &mut mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(Duration::from_secs(5), log.recv())
        .await
        .expect("a handler ran")
        .expect("open")
}

#[tokio::test]
async fn every_handler_runs_in_declaration_order_then_quit() {
    let connection = connect().await;
    let mut setup = setup(
        &connection,
        Queue::new(unique("order")).auto_delete(true),
        |b| b,
    )
    .await;
    let producer = producer(&connection, &setup.exchange, &setup.key, "orderer").await;
    let processor = setup.processor;
    let running = tokio::spawn(processor.run());
    for i in 0..3 {
        producer.command("echo", i).await.expect("sent");
    }
    for i in 0..3 {
        assert_eq!(next_log(&mut setup.log).await, format!("first {i}"));
        assert_eq!(next_log(&mut setup.log).await, "full orderer");
        assert_eq!(
            next_log(&mut setup.log).await,
            format!("context echo {}", setup.key)
        );
    }
    // Unknown commands, failures and panics do not stop the processor.
    producer.command("unknown", 0).await.expect("sent");
    producer.command("panic", 0).await.expect("sent");
    producer.command("fail", 0).await.expect("sent");
    producer.command("echo", "after").await.expect("sent");
    assert_eq!(next_log(&mut setup.log).await, "first \"after\"");
    producer.command("quit", json!({})).await.expect("sent");
    let stop = tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("ends")
        .expect("joins");
    assert_eq!(stop.expect("no error"), Stop::Quit);
}

#[tokio::test]
async fn malformed_input_is_dead_lettered_and_processing_goes_on() {
    let connection = connect().await;
    let dlx = Exchange::new(unique("dlx"), ExchangeKind::Fanout).auto_delete(true);
    let dead = unique("dead");
    let mut dead_letters = Consumer::builder()
        .bind(
            dlx.clone(),
            [(Queue::new(dead.as_str()).auto_delete(true), "")],
        )
        .connect(&connection)
        .await
        .expect("dead-letter consumer");
    let queue = Queue::new(unique("poison"))
        .auto_delete(true)
        .argument("x-dead-letter-exchange", dlx.name());
    let mut setup = setup(&connection, queue, |b| b).await;
    let running = tokio::spawn(setup.processor.run());
    let channel = raw_channel().await;
    let bodies: [&[u8]; 4] = [
        b"{not json",
        b"[1, 2, 3]",
        br#"{"type": "command", "name": "echo"}"#,
        br#"{"type": "command", "name": "echo", "category": "rpc", "content": {"parameters": 1}}"#, // RPC without reply_to
    ];
    for body in bodies {
        channel
            .basic_publish(
                setup.exchange.name().into(),
                setup.key.as_str().into(),
                BasicPublishOptions::default(),
                body,
                lapin::BasicProperties::default().with_content_type("application/json".into()),
            )
            .await
            .expect("publish");
    }
    for body in bodies {
        let dead = next_within(&mut dead_letters, 5).await;
        assert_eq!(dead.body(), body, "rejected without requeue, in order");
        dead.ack().await.expect("ack");
    }
    let producer = Producer::builder()
        .ek(setup.exchange.clone(), setup.key.as_str())
        .connect(&connection)
        .await
        .expect("producer");
    producer.command("echo", "good").await.expect("sent");
    assert_eq!(next_log(&mut setup.log).await, "first \"good\"");
    running.abort();
}

#[tokio::test]
async fn control_commands_can_be_restricted_or_overridden() {
    let connection = connect().await;
    let mut setup = setup(
        &connection,
        Queue::new(unique("ctl")).auto_delete(true),
        |b| b.control_senders(["operator"]),
    )
    .await;
    let running = tokio::spawn(setup.processor.run());
    let stranger = producer(&connection, &setup.exchange, &setup.key, "stranger").await;
    stranger.command("quit", json!({})).await.expect("sent");
    stranger.command("echo", "alive").await.expect("sent");
    assert_eq!(
        next_log(&mut setup.log).await,
        "first \"alive\"",
        "quit from a stranger is ignored"
    );
    let _ = next_log(&mut setup.log).await;
    let _ = next_log(&mut setup.log).await;
    let operator = producer(&connection, &setup.exchange, &setup.key, "operator").await;
    operator.command("quit", json!({})).await.expect("sent");
    let stop = tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("ends")
        .expect("joins");
    assert_eq!(stop.expect("ok"), Stop::Quit);

    // Switched off: quit is an ordinary unhandled command; a context
    // handler can stop the processor instead.
    let setup = self::setup(
        &connection,
        Queue::new(unique("noquit")).auto_delete(true),
        |b| b.quit_command(false).restart_command(false),
    )
    .await;
    let anyone = producer(&connection, &setup.exchange, &setup.key, "anyone").await;
    let running = tokio::spawn(setup.processor.run());
    anyone.command("quit", json!({})).await.expect("sent");
    anyone.command("restart", json!({})).await.expect("sent");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!running.is_finished(), "quit and restart are switched off");
    anyone.command("stop_me", json!({})).await.expect("sent");
    let stop = tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("ends")
        .expect("joins");
    assert_eq!(stop.expect("ok"), Stop::Quit);
}

#[tokio::test]
async fn concurrency_limit_is_respected() {
    let connection = connect().await;
    for (limit, expected_peak) in [(1usize, 1usize), (3, 3)] {
        let mut setup = setup(
            &connection,
            Queue::new(unique("conc")).auto_delete(true),
            |b| b.concurrency(limit).prefetch(10),
        )
        .await;
        let recorder = setup.processor.handlers().clone();
        let producer = producer(&connection, &setup.exchange, &setup.key, "load").await;
        let running = tokio::spawn(setup.processor.run());
        for _ in 0..6 {
            producer.command("slow", 0).await.expect("sent");
        }
        for _ in 0..6 {
            assert_eq!(next_log(&mut setup.log).await, "slow");
        }
        assert_eq!(
            recorder.peak.load(Ordering::SeqCst),
            expected_peak,
            "limit {limit}"
        );
        running.abort();
    }
}

#[tokio::test]
async fn shutdown_through_the_scheduler_finishes_and_closes() {
    let connection = connect().await;
    let mut setup = setup(
        &connection,
        Queue::new(unique("sched")).auto_delete(true),
        |b| b,
    )
    .await;
    let producer = producer(&connection, &setup.exchange, &setup.key, "s").await;
    let mut scheduler = Scheduler::new().handle_signals(false);
    let handle = scheduler.shutdown_handle();
    scheduler.add(setup.processor);
    let done = Arc::new(AtomicUsize::new(0));
    let flag = done.clone();
    scheduler.spawn_with_shutdown(|shutdown| async move {
        shutdown.wait().await;
        flag.fetch_add(1, Ordering::SeqCst);
        Ok(())
    });
    let running = tokio::spawn(scheduler.run());
    producer.command("slow", 0).await.expect("sent");
    assert_eq!(next_log(&mut setup.log).await, "slow");
    handle.shutdown();
    tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("ends")
        .expect("joins")
        .expect("ok");
    assert_eq!(done.load(Ordering::SeqCst), 1);
    assert!(
        !connection.is_connected(),
        "the scheduler closed the processor's connection"
    );
}

/// Deletes `queue` from outside: another connection, as an operator's
/// tool does.
async fn delete_from_outside(queue: &str) {
    raw_channel()
        .await
        .queue_delete(queue.into(), lapin::options::QueueDeleteOptions::default())
        .await
        .expect("deleted");
}

#[tokio::test]
async fn a_queue_deleted_from_outside_is_declared_again_and_the_processor_resumes() {
    let connection = connect().await;
    let mut setup = setup(&connection, Queue::new(unique("doomed")), |b| b).await;
    let consumer = setup.processor.consumer();
    let running = tokio::spawn(setup.processor.run());
    let producer = producer(&connection, &setup.exchange, &setup.key, "deleter").await;
    producer.command("echo", "before").await.expect("sent");
    assert_eq!(next_log(&mut setup.log).await, "first \"before\"");
    for _ in 0..2 {
        next_log(&mut setup.log).await;
    }
    delete_from_outside(&setup.key).await;
    let deleted = std::time::Instant::now();
    // Sent until one arrives: the queue and its binding are back. The
    // exchange is auto-delete and went with its last binding: until the
    // processor declares it again, a send is refused.
    let resumed = loop {
        assert!(
            deleted.elapsed() < Duration::from_secs(10),
            "the processor did not resume within 10 s; health {:?}",
            consumer.health()
        );
        if producer.command("echo", "after").await.is_err() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        if let Ok(Some(line)) =
            tokio::time::timeout(Duration::from_millis(200), setup.log.recv()).await
        {
            assert_eq!(line, "first \"after\"");
            break deleted.elapsed();
        }
    };
    assert_eq!(consumer.health(), postage::Health::Consuming);
    assert!(!running.is_finished(), "the processor runs on");
    println!("queue deleted from outside: consuming again after {resumed:?}");
    producer.command("stop_me", ()).await.expect("sent");
    let ended = tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("ends")
        .expect("joins");
    assert_eq!(ended.expect("no error"), Stop::Quit);
}

#[tokio::test]
async fn a_deleted_queue_ends_the_processor_with_an_error_when_asked() {
    let connection = connect().await;
    let setup = setup(&connection, Queue::new(unique("doomed")), |b| {
        b.redeclare_deleted_queues(false)
    })
    .await;
    let consumer = setup.processor.consumer();
    let running = tokio::spawn(setup.processor.run());
    delete_from_outside(&setup.key).await;
    let ended = tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the processor does not idle")
        .expect("joins");
    assert!(
        matches!(&ended, Err(postage::Error::ConsumerLost(reason)) if reason.contains("deleted")),
        "{ended:?}"
    );
    assert!(matches!(
        consumer.health(),
        postage::Health::Failed(_) | postage::Health::Stopped
    ));
}

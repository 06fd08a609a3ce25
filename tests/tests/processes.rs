//! Components as real processes: quit, restart (same pid), graceful
//! shutdown on SIGTERM with a handler in flight.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::process::Command;
use std::time::Duration;

use postage::prelude::*;
use postage_tests::{Spawned, connect, queue_depth, raw_channel, unique};

struct Component {
    process: Spawned,
    exchange: Exchange,
    queue: String,
}

impl Component {
    fn start() -> Self {
        let exchange = Exchange::new(unique("proc"), ExchangeKind::Direct).auto_delete(true);
        let queue = unique("procq");
        let mut command = Command::new(env!("CARGO_BIN_EXE_test_component"));
        command.args([exchange.name(), queue.as_str()]);
        Component {
            process: Spawned::start(command),
            exchange,
            queue,
        }
    }

    fn expect_line(&self, prefix: &str) -> String {
        self.process.expect_line(prefix)
    }

    async fn producer(&self, connection: &Connection) -> Producer {
        Producer::builder()
            .ek(self.exchange.clone(), self.queue.as_str())
            .fingerprint(Fingerprint::new("test_driver", "test"))
            .connect(connection)
            .await
            .expect("producer")
    }
}

#[tokio::test]
async fn quit_ends_the_component_with_status_zero() {
    let connection = connect().await;
    let mut component = Component::start();
    component.expect_line("ready");
    component
        .producer(&connection)
        .await
        .command("quit", serde_json::json!({}))
        .await
        .expect("sent");
    component.expect_line("stopped");
    assert!(component.process.wait_exit().success());
}

#[tokio::test]
async fn restart_keeps_the_pid_and_keeps_serving() {
    let connection = connect().await;
    let mut component = Component::start();
    let first = component.expect_line("ready");
    assert_eq!(first, format!("ready pid={}", component.process.pid()));
    let producer = component.producer(&connection).await;
    producer
        .command("restart", serde_json::json!({}))
        .await
        .expect("sent");
    let second = component.expect_line("ready");
    assert_eq!(second, first, "same pid after restart");
    producer.command("slow", 1).await.expect("sent");
    assert_eq!(
        component.expect_line("handled"),
        "handled 1",
        "serves after restart"
    );
    producer
        .command("quit", serde_json::json!({}))
        .await
        .expect("sent");
    assert!(component.process.wait_exit().success());
}

#[tokio::test]
async fn sigterm_lets_the_running_handler_finish_and_loses_nothing() {
    let connection = connect().await;
    let mut component = Component::start();
    component.expect_line("ready");
    let producer = component.producer(&connection).await;
    producer.command("slow", 1500).await.expect("sent");
    producer.command("slow", 1).await.expect("sent");
    producer.command("slow", 2).await.expect("sent");
    assert_eq!(component.expect_line("handling"), "handling 1500");
    component.process.terminate();
    assert_eq!(component.expect_line("handled"), "handled 1500");
    component.expect_line("stopped");
    assert!(component.process.wait_exit().success());
    // The two messages not started went back to the queue.
    let channel = raw_channel().await;
    let mut depth = 0;
    for _ in 0..50 {
        depth = queue_depth(&channel, &component.queue).await;
        if depth == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(depth, 2, "unstarted messages are requeued, none lost");
    let _ = channel
        .queue_delete(
            component.queue.as_str().into(),
            lapin::options::QueueDeleteOptions::default(),
        )
        .await;
}

#[tokio::test]
async fn a_second_sigterm_exits_at_once_and_the_message_is_kept() {
    let connection = connect().await;
    let mut component = Component::start();
    component.expect_line("ready");
    let producer = component.producer(&connection).await;
    producer.command("slow", 60_000).await.expect("sent");
    assert_eq!(component.expect_line("handling"), "handling 60000");
    component.process.terminate();
    // Let the first signal begin the graceful shutdown before the second.
    tokio::time::sleep(Duration::from_millis(500)).await;
    component.process.terminate();
    let status = component.process.wait_exit();
    assert_eq!(status.code(), Some(130), "{status}");
    let channel = raw_channel().await;
    let mut depth = 0;
    for _ in 0..50 {
        depth = queue_depth(&channel, &component.queue).await;
        if depth == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(depth, 1, "the interrupted message went back to its queue");
    let _ = channel
        .queue_delete(
            component.queue.as_str().into(),
            lapin::options::QueueDeleteOptions::default(),
        )
        .await;
}

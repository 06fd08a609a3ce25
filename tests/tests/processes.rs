//! Components as real processes: quit, restart (same pid), graceful
//! shutdown on SIGTERM with a handler in flight.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use postage::prelude::*;
use postage_tests::{connect, queue_depth, raw_channel, unique};

struct Component {
    child: Child,
    lines: mpsc::Receiver<String>,
    exchange: Exchange,
    queue: String,
}

impl Component {
    fn start() -> Self {
        let exchange = Exchange::new(unique("proc"), ExchangeKind::Direct).auto_delete(true);
        let queue = unique("procq");
        let mut child = Command::new(env!("CARGO_BIN_EXE_test_component"))
            .args([exchange.name(), queue.as_str()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("test_component starts");
        let stdout: ChildStdout = child.stdout.take().expect("piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Component {
            child,
            lines,
            exchange,
            queue,
        }
    }

    fn expect_line(&self, prefix: &str) -> String {
        loop {
            match self.lines.recv_timeout(Duration::from_secs(20)) {
                Ok(line) if line.starts_with(prefix) => return line,
                Ok(_) => {}
                Err(e) => panic!("no line starting with {prefix:?}: {e}"),
            }
        }
    }

    async fn producer(&self, connection: &Connection) -> Producer {
        Producer::builder()
            .ek(self.exchange.clone(), self.queue.as_str())
            .fingerprint(Fingerprint::new("test_driver", "test"))
            .connect(connection)
            .await
            .expect("producer")
    }

    fn wait_exit(&mut self) -> std::process::ExitStatus {
        for _ in 0..200 {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the component did not exit within 20 s");
    }
}

impl Drop for Component {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sigterm(pid: u32) {
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
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
    assert!(component.wait_exit().success());
}

#[tokio::test]
async fn restart_keeps_the_pid_and_keeps_serving() {
    let connection = connect().await;
    let mut component = Component::start();
    let first = component.expect_line("ready");
    assert_eq!(first, format!("ready pid={}", component.child.id()));
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
    assert!(component.wait_exit().success());
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
    sigterm(component.child.id());
    assert_eq!(component.expect_line("handled"), "handled 1500");
    component.expect_line("stopped");
    assert!(component.wait_exit().success());
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

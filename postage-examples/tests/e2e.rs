//! The example components as real processes against RabbitMQ, each test in
//! a virtual host of its own (the examples use fixed names).

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::process::Command;
use std::time::Duration;

use postage_tests::{Spawned, TestVhost};

fn command(vhost: &TestVhost, program: &str, args: &[&str]) -> Command {
    let mut command = Command::new(program);
    command
        .args(args)
        .env("POSTAGE_URL", vhost.url())
        .env_remove("RUST_LOG");
    command
}

fn start(vhost: &TestVhost, program: &str) -> Spawned {
    let process = Spawned::start(command(vhost, program, &[]));
    let ready = process.expect_line("ready pid=");
    assert_eq!(ready, format!("ready pid={}", process.pid()));
    process
}

/// Runs a one-shot program to its end; its standard output and status.
fn run(vhost: &TestVhost, program: &str, args: &[&str]) -> (String, bool) {
    let output = command(vhost, program, args).output().expect("runs");
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        output.status.success(),
    )
}

fn count(lines: &[String], wanted: &str) -> usize {
    lines.iter().filter(|l| *l == wanted).count()
}

#[test]
fn shared_key_reaches_one_receiver_fanout_key_reaches_both() {
    let vhost = TestVhost::create();
    let receivers = [
        start(&vhost, env!("CARGO_BIN_EXE_echo_advanced_receive")),
        start(&vhost, env!("CARGO_BIN_EXE_echo_advanced_receive")),
    ];
    for i in 0..4 {
        let text = format!("shared {i}");
        let (out, ok) = run(&vhost, env!("CARGO_BIN_EXE_echo_send"), &[&text]);
        assert!(ok);
        assert_eq!(out, format!("sent: {text}\n"));
    }
    let (out, ok) = run(&vhost, env!("CARGO_BIN_EXE_echo_advanced_send"), &["both"]);
    assert!(ok);
    assert_eq!(out, "sent: both\nsent fanout: both\n");

    let seen: Vec<Vec<String>> = receivers
        .iter()
        .map(|r| r.lines_until_quiet(Duration::from_millis(1500)))
        .collect();
    for i in 0..4 {
        let line = format!("echo: shared {i}");
        let copies: usize = seen.iter().map(|lines| count(lines, &line)).sum();
        assert_eq!(copies, 1, "{line:?} reaches exactly one receiver: {seen:?}");
    }
    let per_receiver: Vec<usize> = seen
        .iter()
        .map(|lines| {
            lines
                .iter()
                .filter(|l| l.starts_with("echo: shared"))
                .count()
        })
        .collect();
    assert!(
        per_receiver.iter().all(|&n| n >= 1),
        "round robin: {per_receiver:?}"
    );
    // "both" went once to the shared queue and once to each private queue.
    let both: Vec<usize> = seen
        .iter()
        .map(|lines| count(lines, "echo: both"))
        .collect();
    assert_eq!(both.iter().sum::<usize>(), 3, "{seen:?}");
    assert!(
        both.iter().all(|&n| n >= 1),
        "the fanout copy reaches both: {both:?}"
    );
    // The full-body handler runs after the content handler, every time.
    for lines in &seen {
        for (i, line) in lines.iter().enumerate() {
            if line.starts_with("echo: ") {
                assert!(
                    lines
                        .get(i + 1)
                        .is_some_and(|next| next.starts_with("fingerprint: echo_send pid=")),
                    "{lines:?}"
                );
            }
        }
    }
}

#[test]
fn rpc_echo_returns_the_reply() {
    let vhost = TestVhost::create();
    let receiver = start(&vhost, env!("CARGO_BIN_EXE_rpc_echo_receive"));
    let (out, ok) = run(&vhost, env!("CARGO_BIN_EXE_rpc_echo_send"), &["ping ☃"]);
    assert!(ok);
    assert_eq!(out, "reply: ping ☃\n");
    assert_eq!(receiver.expect_line("rpc echo:"), "rpc echo: ping ☃");
}

#[test]
fn sigterm_stops_a_receiver_cleanly() {
    let vhost = TestVhost::create();
    let mut receiver = start(&vhost, env!("CARGO_BIN_EXE_echo_receive"));
    receiver.terminate();
    assert!(receiver.wait_exit().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn calculator_results_and_status_broadcast() {
    use postage::{Config, Connection, Consumer, Exchange, Queue};
    let vhost = TestVhost::create();
    let connection = Connection::connect(Config::from_url(&vhost.url()).expect("url"))
        .await
        .expect("broker");
    let mut statuses = Consumer::builder()
        .bind(
            Exchange::fanout("calc-status"),
            [(Queue::server_named(), "")],
        )
        .connect(&connection)
        .await
        .expect("status consumer");
    let mut service = start(&vhost, env!("CARGO_BIN_EXE_calc_service"));
    let online = postage_tests::next_within(&mut statuses, 10).await;
    let message = online.message().expect("a status");
    assert_eq!(
        (message.kind.as_str(), message.name.as_str()),
        ("status", "online")
    );
    assert_eq!(message.sender().name.as_deref(), Some("calc_service"));

    let cases: [(&[&str], &str, bool); 5] = [
        (&["add", "2", "3"], "ok: 5.0\n", true),
        (&["mul", "1.5", "4"], "ok: 6.0\n", true),
        (&["div", "1", "0"], "error: division by zero\n", false),
        (
            &["sqrt", "-1"],
            "exception: ValueError: math domain error\n",
            false,
        ),
        (&["sqrt", "16"], "ok: 4.0\n", true),
    ];
    for (args, expected, success) in cases {
        let (out, ok) = run(&vhost, env!("CARGO_BIN_EXE_calc_client"), args);
        assert_eq!(
            (out.as_str(), ok),
            (expected, success),
            "calc_client {args:?}"
        );
    }
    assert_eq!(service.expect_line("sqrt"), "sqrt -1");

    // The classic `quit`, as Python Postage sends it.
    let control = postage::Producer::builder()
        .ek(Exchange::direct("calc-exchange"), "calc-rk")
        .connect(&connection)
        .await
        .expect("producer");
    control
        .command("quit", serde_json::json!({}))
        .await
        .expect("quit sent");
    assert!(service.wait_exit().success());
    let offline = postage_tests::next_within(&mut statuses, 10).await;
    assert_eq!(offline.message().expect("a status").name, "offline");
    connection.close().await.expect("close");
}

//! The `postage` binary as a process, against the example components as
//! processes, on RabbitMQ: each test in a virtual host of its own (the
//! examples use fixed names).
//!
//! The example components are `postage-examples`' binaries, which
//! `cargo test --workspace` builds; for this suite alone, build them
//! first: `cargo build -p postage-examples --bins`.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use postage_tests::{Spawned, TestVhost};
use serde_json::Value;

/// What a run of `postage` left: its status, standard output, standard
/// error.
struct Run {
    status: Option<i32>,
    stdout: String,
    stderr: String,
}

fn postage_command(vhost: &TestVhost, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_postage"));
    command
        .args(args)
        .env("POSTAGE_URL", vhost.url())
        .env_remove("RUST_LOG");
    command
}

/// Runs `postage ARGS` to its end.
fn postage(vhost: &TestVhost, args: &[&str]) -> Run {
    let output = postage_command(vhost, args).output().expect("postage runs");
    Run {
        status: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// An example component's binary, built beside this test's.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test's path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/debug");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the examples first (cargo build -p postage-examples --bins)",
        path.display()
    );
    path
}

/// Starts an example component and waits until it consumes.
fn start(vhost: &TestVhost, name: &str) -> Spawned {
    let mut command = Command::new(example(name));
    command
        .env("POSTAGE_URL", vhost.url())
        .env_remove("RUST_LOG");
    let process = Spawned::start(command);
    assert_eq!(
        process.expect_line("ready pid="),
        format!("ready pid={}", process.pid())
    );
    process
}

/// Runs an example's one-shot program.
fn run_example(vhost: &TestVhost, name: &str, args: &[&str]) {
    let status = Command::new(example(name))
        .args(args)
        .env("POSTAGE_URL", vhost.url())
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .status()
        .expect("runs");
    assert!(status.success(), "{name} {args:?}: {status}");
}

/// A one-line error, and no panic or backtrace.
fn assert_one_line_error(run: &Run, starts_with: &str) {
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {:?}", run.stderr);
    assert!(
        lines[0].starts_with(&format!("error: {starts_with}")),
        "{:?}",
        run.stderr
    );
    assert!(!run.stderr.contains("panicked"), "{:?}", run.stderr);
}

#[test]
fn send_reaches_echo_receive() {
    let vhost = TestVhost::create();
    let receiver = start(&vhost, "echo_receive");
    let sent = postage(
        &vhost,
        &["send", "echo-exchange", "echo-rk", "echo", "\"hello ☃\""],
    );
    assert_eq!(sent.status, Some(0), "{}", sent.stderr);
    assert_eq!(sent.stdout, "sent: echo to echo-exchange/echo-rk\n");
    assert_eq!(receiver.expect_line("echo:"), "echo: hello ☃");

    let many = postage(
        &vhost,
        &[
            "send",
            "echo-exchange",
            "echo-rk",
            "echo",
            r#"{"n": 3}"#,
            "--count",
            "3",
            "--confirm",
            "--persistent",
        ],
    );
    assert_eq!(many.status, Some(0), "{}", many.stderr);
    assert!(
        many.stdout
            .starts_with("sent: 3 x echo to echo-exchange/echo-rk in "),
        "{}",
        many.stdout
    );
    assert!(
        many.stdout.trim_end().ends_with("messages/s)"),
        "{}",
        many.stdout
    );
    for _ in 0..3 {
        assert_eq!(receiver.expect_line("echo:"), r#"echo: {"n":3}"#);
    }
    // With --confirm, a message no queue takes is an error.
    let unroutable = postage(
        &vhost,
        &["send", "echo-exchange", "nobody-rk", "echo", "--confirm"],
    );
    assert_eq!(unroutable.status, Some(3));
    assert_one_line_error(&unroutable, "");
}

#[tokio::test(flavor = "multi_thread")]
async fn call_prints_the_reply_and_its_status_says_error_or_timeout() {
    let vhost = TestVhost::create();
    let _receiver = start(&vhost, "rpc_echo_receive");
    let ok = postage(
        &vhost,
        &[
            "call",
            "echo-exchange",
            "echo-rk",
            "echo",
            "\"ping ☃\"",
            "--json",
        ],
    );
    assert_eq!(ok.status, Some(0), "{}", ok.stderr);
    let result: Value = serde_json::from_str(&ok.stdout).unwrap();
    assert_eq!(
        result,
        serde_json::json!({"type": "success", "value": "ping ☃", "message": ""})
    );
    assert_eq!(ok.stdout.lines().count(), 1);

    // Without --json, the same result indented.
    let pretty = postage(
        &vhost,
        &["call", "echo-exchange", "echo-rk", "echo", "[1, 2]"],
    );
    assert_eq!(pretty.status, Some(0));
    assert!(pretty.stdout.lines().count() > 1, "{}", pretty.stdout);
    assert_eq!(
        serde_json::from_str::<Value>(&pretty.stdout).unwrap()["value"],
        serde_json::json!([1, 2])
    );

    // No handler for it: an error result, status 1.
    let error = postage(&vhost, &["call", "echo-exchange", "echo-rk", "nosuch"]);
    assert_eq!(error.status, Some(1), "{} {}", error.stdout, error.stderr);
    assert_eq!(
        serde_json::from_str::<Value>(&error.stdout).unwrap()["type"],
        "error"
    );
    assert_one_line_error(&error, "nosuch answered with an error");

    // A queue that nobody consumes: no reply in time, status 2.
    let connection = postage::Connection::connect(postage::Config::from_url(&vhost.url()).unwrap())
        .await
        .unwrap();
    let _parked = postage::Consumer::builder()
        .bind(
            postage::Exchange::direct("echo-exchange"),
            [("parked", "parked-rk")],
        )
        .prefetch(1)
        .connect(&connection)
        .await
        .unwrap();
    let timeout = postage(
        &vhost,
        &[
            "call",
            "echo-exchange",
            "parked-rk",
            "echo",
            "--timeout",
            "0.5",
        ],
    );
    assert_eq!(timeout.status, Some(2), "{}", timeout.stderr);
    assert_one_line_error(&timeout, "RPC \"echo\" got no reply");
    connection.close().await.unwrap();
}

#[test]
fn tail_shows_what_echo_send_sent_and_marks_what_is_not_postage() {
    let vhost = TestVhost::create();
    let _receiver = start(&vhost, "echo_receive");
    let mut tail = postage_command(
        &vhost,
        &["tail", "echo-exchange", "echo-rk", "--count", "2"],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let stderr = tail.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let ready = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("tail starts");
    assert_eq!(
        ready,
        "tailing echo-exchange (keys: echo-rk); Ctrl-C to stop"
    );

    run_example(&vhost, "echo_send", &["tailed text"]);
    let raw = postage_tests::unique("raw");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let connection =
            postage::Connection::connect(postage::Config::from_url(&vhost.url()).unwrap())
                .await
                .unwrap();
        let producer = postage::Producer::builder()
            .ek(postage::Exchange::direct("echo-exchange"), "echo-rk")
            .connect(&connection)
            .await
            .unwrap();
        producer.forward(format!("not json {raw}")).await.unwrap();
        connection.close().await.unwrap();
    });

    let mut stdout = String::new();
    tail.stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    assert!(tail.wait().unwrap().success());
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    let fields: Vec<&str> = lines[0].splitn(6, ' ').collect();
    assert!(
        fields[0].ends_with('Z') && fields[0].contains('T'),
        "a UTC time: {}",
        lines[0]
    );
    assert!(
        fields[1].starts_with("echo_send/application"),
        "{}",
        lines[0]
    );
    assert_eq!(
        &fields[3..],
        ["command", "echo", r#"message {"parameters":"tailed text"}"#]
    );
    assert!(
        lines[1].contains("(not a Postage message: "),
        "{}",
        lines[1]
    );
    assert!(
        lines[1].ends_with(&format!("not json {raw}")),
        "{}",
        lines[1]
    );
}

#[test]
fn ps_lists_two_running_receivers_with_their_pids() {
    let vhost = TestVhost::create();
    let echo = start(&vhost, "echo_receive");
    let rpc = start(&vhost, "rpc_echo_receive");

    let table = postage(&vhost, &["ps"]);
    assert_eq!(table.status, Some(0), "{}", table.stderr);
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "a header and two rows: {}", table.stdout);
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "TYPE",
            "PID",
            "HOST",
            "UPTIME",
            "RECEIVED",
            "HANDLED",
            "FAILED",
            "REJECTED",
            "UNHANDLED",
            "HEALTH",
            "PARTITIONS",
            "JOBS",
            "HANDLERS"
        ],
        "{}",
        lines[0]
    );
    for (line, (name, pid, handlers)) in lines[1..].iter().zip([
        ("echo_receive", echo.pid(), "message:echo"),
        ("rpc_echo_receive", rpc.pid(), "rpc:echo"),
    ]) {
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cells.len(), header.len(), "{line}");
        assert_eq!(cells[0], name, "{line}");
        assert_eq!(cells[1], "controller", "{line}");
        assert_eq!(cells[2], pid.to_string(), "{line}");
        assert_eq!(cells[9], "0", "nothing unhandled: {line}");
        assert_eq!(cells[10], "consuming", "{line}");
        assert_eq!(cells[11], "-", "no partitions: {line}");
        assert_eq!(cells[12], "-", "no periodic jobs: {line}");
        assert_eq!(cells[13], handlers, "{line}");
    }

    let json = postage(&vhost, &["ps", "--json"]);
    let infos: Vec<Value> = serde_json::from_str(&json.stdout).unwrap();
    let pids: Vec<Value> = infos
        .iter()
        .map(|i| i["fingerprint"]["pid"].clone())
        .collect();
    assert_eq!(pids, [echo.pid().to_string(), rpc.pid().to_string()]);

    let pongs = postage(&vhost, &["ping", "--json"]);
    assert_eq!(pongs.status, Some(0));
    assert_eq!(pongs.stdout.lines().count(), 2, "{}", pongs.stdout);
}

#[test]
fn quit_by_name_stops_only_the_named_one() {
    let vhost = TestVhost::create();
    let mut echo = start(&vhost, "echo_receive");
    let rpc = start(&vhost, "rpc_echo_receive");

    let quit = postage(&vhost, &["quit", "echo_receive"]);
    assert_eq!(quit.status, Some(0), "{}", quit.stderr);
    assert!(
        quit.stdout
            .starts_with(&format!("quit: echo_receive/controller {}@", echo.pid())),
        "{}",
        quit.stdout
    );
    assert_eq!(quit.stdout.lines().count(), 1, "only the named one answers");
    assert!(echo.wait_exit().success());

    let still = postage(&vhost, &["ping", "rpc_echo_receive"]);
    assert_eq!(still.status, Some(0), "{}", still.stderr);
    assert!(
        still.stdout.contains(&format!(" {}@", rpc.pid())),
        "{}",
        still.stdout
    );
    let gone = postage(&vhost, &["ping", "echo_receive"]);
    assert_eq!(gone.status, Some(1));
    assert_eq!(gone.stdout, "");
    assert_one_line_error(&gone, "no component answered as echo_receive");
}

#[test]
fn pause_holds_the_messages_until_resume() {
    let vhost = TestVhost::create();
    let echo = start(&vhost, "echo_receive");
    let info = |vhost: &TestVhost| {
        let json = postage(vhost, &["ps", "--json"]);
        let mut infos: Vec<Value> = serde_json::from_str(&json.stdout).unwrap();
        infos.remove(0)
    };
    let health = |vhost: &TestVhost| info(vhost)["health"].as_str().unwrap().to_owned();

    let pause = postage(&vhost, &["pause", "echo_receive"]);
    assert_eq!(pause.status, Some(0), "{}", pause.stderr);
    assert!(
        pause.stdout.starts_with("pause: echo_receive/controller "),
        "{}",
        pause.stdout
    );
    assert_eq!(health(&vhost), "paused");
    let again = postage(&vhost, &["pause", "echo_receive"]);
    assert!(
        again.stdout.starts_with("paused already: echo_receive"),
        "{}",
        again.stdout
    );

    run_example(&vhost, "echo_send", &["while paused"]);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        info(&vhost)["counters"]["received"],
        0,
        "nothing arrives while paused"
    );
    let resume = postage(&vhost, &["resume", "echo_receive"]);
    assert_eq!(resume.status, Some(0), "{}", resume.stderr);
    assert!(
        resume
            .stdout
            .starts_with("resume: echo_receive/controller "),
        "{}",
        resume.stdout
    );
    // Held while paused, handled once resumed.
    assert_eq!(echo.expect_line("echo:"), "echo: while paused");
    assert_eq!(health(&vhost), "consuming");
    assert_eq!(info(&vhost)["counters"]["handled"], 1, "handled once");
}

#[test]
fn restart_by_pid_brings_it_back_and_the_classic_quit_ends_it() {
    let vhost = TestVhost::create();
    let mut echo = start(&vhost, "echo_receive");
    let pid = echo.pid();
    let host = postage::Fingerprint::anonymous().host.unwrap();

    let restart = postage(&vhost, &["restart", &format!("{pid}@{host}")]);
    assert_eq!(restart.status, Some(0), "{}", restart.stderr);
    assert_eq!(echo.expect_line("ready pid="), format!("ready pid={pid}"));

    run_example(&vhost, "echo_send", &["after restart"]);
    assert_eq!(echo.expect_line("echo:"), "echo: after restart");

    let quit = postage(
        &vhost,
        &["quit", "--exchange", "echo-exchange", "--key", "echo-rk"],
    );
    assert_eq!(quit.status, Some(0), "{}", quit.stderr);
    assert_eq!(quit.stdout, "sent: quit to echo-exchange/echo-rk\n");
    assert!(echo.wait_exit().success());
}

/// The AsyncAPI 3.0.0 JSON Schema (`@asyncapi/specs`, schemas/3.0.0.json).
fn asyncapi_validator() -> jsonschema::Validator {
    let text = include_str!("fixtures/asyncapi-3.0.0.json");
    let schema: Value = serde_json::from_str(text).unwrap();
    jsonschema::draft7::new(&schema).expect("the AsyncAPI schema compiles")
}

fn assert_valid(validator: &jsonschema::Validator, document: &Value) {
    let errors: Vec<String> = validator
        .iter_errors(document)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}\n{document:#}");
}

#[test]
fn docs_of_running_components_validate_against_asyncapi_3() {
    let vhost = TestVhost::create();
    let _echo = start(&vhost, "echo_receive");
    let _rpc = start(&vhost, "rpc_echo_receive");
    let validator = asyncapi_validator();

    let live = postage(&vhost, &["docs", "--live", "--json"]);
    assert_eq!(live.status, Some(0), "{}", live.stderr);
    let document: Value = serde_json::from_str(&live.stdout).unwrap();
    assert_valid(&validator, &document);
    let operations = document["operations"].as_object().unwrap();
    let receive = &operations["rpc_echo_receive.echo.echo-exchange.echo-rk"];
    assert_eq!(receive["action"], "receive");
    assert!(receive.get("reply").is_some(), "an RPC handler replies");
    assert!(
        operations["echo_receive.echo.echo-exchange.echo-rk"]
            .get("reply")
            .is_none()
    );
    assert_eq!(
        document["channels"]["echo-exchange.echo-rk"]["address"],
        "echo-rk"
    );

    // The validator does reject what is not AsyncAPI 3.0.0.
    let mut broken = document.clone();
    broken["asyncapi"] = "2.6.0".into();
    assert!(!validator.is_valid(&broken));

    // YAML by default; the same document from saved `ps --json` output.
    let yaml = postage(&vhost, &["docs", "--live"]);
    assert_eq!(yaml.status, Some(0));
    assert!(
        yaml.stdout.starts_with("asyncapi: 3.0.0\n"),
        "{}",
        yaml.stdout
    );
    let saved = std::env::temp_dir().join(postage_tests::unique("ps.json"));
    std::fs::write(&saved, postage(&vhost, &["ps", "--json"]).stdout).unwrap();
    let from = postage(
        &vhost,
        &["docs", "--json", "--from", saved.to_str().unwrap()],
    );
    let _ = std::fs::remove_file(&saved);
    assert_eq!(from.status, Some(0), "{}", from.stderr);
    let from: Value = serde_json::from_str(&from.stdout).unwrap();
    assert_valid(&validator, &from);
    assert_eq!(from["operations"], document["operations"]);
}

#[test]
fn docs_from_code_validate_against_asyncapi_3() {
    use postage::docs::AsyncApi;
    use postage::prelude::*;
    use postage_examples::components::{Calculator, RpcEchoReceiver};
    use postage_examples::{ECHO, EchoProducer};

    let document = AsyncApi::new("Examples", "1.0.0")
        .description("The example components")
        .processor::<RpcEchoReceiver>(
            "rpc_echo_receive",
            &[postage::Binding::new(ECHO, [("echo-queue", "echo-rk")])],
        )
        .processor::<Calculator>(
            "calc_service",
            &[postage::Binding::new(
                postage_examples::components::CALC,
                [(Queue::server_named(), "calc-rk")],
            )],
        )
        .producer::<EchoProducer>("echo_send", &EchoProducer.default_eks())
        .to_value();
    assert_valid(&asyncapi_validator(), &document);
    let add = &document["components"]["messages"]["command.add.rpc"]["payload"]["properties"]["content"]
        ["properties"]["parameters"];
    assert_eq!(add["x-rust-type"], "Operands", "{add}");
    let send = &document["operations"]["echo_send.message_echo.echo-exchange.echo-rk"];
    assert_eq!(send["action"], "send");
}

/// Parameters of a type with a JSON Schema (feature `schemars`).
#[derive(serde::Deserialize, schemars::JsonSchema)]
#[allow(dead_code)]
struct Transfer {
    /// Whose account.
    account: String,
    cents: u64,
    memo: Option<Memo>,
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[allow(dead_code)]
struct Memo {
    text: String,
}

struct Bank;

#[postage::processor]
impl Bank {
    #[rpc_handler("command", "transfer")]
    async fn transfer(&self, postage::Params(transfer): postage::Params<Transfer>) -> u64 {
        transfer.cents
    }
}

#[test]
fn parameters_with_a_json_schema_are_documented_by_it() {
    use postage::docs::AsyncApi;

    let bank = postage::Exchange::topic("bank");
    let document = AsyncApi::new("Bank", "1.0.0")
        .processor::<Bank>(
            "bank",
            &[postage::Binding::new(bank, [("transfers", "transfer.#")])],
        )
        .to_value();
    assert_valid(&asyncapi_validator(), &document);
    let parameters = &document["components"]["messages"]["command.transfer.rpc"]["payload"]["properties"]
        ["content"]["properties"]["parameters"];
    assert_eq!(parameters["type"], "object", "{parameters}");
    assert_eq!(
        parameters["properties"]["account"]["description"],
        "Whose account."
    );
    assert_eq!(
        parameters["required"],
        serde_json::json!(["account", "cents"])
    );
    // Inline: nothing refers outside the payload.
    assert!(!parameters.to_string().contains("$ref"), "{parameters}");
    assert_eq!(
        parameters["properties"]["memo"]["properties"]["text"]["type"], "string",
        "{parameters}"
    );
    // A payload that fits validates against the parameters' schema.
    let schema = jsonschema::draft7::new(parameters).unwrap();
    assert!(schema.is_valid(&serde_json::json!({"account": "a", "cents": 5})));
    assert!(!schema.is_valid(&serde_json::json!({"account": "a"})));
}

#[test]
fn bad_input_gives_one_line_and_a_non_zero_status() {
    let vhost = TestVhost::create();
    let malformed = postage(
        &vhost,
        &["send", "echo-exchange", "echo-rk", "echo", "{oops"],
    );
    assert_eq!(malformed.status, Some(3));
    assert_one_line_error(&malformed, "PARAMS_JSON is not valid JSON");

    let unknown = postage(&vhost, &["ping", "foo"]);
    assert_eq!(unknown.status, Some(1));
    assert_one_line_error(&unknown, "no component answered as foo");

    let missing = postage(&vhost, &["send", "no-such-exchange", "k", "echo"]);
    assert_eq!(missing.status, Some(3));
    assert_one_line_error(&missing, "");
    assert!(missing.stderr.contains("NOT_FOUND"), "{}", missing.stderr);

    let usage = postage(&vhost, &["quit"]);
    assert_eq!(usage.status, Some(3));
    assert_one_line_error(&usage, "the following required arguments were not provided");

    // Port 1 on the loopback: nothing listens there.
    let no_broker = postage(
        &vhost,
        &["--url", "amqp://guest:guest@127.0.0.1:1/%2f", "ps"],
    );
    assert_eq!(no_broker.status, Some(3));
    assert_one_line_error(&no_broker, "RabbitMQ is not reachable");
    assert!(
        !no_broker.stderr.contains("guest:guest"),
        "no password: {}",
        no_broker.stderr
    );
}

#[test]
fn every_help_reads_and_succeeds() {
    let vhost = TestVhost::create();
    let top = postage(&vhost, &["--help"]);
    assert_eq!(top.status, Some(0));
    for command in [
        "send", "call", "tail", "ping", "ps", "quit", "restart", "pause", "resume", "docs",
    ] {
        assert!(
            top.stdout.contains(&format!("  {command} ")),
            "{command} listed: {}",
            top.stdout
        );
        let help = postage(&vhost, &[command, "--help"]);
        assert_eq!(help.status, Some(0), "{command}");
        assert!(
            help.stdout.contains(&format!("Usage: postage {command}")),
            "{}",
            help.stdout
        );
    }
    let version = postage(&vhost, &["--version"]);
    assert_eq!(
        version.stdout,
        format!("postage {}\n", env!("CARGO_PKG_VERSION"))
    );
}

/// Fails while `broken`, with the parking policy; says each run.
struct Fragile {
    broken: std::sync::atomic::AtomicBool,
    runs: tokio::sync::mpsc::UnboundedSender<bool>,
}

#[postage::processor]
impl Fragile {
    #[handler("command", "fragile", on_error = postage::OnError::Park)]
    async fn fragile(&self) -> Result<(), postage::processor::HandlerError> {
        let broken = self.broken.load(std::sync::atomic::Ordering::SeqCst);
        let _ = self.runs.send(broken);
        if broken {
            return Err(postage::processor::HandlerError::new("Broken", "try later"));
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn parked_messages_are_listed_and_replayed() {
    use postage::prelude::*;
    let vhost = TestVhost::create();
    let connection = Connection::connect(Config::from_url(&vhost.url()).unwrap())
        .await
        .expect("the test broker");
    let (tx, mut runs) = tokio::sync::mpsc::unbounded_channel();
    let fragile = std::sync::Arc::new(Fragile {
        broken: std::sync::atomic::AtomicBool::new(true),
        runs: tx,
    });
    let processor = Processor::builder_arc(fragile.clone())
        .bind(
            Exchange::direct(""),
            [(Queue::new("jobs").durable(true), "jobs")],
        )
        .connect(&connection)
        .await
        .unwrap();
    let control = processor.control();
    let running = tokio::spawn(processor.run());
    let sender = Producer::builder()
        .ek(Exchange::direct(""), "jobs")
        .connect(&connection)
        .await
        .unwrap();
    sender
        .command("fragile", serde_json::json!({}))
        .await
        .unwrap();
    let next_run = async |runs: &mut tokio::sync::mpsc::UnboundedReceiver<bool>| {
        tokio::time::timeout(Duration::from_secs(10), runs.recv())
            .await
            .expect("the handler ran")
            .expect("alive")
    };
    assert!(next_run(&mut runs).await, "ran broken");

    // Listed, twice: listing leaves it parked.
    let mut listed = postage(&vhost, &["parked", "list", "jobs"]);
    for _ in 0..50 {
        if listed.stdout.contains("fragile") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        listed = postage(&vhost, &["parked", "list", "jobs"]);
    }
    assert_eq!(listed.status, Some(0), "{}", listed.stderr);
    let line = listed.stdout.trim();
    assert!(
        line.ends_with(r#"command fragile attempts=1 handler=fragile reason="policy" error="Broken: try later""#),
        "{line}"
    );
    assert_eq!(listed.stderr, "1 parked in jobs.parked\n");
    let as_json = postage(&vhost, &["parked", "list", "jobs", "--json"]);
    let record: Value = serde_json::from_str(as_json.stdout.trim()).expect("one JSON object");
    assert_eq!(record["attempts"], 1);
    assert_eq!(record["reason"], "policy");

    // Replayed: handled, and nothing is left parked.
    fragile
        .broken
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let replayed = postage(&vhost, &["parked", "replay", "jobs"]);
    assert_eq!(replayed.status, Some(0), "{}", replayed.stderr);
    assert_eq!(replayed.stdout, "replayed 1 parked messages into jobs\n");
    assert!(!next_run(&mut runs).await, "ran mended");
    let empty = postage(&vhost, &["parked", "list", "jobs"]);
    assert_eq!(
        (empty.stdout.as_str(), empty.stderr.as_str()),
        ("", "0 parked in jobs.parked\n")
    );

    let missing = postage(&vhost, &["parked", "list", "nothing-here"]);
    assert_eq!(missing.status, Some(1));
    assert_one_line_error(&missing, "nothing parked from nothing-here");

    control.quit();
    running.await.unwrap().unwrap();
}

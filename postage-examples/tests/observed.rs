//! `observed_echo` as a real process on RabbitMQ, in a virtual host of
//! its own: what its `/metrics` says matches the calls it made and
//! served, and its standard output holds the spans of each delivery.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use postage::prelude::*;
use postage::telemetry::{
    CONSUMER_HEALTH, DELIVERIES_FAILED, DELIVERIES_HANDLED, DELIVERIES_RECEIVED,
    DELIVERIES_REJECTED, HANDLER_DURATION, MESSAGES_IN_FLIGHT, MESSAGES_PUBLISHED,
    RPC_CALL_DURATION,
};
use postage_tests::{Spawned, TestVhost, unique};

/// How long anything awaited may take to show.
const PATIENCE: Duration = Duration::from_secs(30);

/// The calls the binary makes to itself that succeed, and those that fail.
const OWN_CALLS: u32 = 3;
const OWN_FAILING: u32 = 1;

/// The calls the test makes.
const TEST_CALLS: u32 = 2;

/// The processor's name (its fingerprint's).
const PROCESSOR: &str = "observed_echo";

/// The running binary; its standard output read line by line and kept.
struct Observed {
    process: Spawned,
    seen: Vec<String>,
}

impl Observed {
    fn start(url: &str, exchange: &str, queue: &str, metrics: SocketAddr) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_observed_echo"));
        command
            .args([
                "--calls",
                &OWN_CALLS.to_string(),
                "--failing",
                &OWN_FAILING.to_string(),
            ])
            .env("POSTAGE_URL", url)
            .env("POSTAGE_METRICS_ADDR", metrics.to_string())
            .env("OBSERVED_ECHO_EXCHANGE", exchange)
            .env("OBSERVED_ECHO_QUEUE", queue)
            .env("RUST_LOG", "info,lapin=off")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT");
        Observed {
            process: Spawned::start(command),
            seen: Vec::new(),
        }
    }

    /// Reads lines until `done` holds for all lines read so far.
    fn read_until(&mut self, what: &str, done: impl Fn(&[String]) -> bool) {
        self.process.read_until(&mut self.seen, what, done);
    }

    /// Reads lines until one starts with `prefix`; returns it.
    fn line_starting(&mut self, prefix: &str) -> String {
        self.read_until(prefix, |seen| seen.iter().any(|l| l.starts_with(prefix)));
        self.seen
            .iter()
            .find(|l| l.starts_with(prefix))
            .cloned()
            .unwrap()
    }
}

/// A loopback address no one listens on now.
fn free_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address")
}

/// The body of `GET /metrics`, or why there is none.
fn scrape(addr: SocketAddr) -> Result<String, String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .map_err(|e| format!("send: {e}"))?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| format!("read: {e}"))?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("not an HTTP response: {response:?}"))?;
    if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
        return Err(format!("unexpected response: {head}"));
    }
    Ok(body.to_owned())
}

/// One sample of the text exposition format.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// The samples of an exposition (comments skipped); label values with
/// escapes are not expected here.
fn parse(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("a sample has a value");
        let value: f64 = value.parse().expect("a numeric value");
        let (name, labels) = match series.split_once('{') {
            None => (series, BTreeMap::new()),
            Some((name, rest)) => {
                let rest = rest.strip_suffix('}').expect("labels end with }");
                let labels = rest
                    .split("\",")
                    .filter(|pair| !pair.is_empty())
                    .map(|pair| {
                        let (key, value) = pair.split_once("=\"").expect("key=\"value\"");
                        (key.to_owned(), value.trim_end_matches('"').to_owned())
                    })
                    .collect();
                (name, labels)
            }
        };
        samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    samples
}

/// The metrics of one scrape.
struct Scrape {
    text: String,
    samples: Vec<Sample>,
}

impl Scrape {
    fn take(addr: SocketAddr) -> Result<Self, String> {
        let text = scrape(addr)?;
        let samples = parse(&text);
        Ok(Scrape { text, samples })
    }

    /// The value of the series `name` with exactly these labels.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let wanted: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.samples
            .iter()
            .find(|s| s.name == name && s.labels == wanted)
            .map(|s| s.value)
    }

    /// The sum of every series `name` whose labels include these.
    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).is_some_and(|got| got == v))
            })
            .map(|s| s.value)
            .sum()
    }

    #[track_caller]
    fn assert_value(&self, expected: u32, name: &str, labels: &[(&str, &str)]) {
        assert_eq!(
            self.value(name, labels),
            Some(f64::from(expected)),
            "{name} {labels:?} in:\n{}",
            self.text
        );
    }
}

/// Scrapes until `done` holds; the last scrape.
fn scrape_until(addr: SocketAddr, done: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let last = Scrape::take(addr);
        match &last {
            Ok(scrape) if done(scrape) => return last.unwrap(),
            _ if Instant::now() >= deadline => match last {
                Ok(scrape) => panic!("the metrics never settled:\n{}", scrape.text),
                Err(e) => panic!("cannot scrape {addr}: {e}"),
            },
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// The span a close line of `FmtSpan::CLOSE` is about (the innermost of
/// its ancestry) and that ancestry, or `None` for other lines.
fn closed(line: &str) -> Option<(&str, &str)> {
    let (ancestry, _) = line.split_once(": close time.busy=")?;
    let ancestry = &ancestry[ancestry.find("INFO ")? + "INFO ".len()..];
    let innermost = ancestry
        .rfind("}:")
        .map_or(ancestry, |i| &ancestry[i + 2..]);
    let name = &innermost[..innermost.find('{').unwrap_or(innermost.len())];
    Some((name, ancestry))
}

/// The close lines of spans called `name`.
fn closes<'a>(lines: &'a [String], name: &str) -> Vec<&'a str> {
    lines
        .iter()
        .filter_map(|line| closed(line).filter(|(n, _)| *n == name).map(|(_, a)| a))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_the_calls_and_stdout_holds_their_spans() {
    let vhost = TestVhost::create();
    let exchange = unique("observed");
    let queue = format!("{exchange}-queue");
    let metrics = free_addr();
    let mut observed = Observed::start(&vhost.url(), &exchange, &queue, metrics);

    let ready = observed.line_starting("ready pid=");
    assert_eq!(
        ready,
        format!(
            "ready pid={} metrics=http://{metrics}/metrics",
            observed.process.pid()
        )
    );
    assert_eq!(
        observed.line_starting("calls: "),
        format!("calls: {OWN_CALLS} succeeded, {OWN_FAILING} failed")
    );

    // Calls from outside: served, but not published by the binary.
    let connection = Connection::connect(Config::from_url(&vhost.url()).unwrap())
        .await
        .expect("the test broker");
    let producer = Producer::builder()
        .ek(
            Exchange::new(exchange.clone(), ExchangeKind::Direct),
            "echo-rk",
        )
        .fingerprint(Fingerprint::new("observed_test", "test"))
        .connect(&connection)
        .await
        .expect("producer");
    for n in 1..=TEST_CALLS {
        let text = format!("from the test {n}");
        let reply = producer
            .rpc("echo", text.as_str())
            .timeout(PATIENCE)
            .await
            .expect("a reply");
        assert_eq!(
            reply.outcome().unwrap(),
            Outcome::Success {
                value: text.into(),
                message: String::new()
            }
        );
    }

    let served = OWN_CALLS + OWN_FAILING + TEST_CALLS;
    let processor = [("processor", PROCESSOR)];
    // A reply is sent before its delivery is counted: wait for the counts.
    let scrape = scrape_until(metrics, |s| {
        s.value(DELIVERIES_HANDLED, &processor) == Some(f64::from(served - OWN_FAILING))
            && s.value(DELIVERIES_FAILED, &processor) == Some(f64::from(OWN_FAILING))
            && s.value(MESSAGES_IN_FLIGHT, &processor) == Some(0.0)
    });

    // describe_metrics() reached the exporter.
    assert!(
        scrape
            .text
            .contains(&format!("# TYPE {HANDLER_DURATION} histogram")),
        "{}",
        scrape.text
    );
    assert!(
        scrape.text.contains(&format!(
            "# HELP {DELIVERIES_RECEIVED} Deliveries a processor received"
        )),
        "{}",
        scrape.text
    );

    scrape.assert_value(served, DELIVERIES_RECEIVED, &processor);
    scrape.assert_value(served - OWN_FAILING, DELIVERIES_HANDLED, &processor);
    scrape.assert_value(OWN_FAILING, DELIVERIES_FAILED, &processor);
    assert_eq!(
        scrape.sum(DELIVERIES_REJECTED, &processor),
        0.0,
        "{}",
        scrape.text
    );
    let count = format!("{HANDLER_DURATION}_count");
    scrape.assert_value(
        served - OWN_FAILING,
        &count,
        &[
            ("processor", PROCESSOR),
            ("handler", "echo"),
            ("outcome", "ok"),
        ],
    );
    scrape.assert_value(
        OWN_FAILING,
        &count,
        &[
            ("processor", PROCESSOR),
            ("handler", "echo"),
            ("outcome", "error"),
        ],
    );
    // The binary published its own requests, and a reply to every call.
    scrape.assert_value(
        OWN_CALLS + OWN_FAILING,
        MESSAGES_PUBLISHED,
        &[
            ("exchange", exchange.as_str()),
            ("type", "command"),
            ("name", "echo"),
        ],
    );
    assert_eq!(
        scrape.sum(MESSAGES_PUBLISHED, &[("exchange", ""), ("type", "result")]),
        f64::from(served),
        "{}",
        scrape.text
    );
    let rpc_count = format!("{RPC_CALL_DURATION}_count");
    scrape.assert_value(
        OWN_CALLS,
        &rpc_count,
        &[("name", "echo"), ("outcome", "success")],
    );
    scrape.assert_value(
        OWN_FAILING,
        &rpc_count,
        &[("name", "echo"), ("outcome", "exception")],
    );
    scrape.assert_value(
        1,
        CONSUMER_HEALTH,
        &[("consumer", PROCESSOR), ("state", "consuming")],
    );

    // The spans: a `process` per delivery, a `handler` inside each, the
    // binary's own calls as `caller` > `rpc` > `publish`.
    let served_usize = served as usize;
    observed.read_until("the span close lines", |seen| {
        closes(seen, "process").len() >= served_usize
            && closes(seen, "handler").len() >= served_usize
    });
    let processes = closes(&observed.seen, "process");
    assert_eq!(processes.len(), served_usize, "{processes:#?}");
    assert!(
        processes
            .iter()
            .all(|a| a.contains("postage.processor=\"observed_echo\"")),
        "{processes:#?}"
    );
    let handlers = closes(&observed.seen, "handler");
    assert_eq!(handlers.len(), served_usize, "{handlers:#?}");
    assert!(
        handlers
            .iter()
            .all(|a| a.starts_with("process{") && a.contains(":handler{")),
        "{handlers:#?}"
    );
    let failed: Vec<_> = handlers
        .iter()
        .filter(|a| a.contains("error.type=\"EchoError\""))
        .collect();
    assert_eq!(failed.len(), OWN_FAILING as usize, "{handlers:#?}");
    let rpcs = closes(&observed.seen, "rpc");
    assert_eq!(rpcs.len(), (OWN_CALLS + OWN_FAILING) as usize, "{rpcs:#?}");
    assert!(rpcs.iter().all(|a| a.starts_with("caller{")), "{rpcs:#?}");
    let requests: Vec<_> = closes(&observed.seen, "publish")
        .into_iter()
        .filter(|a| a.starts_with("caller{"))
        .collect();
    assert_eq!(
        requests.len(),
        (OWN_CALLS + OWN_FAILING) as usize,
        "{requests:#?}"
    );

    // `quit` stops it.
    producer
        .command("quit", serde_json::json!({}))
        .await
        .expect("sent");
    observed.line_starting("stopped");
    assert!(observed.process.wait_exit().success());
    connection.close().await.expect("closed");
}

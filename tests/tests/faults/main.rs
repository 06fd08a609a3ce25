//! Faults injected into private RabbitMQ nodes (never the shared broker),
//! each test with its pass criterion in its assertion messages:
//!
//! | module | faults |
//! |---|---|
//! | `restarts` | dropped connections, clean and hard broker restarts, RPC across a disconnect, TLS |
//! | `links` | a half-open connection (`iptables` in a network namespace), a frozen broker (`SIGSTOP`), a throttled and a stalled link, a slow consumer behind a full TCP window (a proxy) |
//! | `alarms` | memory and disk alarms (`connection.blocked`), before and after connecting, both at once |
//! | `channels` | the broker's acknowledgement timeout, a channel error mid-stream, a consumed queue deleted from outside, a stalled consumer channel |
//!
//! Each test prints its figures (`cargo test --test faults -- --nocapture`).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::print_stdout)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use postage::Stop;
use postage::prelude::*;
use postage::processor::ProcessorBuilder;
use postage_tests::{Seen, init_tracing, unique};

mod alarms;
mod channels;
mod links;
mod restarts;

/// The nodes are heavy for a 2-core machine: one fault test at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn base() -> &'static str {
    env!("CARGO_TARGET_TMPDIR")
}

async fn connect(url: &str) -> Connection {
    init_tracing();
    Connection::connect(Config::from_url(url).unwrap())
        .await
        .expect("the private node answers")
}

/// Counts every id it receives (taking `pause` for each); answers `echo`
/// calls after `delay_ms`.
struct Counter {
    seen: Seen,
    handled: AtomicUsize,
    /// Microseconds each `count` takes.
    pause: AtomicU64,
}

impl Counter {
    fn new() -> Arc<Self> {
        Arc::new(Counter {
            seen: Seen::default(),
            handled: AtomicUsize::new(0),
            pause: AtomicU64::new(0),
        })
    }

    /// Each `count` takes `pause` from now on.
    fn slow_down(&self, pause: Duration) {
        let micros = u64::try_from(pause.as_micros()).unwrap_or(u64::MAX);
        self.pause.store(micros, Ordering::Relaxed);
    }
}

#[processor]
impl Counter {
    #[handler("command", "count")]
    async fn count(&self, Params(id): Params<u64>) {
        let pause = self.pause.load(Ordering::Relaxed);
        if pause > 0 {
            tokio::time::sleep(Duration::from_micros(pause)).await;
        }
        self.seen.record(id);
        self.handled.fetch_add(1, Ordering::Relaxed);
    }

    #[rpc_handler("command", "slow_echo")]
    async fn slow_echo(&self, Params((text, delay_ms)): Params<(String, u64)>) -> String {
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        text
    }
}

async fn wait_for(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

struct Fixture {
    exchange: Exchange,
    queue: String,
    counter: Arc<Counter>,
    control: Control,
    consumer: postage::consumer::ConsumerHandle,
    running: tokio::task::JoinHandle<postage::Result<Stop>>,
}

/// A processor counting `count` commands from a durable or transient
/// queue of its own.
async fn processor(connection: &Connection, durable: bool) -> Fixture {
    processor_on(
        connection,
        Queue::new(unique("fault")).durable(durable),
        |b| b,
    )
    .await
}

/// A processor counting `count` commands from `queue`, its builder
/// changed by `configure`.
async fn processor_on(
    connection: &Connection,
    queue: Queue,
    configure: impl FnOnce(ProcessorBuilder<Counter>) -> ProcessorBuilder<Counter>,
) -> Fixture {
    let exchange = Exchange::new(unique("fault"), ExchangeKind::Direct);
    processor_bound(connection, exchange, queue, configure).await
}

/// A processor counting `count` commands from `queue`, bound to
/// `exchange` with the queue's name, its builder changed by `configure`.
async fn processor_bound(
    connection: &Connection,
    exchange: Exchange,
    queue: Queue,
    configure: impl FnOnce(ProcessorBuilder<Counter>) -> ProcessorBuilder<Counter>,
) -> Fixture {
    let name = queue.name().to_owned();
    let counter = Counter::new();
    let builder = Processor::builder_arc(counter.clone())
        .bind(exchange.clone(), [(queue, name.as_str())])
        .prefetch(200);
    let processor = configure(builder).connect(connection).await.unwrap();
    let control = processor.control();
    let consumer = processor.consumer();
    let running = tokio::spawn(processor.run());
    Fixture {
        exchange,
        queue: name,
        counter,
        control,
        consumer,
        running,
    }
}

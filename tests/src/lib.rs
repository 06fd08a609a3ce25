//! Fixtures for the integration suites: a connection to the test broker,
//! unique names, and a raw lapin channel for publishing bodies exactly as
//! a Python peer would.
//!
//! The broker is `POSTAGE_TEST_URL` (default
//! `amqp://guest:guest@127.0.0.1:5672/%2f`). A broker that cannot be reached
//! fails the test with a message saying so; nothing is skipped.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use postage::{Config, Connection, Delivery};

/// The test broker's URL.
pub fn test_url() -> String {
    std::env::var("POSTAGE_TEST_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// Settings for the test broker.
pub fn test_config() -> Config {
    match Config::from_url(&test_url()) {
        Ok(config) => config,
        Err(e) => panic!("POSTAGE_TEST_URL is invalid: {e}"),
    }
}

/// Connects to the test broker, failing the test loudly when it is down.
pub async fn connect() -> Connection {
    init_tracing();
    let config = test_config();
    match Connection::connect(config.clone()).await {
        Ok(connection) => connection,
        Err(e) => panic!(
            "RabbitMQ is not reachable at {config} ({e}). Start it (`rabbitmq-server -detached`) \
             or set POSTAGE_TEST_URL; `bash .ci/run` starts it for you."
        ),
    }
}

/// A raw lapin channel on the test broker.
pub async fn raw_channel() -> lapin::Channel {
    let url = test_url();
    let connection =
        match lapin::Connection::connect(&url, lapin::ConnectionProperties::default()).await {
            Ok(connection) => connection,
            Err(e) => panic!("RabbitMQ is not reachable at {url}: {e}"),
        };
    match connection.create_channel().await {
        Ok(channel) => channel,
        Err(e) => panic!("cannot open a channel: {e}"),
    }
}

/// A name no other test (or test run) uses: `prefix-pid-n-nanos`.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!(
        "test-{prefix}-{}-{}-{nanos:x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Logs to the test output when `RUST_LOG` is set.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// The next delivery of `consumer`, or a test failure after `secs` seconds.
pub async fn next_within(consumer: &mut postage::Consumer, secs: u64) -> Delivery {
    match tokio::time::timeout(Duration::from_secs(secs), consumer.next()).await {
        Ok(Some(delivery)) => delivery,
        Ok(None) => panic!("the consumer ended"),
        Err(_) => panic!("no delivery within {secs} s"),
    }
}

/// Whether anything arrives at `consumer` within `millis` milliseconds.
pub async fn nothing_within(consumer: &mut postage::Consumer, millis: u64) -> bool {
    tokio::time::timeout(Duration::from_millis(millis), consumer.next())
        .await
        .is_err()
}

/// Declares `queue` passively and returns its message count.
pub async fn queue_depth(channel: &lapin::Channel, queue: &str) -> u32 {
    use lapin::options::QueueDeclareOptions;
    match channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            lapin::types::FieldTable::default(),
        )
        .await
    {
        Ok(q) => q.message_count(),
        Err(e) => panic!("queue {queue} cannot be inspected: {e}"),
    }
}

//! Fixtures for the integration suites: a connection to the test broker,
//! unique names, and a raw lapin channel for publishing bodies exactly as
//! a Python peer would.
//!
//! The broker is `POSTAGE_TEST_URL` (default
//! `amqp://guest:guest@127.0.0.1:5672/%2f`). A broker that cannot be reached
//! fails the test with a message saying so; nothing is skipped.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use postage::{Config, Connection, Delivery};

/// The README's code, compiled (and run, where it needs no broker) as
/// doctests: it cannot drift from the code.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

pub mod conformance;
pub mod netns;
pub mod node;
pub mod postgres;
pub mod proxy;

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

/// What a handler reported on `seen` next, or a test failure after 10 s.
pub async fn next_seen<T>(seen: &mut tokio::sync::mpsc::UnboundedReceiver<T>) -> T {
    match tokio::time::timeout(Duration::from_secs(10), seen.recv()).await {
        Ok(Some(value)) => value,
        Ok(None) => panic!("the handlers are gone"),
        Err(_) => panic!("no handler ran within 10 s"),
    }
}

/// Quits a processor running as `task` and checks that it ended with
/// [`Stop::Quit`](postage::Stop::Quit) within 10 s.
pub async fn quit_and_wait(
    control: &postage::Control,
    task: tokio::task::JoinHandle<postage::Result<postage::Stop>>,
) {
    control.quit();
    match tokio::time::timeout(Duration::from_secs(10), task).await {
        Ok(Ok(Ok(postage::Stop::Quit))) => {}
        Ok(Ok(other)) => panic!("the processor ended otherwise: {other:?}"),
        Ok(Err(join)) => panic!("the processor's task failed: {join}"),
        Err(_) => panic!("the processor did not end within 10 s"),
    }
}

/// Runs a processor as a process-test component: installs the signal
/// handlers, prints `ready pid=<pid>`, serves until it ends, prints
/// `stopped` (on standard output, which the tests read).
#[allow(clippy::print_stdout)]
pub async fn serve_component<P: postage::Handlers>(
    processor: postage::Processor<P>,
) -> postage::Result<()> {
    let mut scheduler = postage::Scheduler::new();
    scheduler.add(processor);
    scheduler.listen_for_signals()?;
    println!("ready pid={}", std::process::id());
    scheduler.run().await?;
    println!("stopped");
    Ok(())
}

/// A consumer of a server-named queue bound with key `k` to a fresh
/// auto-delete exchange named after `prefix`, and a producer sending there.
pub async fn private_pair(
    connection: &Connection,
    prefix: &str,
) -> (postage::Consumer, postage::Producer) {
    let exchange =
        postage::Exchange::new(unique(prefix), postage::ExchangeKind::Direct).auto_delete(true);
    let consumer = postage::Consumer::builder()
        .bind(exchange.clone(), [(postage::Queue::server_named(), "k")])
        .connect(connection)
        .await
        .unwrap_or_else(|e| panic!("cannot consume: {}", e.report()));
    let producer = postage::Producer::builder()
        .ek(exchange, "k")
        .connect(connection)
        .await
        .unwrap_or_else(|e| panic!("cannot produce: {}", e.report()));
    (consumer, producer)
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

/// A virtual host of its own for one test, created with `rabbitmqctl` and
/// deleted when dropped, so tests that use fixed queue names (as the
/// examples do) run in parallel without meeting.
#[derive(Debug)]
pub struct TestVhost {
    name: String,
}

fn rabbitmqctl(args: &[&str]) {
    let output = std::process::Command::new("rabbitmqctl")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run rabbitmqctl {args:?}: {e}"));
    assert!(
        output.status.success(),
        "rabbitmqctl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

impl TestVhost {
    /// Creates the virtual host and lets `guest` use it.
    pub fn create() -> Self {
        let name = unique("vhost");
        rabbitmqctl(&["add_vhost", &name]);
        rabbitmqctl(&["set_permissions", "-p", &name, "guest", ".*", ".*", ".*"]);
        TestVhost { name }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The test broker's URL with this virtual host.
    pub fn url(&self) -> String {
        let config = test_config();
        format!(
            "amqp://guest:guest@{}:{}/{}",
            config.host(),
            config.port(),
            self.name
        )
    }
}

impl Drop for TestVhost {
    fn drop(&mut self) {
        let _ = std::process::Command::new("rabbitmqctl")
            .args(["delete_vhost", &self.name])
            .output();
    }
}

/// A child process whose standard output is read line by line.
#[derive(Debug)]
pub struct Spawned {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Spawned {
    /// Starts `command` with its standard output piped.
    pub fn start(mut command: std::process::Command) -> Self {
        let mut child = command
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        let Some(stdout) = child.stdout.take() else {
            panic!("no stdout pipe")
        };
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Spawned { child, lines }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next line starting with `prefix` (others are skipped), or a
    /// test failure after 20 s.
    pub fn expect_line(&self, prefix: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return line,
                Ok(_) => {}
                Err(e) => panic!("no line starting with {prefix:?}: {e}"),
            }
        }
    }

    /// Reads lines into `seen` until `done` holds for all of them; fails
    /// the test, showing them, after 30 s.
    pub fn read_until(&self, seen: &mut Vec<String>, what: &str, done: impl Fn(&[String]) -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !done(seen) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => seen.push(line),
                Err(e) => panic!(
                    "waiting for {what}: {e}; standard output so far:\n{}",
                    seen.join("\n")
                ),
            }
        }
    }

    /// Every line printed until nothing more comes for `quiet`.
    pub fn lines_until_quiet(&self, quiet: Duration) -> Vec<String> {
        let mut lines = Vec::new();
        while let Ok(line) = self.lines.recv_timeout(quiet) {
            lines.push(line);
        }
        lines
    }

    /// The lines printed so far and not read yet.
    pub fn lines_now(&self) -> Vec<String> {
        self.lines.try_iter().collect()
    }

    /// Kills the process outright (SIGKILL), waits for it, and gives the
    /// lines it printed that were not read yet.
    pub fn kill(&mut self) -> Vec<String> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.lines.iter().collect()
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap_or_else(|e| panic!("cannot run kill: {e}"));
        assert!(status.success(), "kill failed");
    }

    /// Waits up to 20 s for the process to exit.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        for _ in 0..200 {
            match self.child.try_wait() {
                Ok(Some(status)) => return status,
                Ok(None) => std::thread::sleep(Duration::from_millis(100)),
                Err(e) => panic!("cannot wait for the child: {e}"),
            }
        }
        panic!("the process did not exit within 20 s");
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Captures what `tracing` logs on this thread while it is alive (use it in
/// a current-thread runtime, where every task polls on the test's thread).
#[derive(Debug)]
pub struct LogCapture {
    buffer: std::sync::Arc<Mutex<Vec<u8>>>,
    _guard: tracing::subscriber::DefaultGuard,
}

#[derive(Clone)]
struct CaptureWriter(std::sync::Arc<Mutex<Vec<u8>>>);

impl std::io::Write for CaptureWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogCapture {
    /// Starts capturing everything at `debug` level and above.
    pub fn start() -> Self {
        let buffer = std::sync::Arc::new(Mutex::new(Vec::new()));
        let writer = CaptureWriter(buffer.clone());
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        LogCapture {
            buffer,
            _guard: tracing::subscriber::set_default(subscriber),
        }
    }

    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(
            &self
                .buffer
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
        .into_owned()
    }
}

/// The ids a test's handler received, each with how many times: how many
/// distinct, how many more than once.
#[derive(Debug, Default)]
pub struct Seen(Mutex<HashMap<u64, u32>>);

impl Seen {
    fn ids(&self) -> std::sync::MutexGuard<'_, HashMap<u64, u32>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts one receipt of `id`.
    pub fn record(&self, id: u64) {
        *self.ids().entry(id).or_insert(0) += 1;
    }

    /// How many distinct ids arrived.
    pub fn unique(&self) -> usize {
        self.ids().len()
    }

    /// How many receipts were of an id already received.
    pub fn duplicates(&self) -> u64 {
        self.ids().values().map(|&n| u64::from(n - 1)).sum()
    }

    /// Did `id` arrive?
    pub fn has(&self, id: u64) -> bool {
        self.ids().contains_key(&id)
    }
}

//! The outbox and the inbox on a real PostgreSQL, with processes killed
//! by `kill -9` where exactly-once is hardest: each test counts messages
//! committed against effects that happened, and wants them equal, none
//! lost, none doubled.
//!
//! The killed processes are `test_outbox_node` (see its docs). The
//! shared broker and database are used through a queue and a schema of
//! each test's own; the tests that stop PostgreSQL or RabbitMQ start a
//! private server for it.

#![allow(clippy::print_stdout)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use postage::Producer;
use postage::middleware::{Incoming, Next, Outgoing, from_fn};
use postage::prelude::*;
use postage_postgres::{Database, Inbox, MissingId, OutboxExt, Relay, Tx};
use postage_tests::conformance::TestBroker;
use postage_tests::node::PrivateNode;
use postage_tests::postgres::{PrivatePostgres, TestSchema};
use postage_tests::{test_url, unique};

/// A `test_outbox_node` process; killed with SIGKILL when dropped.
struct Node {
    child: std::process::Child,
    lines: Receiver<String>,
    /// Every line it printed so far.
    seen: Vec<String>,
}

impl Node {
    fn spawn(role: &str, env: &[(&str, String)]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_test_outbox_node"));
        command
            .arg(role)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start test_outbox_node: {e}"));
        let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut node = Node {
            child,
            lines,
            seen: Vec::new(),
        };
        node.wait_for("ready", 60);
        node
    }

    /// The first line (from now) that starts with `prefix`.
    fn wait_for(&mut self, prefix: &str, secs: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.starts_with(prefix) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!("no line {prefix:?} within {secs} s"),
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("the process ended before printing {prefix:?}")
                }
            }
        }
    }

    /// Every line printed so far.
    fn lines(&mut self) -> &[String] {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        &self.seen
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One test's queue, exchange, schema and `effects` table.
struct Setup {
    schema: TestSchema,
    exchange: String,
    queue: String,
    /// Where the consumers' inboxes and effects live (the schema's,
    /// unless the test moves the outbox elsewhere).
    effects_url: String,
    broker_url: String,
}

impl Setup {
    async fn new(prefix: &str) -> Self {
        let schema = TestSchema::create(prefix).await;
        schema
            .client()
            .await
            .batch_execute("CREATE TABLE effects (n bigint NOT NULL)")
            .await
            .unwrap_or_else(|e| panic!("cannot create effects: {e}"));
        Setup {
            effects_url: schema.url.clone(),
            schema,
            exchange: unique(&format!("{prefix}-x")),
            queue: unique(&format!("{prefix}-q")),
            broker_url: test_url(),
        }
    }

    fn env(&self, outbox_url: &str) -> Vec<(&'static str, String)> {
        vec![
            ("POSTAGE_TEST_URL", self.broker_url.clone()),
            ("POSTAGE_DATABASE_URL", outbox_url.to_owned()),
            ("OUTBOX_EXCHANGE", self.exchange.clone()),
            ("OUTBOX_QUEUE", self.queue.clone()),
        ]
    }

    fn relay(&self, hang_after: Option<u64>) -> Node {
        let mut env = self.env(&self.schema.url);
        env.extend(hang_after.map(|n| ("HANG_AFTER", n.to_string())));
        Node::spawn("relay", &env)
    }

    fn consumer(&self, hang_after: Option<u64>) -> Node {
        let mut env = self.env(&self.effects_url);
        env.extend(hang_after.map(|n| ("HANG_AFTER", n.to_string())));
        Node::spawn("consumer", &env)
    }

    /// A producer to the test's exchange (not connected to anything it
    /// needs while writing into the outbox).
    async fn producer(&self, connection: &Connection) -> Producer {
        Producer::builder()
            .ek(
                Exchange::new(self.exchange.clone(), ExchangeKind::Direct),
                "effect",
            )
            .persistent(true)
            .confirms(true)
            .connect(connection)
            .await
            .unwrap_or_else(|e| panic!("no producer: {e}"))
    }

    /// Commits messages `from..to` into the outbox of `database`, ten
    /// per transaction.
    async fn commit(&self, database: &Database, producer: &Producer, from: i64, to: i64) {
        let mut client = database
            .pool()
            .get()
            .await
            .unwrap_or_else(|e| panic!("no connection: {e}"));
        let mut n = from;
        while n < to {
            let tx = client
                .transaction()
                .await
                .unwrap_or_else(|e| panic!("no transaction: {e}"));
            for n in n..(n + 10).min(to) {
                producer
                    .command("effect", serde_json::json!({ "n": n }))
                    .in_transaction(&*tx)
                    .await
                    .unwrap_or_else(|e| panic!("outbox write failed: {e}"));
            }
            tx.commit()
                .await
                .unwrap_or_else(|e| panic!("commit failed: {e}"));
            n += 10;
        }
    }

    /// (effects, distinct effects) in the effects database.
    async fn effects(&self) -> (i64, i64) {
        let client = postage_tests::postgres::connect(&self.effects_url).await;
        let row = client
            .query_one("SELECT count(*), count(DISTINCT n) FROM effects", &[])
            .await
            .unwrap_or_else(|e| panic!("cannot count effects: {e}"));
        (row.get(0), row.get(1))
    }

    /// Waits until `expected` distinct effects happened.
    async fn wait_effects(&self, expected: i64, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let (_, distinct) = self.effects().await;
            if distinct >= expected {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{distinct} of {expected} effects after {secs} s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Messages ready in the queue (on the broker at `broker_url`).
    async fn ready(&self) -> u32 {
        let connection =
            lapin::Connection::connect(&self.broker_url, lapin::ConnectionProperties::default())
                .await
                .unwrap_or_else(|e| panic!("no broker: {e}"));
        let channel = connection
            .create_channel()
            .await
            .unwrap_or_else(|e| panic!("no channel: {e}"));
        let queue = channel
            .queue_declare(
                self.queue.as_str().into(),
                lapin::options::QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                Default::default(),
            )
            .await
            .unwrap_or_else(|e| panic!("no queue {}: {e}", self.queue));
        let _ = connection.close(200, "".into()).await;
        queue.message_count()
    }

    /// Ends `consumer` once every delivery is settled: killed, nothing
    /// may be left in the queue (a killed consumer's unacknowledged
    /// deliveries go back to it); if something is, a new consumer takes
    /// it. Returns every consumer's lines.
    async fn drain(&self, mut consumer: Node) -> Vec<String> {
        let mut lines = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        for _ in 0..10 {
            // Let deliveries in hand finish: the queue is empty and the
            // consumer printed nothing for a while.
            let mut quiet = 0;
            while quiet < 5 {
                assert!(Instant::now() < deadline, "the consumer never went quiet");
                let before = consumer.lines().len();
                tokio::time::sleep(Duration::from_millis(100)).await;
                if consumer.lines().len() == before && self.ready().await == 0 {
                    quiet += 1;
                } else {
                    quiet = 0;
                }
            }
            consumer.kill();
            lines.extend(consumer.lines().iter().cloned());
            if self.ready().await == 0 {
                return lines;
            }
            consumer = self.consumer(None);
        }
        panic!("the queue would not drain");
    }

    /// Asserts `committed` messages had their effect exactly once, and
    /// reports it.
    async fn assert_exactly_once(&self, committed: i64, label: &str) {
        let (effects, distinct) = self.effects().await;
        println!(
            "{label}: committed {committed}, effects {effects}, distinct {distinct}, lost {}, doubled {}",
            committed - distinct,
            effects - distinct
        );
        assert_eq!(distinct, committed, "{label}: lost effects");
        assert_eq!(effects, distinct, "{label}: doubled effects");
    }
}

/// How often each message id appears in `seen <id>` lines.
fn seen_counts(lines: &[String]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for line in lines {
        if let Some(id) = line.strip_prefix("seen ") {
            *counts.entry(id.to_owned()).or_default() += 1;
        }
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_killed_between_the_confirm_and_marking_sent_sends_again_and_the_inbox_handles_once()
 {
    const COUNT: i64 = 300;
    let setup = Setup::new("outbox-relay-kill").await;
    let consumer = setup.consumer(None);
    let connection = postage_tests::connect().await;
    let producer = setup.producer(&connection).await;
    setup
        .commit(&setup.schema.database, &producer, 0, COUNT)
        .await;

    let mut relay = setup.relay(Some(100));
    let hung = relay.wait_for("hung ", 60);
    let hung_id = hung.trim_start_matches("hung ").to_owned();
    relay.kill();
    // Confirmed by the broker, never recorded: still in the outbox.
    let client = setup.schema.client().await;
    let kept: i64 = client
        .query_one(
            "SELECT count(*) FROM postage_outbox WHERE message_id = $1",
            &[&hung_id],
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .get(0);
    assert_eq!(kept, 1, "the confirmed message's row was recorded sent");

    let _relay = setup.relay(None);
    setup.wait_effects(COUNT, 60).await;
    let lines = setup.drain(consumer).await;
    let seen = seen_counts(&lines);
    assert!(
        seen.get(&hung_id).copied().unwrap_or(0) >= 2,
        "the message confirmed before the kill was not delivered twice"
    );
    let resent = seen.values().filter(|&&n| n > 1).count();
    println!("{resent} messages delivered twice after the relay's kill");
    setup.assert_exactly_once(COUNT, "relay killed").await;
    assert_eq!(
        setup
            .schema
            .count("SELECT count(*) FROM postage_outbox")
            .await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_killed_after_its_commit_and_before_its_ack_has_the_redelivery_acknowledged_without_a_second_effect()
 {
    const COUNT: i64 = 200;
    let setup = Setup::new("inbox-consumer-kill").await;
    let mut consumer = setup.consumer(Some(50));
    let _relay = setup.relay(None);
    let connection = postage_tests::connect().await;
    let producer = setup.producer(&connection).await;
    setup
        .commit(&setup.schema.database, &producer, 0, COUNT)
        .await;

    let hung = consumer.wait_for("hung ", 60);
    let hung_id = hung.trim_start_matches("hung ").to_owned();
    consumer.kill();
    let committed: i64 = setup
        .schema
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM postage_inbox WHERE message_id = $1",
            &[&hung_id],
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .get(0);
    assert_eq!(
        committed, 1,
        "the hung message's transaction did not commit"
    );

    let consumer = setup.consumer(None);
    setup.wait_effects(COUNT, 60).await;
    let lines = setup.drain(consumer).await;
    assert!(
        seen_counts(&lines).contains_key(&hung_id),
        "the message committed before the kill was not delivered again"
    );
    setup.assert_exactly_once(COUNT, "consumer killed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_killed_between_writing_and_committing_sends_nothing() {
    let setup = Setup::new("outbox-app-kill").await;
    let mut writer = Node::spawn("writer", &{
        let mut env = setup.env(&setup.schema.url);
        env.push(("COUNT", "50".to_owned()));
        env
    });
    writer.wait_for("written", 60);
    writer.kill();
    assert_eq!(
        setup
            .schema
            .count("SELECT count(*) FROM postage_outbox")
            .await,
        0,
        "uncommitted rows are visible"
    );

    let consumer = setup.consumer(None);
    let _relay = setup.relay(None);
    // A message committed after the kill: whatever the killed writer had
    // committed would have a smaller id, and be published before it.
    let connection = postage_tests::connect().await;
    let producer = setup.producer(&connection).await;
    setup
        .commit(&setup.schema.database, &producer, 1000, 1001)
        .await;
    setup.wait_effects(1, 60).await;
    setup.drain(consumer).await;
    let client = setup.schema.client().await;
    let rows = client
        .query("SELECT n FROM effects", &[])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let effects: Vec<i64> = rows.iter().map(|row| row.get(0)).collect();
    assert_eq!(
        effects,
        vec![1000],
        "only the committed message has an effect"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_waits_while_postgresql_is_stopped_and_resumes() {
    const FIRST: i64 = 3000;
    const SECOND: i64 = 200;
    let setup = Setup::new("outbox-pg-stop").await;
    // The outbox on a server of the test's own, which it stops; the
    // consumer's inbox and effects stay on the shared one.
    let server = PrivatePostgres::start(env!("CARGO_TARGET_TMPDIR"));
    let outbox = TestSchema::create_on(&server.url(), "outbox-pg-stop").await;
    let consumer = setup.consumer(None);
    let connection = postage_tests::connect().await;
    let producer = setup.producer(&connection).await;
    setup.commit(&outbox.database, &producer, 0, FIRST).await;

    let relay = Relay::builder(outbox.database.clone(), producer.clone())
        .batch(100)
        .poll_interval(Duration::from_millis(200))
        .spawn()
        .await
        .unwrap_or_else(|e| panic!("no relay: {e}"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while relay.published() == 0 {
        assert!(Instant::now() < deadline, "the relay published nothing");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.stop();
    let at_stop = relay.published();
    tokio::time::sleep(Duration::from_secs(2)).await;
    server.boot();
    println!("PostgreSQL stopped after {at_stop} of {FIRST} messages were relayed");
    setup
        .commit(&outbox.database, &producer, FIRST, FIRST + SECOND)
        .await;
    setup.wait_effects(FIRST + SECOND, 120).await;
    setup.drain(consumer).await;
    setup
        .assert_exactly_once(FIRST + SECOND, "PostgreSQL stopped")
        .await;
    assert_eq!(outbox.count("SELECT count(*) FROM postage_outbox").await, 0);
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_fills_while_the_broker_is_stopped_and_drains_when_it_is_back() {
    const FIRST: i64 = 50;
    const WHILE_DOWN: i64 = 200;
    let mut setup = Setup::new("outbox-broker-stop").await;
    let node = PrivateNode::start(env!("CARGO_TARGET_TMPDIR"), None);
    setup.broker_url = node.url();
    let consumer = setup.consumer(None);
    let connection = Connection::connect(
        Config::from_url(&node.url()).unwrap_or_else(|e| panic!("bad url: {e}")),
    )
    .await
    .unwrap_or_else(|e| panic!("no connection: {e}"));
    let producer = setup.producer(&connection).await;
    let relay = Relay::builder(setup.schema.database.clone(), producer.clone())
        .spawn()
        .await
        .unwrap_or_else(|e| panic!("no relay: {e}"));
    setup
        .commit(&setup.schema.database, &producer, 0, FIRST)
        .await;
    setup.wait_effects(FIRST, 60).await;

    node.stop();
    setup
        .commit(&setup.schema.database, &producer, FIRST, FIRST + WHILE_DOWN)
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let waiting = setup
        .schema
        .count("SELECT count(*) FROM postage_outbox")
        .await;
    println!("{waiting} messages waiting in the outbox while the broker is stopped");
    assert_eq!(
        waiting, WHILE_DOWN,
        "the outbox did not keep what it could not send"
    );

    node.boot();
    setup.wait_effects(FIRST + WHILE_DOWN, 120).await;
    setup.drain(consumer).await;
    setup
        .assert_exactly_once(FIRST + WHILE_DOWN, "broker stopped")
        .await;
    assert_eq!(
        setup
            .schema
            .count("SELECT count(*) FROM postage_outbox")
            .await,
        0
    );
    relay.stop().await;
}

/// Records (aggregate, seq) in the order handled.
struct Recorder {
    handled: Arc<Mutex<Vec<(String, i64)>>>,
    /// Fails each of these sequence numbers once (the first delivery).
    fail_once: Mutex<Vec<i64>>,
}

#[derive(serde::Deserialize)]
struct Step {
    aggregate: String,
    seq: i64,
}

#[processor]
impl Recorder {
    #[handler("command", "step")]
    async fn step(&self, Params(step): Params<Step>) -> Result<(), HandlerError> {
        let database = |e: postage_postgres::Error| HandlerError::new("Database", e.to_string());
        Tx::current()
            .map_err(database)?
            .execute(
                "INSERT INTO steps (aggregate, seq) VALUES ($1, $2)",
                &[&step.aggregate, &step.seq],
            )
            .await
            .map_err(|e| database(e.into()))?;
        let fail = {
            let mut fail_once = self.fail_once.lock().unwrap_or_else(|e| e.into_inner());
            let at = fail_once.iter().position(|&seq| seq == step.seq);
            at.map(|at| fail_once.remove(at)).is_some()
        };
        if fail {
            return Err(HandlerError::new("Planned", "fails once, after its insert"));
        }
        self.handled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((step.aggregate, step.seq));
        Ok(())
    }
}

/// Four relays over one outbox, 16 aggregates of 40 messages written by
/// interleaved transactions: each aggregate's messages arrive in order,
/// each once; a message sent twice (as a relay does after a crash) takes
/// effect once; a handler's failure rolls its record and its effects back,
/// and its retry takes effect once.
async fn four_relays_keep_each_aggregates_order_and_the_inbox_each_effect_once(broker: TestBroker) {
    const AGGREGATES: usize = 16;
    const STEPS: i64 = 40;
    let schema = TestSchema::create("outbox-order").await;
    schema
        .client()
        .await
        .batch_execute("CREATE TABLE steps (aggregate text NOT NULL, seq bigint NOT NULL)")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let connection = broker.connect().await;
    let exchange = Exchange::new(unique("outbox-order-x"), ExchangeKind::Direct);
    let queue = unique("outbox-order-q");
    let handled = Arc::new(Mutex::new(Vec::new()));
    let settled = Arc::new(AtomicUsize::new(0));
    let counter = settled.clone();
    let processor = Processor::builder(Recorder {
        handled: handled.clone(),
        fail_once: Mutex::new(vec![-1]),
    })
    .bind(exchange.clone(), [(queue.as_str(), "step")])
    .concurrency(1)
    .on_error(OnError::retry_after([Duration::from_millis(10)]))
    .layer(from_fn(move |incoming: Incoming, next: Next<Incoming>| {
        let counter = counter.clone();
        async move {
            let outcome = next.run(incoming).await;
            counter.fetch_add(1, Ordering::SeqCst);
            outcome
        }
    }))
    .layer(Inbox::new(&schema.database))
    .connect(&connection)
    .await
    .unwrap_or_else(|e| panic!("no processor: {e}"));
    let running = tokio::spawn(processor.run());

    let producer = Producer::builder()
        .ek(exchange, "step")
        .confirms(true)
        .connect(&connection)
        .await
        .unwrap_or_else(|e| panic!("no producer: {e}"));
    // Writers on four connections, each transaction writing one step of
    // four aggregates.
    let writers = (0..4).map(|w| {
        let database = schema.database.clone();
        let producer = producer.clone();
        async move {
            let mut client = database
                .pool()
                .get()
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            for seq in 0..STEPS {
                let tx = client.transaction().await.unwrap_or_else(|e| panic!("{e}"));
                for a in (w..AGGREGATES).step_by(4) {
                    let aggregate = format!("a{a}");
                    producer
                        .command(
                            "step",
                            serde_json::json!({ "aggregate": aggregate, "seq": seq }),
                        )
                        .in_transaction(&*tx)
                        .aggregate(aggregate)
                        .await
                        .unwrap_or_else(|e| panic!("{e}"));
                }
                tx.commit().await.unwrap_or_else(|e| panic!("{e}"));
            }
        }
    });
    futures_util::future::join_all(writers).await;
    // Started on the backlog, so that they compete for it.
    let mut relays = Vec::new();
    for _ in 0..4 {
        relays.push(
            Relay::builder(schema.database.clone(), producer.clone())
                .batch(16)
                .spawn()
                .await
                .unwrap_or_else(|e| panic!("no relay: {e}")),
        );
    }

    let total = AGGREGATES * STEPS as usize;
    let deadline = Instant::now() + Duration::from_secs(60);
    while handled.lock().unwrap_or_else(|e| e.into_inner()).len() < total {
        assert!(Instant::now() < deadline, "not every step was handled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let published: u64 = relays.iter().map(Relay::published).sum();
    assert_eq!(
        published, total as u64,
        "the relays published a message twice or not at all"
    );
    for relay in relays {
        relay.stop().await;
    }

    let steps = handled.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut next: HashMap<String, i64> = HashMap::new();
    for (aggregate, seq) in &steps {
        let expected = next.entry(aggregate.clone()).or_insert(0);
        assert_eq!(seq, expected, "{aggregate} out of order: {steps:?}");
        *expected += 1;
    }
    assert_eq!(next.len(), AGGREGATES);

    // A message sent a second time, as a relay that died before
    // recording it would: acknowledged, no second effect.
    let parts = producer
        .command(
            "step",
            serde_json::json!({ "aggregate": "again", "seq": 0 }),
        )
        .into_outgoing()
        .unwrap_or_else(|e| panic!("{e}"))
        .into_parts();
    let before = settled.load(Ordering::SeqCst);
    for _ in 0..2 {
        producer
            .send_outgoing(Outgoing::from_parts(parts.clone()))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    settled_at_least(
        &settled,
        before + 2,
        deadline,
        "the message sent twice was not settled twice",
    )
    .await;
    let again = schema
        .count("SELECT count(*) FROM steps WHERE aggregate = 'again'")
        .await;
    assert_eq!(again, 1, "a message sent twice took effect {again} times");

    // A handler that fails after its insert: the insert and the record
    // roll back, and the retry takes effect once.
    let before = settled.load(Ordering::SeqCst);
    producer
        .command(
            "step",
            serde_json::json!({ "aggregate": "fails", "seq": -1 }),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    settled_at_least(
        &settled,
        before + 2,
        deadline,
        "the failing message was not retried",
    )
    .await;
    let fails = schema
        .count("SELECT count(*) FROM steps WHERE aggregate = 'fails'")
        .await;
    assert_eq!(fails, 1, "a failed attempt's effect was kept");
    let rows = schema
        .count("SELECT count(*) FROM steps WHERE aggregate LIKE 'a%' AND aggregate <> 'again'")
        .await;
    assert_eq!(rows, total as i64, "an effect was doubled or lost");
    running.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_relays_keep_order_on_rabbitmq() {
    four_relays_keep_each_aggregates_order_and_the_inbox_each_effect_once(TestBroker::rabbitmq())
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_relays_keep_order_in_memory() {
    four_relays_keep_each_aggregates_order_and_the_inbox_each_effect_once(TestBroker::memory())
        .await;
}

/// A processor with an inbox for a queue, counting settled messages.
async fn recorder_with_inbox(
    connection: &Connection,
    inbox: Inbox,
) -> (
    Exchange,
    Arc<AtomicUsize>,
    tokio::task::JoinHandle<postage::Result<postage::processor::Stop>>,
) {
    let exchange = Exchange::new(unique("inbox-id-x"), ExchangeKind::Direct);
    let settled = Arc::new(AtomicUsize::new(0));
    let counter = settled.clone();
    let processor = Processor::builder(Recorder {
        handled: Arc::default(),
        fail_once: Mutex::new(Vec::new()),
    })
    .bind(
        exchange.clone(),
        [(Queue::new(unique("inbox-id-q")).auto_delete(true), "step")],
    )
    .on_error(OnError::Acknowledge)
    .layer(from_fn(move |incoming: Incoming, next: Next<Incoming>| {
        let counter = counter.clone();
        async move {
            let outcome = next.run(incoming).await;
            counter.fetch_add(1, Ordering::SeqCst);
            outcome
        }
    }))
    .layer(inbox.clone())
    .connect(connection)
    .await
    .unwrap_or_else(|e| panic!("no processor: {e}"));
    (exchange, settled, tokio::spawn(processor.run()))
}

/// Messages from a sender that sets no `message_id` (Python Postage):
/// handled without a record by default, each delivery again; refused
/// with `MissingId::Refuse`, their handler never running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_without_an_id_is_handled_without_a_record_or_refused() {
    let schema = TestSchema::create("inbox-no-id").await;
    schema
        .client()
        .await
        .batch_execute("CREATE TABLE steps (aggregate text NOT NULL, seq bigint NOT NULL)")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let connection = postage_tests::connect().await;
    let channel = postage_tests::raw_channel().await;
    let publish = |exchange: Exchange, aggregate: &'static str| {
        let channel = channel.clone();
        async move {
            let body = serde_json::json!({
                "type": "command", "name": "step", "category": "message",
                "content": { "parameters": { "aggregate": aggregate, "seq": 1 } }
            })
            .to_string();
            channel
                .basic_publish(
                    exchange.name().into(),
                    "step".into(),
                    lapin::options::BasicPublishOptions::default(),
                    body.as_bytes(),
                    lapin::BasicProperties::default().with_content_type("application/json".into()),
                )
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
    };
    let deadline = Instant::now() + Duration::from_secs(30);

    let (exchange, settled, running) =
        recorder_with_inbox(&connection, Inbox::new(&schema.database)).await;
    publish(exchange.clone(), "python").await;
    publish(exchange, "python").await;
    settled_at_least(
        &settled,
        2,
        deadline,
        "the messages without id were not handled",
    )
    .await;
    running.abort();
    assert_eq!(
        schema
            .count("SELECT count(*) FROM steps WHERE aggregate = 'python'")
            .await,
        2,
        "each delivery without an id is handled"
    );
    assert_eq!(schema.count("SELECT count(*) FROM postage_inbox").await, 0);

    let refusing = Inbox::new(&schema.database).missing_id(MissingId::Refuse);
    let (exchange, settled, running) = recorder_with_inbox(&connection, refusing).await;
    publish(exchange, "refused").await;
    settled_at_least(
        &settled,
        1,
        deadline,
        "the message without id was not settled",
    )
    .await;
    running.abort();
    assert_eq!(
        schema
            .count("SELECT count(*) FROM steps WHERE aggregate = 'refused'")
            .await,
        0,
        "a refused message's handler ran"
    );
}

/// `Retention::Keep`: sent rows are marked, not deleted, until they are
/// older than the age given; the inbox deletes records older than its
/// retention.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_rows_are_marked_sent_and_old_ones_deleted() {
    let schema = TestSchema::create("outbox-keep").await;
    let client = schema.client().await;
    client
        .batch_execute(
            "CREATE TABLE steps (aggregate text NOT NULL, seq bigint NOT NULL);
             INSERT INTO postage_outbox (message_id, targets, kind, name, category,
                 content_type, persistent, mandatory, headers, body, sent_at)
             VALUES ('old', '[]', 'command', 'step', 'message', 'application/json',
                 false, false, '{}', '', now() - interval '2 days');
             INSERT INTO postage_inbox (consumer, message_id, received_at)
             VALUES ('any', 'old', now() - interval '8 days'),
                    ('any', 'recent', now() - interval '1 day');",
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let connection = postage_tests::connect().await;
    let (exchange, settled, running) =
        recorder_with_inbox(&connection, Inbox::new(&schema.database)).await;
    let producer = Producer::builder()
        .ek(exchange, "step")
        .connect(&connection)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let relay = Relay::builder(schema.database.clone(), producer.clone())
        .retention(postage_postgres::Retention::Keep(Duration::from_secs(
            24 * 3600,
        )))
        .spawn()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut tx_client = schema.client().await;
    let tx = tx_client
        .transaction()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for seq in 0..5 {
        producer
            .command(
                "step",
                serde_json::json!({ "aggregate": "kept", "seq": seq }),
            )
            .in_transaction(&tx)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    tx.commit().await.unwrap_or_else(|e| panic!("{e}"));
    let deadline = Instant::now() + Duration::from_secs(30);
    settled_at_least(&settled, 5, deadline, "the kept messages were not handled").await;
    relay.stop().await;
    running.abort();
    let sent = schema
        .count("SELECT count(*) FROM postage_outbox WHERE sent_at IS NOT NULL")
        .await;
    assert_eq!(sent, 5, "the sent rows were not kept and marked");
    let old = schema
        .count("SELECT count(*) FROM postage_outbox WHERE message_id = 'old'")
        .await;
    assert_eq!(old, 0, "a row sent two days ago was kept for one");
    let records = |id: &'static str| {
        let schema = &schema;
        async move {
            schema
                .count(&format!(
                    "SELECT count(*) FROM postage_inbox WHERE message_id = '{id}'"
                ))
                .await
        }
    };
    // The inbox deletes in a task of its own, started with its first
    // message.
    while records("old").await > 0 {
        assert!(
            Instant::now() < deadline,
            "a record older than 7 days was kept"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        records("recent").await,
        1,
        "a record younger than 7 days was deleted"
    );
}

/// Waits until `settled` reaches `count`, or fails saying `what`.
async fn settled_at_least(settled: &AtomicUsize, count: usize, deadline: Instant, what: &str) {
    while settled.load(Ordering::SeqCst) < count {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The relay counts what it published and the inbox what it recognised
/// (a current-thread runtime: the recorder is the test thread's).
#[tokio::test]
async fn the_relay_and_the_inbox_count_what_they_do() {
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _recorder = metrics::set_default_local_recorder(&recorder);
    let schema = TestSchema::create("outbox-metrics").await;
    schema
        .client()
        .await
        .batch_execute("CREATE TABLE steps (aggregate text NOT NULL, seq bigint NOT NULL)")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let connection = TestBroker::memory().connect().await;
    let (exchange, settled, running) =
        recorder_with_inbox(&connection, Inbox::new(&schema.database)).await;
    let producer = Producer::builder()
        .ek(exchange, "step")
        .connect(&connection)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let relay = Relay::builder(schema.database.clone(), producer.clone())
        .spawn()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut client = schema.client().await;
    let tx = client.transaction().await.unwrap_or_else(|e| panic!("{e}"));
    for seq in 0..3 {
        producer
            .command(
                "step",
                serde_json::json!({ "aggregate": "counted", "seq": seq }),
            )
            .in_transaction(&tx)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    tx.commit().await.unwrap_or_else(|e| panic!("{e}"));
    let deadline = Instant::now() + Duration::from_secs(30);
    settled_at_least(
        &settled,
        3,
        deadline,
        "the relayed messages were not handled",
    )
    .await;
    let parts = producer
        .command(
            "step",
            serde_json::json!({ "aggregate": "twice", "seq": 0 }),
        )
        .into_outgoing()
        .unwrap_or_else(|e| panic!("{e}"))
        .into_parts();
    for _ in 0..2 {
        producer
            .send_outgoing(Outgoing::from_parts(parts.clone()))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    settled_at_least(
        &settled,
        5,
        deadline,
        "the message sent twice was not settled twice",
    )
    .await;
    relay.stop().await;
    running.abort();

    let mut counts: HashMap<String, u64> = HashMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        if let metrics_util::debugging::DebugValue::Counter(n) = value {
            *counts.entry(key.key().name().to_owned()).or_default() += n;
        }
    }
    let count = |name: &str| counts.get(name).copied().unwrap_or(0);
    assert_eq!(count(postage_postgres::metrics::OUTBOX_PUBLISHED), 3);
    assert_eq!(count(postage_postgres::metrics::INBOX_DUPLICATES), 1);
    assert_eq!(count(postage_postgres::metrics::OUTBOX_PUBLISH_FAILURES), 0);
}

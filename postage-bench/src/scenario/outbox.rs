//! `outbox`: the PostgreSQL outbox and inbox (`postage-postgres`) against
//! a direct confirmed publish, on RabbitMQ and the database at
//! `POSTAGE_DATABASE_URL` (default `host=127.0.0.1 port=5432
//! user=postgres dbname=test`), in a schema of the run's own.
//!
//! - **Relay throughput**: `--count` messages (default 20,000) committed
//!   into the outbox beforehand (100 per transaction), then 1 and 4
//!   relays (`--relays`) started at once; msg/s from their start until a
//!   consumer received the last. Direct: the same messages published with
//!   confirms, `--window` in flight; msg/s from the first send to the last
//!   received.
//! - **Latency at a steady rate** (`--rate`, default 1,000 msg/s, for 5 s):
//!   each message one transaction, committed by one of 8 writer tasks, as
//!   an application sends; from the start of its transaction (direct: of
//!   its send) to its arrival at the consumer; p50 and p99.
//! - **Inbox cost**: `--count` messages consumed by a processor whose
//!   handler does nothing, without and with the [`Inbox`] layer, at
//!   concurrency 1 and 16; msg/s and the inbox's cost per message.
//!
//! Prints JSON lines and a table of medians over `--runs`.

use std::future::IntoFuture;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt, TryStreamExt};
use postage::prelude::*;
use postage::testing::Probe;
use postage_postgres::{Database, Inbox, OutboxExt, Relay};
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::args::Args;
use crate::common::{COMMAND, Res, fingerprint};
use crate::measure::median;
use crate::postage_side::{params, postage_connect};
use crate::scenario::workers::now_ns;

/// The `seq` parameter of an encoded command (here: when it was sent).
fn seq_of(body: &[u8]) -> Option<u64> {
    fn find(value: &Value) -> Option<u64> {
        match value {
            Value::Object(map) => map
                .get("seq")
                .and_then(Value::as_u64)
                .or_else(|| map.values().find_map(find)),
            _ => None,
        }
    }
    find(&serde_json::from_slice(body).ok()?)
}

/// The run's schema, dropped at the end.
struct Schema {
    name: String,
    base: String,
    database: Database,
}

impl Schema {
    async fn create() -> Res<Self> {
        let base = std::env::var("POSTAGE_DATABASE_URL")
            .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=test".to_owned());
        let name = format!("postage_bench_{}", std::process::id());
        let (client, connection) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
            .await
            .map_err(|e| format!("PostgreSQL is not reachable at {base}: {e}"))?;
        tokio::spawn(connection);
        client
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"
            ))
            .await?;
        let database = Database::new(&format!("{base} options='-c search_path={name}'"))?;
        database.migrate().await?;
        Ok(Schema {
            name,
            base,
            database,
        })
    }

    async fn drop_schema(self) -> Res<()> {
        let (client, connection) =
            tokio_postgres::connect(&self.base, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        client
            .batch_execute(&format!("DROP SCHEMA {} CASCADE", self.name))
            .await?;
        Ok(())
    }
}

/// A queue bound to a fresh exchange, and a producer to it.
struct Route {
    exchange: Exchange,
    queue: String,
    probe: Probe,
}

impl Route {
    async fn new(connection: &Connection, label: &str) -> Res<Self> {
        let name = format!("bench-outbox-{label}-{}", std::process::id());
        let exchange = Exchange::new(name.clone(), ExchangeKind::Direct);
        let probe = Probe::open(connection).await?;
        probe.declare_exchange(&exchange).await?;
        probe.declare_queue(&Queue::new(name.clone())).await?;
        probe.bind(&name, &name, COMMAND).await?;
        Ok(Route {
            exchange,
            queue: name,
            probe,
        })
    }

    async fn producer(&self, connection: &Connection) -> Res<Producer> {
        Ok(Producer::builder()
            .ek(self.exchange.clone(), COMMAND)
            .fingerprint(fingerprint())
            .confirms(true)
            .connect(connection)
            .await?)
    }

    /// Receives `n` messages (no acks): (when the last came, latencies
    /// from the `seq` timestamps).
    async fn receive(&self, n: u64) -> Res<(Instant, Vec<u64>)> {
        let mut consumer = self.probe.consume_no_ack(&self.queue).await?;
        let mut latencies = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
        while (latencies.len() as u64) < n {
            let delivery = consumer
                .next_within(Duration::from_secs(120))
                .await
                .ok_or("no message for 120 s")??;
            let sent = seq_of(delivery.body()).ok_or("a message without seq")?;
            latencies.push(now_ns().saturating_sub(sent));
        }
        Ok((Instant::now(), latencies))
    }

    /// `count` relays of `schema`'s outbox, each with a producer of its
    /// own.
    async fn relays(
        &self,
        connection: &Connection,
        schema: &Schema,
        count: usize,
    ) -> Res<Vec<Relay>> {
        let mut relays = Vec::with_capacity(count);
        for _ in 0..count {
            let producer = self.producer(connection).await?;
            relays.push(
                Relay::builder(schema.database.clone(), producer)
                    .spawn()
                    .await?,
            );
        }
        Ok(relays)
    }

    async fn delete(self) -> Res<()> {
        self.probe.delete_queue(&self.queue).await?;
        Ok(())
    }
}

/// Commits `n` messages into the outbox, `per_tx` per transaction.
async fn fill(database: &Database, producer: &Producer, n: u64, per_tx: u64) -> Res<()> {
    let mut client = database.pool().get().await?;
    let mut i = 0;
    while i < n {
        let tx = client.transaction().await?;
        for _ in i..(i + per_tx).min(n) {
            producer
                .command(COMMAND, params(0))
                .in_transaction(&*tx)
                .await?;
        }
        tx.commit().await?;
        i += per_tx;
    }
    Ok(())
}

/// Relay throughput: msg/s of `relays` relays draining `n` messages.
async fn relay_rate(args: &Args, schema: &Schema, relays: usize, n: u64) -> Res<f64> {
    let connection = postage_connect(&args.url).await?;
    let route = Route::new(&connection, &format!("relay{relays}")).await?;
    let writer = route.producer(&connection).await?;
    fill(&schema.database, &writer, n, 100).await?;
    let receiving = route.receive(n);
    let start = Instant::now();
    let running = route.relays(&connection, schema, relays).await?;
    let (last, _) = receiving.await?;
    for relay in running {
        relay.stop().await;
    }
    route.delete().await?;
    Ok(n as f64 / last.duration_since(start).as_secs_f64())
}

/// Direct throughput: msg/s of `n` confirmed publishes.
async fn direct_rate(args: &Args, n: u64) -> Res<f64> {
    let connection = postage_connect(&args.url).await?;
    let route = Route::new(&connection, "direct").await?;
    let producer = route.producer(&connection).await?;
    let receiving = route.receive(n);
    let start = Instant::now();
    let sending = stream::iter(0..n)
        .map(|_| producer.command(COMMAND, params(0)).into_future())
        .buffer_unordered(args.window)
        .try_for_each(|()| async { Ok(()) });
    let (received, sent) = tokio::join!(receiving, sending);
    sent?;
    let (last, _) = received?;
    route.delete().await?;
    Ok(n as f64 / last.duration_since(start).as_secs_f64())
}

/// Latencies (µs) of messages sent at `rate` for `seconds`, through the
/// outbox with `relays` relays, or directly when `relays` is 0.
async fn latencies(
    args: &Args,
    schema: &Schema,
    relays: usize,
    rate: u64,
    seconds: u64,
) -> Res<Vec<u64>> {
    const WRITERS: u64 = 8;
    let connection = postage_connect(&args.url).await?;
    let route = Route::new(&connection, &format!("latency{relays}")).await?;
    let producer = route.producer(&connection).await?;
    let running = route.relays(&connection, schema, relays).await?;
    let per_writer = rate * seconds / WRITERS;
    let period = Duration::from_secs_f64(WRITERS as f64 / rate as f64);
    let writers = (0..WRITERS).map(|_| {
        let producer = producer.clone();
        let database = schema.database.clone();
        async move {
            let mut client = database.pool().get().await?;
            let mut tick = tokio::time::interval(period);
            for _ in 0..per_writer {
                tick.tick().await;
                if relays == 0 {
                    let producer = producer.clone();
                    tokio::spawn(async move { producer.command(COMMAND, params(now_ns())).await });
                    continue;
                }
                let tx = client.transaction().await?;
                producer
                    .command(COMMAND, params(now_ns()))
                    .in_transaction(&*tx)
                    .await?;
                tx.commit().await?;
            }
            Res::Ok(())
        }
    });
    let (received, written) = tokio::join!(
        route.receive(per_writer * WRITERS),
        futures_util::future::try_join_all(writers)
    );
    written?;
    let (_, mut latencies) = received?;
    for relay in running {
        relay.stop().await;
    }
    route.delete().await?;
    latencies.iter_mut().for_each(|ns| *ns /= 1_000);
    latencies.sort_unstable();
    Ok(latencies)
}

/// A handler that only counts.
struct Count {
    handled: Arc<AtomicU64>,
    target: u64,
    done: Arc<Notify>,
}

#[processor]
impl Count {
    #[handler("command", "bench")]
    async fn bench(&self, _content: Content) {
        if self.handled.fetch_add(1, Ordering::Relaxed) + 1 == self.target {
            self.done.notify_one();
        }
    }
}

/// msg/s of a processor consuming `n` messages at `concurrency`, with
/// the inbox or without.
async fn consume_rate(
    args: &Args,
    schema: &Schema,
    inbox: bool,
    concurrency: usize,
    n: u64,
) -> Res<f64> {
    let connection = postage_connect(&args.url).await?;
    let route = Route::new(&connection, &format!("inbox-{inbox}-{concurrency}")).await?;
    let producer = route.producer(&connection).await?;
    stream::iter(0..n)
        .map(|i| producer.command(COMMAND, params(i)).into_future())
        .buffer_unordered(args.window)
        .try_for_each(|()| async { Ok(()) })
        .await?;
    let done = Arc::new(Notify::new());
    let builder = Processor::builder(Count {
        handled: Arc::new(AtomicU64::new(0)),
        target: n,
        done: done.clone(),
    })
    .bind(route.exchange.clone(), [(route.queue.as_str(), COMMAND)])
    .concurrency(concurrency)
    .prefetch(args.prefetch);
    let start = Instant::now();
    let task = if inbox {
        let processor = builder
            .layer(Inbox::new(&schema.database))
            .connect(&connection)
            .await?;
        tokio::spawn(processor.run())
    } else {
        tokio::spawn(builder.connect(&connection).await?.run())
    };
    tokio::time::timeout(Duration::from_secs(600), done.notified())
        .await
        .map_err(|_| format!("{n} messages not handled in 600 s"))?;
    let rate = n as f64 / start.elapsed().as_secs_f64();
    task.abort();
    route.delete().await?;
    Ok(rate)
}

fn percentile(sorted: &[u64], p: usize) -> u64 {
    sorted
        .get((sorted.len().saturating_sub(1)) * p / 100)
        .copied()
        .unwrap_or(0)
}

pub(crate) async fn outbox(args: &Args) -> Res<()> {
    let n = args.count.unwrap_or(20_000);
    let schema = Schema::create().await?;
    let mut table: Vec<(String, Vec<f64>)> = Vec::new();
    let mut add = |label: String, value: f64| match table.iter_mut().find(|(l, _)| *l == label) {
        Some((_, values)) => values.push(value),
        None => table.push((label, vec![value])),
    };
    for run in 0..args.runs {
        let rate = direct_rate(args, n).await?;
        println!(
            "{}",
            json!({"scenario": "outbox", "run": run, "side": "direct", "msg_per_s": rate.round()})
        );
        add("throughput direct confirmed publish, msg/s".into(), rate);
        for &relays in &args.relays {
            let rate = relay_rate(args, &schema, relays, n).await?;
            println!(
                "{}",
                json!({"scenario": "outbox", "run": run, "side": "relay", "relays": relays, "msg_per_s": rate.round()})
            );
            add(format!("throughput outbox, {relays} relay(s), msg/s"), rate);
        }
        for relays in std::iter::once(0).chain(args.relays.iter().copied()) {
            let sorted = latencies(args, &schema, relays, args.rate, 5).await?;
            let (p50, p99) = (percentile(&sorted, 50), percentile(&sorted, 99));
            println!(
                "{}",
                json!({"scenario": "outbox", "run": run, "side": "latency", "relays": relays, "rate": args.rate, "p50_us": p50, "p99_us": p99})
            );
            let side = if relays == 0 {
                "direct".to_owned()
            } else {
                format!("outbox, {relays} relay(s)")
            };
            add(
                format!("latency {side} at {} msg/s, p50 µs", args.rate),
                p50 as f64,
            );
            add(
                format!("latency {side} at {} msg/s, p99 µs", args.rate),
                p99 as f64,
            );
        }
        for concurrency in [1, 16] {
            let plain = consume_rate(args, &schema, false, concurrency, n).await?;
            let inbox = consume_rate(args, &schema, true, concurrency, n).await?;
            let cost_us = (1.0 / inbox - 1.0 / plain) * 1e6;
            println!(
                "{}",
                json!({"scenario": "outbox", "run": run, "side": "inbox", "concurrency": concurrency, "plain_msg_per_s": plain.round(), "inbox_msg_per_s": inbox.round(), "inbox_cost_us": cost_us.round()})
            );
            add(format!("consume, concurrency {concurrency}, msg/s"), plain);
            add(
                format!("consume with inbox, concurrency {concurrency}, msg/s"),
                inbox,
            );
            add(
                format!("inbox cost per message, concurrency {concurrency}, µs"),
                cost_us,
            );
        }
    }
    schema.drop_schema().await?;
    println!();
    println!("{:<60} {:>12}", "outbox (medians)", "value");
    for (label, values) in table {
        println!("{label:<60} {:>12.0}", median(values).unwrap_or(0.0));
    }
    Ok(())
}

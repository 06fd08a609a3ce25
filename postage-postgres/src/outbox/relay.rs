//! [`Relay`]: publishes the outbox's messages with publisher confirms
//! and marks them sent.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use deadpool_postgres::ClientWrapper;
use futures_util::future::join_all;
use postage::Producer;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use super::listen::listen;
use super::row::{READ, Stored};
use crate::database::{STATEMENT_LIMIT, discard, limited};
use crate::error::Result;
use crate::{Database, metrics};

/// What becomes of a row once the broker confirmed its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Retention {
    /// Deleted in the transaction that publishes it (the default: the
    /// table holds only what is still to send).
    Delete,
    /// Marked sent (`sent_at`) and deleted once older than this, by the
    /// relay, when it starts and every minute.
    Keep(Duration),
    /// Marked sent and never deleted.
    KeepForever,
}

/// Publishes the messages written into the outbox
/// ([`OutboxExt::in_transaction`](crate::OutboxExt::in_transaction)),
/// oldest first, with publisher confirms, and records each one the broker
/// confirmed, in one transaction per batch.
///
/// - It wakes when a transaction that wrote messages commits (`LISTEN` /
///   `NOTIFY`), and looks every [`poll_interval`](RelayBuilder::poll_interval)
///   as well, in case a notification was lost.
/// - Several relays (in one process or many) share the outbox: each takes
///   rows no other holds (`FOR UPDATE SKIP LOCKED`), and publishes a
///   message of an aggregate only when every earlier message of that
///   aggregate was sent or is in its own batch, one after the other.
/// - A message is published at least once: a relay that dies after the
///   broker's confirmation and before its commit leaves the row to be
///   published again, with the same `message_id`, which an
///   [`Inbox`](crate::Inbox) recognises.
/// - When PostgreSQL or the broker is away, it waits (backing off from
///   100 ms to 5 s) and goes on where it stopped; the outbox fills
///   meanwhile.
///
/// ```no_run
/// # async fn run(connection: postage::Connection) -> Result<(), Box<dyn std::error::Error>> {
/// use postage::Producer;
/// use postage_postgres::{Database, Relay};
///
/// let database = Database::from_env()?;
/// database.migrate().await?;
/// let producer = Producer::builder().confirms(true).connect(&connection).await?;
/// let relay = Relay::builder(database, producer).spawn().await?;
/// // ...
/// relay.stop().await;
/// # Ok(()) }
/// ```
///
/// Dropping a relay stops it at once (a batch in hand is rolled back and
/// published again later); [`stop`](Relay::stop) lets it finish first.
#[derive(Debug)]
pub struct Relay {
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
    listener: JoinHandle<()>,
    published: Arc<AtomicU64>,
}

impl Relay {
    /// Starts building a relay that publishes with `producer` (which
    /// should have confirms on: without them, "published" means written
    /// to the socket).
    pub fn builder(database: Database, producer: Producer) -> RelayBuilder {
        RelayBuilder {
            database,
            producer,
            batch: 256,
            poll_interval: Duration::from_secs(1),
            retention: Retention::Delete,
        }
    }

    /// Messages this relay published and recorded as sent.
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }

    /// Stops after the batch in hand (published and recorded, or rolled
    /// back) and waits for it.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
        self.listener.abort();
    }
}

/// Options of a [`Relay`].
#[derive(Debug)]
#[must_use]
pub struct RelayBuilder {
    database: Database,
    producer: Producer,
    batch: usize,
    poll_interval: Duration,
    retention: Retention,
}

impl RelayBuilder {
    /// Rows taken per transaction (256 by default).
    pub fn batch(mut self, rows: usize) -> Self {
        self.batch = rows.max(1);
        self
    }

    /// How often the outbox is looked at without a notification (1 s by
    /// default).
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// What becomes of sent rows ([`Retention::Delete`] by default).
    pub fn retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    /// Starts the relay on the current Tokio runtime.
    ///
    /// # Errors
    ///
    /// The database's, when its schema cannot be read (the relay listens
    /// for that schema's outbox).
    pub async fn spawn(self) -> Result<Relay> {
        let client = self.database.pool().get().await?;
        let schema: String = limited(
            "reading the schema",
            STATEMENT_LIMIT,
            client.query_one("SELECT current_schema()::text", &[]),
        )
        .await?
        .try_get(0)?;
        let wake = Arc::new(Notify::new());
        let (stop, stopped) = watch::channel(false);
        let published = Arc::new(AtomicU64::new(0));
        let worker = Worker {
            take: format!(
                "SELECT {READ} FROM postage_outbox WHERE sent_at IS NULL \
                 ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED"
            ),
            database: self.database,
            producer: self.producer,
            batch: self.batch,
            poll_interval: self.poll_interval,
            retention: self.retention,
            published: published.clone(),
        };
        let listener = tokio::spawn(listen(worker.database.clone(), schema, wake.clone()));
        let task = tokio::spawn(worker.run(wake, stopped));
        Ok(Relay {
            stop,
            task: Some(task),
            listener,
            published,
        })
    }
}

/// The relay's task.
struct Worker {
    /// The statement that takes a batch.
    take: String,
    database: Database,
    producer: Producer,
    batch: usize,
    poll_interval: Duration,
    retention: Retention,
    published: Arc<AtomicU64>,
}

/// What one pass did.
#[derive(Default)]
struct Pass {
    /// Rows published and recorded.
    sent: usize,
    /// Rows left for a later pass: their aggregate's earlier messages
    /// were another relay's.
    waiting: usize,
    /// A publish failed.
    failed: bool,
}

impl Worker {
    async fn run(self, wake: Arc<Notify>, mut stopped: watch::Receiver<bool>) {
        let mut pause = Duration::from_millis(100);
        // Cleaned at the first pass, then every minute.
        let mut cleaned: Option<Instant> = None;
        while !*stopped.borrow() {
            let outcome = self.pass().await;
            // How long to wait, and whether a new message ends the wait
            // (not while backing off: the broker or the database is away).
            let wait = match outcome {
                // A publish failed (logged): the broker is away or
                // refusing; try again later.
                Ok(pass) if pass.failed => Some((backoff(&mut pause), false)),
                Ok(pass) => {
                    pause = Duration::from_millis(100);
                    if pass.waiting > 0 {
                        // Another relay is publishing their aggregates'
                        // earlier messages: look again soon.
                        Some((Duration::from_millis(10), false))
                    } else {
                        // A full batch: more may be waiting.
                        (pass.sent < self.batch).then_some((self.poll_interval, true))
                    }
                }
                Err(error) => {
                    metrics::database_failed();
                    tracing::warn!(%error, "outbox relay: the database failed; trying again");
                    Some((backoff(&mut pause), false))
                }
            };
            if let Retention::Keep(age) = self.retention
                && cleaned.is_none_or(|at| at.elapsed() >= Duration::from_secs(60))
            {
                cleaned = Some(Instant::now());
                if let Err(error) = self.clean(age).await {
                    tracing::warn!(%error, "outbox relay: cleaning sent rows failed");
                }
            }
            if let Some((wait, wakeable)) = wait {
                tokio::select! {
                    () = wake.notified(), if wakeable => {}
                    () = tokio::time::sleep(wait) => {}
                    _ = stopped.changed() => {}
                }
            }
        }
    }

    /// Takes a batch, publishes what may go, records what was confirmed,
    /// on a connection of the pool (closed after a failure: it may hold
    /// the batch's transaction).
    async fn pass(&self) -> Result<Pass> {
        let client = self.database.pool().get().await?;
        let pass = self.pass_on(&client).await;
        if pass.is_err() {
            discard(client);
        }
        pass
    }

    /// A pass in one transaction on `client`. Each statement has
    /// [`STATEMENT_LIMIT`]; each publish the producer's time limit.
    async fn pass_on(&self, client: &ClientWrapper) -> Result<Pass> {
        // Prepared once per connection.
        let take = limited(
            "preparing",
            STATEMENT_LIMIT,
            client.prepare_cached(&self.take),
        )
        .await?;
        let batch = i64::try_from(self.batch).unwrap_or(i64::MAX);
        // Sent together: one round trip.
        let rows = limited("taking a batch", STATEMENT_LIMIT, async {
            let (begun, rows) = futures_util::future::join(
                client.batch_execute("BEGIN"),
                client.query(&take, &[&batch]),
            )
            .await;
            begun.and(rows)
        })
        .await?;
        let taken = rows.len();
        if taken == 0 {
            limited("ending", STATEMENT_LIMIT, client.batch_execute("COMMIT")).await?;
            return Ok(Pass::default());
        }
        let mut stored = Vec::with_capacity(taken);
        for row in &rows {
            match Stored::read(row) {
                Ok(message) => stored.push(message),
                // Left in place for a newer version, or a person, to read.
                Err(error) => tracing::error!(%error, "outbox relay skips a row it cannot read"),
            }
        }
        let readable = stored.len();
        let stored = self.publishable(client, stored).await?;
        let waiting = readable - stored.len();
        let publishing = stored.len();
        let sent = self.publish(stored).await;
        let statement = match self.retention {
            Retention::Delete => "DELETE FROM postage_outbox WHERE id = ANY($1)",
            Retention::Keep(_) | Retention::KeepForever => {
                "UPDATE postage_outbox SET sent_at = now() WHERE id = ANY($1)"
            }
        };
        if !sent.is_empty() {
            let record = limited(
                "preparing",
                STATEMENT_LIMIT,
                client.prepare_cached(statement),
            )
            .await?;
            limited(
                "recording sent rows",
                STATEMENT_LIMIT,
                client.execute(&record, &[&sent]),
            )
            .await?;
        }
        limited(
            "committing",
            STATEMENT_LIMIT,
            client.batch_execute("COMMIT"),
        )
        .await?;
        self.published
            .fetch_add(sent.len() as u64, Ordering::Relaxed);
        metrics::published(sent.len());
        Ok(Pass {
            sent: sent.len(),
            waiting,
            failed: sent.len() < publishing,
        })
    }

    /// The rows of the batch that may be published now: those without an
    /// aggregate, and of each aggregate the rows that begin its unsent
    /// messages with no row of another relay's in between.
    async fn publishable(
        &self,
        client: &ClientWrapper,
        stored: Vec<Stored>,
    ) -> Result<Vec<Stored>> {
        let aggregates: Vec<&str> = stored
            .iter()
            .filter_map(|s| s.aggregate.as_deref())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        if aggregates.is_empty() {
            return Ok(stored);
        }
        let last = stored.last().map_or(0, |s| s.id);
        let unsent = limited(
            "reading aggregates",
            STATEMENT_LIMIT,
            client.query(
                "SELECT id, aggregate FROM postage_outbox WHERE sent_at IS NULL \
                 AND aggregate = ANY($1) AND id <= $2 ORDER BY id",
                &[&aggregates, &last],
            ),
        )
        .await?;
        let mine: HashSet<i64> = stored.iter().map(|s| s.id).collect();
        let mut blocked: HashSet<String> = HashSet::new();
        let mut allowed: HashSet<i64> = HashSet::new();
        for row in &unsent {
            let id: i64 = row.try_get(0)?;
            let aggregate: String = row.try_get(1)?;
            if blocked.contains(&aggregate) {
                continue;
            }
            if mine.contains(&id) {
                allowed.insert(id);
            } else {
                blocked.insert(aggregate);
            }
        }
        Ok(stored
            .into_iter()
            .filter(|s| s.aggregate.is_none() || allowed.contains(&s.id))
            .collect())
    }

    /// Publishes the rows (those of one aggregate one after the other,
    /// the rest at once) and gives the ids the broker confirmed. An
    /// aggregate's later rows wait for the next pass after a failure.
    async fn publish(&self, stored: Vec<Stored>) -> Vec<i64> {
        let mut chains: Vec<Vec<Stored>> = Vec::new();
        let mut by_aggregate: HashMap<String, usize> = HashMap::new();
        for message in stored {
            match message.aggregate.clone() {
                Some(aggregate) => match by_aggregate.get(&aggregate) {
                    Some(&chain) => chains[chain].push(message),
                    None => {
                        by_aggregate.insert(aggregate, chains.len());
                        chains.push(vec![message]);
                    }
                },
                None => chains.push(vec![message]),
            }
        }
        let producer = &self.producer;
        let sent = join_all(chains.into_iter().map(|chain| async move {
            let mut sent = Vec::with_capacity(chain.len());
            for message in chain {
                let message_id = message.outgoing.message_id().to_owned();
                match producer.send_outgoing(message.outgoing).await {
                    Ok(()) => sent.push(message.id),
                    Err(error) => {
                        metrics::publish_failed();
                        tracing::warn!(%error, message_id, row = message.id, "outbox relay: publish failed");
                        break;
                    }
                }
            }
            sent
        }))
        .await;
        sent.into_iter().flatten().collect()
    }

    /// Deletes rows sent longer than `age` ago.
    async fn clean(&self, age: Duration) -> Result<()> {
        let deleted = self
            .database
            .delete_older(
                "DELETE FROM postage_outbox WHERE sent_at < now() - make_interval(secs => $1)",
                age,
            )
            .await?;
        tracing::debug!(deleted, "outbox relay deleted old sent rows");
        Ok(())
    }
}

/// The pause before trying again, doubled for the next time (100 ms to
/// 5 s).
fn backoff(pause: &mut Duration) -> Duration {
    let now = *pause;
    *pause = (now * 2).min(Duration::from_secs(5));
    now
}

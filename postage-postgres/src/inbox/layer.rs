//! [`Inbox`]: the layer that runs handlers in a transaction recording
//! the message's id.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::BoxFuture;
use postage::middleware::{BoxError, Incoming, Layer, Service};
use postage::processor::HandlerError;
use tokio_postgres::types::Type;
use tower::ServiceExt;

use super::Tx;
use crate::database::{STATEMENT_LIMIT, limited};
use crate::{Database, metrics};

/// What the inbox does with a message that has no `message_id` (sent by
/// Python Postage, or by a client that sets none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum MissingId {
    /// Runs its handlers in a transaction, as any other, without a
    /// record: a redelivery of it is handled again (at least once). Logged
    /// at WARN once per sender. The default.
    #[default]
    Handle,
    /// Fails it permanently (`MissingMessageId`): parked or dropped by the
    /// failure policy, never handled.
    Refuse,
}

/// A processor layer that handles each message once: its handlers run
/// inside a PostgreSQL transaction that first records the message's id
/// in `postage_inbox`, and the message is acknowledged only after that
/// transaction committed.
///
/// - A message whose id the inbox holds already (a redelivery after a
///   crash, a relay's second publish) is acknowledged without running
///   its handlers.
/// - A handler's failure rolls the transaction back, record included, and
///   the failure policy applies (a retry runs the handler again).
/// - Handlers reach the transaction with [`Tx::current`]: their own
///   writes, and sends into the outbox, commit or roll back with the
///   record.
/// - Records are per consumer: the queue's name, unless
///   [`consumer`](Inbox::consumer) names it; each queue of a fanout
///   handles its copy once.
/// - Records older than [`retention`](Inbox::retention) (7 days) are
///   deleted every hour. A message redelivered later than that is
///   handled again.
///
/// An RPC handler's reply goes out when the handler returns, before the
/// commit: use the inbox for commands.
///
/// ```no_run
/// use postage::prelude::*;
/// use postage_postgres::{Database, Inbox, Tx};
///
/// const BILLING: Exchange = Exchange::direct("billing");
///
/// struct Billing;
///
/// #[processor]
/// impl Billing {
///     #[handler("command", "charge")]
///     async fn charge(&self, Params(cents): Params<i64>) -> Result<(), postage_postgres::Error> {
///         Tx::current()?
///             .execute("INSERT INTO charges (cents) VALUES ($1)", &[&cents])
///             .await?;
///         Ok(())
///     }
/// }
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let database = Database::from_env()?;
/// database.migrate().await?;
/// let connection = Connection::from_env().await?;
/// let processor = Processor::builder(Billing)
///     .bind(BILLING, [("billing", "charge")])
///     .layer(Inbox::new(&database))
///     .connect(&connection)
///     .await?;
/// processor.run().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Inbox {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    database: Database,
    consumer: Option<String>,
    missing_id: MissingId,
    retention: Duration,
    /// Senders of messages without an id, already warned about.
    warned: Mutex<HashSet<String>>,
    /// The cleaning task started.
    cleaning: Mutex<bool>,
}

impl Inbox {
    /// An inbox in `database` (run [`Database::migrate`] first).
    pub fn new(database: &Database) -> Self {
        Inbox {
            shared: Arc::new(Shared {
                database: database.clone(),
                consumer: None,
                missing_id: MissingId::default(),
                retention: Duration::from_secs(7 * 24 * 3600),
                warned: Mutex::new(HashSet::new()),
                cleaning: Mutex::new(false),
            }),
        }
    }

    fn with(self, change: impl FnOnce(&mut Shared)) -> Self {
        let mut shared = Arc::try_unwrap(self.shared).unwrap_or_else(|shared| Shared {
            database: shared.database.clone(),
            consumer: shared.consumer.clone(),
            missing_id: shared.missing_id,
            retention: shared.retention,
            warned: Mutex::new(HashSet::new()),
            cleaning: Mutex::new(false),
        });
        change(&mut shared);
        Inbox {
            shared: Arc::new(shared),
        }
    }

    /// The name its records are kept under, instead of the queue's: for
    /// a processor whose queue is renamed, or that shares records with
    /// another.
    #[must_use]
    pub fn consumer(self, name: impl Into<String>) -> Self {
        let name = name.into();
        self.with(|shared| shared.consumer = Some(name))
    }

    /// What to do with messages that have no id ([`MissingId::Handle`]
    /// by default).
    #[must_use]
    pub fn missing_id(self, missing_id: MissingId) -> Self {
        self.with(|shared| shared.missing_id = missing_id)
    }

    /// How long records are kept (7 days by default): longer than any
    /// redelivery or republish can come.
    #[must_use]
    pub fn retention(self, retention: Duration) -> Self {
        self.with(|shared| shared.retention = retention)
    }
}

impl<S> Layer<S> for Inbox {
    type Service = InboxService<S>;

    fn layer(&self, inner: S) -> InboxService<S> {
        InboxService {
            shared: self.shared.clone(),
            inner,
        }
    }
}

/// The service of an [`Inbox`] layer.
#[derive(Debug, Clone)]
pub struct InboxService<S> {
    shared: Arc<Shared>,
    inner: S,
}

impl<S> Service<Incoming> for InboxService<S>
where
    S: Service<Incoming, Response = ()> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = ();
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<(), BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, incoming: Incoming) -> Self::Future {
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        shared.start_cleaning();
        Box::pin(async move { shared.handle(incoming, inner).await })
    }
}

impl Shared {
    async fn handle<S>(&self, incoming: Incoming, inner: S) -> Result<(), BoxError>
    where
        S: Service<Incoming, Response = ()> + Send,
        S::Error: Into<BoxError>,
        S::Future: Send,
    {
        let id = incoming.message_id();
        if id.is_none() {
            self.without_id(&incoming)?;
        }
        let client = self.database.pool().get().await.map_err(transient)?;
        let tx = Tx::begun(client);
        match id {
            Some(id) => {
                let consumer = self.consumer.as_deref().unwrap_or(incoming.queue());
                // Sent together: one round trip.
                let recorded = limited("recording the message", STATEMENT_LIMIT, async {
                    let (begun, recorded) = futures_util::future::join(
                        tx.batch_execute("BEGIN"),
                        tx.execute_typed(
                            "INSERT INTO postage_inbox (consumer, message_id) VALUES ($1, $2) \
                             ON CONFLICT DO NOTHING",
                            &[(&consumer, Type::TEXT), (&id, Type::TEXT)],
                        ),
                    )
                    .await;
                    begun.and(recorded)
                })
                .await
                .map_err(transient)?;
                if recorded == 0 {
                    tx.end("ROLLBACK").await.map_err(transient)?;
                    metrics::duplicate(consumer);
                    tracing::debug!(
                        message_id = id,
                        consumer,
                        "inbox: handled before, acknowledged"
                    );
                    return Ok(());
                }
            }
            None => limited("beginning", STATEMENT_LIMIT, tx.batch_execute("BEGIN"))
                .await
                .map_err(transient)?,
        }
        let outcome = tx
            .scope(inner.oneshot(incoming))
            .await
            .map_err(Into::<BoxError>::into);
        match outcome {
            Ok(()) => tx.end("COMMIT").await.map_err(transient),
            Err(error) => {
                // Dropping the connection also rolls back, should this
                // fail.
                let _ = tx.end("ROLLBACK").await;
                Err(error)
            }
        }
    }

    /// Refuses a message without an id, or lets it through (warning once
    /// per sender).
    fn without_id(&self, incoming: &Incoming) -> Result<(), BoxError> {
        let sender = incoming.sender().to_string();
        if self.missing_id == MissingId::Refuse {
            return Err(HandlerError::permanent(
                "MissingMessageId",
                format!("the inbox refuses a message without message_id from {sender}"),
            )
            .into());
        }
        let first = self
            .warned
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(sender.clone());
        if first {
            tracing::warn!(
                sender,
                "inbox: messages without message_id are handled without a record (at least once)"
            );
        }
        Ok(())
    }

    /// Starts the hourly deletion of old records, once per inbox, when a
    /// runtime runs; it ends with the inbox.
    fn start_cleaning(self: &Arc<Self>) {
        let mut started = self.cleaning.lock().unwrap_or_else(PoisonError::into_inner);
        if *started {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        *started = true;
        let shared: Weak<Shared> = Arc::downgrade(self);
        runtime.spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(3600));
            loop {
                every.tick().await;
                let Some(shared) = shared.upgrade() else {
                    return;
                };
                if let Err(error) = clean(&shared).await {
                    tracing::warn!(%error, "inbox: deleting old records failed");
                }
            }
        });
    }
}

/// Deletes records older than the inbox's retention.
async fn clean(shared: &Shared) -> crate::Result<()> {
    let deleted = shared
        .database
        .delete_older(
            "DELETE FROM postage_inbox WHERE received_at < now() - make_interval(secs => $1)",
            shared.retention,
        )
        .await?;
    tracing::debug!(deleted, "inbox: deleted old records");
    Ok(())
}

/// A database failure: the handlers did not run, or their effects were
/// rolled back; the failure policy retries it.
fn transient(error: impl Into<crate::Error>) -> BoxError {
    let error: crate::Error = error.into();
    HandlerError::new("DatabaseError", error.to_string()).into()
}

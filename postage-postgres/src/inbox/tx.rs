//! [`Tx`]: the inbox's transaction, as handlers reach it.

use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use deadpool_postgres::Object;

use crate::database::{STATEMENT_LIMIT, limited};
use crate::error::{Error, Result};

tokio::task_local! {
    /// The transaction of the message being handled.
    static CURRENT: Tx;
}

/// The transaction a message's handlers run in under an
/// [`Inbox`](crate::Inbox): a PostgreSQL connection inside `BEGIN`, which
/// the inbox commits when the handlers succeed (and rolls back when they
/// fail) before the message is acknowledged. It derefs to
/// [`tokio_postgres::Client`]; sends written into the outbox through it
/// ([`OutboxExt::in_transaction`](crate::OutboxExt::in_transaction))
/// commit with it.
///
/// Do not `COMMIT` or `ROLLBACK` it yourself: return an error to roll
/// back.
///
/// ```no_run
/// use postage::prelude::*;
/// use postage_postgres::Tx;
///
/// struct Billing;
///
/// #[processor]
/// impl Billing {
///     #[handler("command", "charge")]
///     async fn charge(&self, Params(cents): Params<i64>) -> Result<(), postage_postgres::Error> {
///         let tx = Tx::current()?;
///         tx.execute("INSERT INTO charges (cents) VALUES ($1)", &[&cents]).await?;
///         Ok(())
///     }
/// }
/// ```
#[derive(Clone)]
pub struct Tx(Arc<Held>);

impl std::fmt::Debug for Tx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tx").finish_non_exhaustive()
    }
}

impl Tx {
    /// The transaction of the message being handled, in a handler (or a
    /// layer inside the [`Inbox`](crate::Inbox)).
    ///
    /// # Errors
    ///
    /// [`Error::NoTransaction`] outside an inbox.
    pub fn current() -> Result<Tx> {
        CURRENT
            .try_with(Tx::clone)
            .map_err(|_| Error::NoTransaction)
    }

    pub(super) fn begun(client: Object) -> Self {
        Tx(Arc::new(Held {
            client: Some(client),
            ended: AtomicBool::new(false),
        }))
    }

    /// Runs `future` with this transaction as [`Tx::current`].
    pub(super) async fn scope<F: Future>(&self, future: F) -> F::Output {
        CURRENT.scope(self.clone(), future).await
    }

    /// Ends it with `COMMIT` or `ROLLBACK`, within
    /// [`STATEMENT_LIMIT`]; unended (its connection closed when dropped)
    /// if that fails.
    pub(super) async fn end(&self, statement: &'static str) -> Result<()> {
        limited(
            "ending a transaction",
            STATEMENT_LIMIT,
            self.batch_execute(statement),
        )
        .await?;
        self.0.ended.store(true, Ordering::Release);
        Ok(())
    }
}

impl Deref for Tx {
    type Target = tokio_postgres::Client;

    fn deref(&self) -> &tokio_postgres::Client {
        match &self.0.client {
            Some(client) => client,
            None => unreachable!("the connection is only taken when the transaction is dropped"),
        }
    }
}

/// The connection, given back to the pool only when its transaction
/// ended.
struct Held {
    client: Option<Object>,
    ended: AtomicBool,
}

impl Drop for Held {
    fn drop(&mut self) {
        if !self.ended.load(Ordering::Acquire) {
            // Cancelled or failed in the middle: close the connection,
            // which makes PostgreSQL roll back, rather than hand a
            // transaction in progress to the next user.
            if let Some(client) = self.client.take() {
                drop(Object::take(client));
            }
        }
    }
}

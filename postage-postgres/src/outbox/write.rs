//! [`OutboxExt::in_transaction`]: a send written into the outbox inside
//! the caller's transaction instead of published.

use std::future::{Future, IntoFuture};
use std::pin::Pin;

use postage::producer::Publish;
use tokio_postgres::GenericClient;

use super::row::{Columns, INSERT, INSERT_IN_TURN};
use crate::error::Result;

/// Writes sends into the outbox: `.in_transaction(&tx)` on any send of a
/// producer (`producer.command(..)`, `producer.send(..)`, and the typed
/// `message_*` senders of `#[producer]`).
pub trait OutboxExt<'a>: Sized {
    /// Writes the message into `postage_outbox` through `client` (a
    /// [`tokio_postgres::Transaction`], the inbox's [`Tx`](crate::Tx), or
    /// a plain client, which commits the row at once) instead of
    /// publishing it. It is published by a [`Relay`](crate::Relay) once,
    /// and only if, the transaction commits. `.await` gives the message's
    /// id.
    ///
    /// The message is encoded and addressed now, with the producer's
    /// options and the send's (`key`, `eks`, `header`, `persistent`,
    /// ...); the broker is not asked anything, so the write works while
    /// it is away. The relay's producer runs its own layers when it
    /// publishes.
    fn in_transaction<C: GenericClient + Sync>(self, client: &'a C) -> InTransaction<'a, C>;
}

impl<'a> OutboxExt<'a> for Publish<'a> {
    fn in_transaction<C: GenericClient + Sync>(self, client: &'a C) -> InTransaction<'a, C> {
        InTransaction {
            publish: self,
            client,
            aggregate: None,
        }
    }
}

/// A send on its way into the outbox; `.await` it. See
/// [`OutboxExt::in_transaction`].
#[must_use = "nothing is written until it is awaited"]
pub struct InTransaction<'a, C> {
    publish: Publish<'a>,
    client: &'a C,
    aggregate: Option<String>,
}

impl<C> std::fmt::Debug for InTransaction<'_, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InTransaction")
            .field("publish", &self.publish)
            .field("aggregate", &self.aggregate)
            .finish_non_exhaustive()
    }
}

impl<'a, C: GenericClient + Sync> InTransaction<'a, C> {
    /// The aggregate (an order, an account) the message belongs to: the
    /// messages of one aggregate are published in the order their
    /// transactions committed, whatever the number of relays.
    ///
    /// Writing takes a lock on the aggregate (`pg_advisory_xact_lock`)
    /// until the transaction ends, so that two transactions writing for
    /// the same aggregate take turns: the second waits for the first to
    /// commit or roll back. Messages without an aggregate are published
    /// as soon as possible, concurrently.
    pub fn aggregate(mut self, aggregate: impl Into<String>) -> Self {
        self.aggregate = Some(aggregate.into());
        self
    }

    async fn write(self) -> Result<String> {
        let columns = Columns::new(self.publish.into_outgoing()?, self.aggregate);
        let statement = match columns.aggregate() {
            Some(_) => INSERT_IN_TURN,
            None => INSERT,
        };
        self.client
            .execute_typed(statement, &columns.params())
            .await?;
        Ok(columns.message_id().to_owned())
    }
}

impl<'a, C: GenericClient + Sync> IntoFuture for InTransaction<'a, C> {
    type Output = Result<String>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<String>> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.write())
    }
}

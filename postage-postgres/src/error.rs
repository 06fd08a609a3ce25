//! [`Error`]: what can go wrong between a component and its database.

/// An error of the outbox, the inbox or their database.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Neither `POSTAGE_DATABASE_URL` nor `DATABASE_URL` is set.
    #[error("no database configured: set POSTAGE_DATABASE_URL or DATABASE_URL")]
    NotConfigured,
    /// The database address could not be read.
    #[error("invalid database address: {0}")]
    InvalidAddress(String),
    /// PostgreSQL refused a statement, or the connection failed.
    #[error("database: {0}")]
    Database(#[from] tokio_postgres::Error),
    /// No connection could be taken from the pool.
    #[error("database pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// The message could not be prepared (encoded, addressed) or sent.
    #[error(transparent)]
    Postage(#[from] postage::Error),
    /// A statement (or taking a connection) took longer than its limit;
    /// its connection was closed.
    #[error("database: {what} took longer than {after:?}")]
    TimedOut {
        /// What was waited for.
        what: &'static str,
        /// The limit.
        after: std::time::Duration,
    },
    /// A row of the outbox does not hold a message this version can read.
    #[error("outbox row {id}: {reason}")]
    InvalidRow {
        /// The row's id.
        id: i64,
        /// What is wrong with it.
        reason: String,
    },
    /// [`Tx::current`](crate::Tx::current) outside a handler under an
    /// [`Inbox`](crate::Inbox).
    #[error("no inbox transaction: the handler does not run under an Inbox layer")]
    NoTransaction,
}

/// A result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

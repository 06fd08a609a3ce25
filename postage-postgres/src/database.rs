//! [`Database`]: a pool of PostgreSQL connections and its configuration,
//! and the migrations of Postage's tables.

use std::str::FromStr;

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use crate::error::{Error, Result};

/// The migrations, in order: (version, SQL).
const MIGRATIONS: &[(i32, &str)] = &[(1, include_str!("../migrations/0001_outbox_inbox.sql"))];

/// A pool of connections to one PostgreSQL database: what the outbox
/// relay and the inbox use. Cheap to clone (clones share the pool).
///
/// Postage's tables live in the first schema of the connection's
/// `search_path` (`public` unless the address sets
/// `options=-csearch_path=...`).
#[derive(Clone)]
pub struct Database {
    pool: Pool,
    config: tokio_postgres::Config,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The configuration may hold a password: only where it points.
        f.debug_struct("Database")
            .field("hosts", &self.config.get_hosts())
            .field("dbname", &self.config.get_dbname())
            .field("pool", &self.pool.status())
            .finish()
    }
}

impl Database {
    /// The database at `POSTAGE_DATABASE_URL`, or else at `DATABASE_URL`
    /// (`postgres://user@host:port/db` or `host=... dbname=...`).
    ///
    /// # Errors
    ///
    /// [`Error::NotConfigured`] when neither is set,
    /// [`Error::InvalidAddress`] when the address cannot be read.
    pub fn from_env() -> Result<Self> {
        let url = ["POSTAGE_DATABASE_URL", "DATABASE_URL"]
            .into_iter()
            .find_map(|name| std::env::var(name).ok().filter(|url| !url.is_empty()))
            .ok_or(Error::NotConfigured)?;
        Self::new(&url)
    }

    /// The database at `url`, with a pool of 16 connections. Connects
    /// on first use.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidAddress`] when the address cannot be read.
    pub fn new(url: &str) -> Result<Self> {
        let config = tokio_postgres::Config::from_str(url)
            .map_err(|error| Error::InvalidAddress(error.to_string()))?;
        Self::with_config(config, 16)
    }

    /// The database `config` points at, with a pool of `size`
    /// connections. Connecting, and waiting for a connection of the pool,
    /// give up after 10 s (a `connect_timeout` of the configuration's own
    /// wins); so does each statement of the relay and the inbox.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidAddress`] when the pool cannot be built for it.
    pub fn with_config(mut config: tokio_postgres::Config, size: usize) -> Result<Self> {
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(STATEMENT_LIMIT);
        }
        // A connection goes back to the pool as it is: the inbox closes
        // one whose transaction it could not end (see `inbox::Tx`).
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        // Every wait for a connection is bounded.
        let pool = Pool::builder(manager)
            .max_size(size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(STATEMENT_LIMIT))
            .create_timeout(Some(STATEMENT_LIMIT))
            .recycle_timeout(Some(STATEMENT_LIMIT))
            .build()
            .map_err(|error| Error::InvalidAddress(error.to_string()))?;
        Ok(Database { pool, config })
    }

    /// The pool, for the application's own queries and transactions.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The configuration connections are made with.
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// Creates or updates Postage's tables (`postage_outbox`,
    /// `postage_inbox`, and `postage_migrations`, which records what ran).
    /// Safe to call from several processes at once: they take turns.
    ///
    /// # Errors
    ///
    /// The database's; [`Error::TimedOut`] after a minute.
    pub async fn migrate(&self) -> Result<()> {
        let client = self.pool.get().await?;
        let migrated = migrate_on(&client).await;
        if migrated.is_err() {
            discard(client);
        }
        migrated
    }
}

/// How long one statement (or taking a connection from the pool) may
/// take: past it, the work gives up and closes its connection.
pub(crate) const STATEMENT_LIMIT: Duration = Duration::from_secs(10);

/// How long the migrations (waiting for another process's included), or
/// a deletion of old rows, may take.
const MIGRATION_LIMIT: Duration = Duration::from_secs(60);

impl Database {
    /// Runs `delete` (a `DELETE` whose `$1` is an age in seconds) for
    /// rows older than `age`: how the relay and the inbox clean up.
    pub(crate) async fn delete_older(&self, delete: &str, age: Duration) -> Result<u64> {
        let client = self.pool.get().await?;
        let deleted = limited(
            "deleting old rows",
            MIGRATION_LIMIT,
            client.execute(delete, &[&age.as_secs_f64()]),
        )
        .await;
        if deleted.is_err() {
            discard(client);
        }
        deleted
    }
}

/// `work`, given up after `limit` as [`Error::TimedOut`].
pub(crate) async fn limited<T, E: Into<Error>>(
    what: &'static str,
    limit: Duration,
    work: impl Future<Output = std::result::Result<T, E>>,
) -> Result<T> {
    match tokio::time::timeout(limit, work).await {
        Ok(done) => done.map_err(Into::into),
        Err(_) => Err(Error::TimedOut { what, after: limit }),
    }
}

/// Closes a connection instead of giving it back to the pool: after a
/// failure or a limit, it may hold a transaction or a statement in
/// progress.
pub(crate) fn discard(client: Object) {
    drop(Object::take(client));
}

async fn migrate_on(client: &tokio_postgres::Client) -> Result<()> {
    let run =
        |sql: &'static str| limited("a migration", MIGRATION_LIMIT, client.batch_execute(sql));
    run("BEGIN;
         SELECT pg_advisory_xact_lock(hashtext('postage_migrations'));
         CREATE TABLE IF NOT EXISTS postage_migrations (
             version    integer     PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         );")
    .await?;
    let applied: i32 = limited(
        "a migration",
        MIGRATION_LIMIT,
        client.query_one(
            "SELECT coalesce(max(version), 0) FROM postage_migrations",
            &[],
        ),
    )
    .await?
    .try_get(0)?;
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > applied) {
        tracing::info!(version, "applying Postage's database migration");
        run(sql).await?;
        limited(
            "a migration",
            MIGRATION_LIMIT,
            client.execute(
                "INSERT INTO postage_migrations (version) VALUES ($1)",
                &[version],
            ),
        )
        .await?;
    }
    run("COMMIT").await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_that_cannot_be_read_is_an_error() {
        assert!(matches!(
            Database::new("postgres://host:notaport/db"),
            Err(Error::InvalidAddress(_))
        ));
    }

    #[test]
    fn the_migrations_are_numbered_in_order() {
        let versions: Vec<i32> = MIGRATIONS.iter().map(|(v, _)| *v).collect();
        assert_eq!(versions, (1..=MIGRATIONS.len() as i32).collect::<Vec<_>>());
    }
}

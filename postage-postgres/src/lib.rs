//! Exactly-once effects for Postage components with PostgreSQL: a
//! transactional outbox and an idempotent inbox.
//!
//! - **Outbox.** A send written with
//!   [`in_transaction`](OutboxExt::in_transaction) goes into the
//!   `postage_outbox` table inside the application's own transaction:
//!   the message exists if and only if the transaction commits. A
//!   [`Relay`] publishes it with publisher confirms and records it sent.
//! - **Inbox.** A processor with the [`Inbox`] layer runs each message's
//!   handlers inside a transaction that also records the message's id
//!   (its AMQP `message_id`); a message recorded already is acknowledged
//!   without running them, and the record and the handlers' effects commit
//!   together before the acknowledgement.
//!
//! Together: every committed message has its effect exactly once, through
//! crashes of the application, the relay, the consumer, PostgreSQL or the
//! broker (at-least-once delivery, deduplicated where the effect happens).
//!
//! ```no_run
//! use postage::prelude::*;
//! use postage_postgres::{Database, Inbox, OutboxExt, Relay, Tx};
//!
//! const ORDERS: Exchange = Exchange::direct("orders");
//!
//! struct Shipping;
//!
//! #[processor]
//! impl Shipping {
//!     #[handler("command", "ship")]
//!     async fn ship(&self, Params(order): Params<i64>) -> Result<(), postage_postgres::Error> {
//!         // Recorded with the message's id, in one transaction.
//!         Tx::current()?
//!             .execute("INSERT INTO shipments (order_id) VALUES ($1)", &[&order])
//!             .await?;
//!         Ok(())
//!     }
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let database = Database::from_env()?; // POSTAGE_DATABASE_URL or DATABASE_URL
//! database.migrate().await?;
//! let connection = Connection::from_env().await?;
//!
//! // The sender: the order and its message commit together.
//! let producer = Producer::builder()
//!     .ek(ORDERS, "ship")
//!     .confirms(true)
//!     .connect(&connection)
//!     .await?;
//! let mut client = database.pool().get().await?;
//! let tx = client.transaction().await?;
//! tx.execute("INSERT INTO orders (id) VALUES (42)", &[]).await?;
//! producer
//!     .command("ship", 42)
//!     .in_transaction(&*tx)
//!     .aggregate("order-42")
//!     .await?;
//! tx.commit().await?;
//!
//! // The relay publishes what was committed.
//! let relay = Relay::builder(database.clone(), producer).spawn().await?;
//!
//! // The receiver: each message shipped once.
//! let processor = Processor::builder(Shipping)
//!     .bind(ORDERS, [("shipping", "ship")])
//!     .layer(Inbox::new(&database))
//!     .connect(&connection)
//!     .await?;
//! processor.run().await?;
//! relay.stop().await;
//! # Ok(()) }
//! ```
//!
//! The tables are created by [`Database::migrate`] in the first schema of
//! the connection's `search_path`; the README's "Exactly-once effects
//! with PostgreSQL" describes them. PostgreSQL 14 or newer.

mod database;
mod error;
pub mod inbox;
pub mod metrics;
pub mod outbox;

pub use database::Database;
pub use error::{Error, Result};
pub use inbox::{Inbox, MissingId, Tx};
pub use outbox::{OutboxExt, Relay, Retention};

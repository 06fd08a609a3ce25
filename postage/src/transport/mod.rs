//! The seam between the runtime and a broker.
//!
//! Producers, consumers, RPC calls and processors speak to the broker only
//! through the types of this module; each is an enum of backends, matched
//! once per operation (no boxed future, no dynamic call per message):
//!
//! | type | what it does |
//! |---|---|
//! | [`Connection`] | connect, open channels, close; recovery notices through its `Link` |
//! | `Channel` | declare exchanges and queues, bind, prefetch, consume, cancel, publish with or without confirms, wait for a consumer's recovery |
//! | `RawConsumer` | a stream of `RawDelivery`s, or an `Interruption` |
//! | `RawDelivery` | body, routing, properties, and ack / reject |
//! | `OutgoingProperties` | the properties of a published message |
//! | `Record` | what a connection declared, declared again after a reconnection |
//!
//! Two backends: AMQP (`amqp`: the only code of the crate that names
//! the AMQP client library) and, with the `testing` feature, the
//! in-memory broker (`memory`). Each adds a variant to each enum; nothing
//! above this module knows which one runs.

mod amqp;
mod channel;
mod connection;
mod delivery;
mod link;
#[cfg(feature = "testing")]
pub(crate) mod memory;
mod properties;
mod record;

pub(crate) use channel::Channel;
pub use connection::Connection;
pub(crate) use connection::Role;
pub(crate) use delivery::{ConsumerId, Interruption, RawConsumer, RawDelivery};
pub(crate) use link::Link;
pub(crate) use properties::new_message_id;
pub use properties::{DEADLINE_HEADER, Headers};
pub(crate) use properties::{Declared, OutgoingProperties};

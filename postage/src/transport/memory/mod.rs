//! The in-memory backend: a broker in the test process that routes,
//! queues, delivers and dead-letters as RabbitMQ does (feature
//! `testing`). Postage's own tests run the same conformance suite on it
//! and on RabbitMQ.
//!
//! | file | holds |
//! |---|---|
//! | `broker` | `MemoryBroker`: connections, faults, inspection; the lock on the state |
//! | `state` | the state: exchanges, queues, channels; declarations |
//! | `refusal` | RabbitMQ's refusals: reply codes and texts |
//! | `flow` | routing, queueing, delivery within prefetch, settlement, expiry |
//! | `dead_letter` | dead-lettering with `x-death` |
//! | `routing` | topic patterns and headers matching |
//! | `session` | a connection, attached again after the broker dropped it |
//! | `channel` | a channel, opened again with its consumers |
//! | `delivery` | deliveries, consumers, interruptions |

mod broker;
mod channel;
mod dead_letter;
mod delivery;
mod flow;
mod refusal;
mod routing;
mod session;
mod state;

pub(crate) use broker::Broker;
pub use broker::{BindingInfo, MemoryBroker, QueueInfo};
pub(crate) use channel::Channel;
pub(crate) use delivery::{Consumer, ConsumerId, Delivery, Interruption};
pub(crate) use session::{Connection, ENDPOINT};
pub use state::DeadLetter;

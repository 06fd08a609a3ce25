//! Exchanges, queues and bindings as values: what a component declares on
//! the broker. A leaf: it names nothing else of the crate.
//!
//! - [`Exchange`] and [`ExchangeKind`]: a declaration with Python
//!   Postage's defaults (direct, durable);
//! - [`Queue`]: a queue declaration (named, server-named, exclusive,
//!   durable, with arguments);
//! - [`Binding`]: one exchange and the (queue, key) pairs bound to it;
//! - `Target`: where a send goes (the producer's pairs, its first
//!   exchange with another key, or other pairs).

mod binding;
mod exchange;
mod queue;
mod target;

pub use binding::Binding;
pub use exchange::{Exchange, ExchangeKind};
pub use queue::Queue;
pub(crate) use target::Target;

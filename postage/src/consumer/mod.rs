//! Consumers: queues bound to exchanges, delivering decoded messages.
//!
//! | file | holds |
//! |---|---|
//! | `builder` | [`ConsumerBuilder`], [`DEFAULT_PREFETCH`], [`DEFAULT_MAX_BODY_SIZE`] |
//! | `handle` | [`Consumer`], [`ConsumerHandle`], [`Health`] |
//! | `delivery` | [`Delivery`]: a decoded message and its acknowledgement |
//! | `stream` | each queue's stream of deliveries, and all of them in turn |
//! | `watch` | the watchdog: health from progress (stalled, standing by), [`DEFAULT_WATCHDOG_PERIOD`] |
//!
//! Queues and bindings are values of the [`topology`](crate::topology)
//! module, re-exported here.

mod builder;
mod delivery;
mod handle;
mod stream;
mod watch;

pub use crate::topology::{Binding, Queue};
pub use builder::{ConsumerBuilder, DEFAULT_MAX_BODY_SIZE, DEFAULT_PREFETCH};
pub use delivery::Delivery;
pub(crate) use handle::Released;
pub use handle::{Consumer, ConsumerHandle, Health};
pub use watch::DEFAULT_WATCHDOG_PERIOD;

//! Delayed sends: [`Publish::send_after`](super::Publish::send_after) and
//! [`Publish::send_at`](super::Publish::send_at), without a broker plugin.
//!
//! The broker holds a delayed message in **levels**: level `n` is a
//! durable headers exchange and a durable queue whose messages all live
//! 2^n seconds (`x-message-ttl` on the queue, so they expire in the order
//! they came, which is their due order) and are then dead-lettered to the
//! level below. A delay, rounded up to the next whole second, is the sum
//! of the levels of its set bits: the message enters the level of its
//! highest bit, and each level waits or skips by a header of its bit.
//! After level 0 comes the **gate**, where a cancellation binds a queue
//! that drops the cancelled send's messages; what the gate does not take
//! goes to its alternate exchange, which routes each message to the
//! exchange it was sent to, with its routing key.
//!
//! | file | holds |
//! |---|---|
//! | `plan` | the arithmetic: seconds, levels, bits |
//! | `topology` | the names and declarations of the levels, the gate and the delivery |
//! | `send` | [`DelayedPublish`], [`Scheduled`], cancelling by id |

mod plan;
mod send;
mod topology;

pub(super) use send::Due;
pub use send::{DelayedPublish, Scheduled};
pub(crate) use topology::{DEFAULT_PREFIX, Delays};
pub use topology::{DELAY_DUE_HEADER, DELAY_EXCHANGE_HEADER, DELAY_ID_HEADER};

/// The longest delay of a delayed send: 2^22 − 1 seconds (about 48.5
/// days).
pub const MAX_DELAY: std::time::Duration = plan::MAX_DELAY;

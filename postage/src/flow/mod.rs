//! Flow: how much work a processor takes, and in what order.
//!
//! - [`OrderKey`]: the key whose messages keep their order while a
//!   processor runs several at once
//!   (`ProcessorBuilder::ordered_by`);
//!   across processes, queues with a single active consumer
//!   ([`Queue::single_active_consumer`](crate::Queue::single_active_consumer)).
//! - [`KillSwitch`]: consumption paused for a cool-down when too many
//!   messages fail.
//! - Pause and resume: [`ConsumerHandle::pause`](crate::consumer::ConsumerHandle::pause)
//!   and `postage pause` / `postage resume`.
//!
//! | file | holds |
//! |---|---|
//! | `order` | [`OrderKey`] and the lane of a delivery |
//! | `kill_switch` | [`KillSwitch`], and its counts at work |
//! | `members` | the workers of a partition group: who is there, who consumes which partitions |
//! | `partitions` | [`Partitions`]: partition queues and the key's partition |

mod kill_switch;
mod members;
mod order;
mod partitions;

pub(crate) use kill_switch::Breaker;
pub use kill_switch::KillSwitch;
pub(crate) use members::Membership;
pub use order::OrderKey;
pub use partitions::{PARTITION_WATCHDOG_PERIOD, Partitions, routing_key};

//! The AMQP backend on lapin: the only code of the crate that names lapin.
//!
//! | file | holds |
//! |---|---|
//! | `connect` | opening a connection (lapin's recovery on) and its channels |
//! | `watch` | following the connection's state into its `Link`; stalls |
//! | `channel` | declarations, consumers, publishing through a lost connection |
//! | `delivery` | deliveries, consumer streams, interruptions |
//! | `convert` | arguments as field tables, lapin's errors as ours |

mod channel;
mod connect;
mod convert;
mod delivery;
mod watch;

pub(crate) use channel::Channel;
pub(crate) use connect::Connection;
pub(crate) use delivery::{Consumer, Delivery, Interruption};

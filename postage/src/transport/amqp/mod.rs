//! The AMQP backend on lapin: the only code of the crate that names lapin.
//!
//! lapin's own recovery is off: Postage recovers. A lost connection is
//! replaced by a new one (to the first of the configured addresses that
//! answers), what was declared through it is declared again from its
//! record, every channel is opened again with its confirms, prefetch and
//! consumers, and only then do sends and consumers resume; a send whose
//! confirmation was lost with the connection is sent again.
//!
//! | file | holds |
//! |---|---|
//! | `connect` | opening one lapin connection, the addresses in turn |
//! | `session` | the connection Postage keeps up: the lapin connection now, its channels, its record |
//! | `recovery` | replacing a lost connection; stalls |
//! | `channel` | a channel that is opened again after a loss: declarations, consumers, publishing |
//! | `declare` | declarations on a lapin channel (used by channels and by recovery) |
//! | `topology` | declarations through a recovering channel, recorded for recovery |
//! | `delivery` | deliveries, consumers across channel replacements, interruptions |
//! | `convert` | arguments as field tables, lapin's errors as ours |

mod channel;
mod connect;
mod convert;
mod declare;
mod delivery;
mod recovery;
mod session;
mod topology;

pub(crate) use channel::Channel;
pub(crate) use delivery::{Consumer, ConsumerId, Delivery, Interruption};
pub(crate) use session::Connection;

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
//! | `connection` | a connection as two sessions: one consumes, one publishes (a resource alarm blocks only the second) |
//! | `connect` | opening one lapin connection, the addresses in turn |
//! | `session` | one AMQP connection Postage keeps up: the lapin connection now, its channels, its record |
//! | `recovery` | replacing a lost connection; stalls |
//! | `channel` | a channel opened again after a loss, alone after the broker closed it, or replaced when it stops making progress |
//! | `consume` | consumers: started, cancelled, resumed after an interruption (a queue deleted from outside declared again) |
//! | `publish` | publishing within the publish time limit: held while blocked, sent again after a lost confirmation or a nack |
//! | `declare` | declarations on a lapin channel (used by channels and by recovery) |
//! | `topology` | declarations through a recovering channel, recorded for recovery |
//! | `delivery` | deliveries, consumers across channel replacements, interruptions |
//! | `convert` | arguments as field tables, lapin's errors as ours |

mod channel;
mod connect;
mod connection;
mod consume;
mod convert;
mod declare;
mod delivery;
mod publish;
mod recovery;
mod session;
mod topology;

pub(crate) use channel::Channel;
pub(crate) use connection::Connection;
pub(crate) use delivery::{Consumer, ConsumerId, Delivery, Interruption};

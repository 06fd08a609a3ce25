//! The idempotent inbox: a processor layer that runs each message's
//! handlers inside a database transaction that also records the
//! message's id, so that a message handled once is never handled again.

mod layer;
mod tx;

pub use layer::{Inbox, InboxService, MissingId};
pub use tx::Tx;

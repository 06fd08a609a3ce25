//! The transactional outbox: sends written into `postage_outbox` inside
//! the application's transaction ([`OutboxExt::in_transaction`]), and the
//! [`Relay`] that publishes them once the transaction committed.

mod listen;
mod relay;
mod row;
mod write;

pub use relay::{Relay, RelayBuilder, Retention};
pub use write::{InTransaction, OutboxExt};

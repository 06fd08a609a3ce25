//! [`Context`]: everything a context handler can reach.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use super::{Control, Reply};
use crate::message::Message;

/// Everything a context handler can reach.
pub struct Context<P> {
    /// The processor's handler object.
    pub processor: Arc<P>,
    /// The incoming message.
    pub message: Message,
    /// The reply, for `rpc` category messages.
    pub reply: Option<Reply>,
    /// Stops the processor.
    pub control: Control,
    /// The queue the message came from.
    pub queue: String,
    /// Its routing key.
    pub routing_key: String,
    /// Whether the broker delivered it before.
    pub redelivered: bool,
    pub(super) deadline: Option<Instant>,
}

impl<P> Context<P> {
    /// When the caller of an RPC request stops waiting for its reply, if
    /// it said (see [`Reply::deadline`]); `None` for other messages.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }
}

impl<P> fmt::Debug for Context<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("message", &self.message)
            .field("queue", &self.queue)
            .field("routing_key", &self.routing_key)
            .finish_non_exhaustive()
    }
}

//! Bindings: one exchange and the (queue, routing key) pairs bound to it.

use super::{Exchange, Queue};

/// One exchange and the (queue, routing key) pairs bound to it: Python's
/// `eqk` entry `(Exchange, [(queue, key), ...])`.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    /// The exchange.
    pub exchange: Exchange,
    /// The queues bound to it, each with its key.
    pub queues: Vec<(Queue, String)>,
}

impl Binding {
    /// A binding of these (queue, key) pairs to `exchange`.
    pub fn new<Q: Into<Queue>, K: Into<String>>(
        exchange: Exchange,
        queues: impl IntoIterator<Item = (Q, K)>,
    ) -> Self {
        Binding {
            exchange,
            queues: queues
                .into_iter()
                .map(|(q, k)| (q.into(), k.into()))
                .collect(),
        }
    }
}

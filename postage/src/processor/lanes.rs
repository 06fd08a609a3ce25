//! Keyed lanes: with [`ProcessorBuilder::ordered_by`], the messages of one
//! key are handled one at a time, in the order delivered, while other keys
//! run at once on other lanes.
//!
//! [`ProcessorBuilder::ordered_by`]: super::ProcessorBuilder::ordered_by

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::Handlers;
use super::dispatch::Core;
use super::stack::Dispatch;
use crate::consumer::Delivery;

/// What keeps the order of a processor's messages when it handles
/// several at once ([`ProcessorBuilder::ordered_by`]): messages with the
/// same key never overlap and are handled in the order the queue
/// delivered them.
///
/// A message without the key (a header or a parameter it lacks) has the
/// empty key: such messages keep their order among themselves.
///
/// [`ProcessorBuilder::ordered_by`]: super::ProcessorBuilder::ordered_by
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OrderKey {
    /// The routing key it was published with.
    RoutingKey,
    /// A header's value (a string header's text, any other value as
    /// JSON).
    Header(String),
    /// A field of the message's `parameters` (a string's text, any other
    /// value as JSON): `OrderKey::parameter("account")`.
    Parameter(String),
}

impl OrderKey {
    /// The value of header `name`.
    pub fn header(name: impl Into<String>) -> Self {
        OrderKey::Header(name.into())
    }

    /// The value of field `name` of the message's parameters.
    pub fn parameter(name: impl Into<String>) -> Self {
        OrderKey::Parameter(name.into())
    }

    /// The lane of `delivery` among `lanes`.
    fn lane(&self, delivery: &Delivery, lanes: usize) -> usize {
        let mut hasher = DefaultHasher::new();
        match self {
            OrderKey::RoutingKey => delivery.routing_key().hash(&mut hasher),
            OrderKey::Header(name) => match delivery.header_text(name) {
                Some(text) => text.hash(&mut hasher),
                None => delivery
                    .headers()
                    .get(name)
                    .map(Value::to_string)
                    .unwrap_or_default()
                    .hash(&mut hasher),
            },
            OrderKey::Parameter(name) => {
                let field = delivery
                    .message()
                    .ok()
                    .and_then(|message| message.content.parameters())
                    .and_then(|parameters| parameters.get(name));
                match field {
                    Some(Value::String(text)) => text.hash(&mut hasher),
                    Some(other) => other.to_string().hash(&mut hasher),
                    None => "".hash(&mut hasher),
                }
            }
        }
        // Lanes are few: the remainder fits.
        usize::try_from(hasher.finish() % lanes as u64).unwrap_or(0)
    }
}

/// A processor's lanes, each a task that handles its deliveries one at a
/// time.
pub(super) struct Lanes {
    key: OrderKey,
    senders: Vec<mpsc::UnboundedSender<Delivery>>,
    /// Set when the processor stops: a lane finishes the delivery it is
    /// handling and leaves the rest to the broker (redelivered, in order,
    /// when the channel closes).
    stopping: Arc<AtomicBool>,
}

impl Lanes {
    /// `count` lanes, their tasks in `running`. Unbounded: the prefetch
    /// bounds what the broker hands over unacknowledged.
    pub(super) fn start<P: Handlers, D: Dispatch<P>>(
        key: OrderKey,
        count: usize,
        core: &Arc<Core<P>>,
        stack: &D,
        running: &mut JoinSet<()>,
    ) -> Self {
        let stopping = Arc::new(AtomicBool::new(false));
        let senders = (0..count)
            .map(|_| {
                let (sender, mut lane) = mpsc::unbounded_channel::<Delivery>();
                let (core, stack, stopping) = (core.clone(), stack.clone(), stopping.clone());
                running.spawn(async move {
                    while let Some(delivery) = lane.recv().await {
                        if stopping.load(Ordering::Acquire) {
                            break;
                        }
                        core.process(&stack, delivery).await;
                    }
                });
                sender
            })
            .collect();
        Lanes {
            key,
            senders,
            stopping,
        }
    }

    /// Hands `delivery` to its key's lane; `false` when the lane is gone
    /// (its task ended: the processor is stopping).
    pub(super) fn send(&self, delivery: Delivery) -> bool {
        let lane = self.key.lane(&delivery, self.senders.len());
        self.senders
            .get(lane)
            .is_some_and(|sender| sender.send(delivery).is_ok())
    }

    /// Stops the lanes after the deliveries they are handling.
    pub(super) fn stop(self) {
        self.stopping.store(true, Ordering::Release);
    }
}

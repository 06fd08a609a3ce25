//! Keyed lanes at work: with [`ProcessorBuilder::ordered_by`], the
//! messages of one key are handled one at a time, in the order delivered,
//! while other keys run at once on other lanes.
//!
//! [`ProcessorBuilder::ordered_by`]: super::ProcessorBuilder::ordered_by

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::Handlers;
use super::dispatch::Core;
use super::stack::Dispatch;
use crate::consumer::Delivery;
use crate::flow::OrderKey;

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

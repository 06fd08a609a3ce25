//! The consumer's watchdog: health derived from progress, not from the
//! state of a connection alone.
//!
//! Each queue counts what it delivered and what is still in hand (handed
//! out, not yet settled). Every period, a queue that delivered nothing
//! while it had room for more (fewer in hand than the prefetch) is asked
//! how many messages it holds ready (a passive declaration on a channel of
//! the connection's own). Ready messages and nothing delivered for two
//! periods in a row is a stall: the consumer's health says
//! [`Health::Stalled`], an error is logged, and the consumer's channel is
//! replaced (RabbitMQ can leave a channel that receives nothing, see the
//! README's "Broker behaviour Postage works around"). On a queue with a
//! single active consumer that has other consumers, the same signs mean
//! that another consumer is the active one: [`Health::StandingBy`]. The
//! health turns back to [`Health::Consuming`] at the next delivery, or
//! once the queue holds nothing ready.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::Health;
use super::handle::Shared;
use crate::topology::Queue;
use crate::transport::Connection;

/// How often a consumer's watchdog looks at its queues unless
/// [`ConsumerBuilder::watchdog`](super::ConsumerBuilder::watchdog) says
/// otherwise: a stall is found within two periods.
pub const DEFAULT_WATCHDOG_PERIOD: Duration = Duration::from_secs(10);

/// What a consumer knows of one of its queues.
#[derive(Debug)]
pub(crate) struct QueueState {
    name: Box<str>,
    /// Declared with `x-single-active-consumer`.
    pub(super) single_active: bool,
    /// Deleted by the broker when its last consumer goes.
    pub(super) auto_delete: bool,
    /// Deliveries received from it.
    delivered: AtomicU64,
    /// Deliveries handed out and not yet settled (dropped).
    in_hand: AtomicUsize,
    /// Its stream ended: nothing more comes from it.
    pub(super) ended: AtomicBool,
}

impl QueueState {
    pub(super) fn new(name: &str, declaration: &Queue) -> Arc<Self> {
        let single_active = declaration
            .arguments()
            .get("x-single-active-consumer")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false);
        Arc::new(QueueState {
            name: name.into(),
            single_active,
            auto_delete: declaration.is_auto_delete(),
            delivered: AtomicU64::new(0),
            in_hand: AtomicUsize::new(0),
            ended: AtomicBool::new(false),
        })
    }

    pub(super) fn name(&self) -> &str {
        &self.name
    }

    /// Ended, and every delivery it handed out settled.
    pub(super) fn drained(&self) -> bool {
        self.ended.load(Ordering::Acquire) && self.in_hand.load(Ordering::Acquire) == 0
    }
}

/// A delivery's hold on its queue's count of deliveries in hand: counted
/// when the delivery arrives, released when it is dropped.
#[derive(Debug)]
pub(super) struct InHand(Arc<QueueState>);

impl InHand {
    pub(super) fn arrived(queue: &Arc<QueueState>) -> Self {
        queue.delivered.fetch_add(1, Ordering::Relaxed);
        queue.in_hand.fetch_add(1, Ordering::Relaxed);
        InHand(queue.clone())
    }

    pub(super) fn queue(&self) -> &str {
        &self.0.name
    }
}

impl Drop for InHand {
    fn drop(&mut self) {
        self.0.in_hand.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Set while the health says a queue stalled or stands by: the next
/// delivery turns it back to consuming (one relaxed load per delivery
/// otherwise).
#[derive(Debug, Default)]
pub(super) struct Flag(AtomicBool);

impl Flag {
    pub(super) fn raised(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    fn raise(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub(super) fn lower(&self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

/// What one look at a queue found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Deliveries came, or it cannot take more, or it holds nothing.
    Fine,
    /// Ready messages, nothing delivered, room for more: once more makes
    /// a stall.
    Suspect,
    /// Another consumer of a single-active-consumer queue is active.
    StandingBy,
}

/// The verdict on a queue that delivered `delivered` since the last look,
/// holds `in_hand` of a `prefetch` (0: unlimited), and has `ready`
/// messages and `consumers` consumers (`None` when nothing was asked).
fn verdict(
    delivered: u64,
    in_hand: usize,
    prefetch: u16,
    single_active: bool,
    counts: Option<(u32, u32)>,
) -> Verdict {
    if delivered > 0 || (prefetch > 0 && in_hand >= usize::from(prefetch)) {
        return Verdict::Fine;
    }
    match counts {
        Some((0, _)) => Verdict::Fine,
        Some((_, consumers)) if single_active && consumers > 1 => Verdict::StandingBy,
        Some(_) => Verdict::Suspect,
        None => Verdict::Fine,
    }
}

/// Does the look at a queue need the broker's counts?
fn needs_counts(delivered: u64, in_hand: usize, prefetch: u16) -> bool {
    delivered == 0 && (prefetch == 0 || in_hand < usize::from(prefetch))
}

/// Watches the consumer of `shared` every `period` until it is stopped
/// or dropped.
pub(super) async fn watchdog(
    shared: Weak<Shared>,
    connection: Connection,
    period: Duration,
    prefetch: u16,
) {
    let mut seen: HashMap<Box<str>, (u64, u32)> = HashMap::new();
    loop {
        tokio::time::sleep(period).await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if shared.stopped() {
            return;
        }
        if !matches!(
            *shared.health.borrow(),
            Health::Consuming | Health::Stalled(_) | Health::StandingBy
        ) {
            // Recovering or failed: the watchdog has nothing to add.
            seen.clear();
            continue;
        }
        let queues: Vec<Arc<QueueState>> = shared.state().queues.values().cloned().collect();
        let mut standing_by = false;
        let mut stalled = None;
        for queue in &queues {
            let delivered = queue.delivered.load(Ordering::Relaxed);
            let in_hand = queue.in_hand.load(Ordering::Relaxed);
            let (before, strikes) = seen.get(&queue.name).copied().unwrap_or((0, 0));
            let fresh = delivered.saturating_sub(before);
            let counts = if needs_counts(fresh, in_hand, prefetch) {
                match connection.queue_counts(&queue.name).await {
                    Ok(counts) => Some(counts),
                    Err(error) => {
                        tracing::debug!(queue = %queue.name, error = %error.report(), "the watchdog could not count the queue's messages");
                        None
                    }
                }
            } else {
                None
            };
            let strikes = match verdict(fresh, in_hand, prefetch, queue.single_active, counts) {
                Verdict::Fine => 0,
                Verdict::StandingBy => {
                    standing_by = true;
                    0
                }
                Verdict::Suspect if strikes >= 1 => {
                    let ready = counts.map_or(0, |(ready, _)| ready);
                    stalled = Some(format!(
                        "queue {} holds {ready} ready message(s), none delivered for {:?}",
                        queue.name,
                        period * 2
                    ));
                    0
                }
                Verdict::Suspect => strikes + 1,
            };
            seen.insert(queue.name.clone(), (delivered, strikes));
        }
        seen.retain(|name, _| queues.iter().any(|q| q.name == *name));
        if let Some(reason) = stalled {
            tracing::error!(%reason, "the consumer is stalled; replacing its channel");
            shared.stalls.fetch_add(1, Ordering::Relaxed);
            shared.health_gauge.stalled();
            shared.flag.raise();
            shared.set_health(Health::Stalled(reason));
            shared.channel.renew().await;
        } else if standing_by {
            shared.flag.raise();
            shared.set_health(Health::StandingBy);
        } else if shared.flag.raised() {
            // Nothing ready any more, or deliveries flow: consuming again.
            shared.flag.lower();
            shared.set_health(Health::Consuming);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ready_messages_that_could_be_delivered_and_were_not_are_suspect() {
        let counted = |ready, consumers| Some((ready, consumers));
        // Deliveries came.
        assert_eq!(verdict(3, 0, 16, false, counted(10, 1)), Verdict::Fine);
        // No room: the handlers are busy.
        assert_eq!(verdict(0, 16, 16, false, counted(10, 1)), Verdict::Fine);
        assert!(!needs_counts(0, 16, 16));
        // Nothing ready.
        assert_eq!(verdict(0, 0, 16, false, counted(0, 1)), Verdict::Fine);
        // Ready, room, nothing delivered.
        assert!(needs_counts(0, 3, 16));
        assert_eq!(verdict(0, 3, 16, false, counted(5, 1)), Verdict::Suspect);
        // Unlimited prefetch is always room.
        assert_eq!(verdict(0, 500, 0, false, counted(5, 1)), Verdict::Suspect);
        // Another consumer of a single-active-consumer queue is active.
        assert_eq!(verdict(0, 0, 16, true, counted(5, 2)), Verdict::StandingBy);
        assert_eq!(verdict(0, 0, 16, true, counted(5, 1)), Verdict::Suspect);
        // The broker could not be asked.
        assert_eq!(verdict(0, 0, 16, false, None), Verdict::Fine);
    }
}

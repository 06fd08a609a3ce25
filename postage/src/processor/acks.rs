//! Acknowledgements coalesced: a run of deliveries whose handlers have all
//! finished is acknowledged with one `basic.ack(multiple)`, never a
//! delivery whose handlers are still running.
//!
//! Delivery tags count from 1 on each channel, one per delivery, and every
//! delivery on a processor's channel reaches the processor. So when the
//! processor has settled every tag up to N, acknowledging N with
//! `multiple` acknowledges exactly the finished deliveries up to N that
//! are still outstanding. Deliveries that finish out of order (concurrency
//! above 1, or several queues) wait above the first unfinished one; those
//! rejected or requeued are settled one by one at once, after the pending
//! run is acknowledged.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::failure::{Settle, finish};
use crate::consumer::Delivery;

/// How long finished deliveries may wait for their acknowledgement while
/// the stream is busy, unless [`ProcessorBuilder::ack_delay`] says
/// otherwise.
///
/// [`ProcessorBuilder::ack_delay`]: super::ProcessorBuilder::ack_delay
pub const DEFAULT_ACK_DELAY: Duration = Duration::from_millis(20);

/// A processor's acknowledgements.
pub(super) struct Acks {
    /// Off: one `basic.ack` per delivery, at once.
    coalesce: bool,
    /// A run this long is acknowledged at once.
    batch: usize,
    /// A run is acknowledged at the latest this long after its first
    /// delivery finished.
    delay: Duration,
    state: Mutex<State>,
    /// Held while an acknowledgement is sent: frames leave in the order
    /// their runs were taken, so a `multiple` never names a tag an earlier
    /// one acknowledged.
    sending: tokio::sync::Mutex<()>,
    /// A run began: the timer starts.
    begun: Notify,
}

#[derive(Default)]
struct State {
    /// The channel generation the tags below belong to.
    generation: u64,
    /// Every tag up to this one is settled.
    settled_to: u64,
    /// Settled above `settled_to`: the delivery when it still needs its
    /// acknowledgement, with when it finished.
    ahead: BTreeMap<u64, Option<(Kept, Instant)>>,
    /// The outstanding delivery with the highest tag up to `settled_to`:
    /// acknowledging it with `multiple` acknowledges the run.
    pending: Option<Kept>,
    /// How many deliveries the run holds.
    count: usize,
    /// When its first delivery finished.
    since: Option<Instant>,
}

impl Acks {
    /// Acknowledgements in runs of at most `batch` (at least 1), or one by
    /// one when `coalesce` is off.
    pub(super) fn new(coalesce: bool, batch: usize, delay: Duration) -> Self {
        Acks {
            coalesce,
            batch: batch.max(1),
            delay,
            state: Mutex::new(State::default()),
            sending: tokio::sync::Mutex::new(()),
            begun: Notify::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Settles a delivery whose handlers have finished.
    pub(super) async fn settle<K: Into<Kept> + Holds>(&self, delivery: K, settle: Settle) {
        if !self.coalesce {
            return finish(delivery.held(), settle).await;
        }
        match settle {
            Settle::Ack => {
                let full = {
                    let mut state = self.state();
                    let began = state.count == 0;
                    let held = delivery.held();
                    let (generation, tag) = (held.generation(), held.delivery_tag());
                    state.settled(generation, tag, Some(delivery.into()));
                    if began && state.count > 0 {
                        self.begun.notify_one();
                    }
                    state.count >= self.batch
                };
                if full {
                    self.flush().await;
                }
            }
            Settle::DeadLetter | Settle::Requeue => {
                // The run before it first, then this one alone.
                self.flush().await;
                let delivery = delivery.held();
                finish(delivery, settle).await;
                let (generation, tag) = (delivery.generation(), delivery.delivery_tag());
                self.state().settled(generation, tag, None);
            }
        }
    }

    /// Acknowledges the pending run, if there is one.
    pub(super) async fn flush(&self) {
        let _sending = self.sending.lock().await;
        let Some(last) = self.state().take_run() else {
            return;
        };
        if let Err(error) = last.held().ack_up_to().await {
            tracing::warn!(error = %error.report(), "could not acknowledge deliveries; the broker will redeliver them");
        }
    }

    /// Acknowledges everything finished: the pending run, and one by one
    /// those finished out of order above a delivery that never finished.
    /// For the end of a processor's run, and for deliveries that waited
    /// above a gap longer than the delay.
    pub(super) async fn flush_all(&self, older_than: Option<Duration>) {
        self.flush().await;
        let _sending = self.sending.lock().await;
        let stranded = self.state().take_ahead(older_than);
        for delivery in stranded {
            finish(delivery.held(), Settle::Ack).await;
        }
    }

    /// Acknowledges each run at the latest `delay` after it began, and
    /// deliveries waiting above a gap after ten times that; runs until the
    /// processor ends (it is dropped then).
    pub(super) async fn timer(&self) {
        loop {
            let begun = self.begun.notified();
            let since = self.state().since;
            match since {
                Some(since) => tokio::time::sleep_until(since + self.delay).await,
                None => {
                    begun.await;
                    continue;
                }
            }
            self.flush_all(Some(self.delay * 10)).await;
        }
    }
}

impl State {
    /// Records that delivery `tag` of channel `generation` is settled:
    /// by the run's acknowledgement when it comes with its `delivery`.
    fn settled(&mut self, generation: u64, tag: u64, delivery: Option<Kept>) {
        if generation != self.generation {
            if generation < self.generation {
                // Its channel is gone with its connection: the broker
                // delivers it again.
                return;
            }
            *self = State {
                generation,
                ..State::default()
            };
        }
        if tag <= self.settled_to {
            return;
        }
        if tag == self.settled_to + 1 && self.ahead.is_empty() {
            // The next in order, nothing waiting above it (one queue,
            // one delivery at a time): the run grows by it directly.
            self.settled_to = tag;
            if let Some(delivery) = delivery {
                self.pending = Some(delivery);
                self.count += 1;
                self.since.get_or_insert_with(Instant::now);
            }
            return;
        }
        let now = Instant::now();
        self.ahead
            .insert(tag, delivery.map(|delivery| (delivery, now)));
        while let Some(entry) = self.ahead.first_entry() {
            if *entry.key() != self.settled_to + 1 {
                break;
            }
            let (tag, settled) = entry.remove_entry();
            self.settled_to = tag;
            if let Some((delivery, finished)) = settled {
                self.pending = Some(delivery);
                self.count += 1;
                self.since.get_or_insert(finished);
            }
        }
    }

    /// The pending run's last delivery, the run reset.
    fn take_run(&mut self) -> Option<Kept> {
        self.count = 0;
        self.since = None;
        self.pending.take()
    }

    /// The deliveries finished above a gap (for longer than `older_than`,
    /// when given), left settled without an acknowledgement to send.
    fn take_ahead(&mut self, older_than: Option<Duration>) -> Vec<Kept> {
        let now = Instant::now();
        self.ahead
            .values_mut()
            .filter(|settled| match (settled, older_than) {
                (Some((_, finished)), Some(age)) => now.duration_since(*finished) >= age,
                (Some(_), None) => true,
                (None, _) => false,
            })
            .filter_map(|settled| settled.take().map(|(delivery, _)| delivery))
            .collect()
    }
}

/// A delivery kept until its run is acknowledged: as the processor held
/// it, or shared with a layer's `Incoming`.
#[allow(
    clippy::large_enum_variant,
    reason = "boxing the owned one would allocate for every delivery"
)]
pub(super) enum Kept {
    Owned(Delivery),
    Shared(Arc<Delivery>),
}

/// What gives a delivery to acknowledge.
pub(super) trait Holds {
    fn held(&self) -> &Delivery;
}

impl Holds for Delivery {
    fn held(&self) -> &Delivery {
        self
    }
}

impl Holds for Arc<Delivery> {
    fn held(&self) -> &Delivery {
        self
    }
}

impl Holds for Kept {
    fn held(&self) -> &Delivery {
        match self {
            Kept::Owned(delivery) => delivery,
            Kept::Shared(delivery) => delivery,
        }
    }
}

impl From<Delivery> for Kept {
    fn from(delivery: Delivery) -> Self {
        Kept::Owned(delivery)
    }
}

impl From<Arc<Delivery>> for Kept {
    fn from(delivery: Arc<Delivery>) -> Self {
        Kept::Shared(delivery)
    }
}

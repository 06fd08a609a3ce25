//! [`KillSwitch`]: when too many of a processor's recent messages fail,
//! it stops taking more for a cool-down, then resumes and tries again.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::consumer::ConsumerHandle;

/// A processor's kill switch (`ProcessorBuilder::kill_switch`): once
/// at least [`activity`](Self::activity) messages were handled within a
/// [`window`](Self::window) and the share that failed reaches the trip
/// ratio, the processor pauses its consumption for a
/// [`cool_down`](Self::cool_down) (its health says `tripped`, with why),
/// then resumes: the next messages are the probe, and it trips again if
/// they fail as much. A failing dependency (a database down, a service
/// refusing) then costs a few failed messages a cool-down, not every
/// message in the queue sent the way of the failure policy.
///
/// ```
/// use std::time::Duration;
/// use postage::flow::KillSwitch;
///
/// // Trips when half of at least 20 messages within a minute failed;
/// // rests 30 s.
/// let switch = KillSwitch::new(0.5)
///     .activity(20)
///     .window(Duration::from_secs(60))
///     .cool_down(Duration::from_secs(30));
/// assert_eq!(switch.trip_ratio(), 0.5);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct KillSwitch {
    trip_ratio: f64,
    activity: u32,
    window: Duration,
    cool_down: Duration,
}

impl KillSwitch {
    /// Trips when this share of the messages fails (clamped to `0.0..=1.0`);
    /// at least 10 messages within 60 s, a cool-down of 60 s, until said
    /// otherwise.
    pub fn new(trip_ratio: f64) -> Self {
        KillSwitch {
            trip_ratio: if trip_ratio.is_nan() {
                1.0
            } else {
                trip_ratio.clamp(0.0, 1.0)
            },
            activity: 10,
            window: Duration::from_secs(60),
            cool_down: Duration::from_secs(60),
        }
    }

    /// How many messages must have been handled in the window before it
    /// may trip (at least 1).
    #[must_use]
    pub fn activity(mut self, messages: u32) -> Self {
        self.activity = messages.max(1);
        self
    }

    /// How long the counts last before they start again.
    #[must_use]
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// How long the processor rests once tripped.
    #[must_use]
    pub fn cool_down(mut self, cool_down: Duration) -> Self {
        self.cool_down = cool_down;
        self
    }

    /// The share of failures that trips it.
    pub fn trip_ratio(&self) -> f64 {
        self.trip_ratio
    }
}

/// A kill switch at work: the counts of the current window.
pub(crate) struct Breaker {
    switch: KillSwitch,
    counts: Mutex<Counts>,
    tripped: Notify,
}

struct Counts {
    since: Instant,
    handled: u32,
    failed: u32,
    /// Tripped and not yet resumed: outcomes are not counted.
    open: bool,
}

impl Breaker {
    pub(crate) fn new(switch: KillSwitch) -> Self {
        Breaker {
            switch,
            counts: Mutex::new(Counts {
                since: Instant::now(),
                handled: 0,
                failed: 0,
                open: false,
            }),
            tripped: Notify::new(),
        }
    }

    /// Counts one message's outcome; trips when the window's failures
    /// reach the ratio.
    pub(crate) fn record(&self, ok: bool) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if counts.open {
            return;
        }
        if counts.since.elapsed() >= self.switch.window {
            *counts = Counts {
                since: Instant::now(),
                handled: 0,
                failed: 0,
                open: false,
            };
        }
        counts.handled += 1;
        counts.failed += u32::from(!ok);
        if counts.handled >= self.switch.activity
            && f64::from(counts.failed) >= self.switch.trip_ratio * f64::from(counts.handled)
        {
            counts.open = true;
            self.tripped.notify_one();
        }
    }

    /// Pauses `consumer` at each trip for the cool-down, then resumes it
    /// and counts anew; runs until the processor ends (it is aborted
    /// then).
    pub(crate) async fn watch(&self, consumer: ConsumerHandle) {
        loop {
            self.tripped.notified().await;
            let (handled, failed) = {
                let counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
                (counts.handled, counts.failed)
            };
            let cool_down = self.switch.cool_down;
            let reason = format!(
                "kill switch: {failed} of {handled} messages failed; resting {cool_down:?}"
            );
            let paused = match consumer.pause_as(Some(reason.clone())).await {
                Ok(paused) => paused,
                Err(error) => {
                    tracing::error!(error = %error.report(), "the kill switch tripped but cannot pause the consumer");
                    false
                }
            };
            if paused {
                tracing::warn!(%reason, "kill switch tripped: consumption paused");
                tokio::time::sleep(cool_down).await;
                match consumer.resume().await {
                    Ok(_) => tracing::info!("kill switch: consumption resumed, probing"),
                    Err(error) => {
                        tracing::error!(error = %error.report(), "the kill switch could not resume the consumer");
                    }
                }
            }
            // Paused by an operator already, or resumed: count anew.
            let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
            *counts = Counts {
                since: Instant::now(),
                handled: 0,
                failed: 0,
                open: false,
            };
        }
    }
}

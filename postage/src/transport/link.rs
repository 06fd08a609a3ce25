//! What a connection's backend says of its state: up, recovering, stalled,
//! and how many times it came back. Read by channels, consumers and RPC
//! calls, which wait on its notices instead of polling.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;

use crate::error::Error;
use crate::telemetry;

/// The error of `operation` on a connection that was closed.
pub(crate) fn connection_closed(operation: &str) -> Error {
    Error::Amqp {
        operation: operation.to_owned(),
        reply_code: None,
        source: "the connection is closed".into(),
    }
}

/// The error of `operation` that waited the whole recovery timeout for a
/// lost connection to come back.
pub(crate) fn not_recovered(operation: &str, timeout: Duration) -> Error {
    Error::Amqp {
        operation: operation.to_owned(),
        reply_code: None,
        source: format!("the connection did not recover within {timeout:?}").into(),
    }
}

/// The state of a connection, as its backend last saw it.
#[derive(Debug, Default)]
pub(crate) struct Link {
    recovering: AtomicBool,
    stalled: AtomicBool,
    recoveries: AtomicU64,
    /// Wakes whoever waits for the end of a recovery.
    recovered: Notify,
    /// Wakes whoever watches for a stalled recovery.
    stall: Notify,
    /// Wakes whoever waits on something a lost connection never finishes.
    down: Notify,
    /// Why the broker blocks the connection's publishers (a memory or
    /// disk alarm), while it does.
    blocked: Mutex<Option<String>>,
    /// Set when a connection replaced while blocked is not known to be
    /// blocked yet: publishers go ahead, and the first one through says
    /// the block is over (the broker blocks a new connection only once it
    /// publishes).
    unconfirmed_block: AtomicBool,
    /// Wakes publishers held while the connection was blocked.
    unblocked: Notify,
}

impl Link {
    /// Is the connection being recovered?
    pub(crate) fn recovering(&self) -> bool {
        self.recovering.load(Ordering::Relaxed)
    }

    /// How many times the connection was lost and came back.
    pub(crate) fn recoveries(&self) -> u64 {
        self.recoveries.load(Ordering::Relaxed)
    }

    /// Did the recovery of a lost connection stall?
    pub(crate) fn stalled(&self) -> bool {
        self.stalled.load(Ordering::Relaxed)
    }

    /// Resolves when a recovery is found stalled after this call.
    pub(crate) fn stall_notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.stall.notified()
    }

    /// Resolves when a recovery ends after this call.
    pub(crate) fn recovered_notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.recovered.notified()
    }

    /// Resolves when the connection is found lost after this call.
    pub(crate) fn down_notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.down.notified()
    }

    /// Why the broker blocks the connection's publishers, while it does.
    pub(crate) fn blocked(&self) -> Option<String> {
        self.blocked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Returns once the broker does not block the connection (at once
    /// when it does not).
    pub(crate) async fn unblocked(&self) {
        loop {
            let unblocked = self.unblocked.notified();
            if self.unconfirmed_block.load(Ordering::Relaxed) || self.blocked().is_none() {
                return;
            }
            unblocked.await;
        }
    }

    /// The broker blocked (`Some(reason)`) or unblocked the connection's
    /// publishers.
    pub(crate) fn set_blocked(&self, reason: Option<String>) {
        let blocked = reason.is_some();
        let was = std::mem::replace(
            &mut *self.blocked.lock().unwrap_or_else(PoisonError::into_inner),
            reason,
        );
        self.unconfirmed_block.store(false, Ordering::Relaxed);
        if was.is_some() != blocked {
            telemetry::connection_blocked(blocked);
        }
        if !blocked {
            self.unblocked.notify_waiters();
        }
    }

    /// A publish went through: a block left over from a replaced
    /// connection is over.
    pub(crate) fn published(&self) {
        if self.unconfirmed_block.load(Ordering::Relaxed) {
            self.set_blocked(None);
        }
    }

    /// Returns when a recovery ends, or after 50 ms at most (a recovery
    /// that ended just before the call is seen by the caller's next look at
    /// the connection's state).
    pub(crate) async fn recovered_or_tick(&self) {
        tokio::select! {
            () = self.recovered.notified() => {}
            () = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }

    /// Records whether the connection is up; true when that changes it
    /// from up to down.
    pub(super) fn went_down(&self, up: bool) -> bool {
        let was_recovering = self.recovering.swap(!up, Ordering::Relaxed);
        let lost = !up && !was_recovering;
        if lost {
            self.down.notify_waiters();
        }
        lost
    }

    /// Records the end of a recovery (after [`went_down`](Link::went_down)
    /// said the connection was up again) and wakes the waiters.
    pub(super) fn came_back(&self) {
        self.recoveries.fetch_add(1, Ordering::Relaxed);
        if self.blocked().is_some() {
            // Still blocked as far as anyone knows; the next publish says.
            self.unconfirmed_block.store(true, Ordering::Relaxed);
            self.unblocked.notify_waiters();
        }
        telemetry::connection_recovered();
        self.stalled.store(false, Ordering::Relaxed);
        self.recovered.notify_waiters();
    }

    /// Records that the recovery stalled and wakes the watchers.
    pub(super) fn stall(&self) {
        self.stalled.store(true, Ordering::Relaxed);
        telemetry::connection_stalled();
        self.stall.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_recovery_is_counted_once_and_wakes_its_waiters() {
        let link = Link::default();
        let down = link.down_notified();
        assert!(!link.went_down(true));
        assert!(link.went_down(false));
        tokio::time::timeout(Duration::from_secs(1), down)
            .await
            .unwrap();
        assert!(!link.went_down(false), "still down: no second loss");
        assert!(link.recovering());
        link.stall();
        assert!(link.stalled());
        let waiter = link.recovered_notified();
        let stall = link.stall_notified();
        // Back: the recovery ends, the stall is over.
        assert!(!link.went_down(true));
        link.came_back();
        tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .unwrap();
        assert_eq!(link.recoveries(), 1);
        assert!(!link.stalled() && !link.recovering());
        link.stall();
        tokio::time::timeout(Duration::from_secs(1), stall)
            .await
            .unwrap();
    }
}

//! Stopping a processor: why it ended ([`Stop`]), the [`Control`] that
//! asks it to, and who may send it `quit` / `restart`.

use std::sync::Arc;

use tokio::sync::watch;

use crate::fingerprint::Fingerprint;

/// Why a processor ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// A `quit` command (or [`Control::quit`]).
    Quit,
    /// A `restart` command (or [`Control::restart`]): the owner should
    /// replace the process ([`restart_process`]); the [`Scheduler`] does.
    ///
    /// [`restart_process`]: crate::restart_process
    ///
    /// [`Scheduler`]: crate::Scheduler
    Restart,
    /// A graceful shutdown (signal or [`Control::shutdown`]).
    Shutdown,
    /// The consumer ended: stopped from elsewhere, or lost.
    Ended,
}

/// Stops a running processor from a handler or another task.
#[derive(Debug, Clone)]
pub struct Control {
    tx: Arc<watch::Sender<Option<Stop>>>,
}

impl Control {
    pub(super) fn new() -> Self {
        Control {
            tx: Arc::new(watch::channel(None).0),
        }
    }

    pub(super) fn request(&self, stop: Stop) {
        self.tx.send_if_modified(|current| {
            if current.is_none() {
                *current = Some(stop);
                true
            } else {
                false
            }
        });
    }

    /// Stops consuming; the processor finishes its running handlers and
    /// ends with [`Stop::Quit`].
    pub fn quit(&self) {
        self.request(Stop::Quit);
    }

    /// Like [`quit`](Control::quit), ending with [`Stop::Restart`].
    pub fn restart(&self) {
        self.request(Stop::Restart);
    }

    /// Like [`quit`](Control::quit), ending with [`Stop::Shutdown`].
    pub fn shutdown(&self) {
        self.request(Stop::Shutdown);
    }

    pub(super) async fn stopped(&self) -> Stop {
        let mut rx = self.tx.subscribe();
        loop {
            if let Some(stop) = *rx.borrow_and_update() {
                return stop;
            }
            if rx.changed().await.is_err() {
                return Stop::Shutdown;
            }
        }
    }
}

/// Who may stop a processor with `quit` / `restart`: anyone, or the
/// senders whose fingerprint name is listed.
#[derive(Debug, Clone, Default)]
pub(super) struct ControlSenders(pub(super) Option<Vec<String>>);

impl ControlSenders {
    pub(super) fn allow(&self, sender: &Fingerprint) -> bool {
        match &self.0 {
            None => true,
            Some(allowed) => sender
                .name
                .as_ref()
                .is_some_and(|name| allowed.iter().any(|a| a == name)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_senders_may_stop_a_restricted_processor() {
        let ops = Fingerprint::new("ops", "application");
        let other = Fingerprint::new("intruder", "application");
        let anonymous = Fingerprint::anonymous();
        assert!(ControlSenders(None).allow(&other));
        assert!(ControlSenders(None).allow(&anonymous));
        let restricted = ControlSenders(Some(vec!["ops".into(), "deploy".into()]));
        assert!(restricted.allow(&ops));
        assert!(!restricted.allow(&other));
        assert!(
            !restricted.allow(&anonymous),
            "a sender without a name is refused"
        );
        assert!(!ControlSenders(Some(Vec::new())).allow(&ops));
    }

    #[tokio::test]
    async fn the_first_stop_asked_for_wins() {
        let control = Control::new();
        control.restart();
        control.quit();
        assert_eq!(control.stopped().await, Stop::Restart);
        assert_eq!(control.clone().stopped().await, Stop::Restart);
    }
}

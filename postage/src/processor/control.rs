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

/// Who may send a processor control commands (`quit`, `restart`,
/// `pause`, `resume`): anyone, or the senders whose fingerprint name is
/// listed (`control_senders`), and the broker users listed
/// (`control_users`, read from the AMQP `user_id` the broker checked).
#[derive(Debug, Clone, Default)]
pub(super) struct ControlAccess {
    pub(super) senders: Option<Vec<String>>,
    pub(super) users: Option<Vec<String>>,
}

impl ControlAccess {
    /// `Ok`, or why `sender` (published by broker user `user_id`) may
    /// not.
    pub(super) fn check(&self, sender: &Fingerprint, user_id: Option<&str>) -> Result<(), String> {
        if let Some(users) = &self.users {
            match user_id {
                Some(user) if users.iter().any(|u| u == user) => {}
                Some(user) => return Err(format!("broker user {user:?} is not allowed")),
                None => return Err("no user_id: the broker user is unknown".to_owned()),
            }
        }
        if let Some(senders) = &self.senders {
            let named = sender
                .name
                .as_ref()
                .is_some_and(|name| senders.iter().any(|s| s == name));
            if !named {
                return Err(format!("{sender} is not an allowed sender"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_users_may_stop_a_processor_restricted_to_users() {
        let ops = Fingerprint::new("ops", "application");
        let users = ControlAccess {
            senders: None,
            users: Some(vec!["admin".into()]),
        };
        assert!(users.check(&ops, Some("admin")).is_ok());
        assert!(users.check(&ops, Some("guest")).is_err());
        assert!(users.check(&ops, None).is_err(), "no user_id, no entry");
        let both = ControlAccess {
            senders: Some(vec!["ops".into()]),
            ..users
        };
        assert!(both.check(&ops, Some("admin")).is_ok());
        assert!(
            both.check(&ops, Some("guest")).is_err(),
            "an allowed name from another user"
        );
        let intruder = Fingerprint::new("intruder", "application");
        assert!(both.check(&intruder, Some("admin")).is_err());
    }

    #[test]
    fn only_listed_senders_may_stop_a_restricted_processor() {
        let ops = Fingerprint::new("ops", "application");
        let other = Fingerprint::new("intruder", "application");
        let anonymous = Fingerprint::anonymous();
        assert!(ControlAccess::default().check(&other, None).is_ok());
        assert!(ControlAccess::default().check(&anonymous, None).is_ok());
        let restricted = ControlAccess {
            senders: Some(vec!["ops".into(), "deploy".into()]),
            users: None,
        };
        assert!(restricted.check(&ops, None).is_ok());
        assert!(restricted.check(&other, None).is_err());
        assert!(
            restricted.check(&anonymous, None).is_err(),
            "a sender without a name is refused"
        );
        assert!(
            ControlAccess {
                senders: Some(Vec::new()),
                users: None
            }
            .check(&ops, None)
            .is_err()
        );
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

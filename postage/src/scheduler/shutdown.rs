//! Shutdown notices: [`Shutdown`], handed to tasks, and
//! [`ShutdownHandle`], which begins a shutdown from anywhere.

use tokio::sync::watch;

/// A future that resolves when the scheduler shuts down; handed to tasks
/// started with [`Scheduler::spawn_with_shutdown`](crate::Scheduler::spawn_with_shutdown).
#[derive(Debug, Clone)]
pub struct Shutdown {
    pub(super) rx: watch::Receiver<bool>,
}

impl Shutdown {
    /// Resolves once shutdown has begun.
    pub async fn wait(mut self) {
        // An error means the scheduler is gone: shut down as well.
        let _ = self.rx.wait_for(|down| *down).await;
    }

    /// Has shutdown begun?
    pub fn is_shutting_down(&self) -> bool {
        *self.rx.borrow()
    }
}

/// Starts a graceful shutdown of a running [`Scheduler`](crate::Scheduler) from anywhere.
#[derive(Debug, Clone)]
pub struct ShutdownHandle {
    pub(super) tx: watch::Sender<bool>,
}

impl ShutdownHandle {
    /// Begins the shutdown.
    pub fn shutdown(&self) {
        self.tx.send_replace(true);
    }
}

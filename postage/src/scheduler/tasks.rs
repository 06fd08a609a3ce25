//! [`Scheduler`]: runs processors and other tasks until they have all
//! ended; turns signals into a graceful shutdown and `restart` into a
//! fresh process.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::restart::restart_process;
use super::signals::{Signals, next_signal};
use super::{Shutdown, ShutdownHandle};
use crate::error::{Error, Result};
use crate::processor::{Handlers, Processor, Stop};
use crate::transport::Connection;

/// Runs any number of processors (and other futures) as tokio tasks until
/// all have ended (Python's `MicroScheduler`).
///
/// - SIGINT or SIGTERM begins a graceful shutdown: every processor stops
///   consuming, lets its running handlers finish and acknowledge, and
///   closes its channel; then the connections are closed. Nothing
///   acknowledged is lost; nothing unacknowledged is dropped (the broker
///   redelivers it). A second signal exits the process at once with
///   status 130.
/// - A processor that ends with [`Stop::Quit`] (a `quit` command) shuts
///   the others down gracefully: `quit` stops the component, and `run`
///   returns.
/// - A processor that ends with [`Stop::Restart`] shuts the others down
///   gracefully, then the process replaces itself with a fresh run of the
///   same executable and arguments (same pid).
///
/// See the [`processor`](mod@crate::processor) module for an example.
#[derive(Debug)]
pub struct Scheduler {
    tasks: JoinSet<Result<Stop>>,
    shutdown: watch::Sender<bool>,
    connections: Vec<Connection>,
    signals: bool,
    /// Handlers installed ahead of `run` ([`Scheduler::listen_for_signals`]).
    installed: Option<Signals>,
    shutdown_timeout: Duration,
}

/// How long a graceful shutdown may take unless
/// [`Scheduler::shutdown_timeout`] says otherwise.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

impl Default for Scheduler {
    fn default() -> Self {
        Self::new()
    }
}

impl Scheduler {
    /// An empty scheduler that handles SIGINT and SIGTERM.
    pub fn new() -> Self {
        Scheduler {
            tasks: JoinSet::new(),
            shutdown: watch::channel(false).0,
            connections: Vec::new(),
            signals: true,
            installed: None,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
        }
    }

    /// How long running handlers may take to finish once shutdown begins
    /// (default [`DEFAULT_SHUTDOWN_TIMEOUT`]). Past it the remaining tasks
    /// are aborted: their unacknowledged messages go back to their queues
    /// when the connections close, and [`run`](Scheduler::run) returns
    /// [`Error::ShutdownTimeout`].
    #[must_use]
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Whether the scheduler installs SIGINT / SIGTERM handlers (default
    /// on).
    #[must_use]
    pub fn handle_signals(mut self, enabled: bool) -> Self {
        self.signals = enabled;
        self
    }

    /// Installs the SIGINT / SIGTERM handlers now rather than when
    /// [`run`](Scheduler::run) starts. A component that says it is ready
    /// after this call cannot be killed by a signal that comes before `run`
    /// is polled: the signal waits and begins the graceful shutdown then.
    /// Nothing to do when signals are switched off or already installed.
    pub fn listen_for_signals(&mut self) -> Result<()> {
        if self.signals && self.installed.is_none() {
            self.installed = Some(Signals::new()?);
        }
        Ok(())
    }

    /// Adds a processor; its connection is closed when the scheduler ends.
    pub fn add<P: Handlers>(&mut self, processor: Processor<P>) {
        if !self
            .connections
            .iter()
            .any(|c| c.same_as(processor.connection()))
        {
            self.connections.push(processor.connection().clone());
        }
        let shutdown = self.shutdown_future();
        self.tasks.spawn(processor.run_until(shutdown.wait()));
    }

    /// Adds a future; it is aborted when the processors have shut down.
    pub fn spawn<F>(&mut self, future: F)
    where
        F: Future<Output = Result<()>> + Send + 'static,
    {
        let shutdown = self.shutdown_future();
        self.tasks.spawn(async move {
            tokio::select! {
                result = future => result.map(|()| Stop::Ended),
                () = shutdown.wait() => Ok(Stop::Shutdown),
            }
        });
    }

    /// Adds a future that watches for shutdown itself and ends on its own.
    pub fn spawn_with_shutdown<F, Fut>(&mut self, make: F)
    where
        F: FnOnce(Shutdown) -> Fut,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        let future = make(self.shutdown_future());
        self.tasks
            .spawn(async move { future.await.map(|()| Stop::Ended) });
    }

    /// A handle that begins the shutdown from elsewhere.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            tx: self.shutdown.clone(),
        }
    }

    fn shutdown_future(&self) -> Shutdown {
        Shutdown {
            rx: self.shutdown.subscribe(),
        }
    }

    /// Runs until every task has ended. Returns the first error a task
    /// ended with, after all have ended.
    pub async fn run(mut self) -> Result<()> {
        let mut signals = match self.installed.take() {
            Some(installed) => Some(installed),
            None if self.signals => Some(Signals::new()?),
            None => None,
        };
        let mut restart = false;
        let mut first_error: Option<Error> = None;
        let mut shutdown = self.shutdown.subscribe();
        let mut deadline: Option<Instant> = None;
        loop {
            if deadline.is_none() && *shutdown.borrow_and_update() {
                deadline = Some(Instant::now() + self.shutdown_timeout);
            }
            tokio::select! {
                () = sleep_until(deadline) => {
                    tracing::error!(timeout = ?self.shutdown_timeout, "shutdown took too long; aborting the remaining tasks");
                    self.tasks.abort_all();
                    while self.tasks.join_next().await.is_some() {}
                    first_error.get_or_insert(Error::ShutdownTimeout(self.shutdown_timeout));
                    break;
                }
                _ = shutdown.changed(), if deadline.is_none() => {}
                joined = self.tasks.join_next() => match joined {
                    None => break,
                    Some(Ok(Ok(Stop::Restart))) => {
                        restart = true;
                        self.shutdown.send_replace(true);
                    }
                    Some(Ok(Ok(Stop::Quit))) => {
                        // `quit` is for the component: the others stop too.
                        tracing::info!("a processor quit; shutting the others down gracefully");
                        self.shutdown.send_replace(true);
                    }
                    Some(Ok(Ok(_))) => {}
                    Some(Ok(Err(error))) => {
                        tracing::error!(error = %error.report(), "task ended with an error");
                        first_error.get_or_insert(error);
                    }
                    Some(Err(join_error)) => {
                        tracing::error!(error = %join_error, "task panicked or was aborted");
                    }
                },
                signal = next_signal(&mut signals) => {
                    if *self.shutdown.borrow() {
                        tracing::warn!(signal, "second signal: exiting now");
                        std::process::exit(130);
                    }
                    tracing::info!(signal, "shutting down gracefully");
                    self.shutdown.send_replace(true);
                }
            }
        }
        for connection in &self.connections {
            if let Err(error) = connection.close().await {
                tracing::debug!(error = %error.report(), "closing connection");
            }
        }
        if restart {
            let source = restart_process();
            tracing::error!(error = %source, "restart failed");
            return Err(Error::Io {
                what: "restart the process",
                source,
            });
        }
        first_error.map_or(Ok(()), Err)
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

//! The signals that begin a graceful shutdown: SIGINT and SIGTERM on Unix
//! (Ctrl-C elsewhere).

use crate::error::{Error, Result};

/// The installed signal handlers.
#[cfg(unix)]
pub(super) struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl std::fmt::Debug for Signals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signals(SIGINT, SIGTERM)")
    }
}

#[cfg(unix)]
impl Signals {
    pub(super) fn new() -> Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        let install = |kind| {
            signal(kind).map_err(|source| Error::Io {
                what: "install signal handlers",
                source,
            })
        };
        Ok(Signals {
            interrupt: install(SignalKind::interrupt())?,
            terminate: install(SignalKind::terminate())?,
        })
    }

    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}

/// Ctrl-C, where there are no Unix signals.
#[cfg(not(unix))]
#[derive(Debug)]
pub(super) struct Signals;

#[cfg(not(unix))]
impl Signals {
    pub(super) fn new() -> Result<Self> {
        Ok(Signals)
    }

    async fn recv(&mut self) -> &'static str {
        match tokio::signal::ctrl_c().await {
            Ok(()) => "Ctrl-C",
            Err(source) => {
                tracing::error!(error = %Error::Io { what: "wait for Ctrl-C", source }.report(), "no Ctrl-C handler");
                std::future::pending().await
            }
        }
    }
}

/// The next signal's name; never, when signals are not handled.
pub(super) async fn next_signal(signals: &mut Option<Signals>) -> &'static str {
    match signals {
        Some(signals) => signals.recv().await,
        None => std::future::pending().await,
    }
}

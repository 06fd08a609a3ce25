//! A session: one AMQP connection Postage keeps up, one lapin connection
//! at a time, replaced by the recovery task when it is lost, with the
//! record of what was declared through it and the channels opened on it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::ConfirmSelectOptions;
use tokio::sync::Notify;

use super::channel::{Channel, ChannelShared};
use super::convert::amqp_error;
use super::{connect, recovery};
use crate::config::Config;
use crate::error::Result;
use crate::transport::Link;
use crate::transport::link::{connection_closed, not_recovered};
use crate::transport::record::Record;

/// How long closing a connection waits for the broker's answer.
const CLOSE_LIMIT: Duration = Duration::from_secs(5);

/// An AMQP connection to RabbitMQ that Postage recovers itself.
pub(super) struct Session {
    shared: Arc<Shared>,
}

/// What the connection's handles, its channels and its recovery task
/// share.
pub(super) struct Shared {
    pub(super) config: Config,
    pub(super) link: Arc<Link>,
    state: Mutex<State>,
    /// Wakes the recovery task: someone saw the connection fail.
    pub(super) lost: Arc<Notify>,
    closed: AtomicBool,
    /// The epoch of the current lapin connection. Every attempt to
    /// replace it draws a new one, and the channels opened on a
    /// connection carry its epoch, so that a channel reopened by an
    /// attempt that then failed is known to be dead too.
    epoch: AtomicU64,
    /// Where epochs and channel generations are drawn from: each is
    /// greater than every one drawn before.
    generations: AtomicU64,
}

pub(super) struct State {
    pub(super) lapin: Arc<lapin::Connection>,
    /// The address the connection is on, `host:port`.
    pub(super) endpoint: String,
    /// The channels opened on it, to open again on a new connection.
    pub(super) channels: Vec<Weak<ChannelShared>>,
    /// What was declared through it.
    pub(super) record: Record,
}

impl Session {
    /// Connects to the first address that answers (`first`, when given,
    /// before the others), and starts the task that recovers the
    /// connection when it is lost.
    pub(super) async fn open(
        config: &Config,
        link: &Arc<Link>,
        first: Option<&str>,
    ) -> Result<Self> {
        let prefer = first.map_or(connect::Prefer::None, connect::Prefer::First);
        let (lapin, endpoint) = connect::open(config, prefer).await?;
        tracing::info!(%endpoint, name = %config.client_name(), "connected to RabbitMQ");
        let lapin = Arc::new(lapin);
        let shared = Arc::new(Shared {
            config: config.clone(),
            link: link.clone(),
            state: Mutex::new(State {
                lapin: lapin.clone(),
                endpoint,
                channels: Vec::new(),
                record: Record::default(),
            }),
            lost: Arc::new(Notify::new()),
            closed: AtomicBool::new(false),
            epoch: AtomicU64::new(0),
            generations: AtomicU64::new(0),
        });
        shared.watch(&lapin);
        tokio::spawn(recovery::run(Arc::downgrade(&shared), shared.lost.clone()));
        Ok(Session { shared })
    }

    /// Is the connection up (not closed, not being recovered)?
    pub(super) fn is_connected(&self) -> bool {
        !self.shared.link.recovering() && self.shared.is_up()
    }

    /// The address the connection is on now, `host:port`.
    pub(super) fn endpoint(&self) -> String {
        self.shared.state().endpoint.clone()
    }

    /// Closes the connection (all its channels with it); it is not
    /// recovered after that.
    pub(super) async fn close(&self) -> Result<()> {
        self.shared.closed.store(true, Ordering::Relaxed);
        self.shared.lost.notify_one();
        let lapin = self.shared.lapin();
        if !lapin.status().connected() {
            return Ok(());
        }
        let down = self.shared.link.down_notified();
        let closing = lapin.close(200, "OK".into());
        // A connection lost while closing never answers: it is closed. A
        // broker that blocks the connection (a resource alarm) reads
        // nothing, the close included: the connection is left behind.
        let closed = tokio::select! {
            closed = closing => closed,
            () = down => Ok(()),
            () = tokio::time::sleep(CLOSE_LIMIT) => {
                tracing::warn!(
                    blocked = ?self.shared.link.blocked(),
                    "the broker did not answer the close within {CLOSE_LIMIT:?}; the connection is left to the broker"
                );
                Ok(())
            }
        };
        match closed {
            Ok(()) => Ok(()),
            Err(_) if !lapin.status().connected() => Ok(()),
            Err(e) => Err(amqp_error("connection.close", e)),
        }
    }

    /// Opens a channel; `confirms` switches publisher confirms on. While
    /// the connection is being recovered, waits for it (within the
    /// recovery timeout).
    pub(super) async fn open_channel(&self, confirms: bool) -> Result<Channel> {
        let shared = &self.shared;
        let deadline = tokio::time::Instant::now() + shared.config.recovery_timeout();
        loop {
            if shared.closed() {
                return Err(connection_closed("channel.open"));
            }
            if !shared.link.recovering() {
                let epoch = shared.epoch();
                let lapin = shared.lapin();
                let opening =
                    tokio::time::timeout_at(deadline, open_lapin_channel(&lapin, confirms));
                let Ok(opened) = opening.await else {
                    return Err(not_recovered(
                        "channel.open",
                        shared.config.recovery_timeout(),
                    ));
                };
                match opened {
                    Ok(channel) => {
                        let generation = shared.next_generation();
                        let channel = ChannelShared::new(
                            shared.clone(),
                            channel,
                            generation,
                            epoch,
                            confirms,
                        );
                        shared.state().channels.push(Arc::downgrade(&channel));
                        return Ok(Channel::from(channel));
                    }
                    Err(error) if shared.is_up() || tokio::time::Instant::now() >= deadline => {
                        return Err(amqp_error("channel.open", error));
                    }
                    Err(_) => shared.lost.notify_one(),
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(not_recovered(
                    "channel.open",
                    shared.config.recovery_timeout(),
                ));
            }
            shared.link.recovered_or_tick().await;
        }
    }
}

/// A lapin channel, with publisher confirms when asked for.
pub(super) async fn open_lapin_channel(
    lapin: &lapin::Connection,
    confirms: bool,
) -> lapin::Result<lapin::Channel> {
    let channel = lapin.create_channel().await?;
    if confirms {
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
    }
    Ok(channel)
}

impl Shared {
    pub(super) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The lapin connection now.
    pub(super) fn lapin(&self) -> Arc<lapin::Connection> {
        self.state().lapin.clone()
    }

    /// Is the lapin connection up?
    pub(super) fn is_up(&self) -> bool {
        self.state().lapin.status().connected()
    }

    /// The epoch of the current lapin connection.
    pub(super) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// A new epoch (for an attempt to replace the connection) or channel
    /// generation (for a channel opened or opened again).
    pub(super) fn next_generation(&self) -> u64 {
        self.generations.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Makes `lapin`, opened in `epoch`, the current connection.
    pub(super) fn replace(&self, lapin: Arc<lapin::Connection>, endpoint: &str, epoch: u64) {
        let mut state = self.state();
        state.lapin = lapin;
        endpoint.clone_into(&mut state.endpoint);
        self.epoch.store(epoch, Ordering::Release);
    }

    /// Was the connection closed on request?
    pub(super) fn closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// Watches a lapin connection's events: an error wakes the recovery
    /// task; blocking by the broker is logged. Ends with the connection,
    /// or once the connection was replaced.
    pub(super) fn watch(self: &Arc<Self>, lapin: &Arc<lapin::Connection>) {
        let events = lapin.events_listener();
        let watched = Arc::downgrade(lapin);
        let shared = Arc::downgrade(self);
        let lost = self.lost.clone();
        tokio::spawn(async move {
            let mut events = std::pin::pin!(events);
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    event = events.next() => match event {
                        Some(lapin::Event::Error(error)) => {
                            tracing::debug!(%error, "connection error");
                            lost.notify_one();
                        }
                        Some(lapin::Event::ConnectionBlocked(reason)) => {
                            tracing::warn!(%reason, "the broker blocks publishing on the connection (a resource alarm); sends wait");
                            if let Some(shared) = shared.upgrade() {
                                shared.link.set_blocked(Some(reason.to_string()));
                            }
                        }
                        Some(lapin::Event::ConnectionUnblocked) => {
                            tracing::info!("the broker unblocked the connection; sends resume");
                            if let Some(shared) = shared.upgrade() {
                                shared.link.set_blocked(None);
                            }
                        }
                        Some(_) => {}
                        None => {
                            lost.notify_one();
                            return;
                        }
                    },
                    _ = tick.tick() => {}
                }
                // Replaced, or everybody gone: nothing left to watch.
                let current = match shared.upgrade() {
                    Some(shared) => Arc::downgrade(&shared.lapin()),
                    None => return,
                };
                if !Weak::ptr_eq(&current, &watched) {
                    return;
                }
            }
        });
    }
}

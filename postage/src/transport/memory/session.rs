//! A connection to the in-memory broker, kept up as a connection to
//! RabbitMQ is: when the broker drops it, it is attached again as soon as
//! the broker is up, what it declared is declared again, and its channels
//! are opened again with their prefetch and consumers.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::Notify;

use super::broker::{Broker, Guard};
use super::channel::{Channel, ChannelShared};
use super::flow::Settle;
use super::state::{Destination, Refusal, State};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::transport::Link;
use crate::transport::link::{connection_closed, not_recovered};
use crate::transport::record::Record;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What a connection to the in-memory broker gives as its endpoint.
pub(crate) const ENDPOINT: &str = "memory";

/// A connection to the in-memory broker.
pub(crate) struct Connection {
    shared: Arc<Session>,
}

/// What a connection's handles share.
pub(crate) struct Session {
    pub(super) broker: Arc<Broker>,
    pub(super) config: Config,
    pub(super) link: Arc<Link>,
    pub(super) state: Mutex<SessionState>,
    closed: AtomicBool,
    /// Wakes the recovery task.
    lost: Arc<Notify>,
}

pub(super) struct SessionState {
    /// The broker's id of the connection now; none while it is lost.
    pub(super) id: Option<u64>,
    pub(super) record: Record,
    pub(super) channels: Vec<Weak<ChannelShared>>,
}

impl Connection {
    pub(crate) fn open(broker: &Arc<Broker>, config: &Config, link: &Arc<Link>) -> Result<Self> {
        let mut state = broker.lock();
        let id = state.open_connection().ok_or_else(|| Error::Connect {
            endpoint: ENDPOINT.to_owned(),
            source: "the in-memory broker is stopped".into(),
        })?;
        let shared = Arc::new(Session {
            broker: broker.clone(),
            config: config.clone(),
            link: link.clone(),
            state: Mutex::new(SessionState {
                id: Some(id),
                record: Record::default(),
                channels: Vec::new(),
            }),
            closed: AtomicBool::new(false),
            lost: Arc::new(Notify::new()),
        });
        broker.register(&shared);
        drop(state);
        tokio::spawn(recover(Arc::downgrade(&shared), shared.lost.clone()));
        Ok(Connection { shared })
    }

    pub(crate) fn is_connected(&self) -> bool {
        !self.shared.closed() && lock(&self.shared.state).id.is_some()
    }

    pub(crate) async fn close(&self) -> Result<()> {
        let shared = &self.shared;
        shared.closed.store(true, Ordering::Relaxed);
        let mut state = shared.broker.lock();
        if let Some(id) = lock(&shared.state).id.take() {
            state.close_connection(id);
        }
        drop(state);
        shared.lost.notify_one();
        Ok(())
    }

    pub(crate) async fn open_channel(&self, confirms: bool) -> Result<Channel> {
        let shared = &self.shared;
        let deadline = tokio::time::Instant::now() + shared.config.recovery_timeout();
        loop {
            if shared.closed() {
                return Err(connection_closed("channel.open"));
            }
            {
                let mut state = shared.broker.lock();
                let mut session = lock(&shared.state);
                if let Some(connection) = session.id
                    && let Some(id) = state.open_channel(connection)
                {
                    let channel = ChannelShared::new(shared.clone(), id, connection, confirms);
                    session.channels.push(Arc::downgrade(&channel));
                    return Ok(Channel::from(channel));
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

/// A connection nothing uses any more is closed, as a client that went
/// away: its unacknowledged deliveries are requeued, its exclusive queues
/// go.
impl Drop for Session {
    fn drop(&mut self) {
        let id = self
            .state
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .id
            .take();
        if let Some(id) = id {
            self.broker.lock().close_connection(id);
        }
    }
}

impl Session {
    pub(super) fn closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// The broker's id of the connection now.
    pub(super) fn id(&self) -> Option<u64> {
        lock(&self.state).id
    }

    /// The broker dropped the connection (with its channels): recovery
    /// starts. Called under the broker's lock, before the channels close,
    /// so that whoever sees a channel end sees the connection lost.
    pub(super) fn dropped(&self) {
        lock(&self.state).id = None;
        self.link.went_down(false);
        self.lost.notify_one();
    }

    /// Settles delivery `tag` of channel `channel`, opened on connection
    /// `generation`; `None` when that connection is gone.
    pub(super) fn settle(
        &self,
        channel: u64,
        generation: u64,
        tag: u64,
        outcome: Settle,
    ) -> std::result::Result<(), Option<Refusal>> {
        let mut state = self.broker.lock();
        if self.id() != Some(generation) || !state.channels.contains_key(&channel) {
            if let Some(refusal) = state.refusals.get(&channel) {
                return Err(Some(refusal.clone()));
            }
            return Err(None);
        }
        state.settle(channel, tag, outcome).map_err(|refusal| {
            state.close_channel(channel, Some(&refusal));
            Some(refusal)
        })
    }

    /// Attaches the connection to the broker again: declares what it
    /// declared, opens its channels again. False while the broker is
    /// stopped.
    fn reattach(self: &Arc<Self>, state: &mut Guard<'_>) -> bool {
        let Some(connection) = state.open_connection() else {
            return false;
        };
        let mut session = lock(&self.state);
        let renames = match redeclare(state, connection, &mut session.record) {
            Ok(renames) => renames,
            Err(refusal) => {
                tracing::warn!(reason = %refusal.text, "declaring the topology again failed; trying again");
                state.close_connection(connection);
                return false;
            }
        };
        session.channels.retain(|c| c.strong_count() > 0);
        for channel in session.channels.iter().filter_map(Weak::upgrade) {
            channel.reopen(state, connection, &renames, None);
        }
        session.id = Some(connection);
        true
    }
}

/// Declares the record on the broker again, through a channel of its own.
fn redeclare(
    state: &mut State,
    connection: u64,
    record: &mut Record,
) -> std::result::Result<Vec<(String, String)>, Refusal> {
    let Some(channel) = state.open_channel(connection) else {
        return Err(Refusal::new(504, "CHANNEL_ERROR - no connection"));
    };
    let mut renames = Vec::new();
    let result = (|| {
        for exchange in record.exchanges() {
            state.declare_exchange(channel, &exchange)?;
        }
        for queue in record.queues() {
            let declaration = &queue.declaration;
            // A server-named queue gets a new name.
            let (name, _, _) = state.declare_queue(channel, declaration, false)?;
            if name != queue.name {
                renames.push((queue.name.clone(), name));
            }
        }
        for binding in record.bindings() {
            let destination = renames
                .iter()
                .find(|(old, _)| *old == binding.destination)
                .map_or(binding.destination.clone(), |(_, new)| new.clone());
            let destination = Destination::new(&destination, binding.to_exchange);
            state.bind(
                channel,
                destination,
                &binding.exchange,
                &binding.key,
                &binding.arguments,
            )?;
        }
        Ok(())
    })();
    state.close_channel(channel, None);
    result?;
    for (old, new) in &renames {
        record.renamed(old, new);
    }
    Ok(renames)
}

/// The recovery task of a connection: attaches it again whenever the
/// broker dropped it, as soon as the broker is up; a recovery longer than
/// the recovery timeout is reported stalled.
async fn recover(session: Weak<Session>, lost: Arc<Notify>) {
    loop {
        lost.notified().await;
        let Some(shared) = session.upgrade() else {
            return;
        };
        if shared.closed() {
            return;
        }
        if shared.id().is_some() {
            continue;
        }
        let deadline = tokio::time::Instant::now() + shared.config.recovery_timeout();
        loop {
            let started = shared.broker.started();
            if shared.closed() {
                return;
            }
            let attached = {
                let mut state = shared.broker.lock();
                shared.reattach(&mut state)
            };
            if attached {
                shared.link.went_down(true);
                shared.link.came_back();
                tracing::info!("connection to the in-memory broker recovered");
                break;
            }
            tokio::select! {
                () = started => {}
                () = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
            if tokio::time::Instant::now() >= deadline && !shared.link.stalled() {
                shared.link.stall();
            }
        }
    }
}

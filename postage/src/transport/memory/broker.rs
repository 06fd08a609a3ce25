//! [`MemoryBroker`]: the in-memory broker, the faults a test can cause,
//! and what a test can see of its state.

use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use serde_json::Value;
use tokio::sync::Notify;

use super::session::Session;
use super::state::{DeadLetter, Destination, State};
use crate::config::Config;
use crate::error::Result;
use crate::transport::Connection;

/// A broker that lives in the test process and routes, queues, delivers
/// and dead-letters as RabbitMQ does: components run on it unchanged,
/// with no RabbitMQ to start. Cheap to clone: clones are the same broker.
///
/// Connections come from [`connect`](MemoryBroker::connect); a test can
/// drop them, stop, start or restart the broker, and look at its queues,
/// bindings and dead-lettered messages.
///
/// ```
/// use postage::testing::MemoryBroker;
/// use postage::{Consumer, Exchange, Producer};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> postage::Result<()> {
/// let broker = MemoryBroker::new();
/// let connection = broker.connect().await?;
/// const EVENTS: Exchange = Exchange::topic("events");
/// let mut consumer = Consumer::builder()
///     .bind(EVENTS, [("audit", "user.#")])
///     .connect(&connection)
///     .await?;
/// let producer = Producer::builder().ek(EVENTS, "user.created").connect(&connection).await?;
/// producer.command("created", serde_json::json!({"id": 7})).await?;
///
/// let delivery = consumer.next().await.expect("a delivery");
/// assert_eq!(delivery.routing_key(), "user.created");
/// delivery.ack().await?;
/// assert_eq!(broker.queue("audit").map(|q| q.messages), Some(0));
/// # Ok(()) }
/// ```
///
/// What it does not model: clustering and quorum replication, persistence
/// to disk (a [`restart`](MemoryBroker::restart) keeps durable queues'
/// persistent messages in memory), resource alarms and flow control,
/// streams, priorities, policies, users and vhosts, and the AMQP wire
/// itself (frame sizes, heartbeats).
#[derive(Clone)]
pub struct MemoryBroker {
    inner: Arc<Broker>,
}

impl Default for MemoryBroker {
    fn default() -> Self {
        MemoryBroker {
            inner: Arc::new_cyclic(|me| Broker {
                state: Mutex::new(State::new()),
                sessions: Mutex::default(),
                started: Notify::new(),
                me: me.clone(),
            }),
        }
    }
}

impl std::fmt::Debug for MemoryBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.inner.lock();
        f.debug_struct("MemoryBroker")
            .field("up", &state.up)
            .field("connections", &state.connections.len())
            .field("queues", &state.queues.len())
            .finish()
    }
}

/// The broker behind the handles.
pub(crate) struct Broker {
    state: Mutex<State>,
    sessions: Mutex<Vec<Weak<Session>>>,
    started: Notify,
    /// A weak handle on itself, for its timers.
    me: Weak<Broker>,
}

/// The broker's state, locked. Queue timers asked for while it was held
/// are started when it is released.
pub(super) struct Guard<'a> {
    broker: &'a Broker,
    state: MutexGuard<'a, State>,
}

impl Deref for Guard<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        &self.state
    }
}

impl DerefMut for Guard<'_> {
    fn deref_mut(&mut self) -> &mut State {
        &mut self.state
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        if self.state.timers.is_empty() {
            return;
        }
        let timers = std::mem::take(&mut self.state.timers);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime to wait in: expiry happens on the next delivery.
            for (queue, _) in timers {
                if let Some(queue) = self.state.queues.get_mut(&queue) {
                    queue.timer = None;
                }
            }
            return;
        };
        for (queue, at) in timers {
            let broker = self.broker.me.clone();
            runtime.spawn(async move {
                tokio::time::sleep_until(at).await;
                if let Some(broker) = broker.upgrade() {
                    broker.lock().expire(&queue);
                }
            });
        }
    }
}

impl Broker {
    pub(super) fn lock(&self) -> Guard<'_> {
        Guard {
            broker: self,
            state: self.state.lock().unwrap_or_else(PoisonError::into_inner),
        }
    }

    pub(super) fn register(&self, session: &Arc<Session>) {
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        sessions.retain(|s| s.strong_count() > 0);
        sessions.push(Arc::downgrade(session));
    }

    /// Resolves when the broker is started after this call.
    pub(super) fn started(&self) -> tokio::sync::futures::Notified<'_> {
        self.started.notified()
    }

    /// Drops every connection; `then` changes the state after (a stop, a
    /// restart).
    fn drop_all(&self, then: impl FnOnce(&mut State)) {
        // Taken before the lock, and so released after it: a session
        // released last closes its connection, under the lock.
        let sessions: Vec<Arc<Session>> = self
            .sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        let mut state = self.lock();
        for session in &sessions {
            if !session.closed() && session.id().is_some() {
                session.dropped();
            }
        }
        state.close_all();
        then(&mut state);
    }
}

/// A queue as the broker holds it now.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct QueueInfo {
    /// Its name.
    pub name: String,
    /// Messages ready for delivery.
    pub messages: usize,
    /// Messages delivered and not yet acknowledged.
    pub unacked: usize,
    /// Its consumers.
    pub consumers: usize,
    /// Durable?
    pub durable: bool,
    /// Exclusive to one connection?
    pub exclusive: bool,
    /// Deleted when its last consumer goes?
    pub auto_delete: bool,
    /// Its declaration arguments.
    pub arguments: BTreeMap<String, Value>,
}

/// A binding as the broker holds it now.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BindingInfo {
    /// The exchange bound from.
    pub source: String,
    /// The queue (or, with `to_exchange`, the exchange) bound to it.
    pub destination: String,
    /// Is the destination an exchange?
    pub to_exchange: bool,
    /// The binding key.
    pub key: String,
    /// The binding arguments (headers exchanges).
    pub arguments: BTreeMap<String, Value>,
}

impl MemoryBroker {
    /// A new, empty broker (with RabbitMQ's `amq.*` exchanges), up.
    pub fn new() -> Self {
        MemoryBroker::default()
    }

    /// A connection with default settings.
    pub async fn connect(&self) -> Result<Connection> {
        self.connect_with(Config::default()).await
    }

    /// A connection with these settings: its recovery timeout, debug
    /// logging and connection name apply; its addresses, credentials and
    /// TLS settings are not used.
    pub async fn connect_with(&self, config: Config) -> Result<Connection> {
        Connection::in_memory(&self.inner, config)
    }

    /// Drops every connection, as a broker that closes them does: their
    /// channels close, unacknowledged messages are requeued (and
    /// redelivered), exclusive queues go. The connections recover at once,
    /// as they do from RabbitMQ.
    pub fn drop_connections(&self) {
        self.inner.drop_all(|_| {});
    }

    /// Stops the broker: connections are dropped, and recover only once
    /// it is [started](MemoryBroker::start) again (connecting fails
    /// meanwhile). Nothing is lost: a stopped broker keeps its state.
    pub fn stop(&self) {
        self.inner.drop_all(|state| state.up = false);
    }

    /// Starts a stopped broker; dropped connections recover.
    pub fn start(&self) {
        self.inner.lock().up = true;
        self.inner.started.notify_waiters();
    }

    /// Restarts the broker: connections are dropped, non-durable
    /// exchanges and queues are gone, and durable queues keep only their
    /// persistent messages. Connections recover, declaring again what
    /// they declared.
    pub fn restart(&self) {
        self.inner.drop_all(|state| {
            state.restart();
            state.up = true;
        });
        self.inner.started.notify_waiters();
    }

    /// Is the broker up?
    pub fn is_up(&self) -> bool {
        self.inner.lock().up
    }

    /// How many connections are open.
    pub fn connections(&self) -> usize {
        self.inner.lock().connections.len()
    }

    /// The queue called `name`, if there is one.
    pub fn queue(&self, name: &str) -> Option<QueueInfo> {
        let state = self.inner.lock();
        let queue = state.queues.get(name)?;
        let unacked = state
            .channels
            .values()
            .flat_map(|c| c.unacked.values())
            .filter(|u| u.queue == name)
            .count();
        Some(QueueInfo {
            name: name.to_owned(),
            messages: queue.ready.len(),
            unacked,
            consumers: queue.consumers.len(),
            durable: queue.durable,
            exclusive: queue.owner.is_some(),
            auto_delete: queue.auto_delete,
            arguments: queue.arguments.clone(),
        })
    }

    /// Every queue, by name.
    pub fn queues(&self) -> Vec<QueueInfo> {
        let mut names: Vec<String> = self.inner.lock().queues.keys().cloned().collect();
        names.sort();
        names.iter().filter_map(|name| self.queue(name)).collect()
    }

    /// The names of the exchanges (the default exchange, which has no
    /// name, is not listed).
    pub fn exchanges(&self) -> Vec<String> {
        let mut names: Vec<String> = self.inner.lock().exchanges.keys().cloned().collect();
        names.sort();
        names
    }

    /// Every binding (the default exchange's implicit ones are not
    /// listed), by source exchange.
    pub fn bindings(&self) -> Vec<BindingInfo> {
        let state = self.inner.lock();
        let mut bindings: Vec<BindingInfo> = state
            .exchanges
            .iter()
            .flat_map(|(source, exchange)| {
                exchange.bindings.iter().map(move |b| BindingInfo {
                    source: source.clone(),
                    destination: b.destination.name().to_owned(),
                    to_exchange: matches!(b.destination, Destination::Exchange(_)),
                    key: b.key.clone(),
                    arguments: b.arguments.clone(),
                })
            })
            .collect();
        bindings.sort_by(|a, b| {
            (&a.source, &a.destination, &a.key).cmp(&(&b.source, &b.destination, &b.key))
        });
        bindings
    }

    /// Every message that left a queue by rejection, expiry, length limit
    /// or delivery limit, oldest first, whether a dead-letter exchange
    /// took it or it was dropped.
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.inner.lock().dead_letters.clone()
    }
}

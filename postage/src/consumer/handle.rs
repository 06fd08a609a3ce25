//! [`Consumer`] and [`ConsumerHandle`]: receiving from the bound queues,
//! binding more at run time, stopping, and the consumer's [`Health`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};

pub(super) use super::stream::{QueueStream, Queues, queue_stream};
use super::watch::{Flag, QueueState};
use super::{ConsumerBuilder, Delivery};
use crate::encoding::Encoder;
use crate::error::{Error, Result};
use crate::telemetry::HealthGauge;
use crate::topology::{Exchange, Queue};
use crate::transport::{Channel, Connection, ConsumerId, Link};

/// Whether a consumer is receiving, as its progress shows: a state that
/// says work flows is only shown while it does (see
/// [`ConsumerBuilder::watchdog`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Health {
    /// Consuming from every queue: deliveries flow, or no queue holds a
    /// message ready for it.
    Consuming,
    /// Its connection dropped, or the broker closed its channel or
    /// cancelled it: waiting for it to be restored.
    Recovering,
    /// The broker blocks the connection's publishers (a memory or disk
    /// alarm; the text says which): deliveries still arrive, but replies
    /// and sends wait. Back to consuming when the broker unblocks.
    Blocked(String),
    /// A queue holds ready messages, yet nothing was delivered for two
    /// watchdog periods although the consumer had room for more; its
    /// channel was replaced. The text says which queue. Back to consuming
    /// at the next delivery.
    Stalled(String),
    /// A queue with a single active consumer delivers to another of its
    /// consumers: this one stands by, and takes over when that one goes.
    StandingBy,
    /// Paused on request ([`ConsumerHandle::pause`], `postage pause`):
    /// its broker consumers are cancelled, nothing new arrives until it
    /// resumes.
    Paused,
    /// Paused by its processor's kill switch: too many messages failed;
    /// the text says how many, and how long it rests before it resumes.
    Tripped(String),
    /// A queue's consumer was lost and could not be restored; the text says
    /// why. Nothing more arrives from that queue.
    Failed(String),
    /// Stopped on request.
    Stopped,
}

impl Health {
    /// The state's name, as `postage ps`, the `info` answer and the health
    /// gauge's `state` label write it: `consuming`, `recovering`,
    /// `blocked`, `stalled`, `standing_by`, `paused`, `tripped`, `failed`,
    /// `stopped`.
    pub fn name(&self) -> &'static str {
        match self {
            Health::Consuming => "consuming",
            Health::Recovering => "recovering",
            Health::Blocked(_) => "blocked",
            Health::Stalled(_) => "stalled",
            Health::StandingBy => "standing_by",
            Health::Paused => "paused",
            Health::Tripped(_) => "tripped",
            Health::Failed(_) => "failed",
            Health::Stopped => "stopped",
        }
    }
}

impl std::fmt::Display for Health {
    /// The name, and why for the states that say why:
    /// `stalled: queue jobs holds 12 ready message(s), ...`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Health::Blocked(reason)
            | Health::Stalled(reason)
            | Health::Tripped(reason)
            | Health::Failed(reason) => {
                write!(f, "{}: {reason}", self.name())
            }
            _ => f.write_str(self.name()),
        }
    }
}

pub(super) struct Shared {
    pub(super) channel: Channel,
    pub(super) encoder: Arc<dyn Encoder>,
    pub(super) max_body_size: usize,
    pub(super) state: Mutex<State>,
    pub(super) health: watch::Sender<Health>,
    /// The health as the metrics show it.
    pub(super) health_gauge: HealthGauge,
    pub(super) link: Arc<Link>,
    /// The connection: its publishers' blocked state, the watchdog's
    /// passive declarations.
    pub(super) connection: Connection,
    /// Declare a queue deleted from outside again?
    pub(super) redeclare: bool,
    /// Raised while the health says stalled or standing by.
    pub(super) flag: Flag,
    /// Stalls the watchdog found.
    pub(super) stalls: AtomicU64,
}

pub(super) struct State {
    /// Hands the streams of queues bound at run time to the [`Consumer`];
    /// `None` once stopped. Boxed: the channel allocates a block of slots
    /// when it is made, and most consumers never send on it.
    pub(super) tx: Option<mpsc::UnboundedSender<Box<QueueStream>>>,
    /// The queues consumed, by name.
    pub(super) queues: HashMap<String, Arc<QueueState>>,
    /// The broker consumers, with their queues' names.
    pub(super) consumers: Vec<(String, ConsumerId)>,
    /// Paused: its broker consumers cancelled until it resumes.
    pub(super) paused: bool,
    /// Why a kill switch paused it, if one did.
    pub(super) tripped: Option<String>,
    /// Counts the pauses: a queue's stream from before one ends because
    /// it was cancelled on purpose.
    pub(super) session: u64,
}

impl Shared {
    /// The consumer's health is now `health`; while it is paused, a
    /// health that says deliveries flow reads `paused`.
    pub(super) fn set_health(&self, health: Health) {
        let health = match health {
            Health::Consuming | Health::Stalled(_) | Health::StandingBy | Health::Paused => {
                let state = self.state();
                match (&state.paused, &state.tripped) {
                    (true, Some(reason)) => Health::Tripped(reason.clone()),
                    (true, None) => Health::Paused,
                    (false, _) => health,
                }
            }
            health => health,
        };
        self.health_gauge.set(health.name());
        self.health.send_replace(health);
    }

    /// Stopped on request?
    pub(super) fn stopped(&self) -> bool {
        self.state().tx.is_none()
    }

    pub(super) fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Receives decoded messages from the queues bound to it.
///
/// ```no_run
/// use postage::{Connection, Consumer, Exchange};
///
/// const ECHO: Exchange = Exchange::direct("echo-exchange");
///
/// # async fn run() -> postage::Result<()> {
/// let connection = Connection::from_env().await?;
/// let mut consumer = Consumer::builder()
///     .bind(ECHO, [("echo-queue", "echo-rk")])
///     .connect(&connection)
///     .await?;
/// while let Some(delivery) = consumer.next().await {
///     match delivery.message() {
///         Ok(message) => println!("{:?}", message.content.parameters()),
///         Err(reason) => eprintln!("bad message: {reason}"),
///     }
///     delivery.ack().await?;
/// }
/// # Ok(()) }
/// ```
pub struct Consumer {
    pub(super) handle: ConsumerHandle,
    /// Streams of queues bound since the last [`next`](Consumer::next).
    pub(super) added: mpsc::UnboundedReceiver<Box<QueueStream>>,
    pub(super) added_closed: bool,
    /// Polled in the caller's task: no hand-over between tasks per
    /// delivery. Only ever reached through `&mut self` (`get_mut`, no
    /// locking); the mutex makes the consumer `Sync`.
    pub(super) queues: Mutex<Queues<QueueStream>>,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("queues", &self.handle.queues())
            .finish_non_exhaustive()
    }
}

impl Consumer {
    /// Starts building a consumer.
    pub fn builder() -> ConsumerBuilder {
        ConsumerBuilder::default()
    }

    /// The next delivery; `None` once the consumer is stopped and every
    /// delivery already received has been handed out.
    pub async fn next(&mut self) -> Option<Delivery> {
        let queues = self
            .queues
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        loop {
            if self.added_closed && queues.is_empty() {
                return None;
            }
            tokio::select! {
                biased;
                added = self.added.recv(), if !self.added_closed => match added {
                    Some(queue) => queues.push(*queue),
                    None => self.added_closed = true,
                },
                next = queues.next(), if !queues.is_empty() => {
                    if next.is_some() {
                        return next;
                    }
                }
            }
        }
    }

    /// A handle to bind more queues or stop this consumer from elsewhere.
    pub fn handle(&self) -> ConsumerHandle {
        self.handle.clone()
    }

    /// Binds a queue at run time; see [`ConsumerHandle::queue_bind`].
    pub async fn queue_bind(
        &self,
        exchange: &Exchange,
        queue: impl Into<Queue>,
        key: &str,
    ) -> Result<String> {
        self.handle.queue_bind(exchange, queue, key).await
    }

    /// Stops consuming; see [`ConsumerHandle::stop`].
    pub async fn stop(&self) {
        self.handle.stop().await;
    }

    pub(crate) async fn close(&self) {
        self.handle.stop().await;
        self.handle.shared.channel.close().await;
    }
}

/// A queue no longer consumed, until what it delivered is settled.
pub(crate) struct Released(Arc<QueueState>);

impl Released {
    /// Its stream ended and every delivery from it is settled.
    pub(crate) fn settled(&self) -> bool {
        self.0.drained()
    }
}

/// A cloneable handle on a [`Consumer`].
#[derive(Clone)]
pub struct ConsumerHandle {
    pub(super) shared: Arc<Shared>,
}

impl std::fmt::Debug for ConsumerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumerHandle")
            .field("queues", &self.queues())
            .finish_non_exhaustive()
    }
}

impl ConsumerHandle {
    /// Declares `exchange` and `queue`, binds them with `key`, and starts
    /// consuming the queue if it is new to this consumer. Takes effect at
    /// once. Returns the queue's name (the broker's, for a server-named
    /// queue).
    pub async fn queue_bind(
        &self,
        exchange: &Exchange,
        queue: impl Into<Queue>,
        key: &str,
    ) -> Result<String> {
        let queue = queue.into();
        let channel = &self.shared.channel;
        channel.declare_exchange(exchange).await?;
        let name = channel.declare_queue(&queue).await?;
        if !exchange.is_default() {
            channel
                .bind(&name, false, exchange.name(), key, &Default::default())
                .await?;
        }
        let state = QueueState::new(&name, &queue);
        let (tx, session) = {
            let mut shared = self.shared.state();
            if shared.queues.contains_key(&name) {
                return Ok(name);
            }
            shared.queues.insert(name.clone(), state.clone());
            if shared.paused {
                // Consumed when the consumer resumes.
                return Ok(name);
            }
            match &shared.tx {
                Some(tx) => (tx.clone(), shared.session),
                None => return Err(Error::ConsumerStopped),
            }
        };
        let raw = match channel.consume(&name, false).await {
            Ok(raw) => raw,
            Err(e) => {
                self.shared.state().queues.remove(&name);
                return Err(e);
            }
        };
        self.shared.state().consumers.push((name.clone(), raw.id()));
        tracing::debug!(queue = %name, exchange = exchange.name(), key, "consuming");
        // Only a dropped consumer no longer receives: nothing to do then.
        let _ = tx.send(Box::new(queue_stream(
            self.shared.clone(),
            raw,
            state,
            session,
        )));
        Ok(name)
    }

    /// Stops consuming `queue`: its broker consumer is cancelled, the
    /// queue and its bindings stay. Deliveries already received from it
    /// are still handed out. Returns whether it consumed that queue.
    pub async fn queue_cancel(&self, queue: &str) -> bool {
        self.queue_release(queue).await.is_some()
    }

    /// [`queue_cancel`](Self::queue_cancel), telling when what the queue
    /// delivered is all settled.
    pub(crate) async fn queue_release(&self, queue: &str) -> Option<Released> {
        let (state, gone): (Arc<QueueState>, Vec<(String, ConsumerId)>) = {
            let mut state = self.shared.state();
            let queue_state = state.queues.remove(queue)?;
            let (gone, kept) = std::mem::take(&mut state.consumers)
                .into_iter()
                .partition(|(name, _)| name == queue);
            state.consumers = kept;
            if state.paused {
                // No stream of it left to end.
                queue_state.ended.store(true, Ordering::Release);
            }
            (queue_state, gone)
        };
        for (_, raw) in &gone {
            if let Err(e) = self.shared.channel.cancel(raw).await {
                tracing::debug!(error = %e.report(), queue, "cancel consumer");
            }
        }
        tracing::debug!(queue, "no longer consuming");
        Some(Released(state))
    }

    /// Whether it consumes a queue with a single active consumer.
    pub(crate) fn has_single_active(&self) -> bool {
        self.shared
            .state()
            .queues
            .values()
            .any(|queue| queue.single_active)
    }

    /// Closes the channel without cancelling the consumers first: the
    /// broker requeues what was not acknowledged and moves a single
    /// active consumer queue on to the next consumer in the same step, so
    /// that it never delivers to the next one while this one holds
    /// unacknowledged deliveries.
    pub(crate) async fn close_at_once(&self) {
        {
            let mut state = self.shared.state();
            state.tx = None;
            state.consumers.clear();
        }
        self.shared.channel.close().await;
        self.shared.set_health(Health::Stopped);
    }

    /// Stops consuming: cancels every broker consumer. Deliveries already
    /// received are still handed out by [`Consumer::next`], which then ends.
    pub async fn stop(&self) {
        let consumers = {
            let mut state = self.shared.state();
            state.tx = None;
            std::mem::take(&mut state.consumers)
        };
        for (_, raw) in &consumers {
            if let Err(e) = self.shared.channel.cancel(raw).await {
                tracing::debug!(error = %e.report(), "cancel consumer");
            }
        }
        self.shared.set_health(Health::Stopped);
    }

    /// Pauses: cancels every broker consumer, keeping the queues, so that
    /// nothing new arrives; deliveries already received are still handed
    /// out. The health says [`Health::Paused`] until
    /// [`resume`](Self::resume). Returns whether it was consuming (not
    /// paused or stopped already).
    ///
    /// # Errors
    ///
    /// [`Error::CannotPause`] when it consumes an auto-delete queue: the
    /// broker would delete the queue, and its messages, when its consumer
    /// is cancelled. Nothing is cancelled then.
    pub async fn pause(&self) -> Result<bool> {
        self.pause_as(None).await
    }

    /// Pauses, as a kill switch when it says why (`tripped`).
    pub(crate) async fn pause_as(&self, tripped: Option<String>) -> Result<bool> {
        let consumers = {
            let mut state = self.shared.state();
            if state.tx.is_none() || state.paused {
                return Ok(false);
            }
            if let Some(queue) = state.queues.values().find(|queue| queue.auto_delete) {
                return Err(Error::CannotPause {
                    queue: queue.name().to_owned(),
                });
            }
            state.paused = true;
            state.tripped = tripped;
            state.session += 1;
            std::mem::take(&mut state.consumers)
        };
        for (_, raw) in &consumers {
            if let Err(e) = self.shared.channel.cancel(raw).await {
                tracing::debug!(error = %e.report(), "cancel consumer");
            }
        }
        self.shared.set_health(Health::Paused);
        tracing::info!(queues = ?self.queues(), "consumer paused");
        Ok(true)
    }

    /// Resumes a paused consumer: consumes its queues again. Returns
    /// whether it was paused.
    ///
    /// # Errors
    ///
    /// When the broker refuses a queue's consumer (the queue is gone, or
    /// the channel is closed): the consumer stays paused (the queues
    /// consumed again meanwhile are cancelled), and `resume` can be called
    /// again.
    pub async fn resume(&self) -> Result<bool> {
        let (queues, tx, session) = {
            let state = self.shared.state();
            if !state.paused {
                return Ok(false);
            }
            let Some(tx) = state.tx.clone() else {
                return Err(Error::ConsumerStopped);
            };
            let queues: Vec<Arc<QueueState>> = state.queues.values().cloned().collect();
            (queues, tx, state.session)
        };
        let mut started = Vec::new();
        for queue in &queues {
            match self.shared.channel.consume(queue.name(), false).await {
                Ok(raw) => started.push((raw, queue.clone())),
                Err(error) => {
                    for (raw, _) in &started {
                        let _ = self.shared.channel.cancel(&raw.id()).await;
                    }
                    return Err(error);
                }
            }
        }
        {
            let mut state = self.shared.state();
            state.paused = false;
            state.tripped = None;
            for (raw, queue) in started {
                state.consumers.push((queue.name().to_owned(), raw.id()));
                // Only a dropped consumer no longer receives.
                let stream = queue_stream(self.shared.clone(), raw, queue, session);
                let _ = tx.send(Box::new(stream));
            }
        }
        self.shared.set_health(Health::Consuming);
        tracing::info!(queues = ?self.queues(), "consumer resumed");
        Ok(true)
    }

    /// The queues consumed.
    pub fn queues(&self) -> Vec<String> {
        let mut queues: Vec<String> = self.shared.state().queues.keys().cloned().collect();
        queues.sort();
        queues
    }

    /// The consumer's health now: [`Health::Recovering`] while its
    /// connection is being restored, [`Health::Failed`] once that recovery
    /// has stalled (also after the consumer was stopped, as a processor
    /// that ends on the stall stops it), [`Health::Blocked`] while the
    /// broker blocks the connection's publishers, and what the watchdog
    /// found ([`Health::Stalled`], [`Health::StandingBy`]).
    pub fn health(&self) -> Health {
        let own = self.shared.health.borrow().clone();
        match own {
            Health::Failed(_) => own,
            _ if self.shared.link.stalled() => {
                Health::Failed("the connection's recovery stalled".into())
            }
            Health::Consuming if self.shared.link.recovering() => Health::Recovering,
            Health::Consuming => match self.shared.connection.blocked() {
                Some(reason) => Health::Blocked(reason),
                None => own,
            },
            _ => own,
        }
    }

    /// Resolves, with the reason, once [`health`](ConsumerHandle::health)
    /// is [`Health::Failed`].
    pub(crate) async fn failed(&self) -> String {
        let mut health = self.shared.health.subscribe();
        loop {
            // Made before the look at the health: no change is missed.
            let stalled = self.shared.link.stall_notified();
            if let Health::Failed(reason) = self.health() {
                return reason;
            }
            tokio::select! {
                changed = health.changed() => {
                    // The sender lives in `shared`, held here: never closed.
                    if changed.is_err() {
                        return std::future::pending().await;
                    }
                }
                () = stalled => {}
            }
        }
    }

    /// How many times the watchdog found the consumer stalled (a queue
    /// with ready messages delivered none while the consumer had room)
    /// and gave it a new channel.
    pub fn stalls(&self) -> u64 {
        self.shared.stalls.load(Ordering::Relaxed)
    }

    /// How many times the consumer's connection was lost and restored
    /// (its queues, bindings and broker consumers are restored each
    /// time).
    pub fn recoveries(&self) -> u64 {
        self.shared.link.recoveries()
    }
}

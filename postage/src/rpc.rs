//! RPC on the caller side: reply strategies, correlation, timeout, retries
//! and queue-only calls.
//!
//! A call sends an RPC command to the producer's first (exchange, key) pair
//! with `reply_to`, a fresh `correlation_id` and an `expiration` equal to
//! the timeout (a request nobody took in time is dropped by the broker, not
//! run late), then waits for the reply. Each retry is a fresh send with a
//! fresh correlation id. When every attempt times out the call fails with
//! [`Error::RpcTimeout`]; Python Postage returns an exception result named
//! `TimeoutError` instead, which [`Error::to_result_message`] produces.
//!
//! Over direct reply-to the reply is what confirms a request, so requests
//! go out without publisher confirms unless the producer asks for them
//! ([`ProducerBuilder::rpc_confirms`](crate::producer::ProducerBuilder::rpc_confirms)):
//! then a request no queue takes fails at once with [`Error::Unroutable`]
//! instead of at its timeout, at the cost of one more broker round trip
//! per call. Requests with a queue per call use the producer's channel and
//! its [`confirms`](crate::producer::ProducerBuilder::confirms) setting.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::future::IntoFuture;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::consumer::Queue;
use crate::encoding::Encoder;
use crate::error::{Error, Result};
use crate::exchange::Exchange;
use crate::message::{Category, Message, MessageParts};
use crate::producer::{BoxFuture, Producer, Target};
use crate::transport::{Channel, Connection, OutgoingProperties, RawConsumer};

/// RabbitMQ's direct reply-to pseudo-queue.
pub const DIRECT_REPLY_TO: &str = "amq.rabbitmq.reply-to";

/// Default time an RPC attempt waits for its reply.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Default number of retries after the first attempt.
pub const DEFAULT_RETRIES: u32 = 4;

/// How replies come back to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReplyStrategy {
    /// RabbitMQ direct reply-to, matched by correlation id: no queue per
    /// call, hundreds of calls in flight on one producer. A reply without a
    /// correlation id (as Python Postage sends) is accepted when exactly one
    /// call is waiting.
    #[default]
    DirectReplyTo,
    /// A server-named, exclusive, auto-delete queue per call; the first
    /// message in it is the reply. Works with any peer, Python Postage
    /// processors with concurrent calls included, at the cost of a queue
    /// declaration per call.
    QueuePerCall,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct RpcSettings {
    pub(crate) timeout: Duration,
    pub(crate) retries: u32,
    pub(crate) strategy: ReplyStrategy,
    /// Do direct reply-to requests wait for their publisher confirmation?
    pub(crate) confirms: bool,
}

impl Default for RpcSettings {
    fn default() -> Self {
        RpcSettings {
            timeout: DEFAULT_TIMEOUT,
            retries: DEFAULT_RETRIES,
            strategy: ReplyStrategy::default(),
            confirms: false,
        }
    }
}

/// The calls waiting for a direct reply-to reply, by call number (the
/// last part of their correlation id).
type Waiters = Arc<Mutex<BTreeMap<u64, oneshot::Sender<Message>>>>;

/// A producer's RPC state: settings, the direct reply-to channel and its
/// reply reader, and the calls waiting for a reply.
pub(crate) struct RpcState {
    settings: RpcSettings,
    /// The channel that consumes direct reply-to and publishes the requests
    /// waiting for it, with the connection's recovery count when it was
    /// opened.
    direct: tokio::sync::Mutex<Option<Direct>>,
    waiters: Waiters,
    /// Correlation ids are `{prefix}.{call number}`.
    prefix: Arc<str>,
    counter: AtomicU64,
}

impl RpcState {
    pub(crate) fn new(settings: RpcSettings) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        RpcState {
            settings,
            direct: tokio::sync::Mutex::new(None),
            waiters: Arc::default(),
            prefix: format!("{:x}.{nanos:x}", std::process::id()).into(),
            counter: AtomicU64::new(0),
        }
    }

    /// A fresh call number and its correlation id.
    fn next_id(&self) -> (u64, String) {
        let number = self.counter.fetch_add(1, Ordering::Relaxed);
        (number, format!("{}.{number}", self.prefix))
    }

    /// The direct reply-to channel and its reply reader: opened, with its
    /// consumer, before the first request that needs it, and opened anew
    /// when it was closed or the connection was recovered (lapin restores
    /// the old channel's consumer only after the channel accepts publishes
    /// again, and a request published in between makes the broker close the
    /// channel).
    async fn direct_channel(
        &self,
        connection: &Connection,
        encoder: &Arc<dyn Encoder>,
    ) -> Result<(Channel, Arc<tokio::sync::Mutex<Reader>>)> {
        let mut direct = self.direct.lock().await;
        let generation = connection.recoveries();
        if let Some(current) = &*direct
            && current.channel.is_open()
            && current.generation == generation
            && !current.ended.load(Ordering::Relaxed)
        {
            return Ok((current.channel.clone(), current.reader.clone()));
        }
        let channel = connection.open_channel(self.settings.confirms).await?;
        let consumer = channel.consume(DIRECT_REPLY_TO, true).await?;
        let ended = Arc::new(AtomicBool::new(false));
        let reader = Arc::new(tokio::sync::Mutex::new(Reader {
            consumer,
            channel: channel.clone(),
            encoder: encoder.clone(),
            waiters: self.waiters.clone(),
            prefix: self.prefix.clone(),
            ended: ended.clone(),
        }));
        let fresh = Direct {
            channel: channel.clone(),
            generation,
            reader: reader.clone(),
            ended,
        };
        if let Some(old) = direct.replace(fresh) {
            tokio::spawn(async move { old.channel.close().await });
        }
        Ok((channel, reader))
    }
}

/// The channel that consumes direct reply-to, with the connection's
/// recovery count when it was opened.
struct Direct {
    channel: Channel,
    generation: u64,
    reader: Arc<tokio::sync::Mutex<Reader>>,
    /// Set when the reply consumer has ended: the next call opens anew.
    ended: Arc<AtomicBool>,
}

/// The direct reply-to consumer. No task of its own: a waiting call takes
/// the lock and reads replies, handing each to the call it answers, until
/// its own has come; then the next waiting call takes over. A single caller
/// thus reads its reply itself, with no hand-over between tasks.
struct Reader {
    consumer: RawConsumer,
    channel: Channel,
    encoder: Arc<dyn Encoder>,
    waiters: Waiters,
    prefix: Arc<str>,
    ended: Arc<AtomicBool>,
}

impl Reader {
    /// The call number in a correlation id of ours; `None` for any other.
    fn call_number(&self, correlation_id: &str) -> Option<u64> {
        correlation_id
            .strip_prefix(&*self.prefix)?
            .strip_prefix('.')?
            .parse()
            .ok()
    }

    /// Reads one reply and hands it to its call. Pending forever once the
    /// consumer has ended (the next call opens a new one).
    async fn read_one(&mut self) {
        if self.ended.load(Ordering::Relaxed) {
            return std::future::pending().await;
        }
        let delivery = match self.consumer.next().await {
            Some(Ok(delivery)) => delivery,
            Some(Err(error)) => {
                if let Err(error) = self.channel.resume_consumer(DIRECT_REPLY_TO, error).await {
                    tracing::error!(%error, "RPC reply consumer lost; the next call opens a new one");
                    self.ended.store(true, Ordering::Relaxed);
                }
                return;
            }
            None => {
                tracing::debug!("RPC reply consumer ended");
                self.ended.store(true, Ordering::Relaxed);
                return;
            }
        };
        let message = match self.encoder.decode(&delivery.data) {
            Ok(message) => message,
            Err(reason) => {
                tracing::warn!(%reason, "undecodable RPC reply dropped");
                return;
            }
        };
        let waiter = {
            let mut waiters = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
            match delivery.properties.correlation_id() {
                Some(id) => self
                    .call_number(id.as_str())
                    .and_then(|number| waiters.remove(&number)),
                None if waiters.len() == 1 => {
                    let number = waiters.keys().next().copied();
                    number.and_then(|number| waiters.remove(&number))
                }
                None => None,
            }
        };
        match waiter {
            Some(waiter) => {
                let _ = waiter.send(message);
            }
            None => tracing::debug!(
                correlation_id = ?delivery.properties.correlation_id(),
                "RPC reply for no waiting call (late or duplicate) dropped"
            ),
        }
    }
}

/// Removes a waiter when its call ends, however it ends.
struct WaiterGuard {
    waiters: Waiters,
    number: u64,
}

impl Drop for WaiterGuard {
    fn drop(&mut self) {
        self.waiters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.number);
    }
}

/// An RPC call being prepared; `.await` it for the reply message (a
/// success, error or exception result: see [`Message::outcome`]).
///
/// ```no_run
/// # use std::time::Duration;
/// # async fn run(producer: postage::Producer) -> postage::Result<()> {
/// let reply = producer
///     .rpc("sum", serde_json::json!({"a": 2, "b": 3}))
///     .timeout(Duration::from_secs(5))
///     .retries(1)
///     .await?;
/// assert_eq!(reply.outcome()?.into_value().ok(), Some(5.into()));
/// # Ok(()) }
/// ```
#[must_use = "an RPC call does nothing until it is awaited"]
pub struct RpcCall<'a> {
    producer: &'a Producer,
    request: Request,
    target: Target,
    timeout: Duration,
    retries: u32,
    strategy: ReplyStrategy,
}

impl std::fmt::Debug for RpcCall<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcCall")
            .field("command", &self.request.command())
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .field("strategy", &self.strategy)
            .finish_non_exhaustive()
    }
}

/// What an RPC call sends.
enum Request {
    /// A prepared message (category `rpc`).
    Message(Message),
    /// A command from its parts, encoded without a `Message`.
    Command { name: Arc<str>, parameters: Value },
}

impl Request {
    fn command(&self) -> &str {
        match self {
            Request::Message(message) => &message.name,
            Request::Command { name, .. } => name,
        }
    }
}

impl<'a> RpcCall<'a> {
    /// A call sending `message` (its category becomes `rpc`).
    pub(crate) fn new(producer: &'a Producer, mut message: Message) -> Self {
        message.category = Category::Rpc;
        Self::with(producer, Request::Message(message))
    }

    /// A call of the RPC command `name`.
    pub(crate) fn command(producer: &'a Producer, name: &str, parameters: Value) -> Self {
        let name = name.into();
        Self::with(producer, Request::Command { name, parameters })
    }

    fn with(producer: &'a Producer, request: Request) -> Self {
        let settings = producer.inner.rpc.settings;
        RpcCall {
            producer,
            request,
            target: Target::Default,
            timeout: settings.timeout,
            retries: settings.retries,
            strategy: settings.strategy,
        }
    }

    /// How long each attempt waits (Python's `_timeout`).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Retries after the first attempt (Python's `_max_retry`).
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// Sends to the first exchange with this key (Python's `_key`).
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.target = self.target.with_key(key.into());
        self
    }

    /// Sends to the first of these pairs (Python's `_eks`).
    pub fn eks<K: Into<String>>(mut self, eks: impl IntoIterator<Item = (Exchange, K)>) -> Self {
        self.target = Target::eks(eks);
        self
    }

    /// The reply strategy for this call.
    pub fn strategy(mut self, strategy: ReplyStrategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// Sends once and returns at once with a handle on the reply (Python's
    /// `_queue_only`); awaiting the handle waits up to the timeout.
    pub async fn queue_only(self) -> Result<PendingReply> {
        let prepared = self.prepare().await?;
        let deadline = Instant::now() + prepared.timeout;
        match tokio::time::timeout_at(deadline, prepared.send_once(deadline)).await {
            Ok(sent) => sent,
            Err(_) => Err(prepared.timed_out(1)),
        }
    }

    async fn prepare(self) -> Result<Prepared<'a>> {
        let pairs = self.producer.resolve(self.target).await?;
        let (exchange, key) = pairs.first().cloned().ok_or(Error::NoDestination)?;
        let (command, body) = match self.request {
            Request::Message(message) => {
                let command = message.name.as_str().into();
                (command, self.producer.encode(message)?)
            }
            Request::Command { name, parameters } => {
                let parts = MessageParts::command(&name, Category::Rpc, &parameters);
                let body = self.producer.encode_parts(&parts)?;
                (name, body)
            }
        };
        Ok(Prepared {
            producer: self.producer,
            exchange,
            key,
            body,
            command,
            timeout: self.timeout,
            strategy: self.strategy,
        })
    }

    async fn run(self) -> Result<Message> {
        let retries = self.retries;
        let prepared = self.prepare().await?;
        let attempts = retries.saturating_add(1);
        let mut last_error = None;
        for attempt in 1..=attempts {
            // The whole attempt (publish, confirm, a wait for a lost
            // connection to come back, and the reply) fits in the timeout.
            let deadline = Instant::now() + prepared.timeout;
            // One timer for the attempt, reused while waiting for the reply.
            let mut sleep = std::pin::pin!(tokio::time::sleep_until(deadline));
            let sent = tokio::select! {
                sent = prepared.send_once(deadline) => sent,
                () = &mut sleep => Err(prepared.timed_out(1)),
            };
            let outcome = match sent {
                Ok(pending) => pending.wait_with(sleep).await,
                Err(error) => Err(error),
            };
            match outcome {
                Err(Error::RpcTimeout { .. }) => {
                    tracing::debug!(command = %prepared.command, attempt, "RPC attempt timed out");
                }
                // A channel or connection lost mid-call: the next attempt
                // goes out on a fresh one.
                Err(error @ (Error::Amqp { .. } | Error::Closed(_))) => {
                    tracing::warn!(command = %prepared.command, attempt, %error, "RPC attempt failed");
                    last_error = Some(error);
                }
                other => return other,
            }
        }
        Err(last_error.unwrap_or_else(|| prepared.timed_out(attempts)))
    }
}

impl<'a> IntoFuture for RpcCall<'a> {
    type Output = Result<Message>;
    type IntoFuture = BoxFuture<'a, Result<Message>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}

struct Prepared<'a> {
    producer: &'a Producer,
    exchange: Exchange,
    key: String,
    body: Vec<u8>,
    command: Arc<str>,
    timeout: Duration,
    strategy: ReplyStrategy,
}

impl Prepared<'_> {
    fn timed_out(&self, attempts: u32) -> Error {
        Error::RpcTimeout {
            command: self.command.to_string(),
            attempts,
            timeout: self.timeout,
        }
    }

    /// One send: sets up the reply path, publishes, waits for the confirm.
    /// The reply is awaited until `deadline`.
    async fn send_once(&self, deadline: Instant) -> Result<PendingReply> {
        let inner = &self.producer.inner;
        let (number, id) = inner.rpc.next_id();
        let (channel, reader) = match self.strategy {
            ReplyStrategy::DirectReplyTo => {
                let (channel, reader) = inner
                    .rpc
                    .direct_channel(&inner.connection, &inner.encoder)
                    .await?;
                (channel, Some(reader))
            }
            ReplyStrategy::QueuePerCall => (inner.channel.clone(), None),
        };
        let channel = &channel;
        let (reply_queue, wait) = match reader {
            Some(reader) => {
                let (tx, rx) = oneshot::channel();
                inner
                    .rpc
                    .waiters
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(number, tx);
                let guard = WaiterGuard {
                    waiters: inner.rpc.waiters.clone(),
                    number,
                };
                (
                    Cow::Borrowed(DIRECT_REPLY_TO),
                    Wait::Direct {
                        rx,
                        _guard: guard,
                        reader,
                    },
                )
            }
            None => {
                let queue = channel.declare_queue(&Queue::server_named()).await?;
                let consumer = channel.consume(&queue, true).await?;
                (
                    Cow::Owned(queue),
                    Wait::Queue {
                        consumer: Box::new(consumer),
                        channel: channel.clone(),
                        encoder: inner.encoder.clone(),
                    },
                )
            }
        };
        let props = OutgoingProperties {
            content_type: Some(self.producer.content_type()),
            persistent: inner.persistent,
            // Taken up only on a channel with confirms (see `publish`).
            mandatory: true,
            reply_to: Some(&reply_queue),
            correlation_id: Some(&id),
            expiration_ms: Some(self.timeout.as_millis().max(1)),
        };
        channel
            .publish(self.exchange.name(), &self.key, &self.body, &props)
            .await?;
        Ok(PendingReply {
            wait,
            reply_queue,
            correlation_id: id,
            command: self.command.clone(),
            timeout: self.timeout,
            deadline,
        })
    }
}

enum Wait {
    Direct {
        rx: oneshot::Receiver<Message>,
        _guard: WaiterGuard,
        reader: Arc<tokio::sync::Mutex<Reader>>,
    },
    Queue {
        consumer: Box<RawConsumer>,
        channel: Channel,
        encoder: Arc<dyn Encoder>,
    },
}

/// A sent RPC request whose reply has not been awaited yet (from
/// [`RpcCall::queue_only`]). Await it for the reply, within the call's
/// timeout.
#[must_use = "the reply is lost unless the handle is awaited"]
pub struct PendingReply {
    wait: Wait,
    reply_queue: Cow<'static, str>,
    correlation_id: String,
    command: Arc<str>,
    timeout: Duration,
    deadline: Instant,
}

impl std::fmt::Debug for PendingReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingReply")
            .field("reply_queue", &self.reply_queue)
            .field("correlation_id", &self.correlation_id)
            .field("command", &self.command)
            .finish_non_exhaustive()
    }
}

impl PendingReply {
    /// The queue the reply goes to (`amq.rabbitmq.reply-to` or an
    /// `amq.gen-...` queue).
    pub fn reply_queue(&self) -> &str {
        &self.reply_queue
    }

    /// The request's correlation id.
    pub fn correlation_id(&self) -> &str {
        &self.correlation_id
    }

    /// Waits for the reply, until the call's timeout has passed since it
    /// was sent.
    pub async fn wait(self) -> Result<Message> {
        let sleep = std::pin::pin!(tokio::time::sleep_until(self.deadline));
        self.wait_with(sleep).await
    }

    /// Waits for the reply until `sleep`, armed for the call's deadline,
    /// ends (a call reuses the timer of its attempt).
    async fn wait_with(self, sleep: Pin<&mut tokio::time::Sleep>) -> Result<Message> {
        let (command, timeout) = (self.command, self.timeout);
        let timed_out = || Error::RpcTimeout {
            command: command.to_string(),
            attempts: 1,
            timeout,
        };
        match self.wait {
            Wait::Direct {
                mut rx,
                _guard,
                reader,
            } => {
                // The reply comes from the call reading the replies, or
                // this call becomes the reader.
                let reply = async {
                    let mut reader = match reader.try_lock() {
                        Ok(reader) => reader,
                        Err(_) => tokio::select! {
                            biased;
                            reply = &mut rx => return reply.ok(),
                            reader = reader.lock() => reader,
                        },
                    };
                    // Only this reader's holder hands out the replies to
                    // requests sent on its channel, so from here on this
                    // call's reply comes from this task: `rx` is checked,
                    // not awaited. A call that took the reader at once never
                    // registered a waker on `rx`, and handing itself its
                    // reply wakes nobody (no task poll for nothing).
                    loop {
                        match rx.try_recv() {
                            Ok(reply) => return Some(reply),
                            Err(oneshot::error::TryRecvError::Closed) => return None,
                            Err(oneshot::error::TryRecvError::Empty) => reader.read_one().await,
                        }
                    }
                };
                tokio::select! {
                    reply = reply => reply.ok_or(Error::Closed("RPC reply consumer")),
                    () = sleep => Err(timed_out()),
                }
            }
            Wait::Queue {
                mut consumer,
                channel,
                encoder,
            } => {
                let result = tokio::select! {
                    next = consumer.next() => Some(next),
                    () = sleep => None,
                };
                if let Err(e) = channel.cancel(&consumer).await {
                    tracing::debug!(error = %e, "cancel reply queue consumer");
                }
                match result {
                    Some(Some(Ok(delivery))) => Ok(encoder.decode(&delivery.data)?),
                    Some(Some(Err(e))) => Err(Error::amqp("consume RPC reply", e)),
                    Some(None) => Err(Error::Closed("RPC reply queue")),
                    None => Err(timed_out()),
                }
            }
        }
    }
}

impl IntoFuture for PendingReply {
    type Output = Result<Message>;
    type IntoFuture = BoxFuture<'static, Result<Message>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.wait())
    }
}

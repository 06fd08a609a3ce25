//! Consumers: queues bound to exchanges, delivering decoded messages.

use std::collections::{BTreeMap, HashSet};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use futures_util::StreamExt;
use futures_util::stream::{Fuse, Stream};
use serde_json::Value;
use tokio::sync::{mpsc, watch};

use crate::encoding::{DecodeError, Encoder, JsonEncoder};
use crate::error::{Error, Result};
use crate::exchange::Exchange;
use crate::message::Message;
use crate::transport::Connection;
use crate::transport::{Channel, Link, RawConsumer, RawDelivery};

/// How many unacknowledged messages the broker sends a consumer ahead of
/// time, per queue, unless [`ConsumerBuilder::prefetch`] says otherwise.
/// (Python Postage uses 1, which halves throughput for no gain in ordering
/// when handlers run one at a time anyway.)
pub const DEFAULT_PREFETCH: u16 = 16;

/// The largest body a consumer decodes unless
/// [`ConsumerBuilder::max_body_size`] says otherwise: 16 MiB. A larger one
/// is a [`DecodeError::TooLarge`].
pub const DEFAULT_MAX_BODY_SIZE: usize = 16 * 1024 * 1024;

/// A queue declaration. Defaults match Python Postage: not durable, not
/// exclusive, not auto-delete, no arguments.
///
/// ```
/// use postage::Queue;
///
/// let jobs = Queue::new("jobs")
///     .durable(true)
///     .argument("x-queue-type", "quorum")
///     .argument("x-dead-letter-exchange", "jobs-dlx");
/// let private = Queue::new(format!("echo-queue-{}", std::process::id())).exclusive(true);
/// let named_by_broker = Queue::server_named();
/// # let _ = (jobs, private, named_by_broker);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Queue {
    name: String,
    durable: bool,
    exclusive: bool,
    auto_delete: bool,
    arguments: BTreeMap<String, Value>,
}

impl Queue {
    /// A queue called `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Queue {
            name: name.into(),
            durable: false,
            exclusive: false,
            auto_delete: false,
            arguments: BTreeMap::new(),
        }
    }

    /// A queue the broker names (`amq.gen-...`): exclusive and auto-delete.
    pub fn server_named() -> Self {
        Queue::new("").exclusive(true).auto_delete(true)
    }

    /// Durable: survives a broker restart.
    #[must_use]
    pub fn durable(mut self, durable: bool) -> Self {
        self.durable = durable;
        self
    }

    /// Exclusive: private to this connection, deleted with it.
    #[must_use]
    pub fn exclusive(mut self, exclusive: bool) -> Self {
        self.exclusive = exclusive;
        self
    }

    /// Auto-delete: deleted when its last consumer goes.
    #[must_use]
    pub fn auto_delete(mut self, auto_delete: bool) -> Self {
        self.auto_delete = auto_delete;
        self
    }

    /// Adds a declaration argument (`x-dead-letter-exchange`,
    /// `x-queue-type`, `x-message-ttl`, ...).
    #[must_use]
    pub fn argument(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.arguments.insert(key.into(), value.into());
        self
    }

    /// The queue's name (empty for a server-named queue).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Is it durable?
    pub fn is_durable(&self) -> bool {
        self.durable
    }

    /// Is it exclusive?
    pub fn is_exclusive(&self) -> bool {
        self.exclusive
    }

    /// Is it auto-delete?
    pub fn is_auto_delete(&self) -> bool {
        self.auto_delete
    }

    /// Its declaration arguments.
    pub fn arguments(&self) -> &BTreeMap<String, Value> {
        &self.arguments
    }
}

impl From<&str> for Queue {
    fn from(name: &str) -> Self {
        Queue::new(name)
    }
}

impl From<String> for Queue {
    fn from(name: String) -> Self {
        Queue::new(name)
    }
}

impl From<&String> for Queue {
    fn from(name: &String) -> Self {
        Queue::new(name.as_str())
    }
}

/// One exchange and the (queue, routing key) pairs bound to it: Python's
/// `eqk` entry `(Exchange, [(queue, key), ...])`.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    /// The exchange.
    pub exchange: Exchange,
    /// The queues bound to it, each with its key.
    pub queues: Vec<(Queue, String)>,
}

impl Binding {
    /// A binding of these (queue, key) pairs to `exchange`.
    pub fn new<Q: Into<Queue>, K: Into<String>>(
        exchange: Exchange,
        queues: impl IntoIterator<Item = (Q, K)>,
    ) -> Self {
        Binding {
            exchange,
            queues: queues
                .into_iter()
                .map(|(q, k)| (q.into(), k.into()))
                .collect(),
        }
    }
}

/// Whether a consumer is receiving.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Consuming from every queue.
    Consuming,
    /// The connection dropped; waiting for lapin's recovery.
    Recovering,
    /// A queue's consumer was lost and could not be restored; the text says
    /// why. Nothing more arrives from that queue.
    Failed(String),
    /// Stopped on request.
    Stopped,
}

/// A received message, decoded, waiting for its acknowledgement.
///
/// Drop it without [`ack`](Delivery::ack) or [`reject`](Delivery::reject)
/// and the broker redelivers it when the channel closes.
pub struct Delivery {
    raw: RawDelivery,
    queue: Arc<str>,
    message: Result<Message, DecodeError>,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("queue", &self.queue)
            .field("routing_key", &self.routing_key())
            .field("message", &self.message)
            .finish_non_exhaustive()
    }
}

impl Delivery {
    /// The decoded message, or why it could not be decoded.
    pub fn message(&self) -> Result<&Message, &DecodeError> {
        self.message.as_ref()
    }

    /// Takes the decoded message out (the delivery keeps its
    /// acknowledgement handle).
    pub(crate) fn take_message(&mut self) -> Result<Message, DecodeError> {
        std::mem::replace(&mut self.message, Err(DecodeError::NotAnObject))
    }

    /// The raw body.
    pub fn body(&self) -> &[u8] {
        &self.raw.data
    }

    /// The queue it came from.
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// The exchange it was published to.
    pub fn exchange(&self) -> &str {
        self.raw.exchange.as_str()
    }

    /// Its routing key.
    pub fn routing_key(&self) -> &str {
        self.raw.routing_key.as_str()
    }

    /// Was it delivered before (and not acknowledged)?
    pub fn redelivered(&self) -> bool {
        self.raw.redelivered
    }

    /// The `reply_to` property, for RPC requests.
    pub fn reply_to(&self) -> Option<&str> {
        self.raw.properties.reply_to().as_ref().map(|s| s.as_str())
    }

    /// The `correlation_id` property.
    pub fn correlation_id(&self) -> Option<&str> {
        self.raw
            .properties
            .correlation_id()
            .as_ref()
            .map(|s| s.as_str())
    }

    /// How many times the broker delivered this message before (the
    /// `x-delivery-count` header that quorum queues set), if known.
    pub fn delivery_count(&self) -> Option<u64> {
        use lapin::types::AMQPValue;
        let headers = self.raw.properties.headers().as_ref()?;
        match headers.inner().get("x-delivery-count")? {
            AMQPValue::LongLongInt(n) => u64::try_from(*n).ok(),
            AMQPValue::LongInt(n) => u64::try_from(*n).ok(),
            AMQPValue::LongUInt(n) => Some(u64::from(*n)),
            AMQPValue::ShortInt(n) => u64::try_from(*n).ok(),
            AMQPValue::ShortUInt(n) => Some(u64::from(*n)),
            AMQPValue::ShortShortInt(n) => u64::try_from(*n).ok(),
            AMQPValue::ShortShortUInt(n) => Some(u64::from(*n)),
            _ => None,
        }
    }

    /// The `content_type` property.
    pub fn content_type(&self) -> Option<&str> {
        self.raw
            .properties
            .content_type()
            .as_ref()
            .map(|s| s.as_str())
    }

    /// Acknowledges: the broker forgets the message.
    pub async fn ack(&self) -> Result<()> {
        self.raw
            .ack(lapin::options::BasicAckOptions::default())
            .await
            .map(|_| ())
            .map_err(|e| Error::amqp("basic.ack", e))
    }

    /// Rejects; with `requeue` false the message is dropped or, when the
    /// queue has a dead-letter exchange, dead-lettered.
    pub async fn reject(&self, requeue: bool) -> Result<()> {
        self.raw
            .reject(lapin::options::BasicRejectOptions { requeue })
            .await
            .map(|_| ())
            .map_err(|e| Error::amqp("basic.reject", e))
    }
}

/// Builds a [`Consumer`].
#[derive(Debug, Clone)]
pub struct ConsumerBuilder {
    bindings: Vec<Binding>,
    prefetch: u16,
    encoder: Arc<dyn Encoder>,
    max_body_size: usize,
}

impl Default for ConsumerBuilder {
    fn default() -> Self {
        ConsumerBuilder {
            bindings: Vec::new(),
            prefetch: DEFAULT_PREFETCH,
            encoder: Arc::new(JsonEncoder),
            max_body_size: DEFAULT_MAX_BODY_SIZE,
        }
    }
}

impl ConsumerBuilder {
    /// Binds these (queue, key) pairs to `exchange` (Python's `eqk` entry).
    /// A queue bound with several keys still gets one broker consumer.
    #[must_use]
    pub fn bind<Q: Into<Queue>, K: Into<String>>(
        mut self,
        exchange: Exchange,
        queues: impl IntoIterator<Item = (Q, K)>,
    ) -> Self {
        self.bindings.push(Binding::new(exchange, queues));
        self
    }

    /// Adds a prepared [`Binding`].
    #[must_use]
    pub fn binding(mut self, binding: Binding) -> Self {
        self.bindings.push(binding);
        self
    }

    /// Messages the broker may send ahead of acknowledgements, per queue
    /// (default [`DEFAULT_PREFETCH`]; 0 means unlimited).
    #[must_use]
    pub fn prefetch(mut self, prefetch: u16) -> Self {
        self.prefetch = prefetch;
        self
    }

    /// Replaces the encoder (default [`JsonEncoder`]).
    #[must_use]
    pub fn encoder(mut self, encoder: impl Encoder) -> Self {
        self.encoder = Arc::new(encoder);
        self
    }

    /// The largest body decoded (default [`DEFAULT_MAX_BODY_SIZE`]); a
    /// larger one is delivered as [`DecodeError::TooLarge`] without being
    /// parsed.
    #[must_use]
    pub fn max_body_size(mut self, bytes: usize) -> Self {
        self.max_body_size = bytes;
        self
    }

    pub(crate) fn encoder_arc(&self) -> Arc<dyn Encoder> {
        self.encoder.clone()
    }

    /// The bindings so far.
    pub fn bindings(&self) -> &[Binding] {
        &self.bindings
    }

    /// Opens a channel, declares the exchanges and queues, binds them, and
    /// starts consuming.
    pub async fn connect(self, connection: &Connection) -> Result<Consumer> {
        let channel = connection.open_channel(false).await?;
        channel.qos(self.prefetch).await?;
        let (tx, added) = mpsc::unbounded_channel();
        let (health, _) = watch::channel(Health::Consuming);
        let shared = Arc::new(Shared {
            channel,
            encoder: self.encoder,
            max_body_size: self.max_body_size,
            state: Mutex::new(State {
                tx: Some(tx),
                consumed: HashSet::new(),
                consumers: Vec::new(),
            }),
            health,
            link: connection.link(),
        });
        let consumer = Consumer {
            handle: ConsumerHandle { shared },
            added,
            added_closed: false,
            queues: Mutex::new(Queues::new()),
        };
        for binding in &self.bindings {
            for (queue, key) in &binding.queues {
                consumer
                    .handle
                    .queue_bind(&binding.exchange, queue.clone(), key)
                    .await?;
            }
        }
        Ok(consumer)
    }
}

struct Shared {
    channel: Channel,
    encoder: Arc<dyn Encoder>,
    max_body_size: usize,
    state: Mutex<State>,
    health: watch::Sender<Health>,
    link: Arc<Link>,
}

struct State {
    /// Hands the streams of queues bound at run time to the [`Consumer`];
    /// `None` once stopped.
    tx: Option<mpsc::UnboundedSender<QueueStream>>,
    consumed: HashSet<String>,
    consumers: Vec<RawConsumer>,
}

impl Shared {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
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
    handle: ConsumerHandle,
    /// Streams of queues bound since the last [`next`](Consumer::next).
    added: mpsc::UnboundedReceiver<QueueStream>,
    added_closed: bool,
    /// Polled in the caller's task: no hand-over between tasks per
    /// delivery. Only ever reached through `&mut self` (`get_mut`, no
    /// locking); the mutex makes the consumer `Sync`.
    queues: Mutex<Queues<QueueStream>>,
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
                    Some(queue) => queues.push(queue),
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

    pub(crate) fn channel(&self) -> &Channel {
        &self.handle.shared.channel
    }

    pub(crate) async fn close(&self) {
        self.handle.stop().await;
        self.handle.shared.channel.close().await;
    }
}

/// A cloneable handle on a [`Consumer`].
#[derive(Clone)]
pub struct ConsumerHandle {
    shared: Arc<Shared>,
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
            channel.bind(&name, exchange.name(), key).await?;
        }
        let tx = {
            let mut state = self.shared.state();
            if !state.consumed.insert(name.clone()) {
                return Ok(name);
            }
            match &state.tx {
                Some(tx) => tx.clone(),
                None => return Err(Error::Closed("consumer")),
            }
        };
        let raw = match channel.consume(&name, false).await {
            Ok(raw) => raw,
            Err(e) => {
                self.shared.state().consumed.remove(&name);
                return Err(e);
            }
        };
        self.shared.state().consumers.push(raw.clone());
        tracing::debug!(queue = %name, exchange = exchange.name(), key, "consuming");
        // Only a dropped consumer no longer receives: nothing to do then.
        let _ = tx.send(queue_stream(
            self.shared.clone(),
            raw,
            Arc::from(name.as_str()),
        ));
        Ok(name)
    }

    /// Stops consuming: cancels every broker consumer. Deliveries already
    /// received are still handed out by [`Consumer::next`], which then ends.
    pub async fn stop(&self) {
        let consumers = {
            let mut state = self.shared.state();
            state.tx = None;
            std::mem::take(&mut state.consumers)
        };
        for raw in &consumers {
            if let Err(e) = self.shared.channel.cancel(raw).await {
                tracing::debug!(error = %e, "cancel consumer");
            }
        }
        self.shared.health.send_replace(Health::Stopped);
    }

    /// The queues consumed.
    pub fn queues(&self) -> Vec<String> {
        let mut queues: Vec<String> = self.shared.state().consumed.iter().cloned().collect();
        queues.sort();
        queues
    }

    /// The consumer's health now: [`Health::Recovering`] while its
    /// connection is being restored, [`Health::Failed`] once that recovery
    /// has stalled (also after the consumer was stopped, as a processor
    /// that ends on the stall stops it).
    pub fn health(&self) -> Health {
        let own = self.shared.health.borrow().clone();
        match own {
            Health::Failed(_) => own,
            _ if self.shared.link.stalled() => {
                Health::Failed("the connection's recovery stalled".into())
            }
            Health::Consuming if self.shared.link.recovering() => Health::Recovering,
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

    /// How many times the consumer's connection was lost and restored
    /// (lapin redeclares the queues and bindings and restarts the broker
    /// consumers each time).
    pub fn recoveries(&self) -> u64 {
        self.shared.link.recoveries()
    }
}

/// A consumer's queue streams, polled in turn, each pass starting after the
/// queue that delivered last (no queue starves the others).
///
/// Not `SelectAll`: its `FuturesUnordered` wakes its own task whenever all
/// of its streams are pending after one was polled, which with a single
/// queue (the common case) is once per delivery, a task poll for nothing.
/// Here a stream is polled only from `poll_next` and the wake-ups are the
/// queues' own. A pass polls every queue, as `tokio_stream::StreamMap`
/// does: a consumer holds a handful of queues.
struct Queues<S> {
    streams: Vec<Fuse<S>>,
    start: usize,
}

impl<S: Stream + Unpin> Queues<S> {
    fn new() -> Self {
        Queues {
            streams: Vec::new(),
            start: 0,
        }
    }

    fn push(&mut self, stream: S) {
        self.streams.push(stream.fuse());
    }

    fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }
}

impl<S: Stream + Unpin> Stream for Queues<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = &mut *self;
        let len = this.streams.len();
        let mut ended = false;
        for k in 0..len {
            let i = (this.start + k) % len;
            match this.streams[i].poll_next_unpin(cx) {
                Poll::Ready(Some(delivery)) => {
                    this.start = i + 1;
                    return Poll::Ready(Some(delivery));
                }
                Poll::Ready(None) => ended = true,
                Poll::Pending => {}
            }
        }
        if ended {
            this.streams.retain(|stream| !stream.is_done());
        }
        if this.streams.is_empty() {
            Poll::Ready(None)
        } else {
            Poll::Pending
        }
    }
}

/// One queue's deliveries, decoded; rides out connection recovery and
/// reports a consumer that is lost. Written out rather than built with
/// `stream::unfold`, which moves its state in and out of a fresh future for
/// every delivery.
struct QueueStream {
    shared: Arc<Shared>,
    raw: RawConsumer,
    queue: Arc<str>,
    /// Waiting for the connection to recover after an error; resolves to
    /// whether the queue's consumer is back.
    recovering: Option<Pin<Box<dyn Future<Output = bool> + Send>>>,
    ended: bool,
}

fn queue_stream(shared: Arc<Shared>, raw: RawConsumer, queue: Arc<str>) -> QueueStream {
    QueueStream {
        shared,
        raw,
        queue,
        recovering: None,
        ended: false,
    }
}

impl Stream for QueueStream {
    type Item = Delivery;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Delivery>> {
        let this = self.get_mut();
        loop {
            if let Some(recovering) = &mut this.recovering {
                let back = std::task::ready!(recovering.as_mut().poll(cx));
                this.recovering = None;
                this.ended = !back;
            }
            if this.ended {
                return Poll::Ready(None);
            }
            match std::task::ready!(this.raw.poll_next_unpin(cx)) {
                Some(Ok(delivery)) => {
                    return Poll::Ready(Some(this.shared.delivery(delivery, &this.queue)));
                }
                Some(Err(error)) => {
                    let (shared, queue) = (this.shared.clone(), this.queue.clone());
                    this.recovering =
                        Some(Box::pin(
                            async move { shared.ride_out(&queue, error).await },
                        ));
                }
                None => {
                    this.shared.cancelled(&this.queue);
                    this.ended = true;
                }
            }
        }
    }
}

impl Shared {
    fn delivery(&self, raw: RawDelivery, queue: &Arc<str>) -> Delivery {
        let message = decode(&*self.encoder, &raw, self.max_body_size);
        if self.channel.debug() {
            tracing::debug!(queue = %queue, body = %String::from_utf8_lossy(&raw.data), "delivery");
        }
        Delivery {
            raw,
            queue: queue.clone(),
            message,
        }
    }

    fn stopped(&self) -> bool {
        self.state().tx.is_none()
    }

    /// Waits for the connection to recover after `error`; false (and
    /// health `Failed`, unless stopped) when the consumer cannot be
    /// restored.
    async fn ride_out(&self, queue: &str, error: lapin::Error) -> bool {
        self.health.send_replace(Health::Recovering);
        match self.channel.resume_consumer(queue, error).await {
            Ok(()) => {
                self.health.send_replace(Health::Consuming);
                true
            }
            Err(error) => {
                if !self.stopped() {
                    tracing::error!(queue, %error, "consumer lost and not recoverable");
                    self.health
                        .send_replace(Health::Failed(format!("queue {queue}: {error}")));
                }
                false
            }
        }
    }

    /// The broker ended the consumer: health `Failed` unless it was
    /// stopped, its channel closed, or it failed already.
    fn cancelled(&self, queue: &str) {
        if !self.stopped()
            && self.channel.is_open()
            && !matches!(*self.health.borrow(), Health::Failed(_))
        {
            tracing::error!(
                queue,
                "the broker cancelled the consumer (queue deleted?); nothing more arrives from it"
            );
            self.health.send_replace(Health::Failed(format!(
                "queue {queue}: consumer cancelled by the broker"
            )));
        }
    }
}

fn decode(
    encoder: &dyn Encoder,
    delivery: &RawDelivery,
    max_body_size: usize,
) -> Result<Message, DecodeError> {
    if delivery.data.len() > max_body_size {
        return Err(DecodeError::TooLarge {
            size: delivery.data.len(),
            limit: max_body_size,
        });
    }
    if let Some(content_type) = delivery.properties.content_type()
        && content_type.as_str() != encoder.content_type()
    {
        return Err(DecodeError::ContentType {
            found: content_type.to_string(),
            expected: encoder.content_type().to_owned(),
        });
    }
    encoder.decode(&delivery.data)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Poll, Wake, Waker};

    use futures_util::stream::{self, StreamExt};
    use tokio::sync::mpsc;

    use super::Queues;

    /// Counts its wake-ups.
    #[derive(Default)]
    struct Wakes(AtomicUsize);

    impl Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn an_item_then_nothing_wakes_nobody() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut queues = Queues::new();
        queues.push(stream::poll_fn(move |cx| rx.poll_recv(cx)));
        let wakes = Arc::new(Wakes::default());
        let waker = Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        tx.send(1).unwrap();
        assert_eq!(queues.poll_next_unpin(&mut cx), Poll::Ready(Some(1)));
        assert_eq!(queues.poll_next_unpin(&mut cx), Poll::Pending);
        // `SelectAll` with one stream wakes its task here, for nothing.
        assert_eq!(wakes.0.load(Ordering::SeqCst), 0);
        tx.send(2).unwrap();
        assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
        assert_eq!(queues.poll_next_unpin(&mut cx), Poll::Ready(Some(2)));
    }

    #[test]
    fn queues_take_turns_and_ended_ones_are_dropped() {
        let mut queues = Queues::new();
        queues.push(stream::iter(vec![1, 2, 3]).boxed());
        queues.push(stream::iter(vec![10, 20]).boxed());
        queues.push(stream::iter(Vec::<i32>::new()).boxed());
        let waker = Waker::from(Arc::new(Wakes::default()));
        let mut cx = Context::from_waker(&waker);
        let mut seen = Vec::new();
        while let Poll::Ready(Some(item)) = queues.poll_next_unpin(&mut cx) {
            seen.push(item);
        }
        assert_eq!(seen, [1, 10, 2, 20, 3]);
        assert!(queues.is_empty());
        assert_eq!(queues.poll_next_unpin(&mut cx), Poll::Ready(None));
    }
}

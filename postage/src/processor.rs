//! Processors: a consumer plus a dispatch table of handlers.
//!
//! The table is a `&'static [Handler<P>]` returned by [`Handlers`]; the
//! `#[processor]` macro writes it, or you write it by hand:
//!
//! ```no_run
//! use std::sync::Arc;
//! use postage::prelude::*;
//! use postage::processor::{Handler, HandlerResult};
//!
//! const ECHO: Exchange = Exchange::direct("echo-exchange");
//!
//! struct Echo;
//!
//! impl Echo {
//!     async fn echo(&self, content: Content) -> HandlerResult {
//!         println!("{}", content.parameters().unwrap_or(&serde_json::Value::Null));
//!         Ok(())
//!     }
//!     async fn rpc_echo(&self, content: Content, reply: Reply) -> HandlerResult {
//!         let text = content.parameters().cloned().unwrap_or_default();
//!         reply.success(text).await?;
//!         Ok(())
//!     }
//! }
//!
//! impl Handlers for Echo {
//!     fn handlers() -> &'static [Handler<Self>] {
//!         const TABLE: &[Handler<Echo>] = &[
//!             Handler::message("command", "echo", |this, content| {
//!                 Box::pin(async move { this.echo(content).await })
//!             }),
//!             Handler::rpc("command", "echo", |this, content, reply| {
//!                 Box::pin(async move { this.rpc_echo(content, reply).await })
//!             }),
//!         ];
//!         TABLE
//!     }
//! }
//!
//! # async fn run() -> postage::Result<()> {
//! let connection = Connection::from_env().await?;
//! let processor = Processor::builder(Echo)
//!     .bind(ECHO, [("echo-queue", "echo-rk")])
//!     .fingerprint(Fingerprint::new("echo_receive", "controller"))
//!     .connect(&connection)
//!     .await?;
//! let mut scheduler = Scheduler::new();
//! scheduler.add(processor);
//! scheduler.run().await
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::FutureExt;
use serde_json::Value;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::consumer::{Consumer, ConsumerBuilder, ConsumerHandle, Delivery, Queue};
use crate::encoding::{DecodeError, Encoder};
use crate::error::{Error, Result};
use crate::exchange::Exchange;
use crate::fingerprint::Fingerprint;
use crate::message::{
    Category, Content, IntoMessage, Message, MessageParts, Outcome, WireFingerprint,
};
use crate::producer::BoxFuture;
use crate::transport::{Channel, Connection, OutgoingProperties};

/// What a handler returns.
pub type HandlerResult = std::result::Result<(), HandlerError>;

/// The future a handler entry produces.
pub type HandlerFuture = BoxFuture<'static, HandlerResult>;

/// A handler's failure: a name (like a Python exception class) and a text.
/// An RPC caller receives it as an exception result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerError {
    /// A short name, e.g. the error type or `Panic`.
    pub name: String,
    /// What went wrong.
    pub message: String,
}

impl HandlerError {
    /// A failure called `name` saying `message`.
    pub fn new(name: impl Into<String>, message: impl Into<String>) -> Self {
        HandlerError {
            name: name.into(),
            message: message.into(),
        }
    }

    fn panic(payload: &(dyn std::any::Any + Send)) -> Self {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "handler panicked".into());
        HandlerError::new("Panic", message)
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.message)
    }
}

impl std::error::Error for HandlerError {}

impl From<Error> for HandlerError {
    fn from(error: Error) -> Self {
        HandlerError::new(short_type_name::<Error>(), error.to_string())
    }
}

/// The last segment of a type's path, generics dropped: `postage::Error`
/// gives `Error`.
pub(crate) fn short_type_name<T: ?Sized>() -> String {
    let full = std::any::type_name::<T>();
    let base = full.split('<').next().unwrap_or(full);
    base.rsplit("::").next().unwrap_or(base).to_owned()
}

/// Turns what a handler method returns into a [`HandlerResult`]: `()` is
/// success, `Result<(), E>` fails with `E`'s type name and text.
#[diagnostic::on_unimplemented(
    message = "a Postage handler cannot return `{Self}`",
    label = "handlers return `()` or `Result<(), E>` with `E: Display`",
    note = "RPC handlers may also return a value: see `postage::IntoReply`"
)]
pub trait IntoHandlerResult {
    /// Converts.
    fn into_handler_result(self) -> HandlerResult;
}

impl IntoHandlerResult for () {
    fn into_handler_result(self) -> HandlerResult {
        Ok(())
    }
}

impl<E: fmt::Display> IntoHandlerResult for std::result::Result<(), E> {
    fn into_handler_result(self) -> HandlerResult {
        self.map_err(|e| HandlerError::new(short_type_name::<E>(), e.to_string()))
    }
}

/// The function a handler entry calls.
pub enum HandlerFn<P> {
    /// Gets the message's content (Python's `MessageHandler`).
    Message(fn(Arc<P>, Content) -> HandlerFuture),
    /// Gets the whole message, fingerprint included
    /// (`MessageHandlerFullBody`).
    FullBody(fn(Arc<P>, Message) -> HandlerFuture),
    /// Gets the content and the reply to send (`RpcHandler`).
    Rpc(fn(Arc<P>, Content, Reply) -> HandlerFuture),
    /// Gets a [`Context`]: processor, message, reply and control together
    /// (Python's class-based `Handler`).
    Context(fn(Context<P>) -> HandlerFuture),
}

impl<P> fmt::Debug for HandlerFn<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HandlerFn::Message(_) => "Message",
            HandlerFn::FullBody(_) => "FullBody",
            HandlerFn::Rpc(_) => "Rpc",
            HandlerFn::Context(_) => "Context",
        })
    }
}

/// One entry of a dispatch table: which messages, and what to call.
#[derive(Debug)]
pub struct Handler<P> {
    /// `message` or `rpc`.
    pub category: Category,
    /// The message type, e.g. `command`.
    pub kind: &'static str,
    /// The message name, e.g. `echo`.
    pub name: &'static str,
    /// What to call.
    pub call: HandlerFn<P>,
    /// The method's name, for logs.
    pub label: &'static str,
}

impl<P> Handler<P> {
    /// A content handler for `message` category messages.
    pub const fn message(
        kind: &'static str,
        name: &'static str,
        f: fn(Arc<P>, Content) -> HandlerFuture,
    ) -> Self {
        Self::new(Category::Message, kind, name, HandlerFn::Message(f))
    }

    /// A full-body handler for `message` category messages.
    pub const fn full_body(
        kind: &'static str,
        name: &'static str,
        f: fn(Arc<P>, Message) -> HandlerFuture,
    ) -> Self {
        Self::new(Category::Message, kind, name, HandlerFn::FullBody(f))
    }

    /// An RPC handler for `rpc` category messages.
    pub const fn rpc(
        kind: &'static str,
        name: &'static str,
        f: fn(Arc<P>, Content, Reply) -> HandlerFuture,
    ) -> Self {
        Self::new(Category::Rpc, kind, name, HandlerFn::Rpc(f))
    }

    /// A context handler for either category.
    pub const fn context(
        category: Category,
        kind: &'static str,
        name: &'static str,
        f: fn(Context<P>) -> HandlerFuture,
    ) -> Self {
        Self::new(category, kind, name, HandlerFn::Context(f))
    }

    const fn new(
        category: Category,
        kind: &'static str,
        name: &'static str,
        call: HandlerFn<P>,
    ) -> Self {
        Handler {
            category,
            kind,
            name,
            call,
            label: "",
        }
    }

    /// Names the entry (the method name) for logs.
    #[must_use]
    pub const fn labeled(mut self, label: &'static str) -> Self {
        self.label = label;
        self
    }
}

/// A type whose methods handle messages: the dispatch table a
/// [`Processor`] reads. `#[processor]` implements it.
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no Postage handlers",
    label = "not a processor",
    note = "put #[postage::processor] on an impl block of `{Self}` with #[handler(...)] methods, or implement `postage::Handlers` by hand"
)]
pub trait Handlers: Send + Sync + Sized + 'static {
    /// The table, in declaration order.
    fn handlers() -> &'static [Handler<Self>];
}

/// Why a processor ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// A `quit` command (or [`Control::quit`]).
    Quit,
    /// A `restart` command (or [`Control::restart`]): the owner should
    /// replace the process ([`restart_process`]); the [`Scheduler`] does.
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
    fn new() -> Self {
        Control {
            tx: Arc::new(watch::channel(None).0),
        }
    }

    fn request(&self, stop: Stop) {
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

    async fn stopped(&self) -> Stop {
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

/// Everything a context handler can reach.
pub struct Context<P> {
    /// The processor's handler object.
    pub processor: Arc<P>,
    /// The incoming message.
    pub message: Message,
    /// The reply, for `rpc` category messages.
    pub reply: Option<Reply>,
    /// Stops the processor.
    pub control: Control,
    /// The queue the message came from.
    pub queue: String,
    /// Its routing key.
    pub routing_key: String,
    /// Whether the broker delivered it before.
    pub redelivered: bool,
}

impl<P> fmt::Debug for Context<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("message", &self.message)
            .field("queue", &self.queue)
            .field("routing_key", &self.routing_key)
            .finish_non_exhaustive()
    }
}

struct ReplyTarget {
    channel: Channel,
    reply_to: String,
    correlation_id: Option<String>,
    fingerprint: Arc<WireFingerprint>,
    encoder: Arc<dyn Encoder>,
}

impl ReplyTarget {
    async fn publish(self, message: Message) -> Result<()> {
        let body = self
            .encoder
            .encode_with_fingerprint(message, &self.fingerprint)?;
        self.publish_body(&body).await
    }

    /// Sends the result saying `outcome`.
    async fn publish_outcome(self, outcome: &Outcome) -> Result<()> {
        let parts = MessageParts::result(outcome);
        let body = self.encoder.encode_parts(&parts, &self.fingerprint)?;
        self.publish_body(&body).await
    }

    /// Sends a result the processor answers with itself, logging a
    /// failure to send.
    async fn answer(self, outcome: Outcome) {
        if let Err(error) = self.publish_outcome(&outcome).await {
            tracing::warn!(%error, "could not send RPC reply");
        }
    }

    async fn publish_body(&self, body: &[u8]) -> Result<()> {
        let props = OutgoingProperties {
            content_type: Some(self.encoder.content_type()),
            correlation_id: self.correlation_id.as_deref(),
            ..OutgoingProperties::default()
        };
        self.channel.publish("", &self.reply_to, body, &props).await
    }
}

struct ReplySlot {
    target: Mutex<Option<ReplyTarget>>,
    handler_done: AtomicBool,
    command: String,
}

impl ReplySlot {
    fn take(&self) -> Option<ReplyTarget> {
        self.target
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

/// The answer to an RPC request. Send it once; the handler may keep
/// working afterwards. If it is dropped unsent, the caller gets an error
/// result saying so (or an exception result when the handler failed),
/// never a silent timeout.
pub struct Reply {
    slot: Arc<ReplySlot>,
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reply")
            .field("command", &self.slot.command)
            .finish_non_exhaustive()
    }
}

impl Reply {
    /// Sends `message` (normally a result) to the caller, with the
    /// request's correlation id and this processor's fingerprint.
    pub async fn send(self, message: impl IntoMessage) -> Result<()> {
        match self.slot.take() {
            Some(target) => target.publish(message.into_message()).await,
            None => Ok(()),
        }
    }

    /// Sends the result saying `outcome`, encoded from its parts (no
    /// [`Message`] is built for it).
    pub async fn outcome(self, outcome: Outcome) -> Result<()> {
        match self.slot.take() {
            Some(target) => target.publish_outcome(&outcome).await,
            None => Ok(()),
        }
    }

    /// Sends a success result carrying `value`.
    pub async fn success(self, value: impl Into<Value>) -> Result<()> {
        let value = value.into();
        self.outcome(Outcome::Success {
            value,
            message: String::new(),
        })
        .await
    }

    /// Sends an error result.
    pub async fn error(self, message: impl Into<String>) -> Result<()> {
        let message = message.into();
        self.outcome(Outcome::Error { message }).await
    }

    /// Sends an exception result.
    pub async fn exception(
        self,
        name: impl Into<String>,
        message: impl Into<String>,
    ) -> Result<()> {
        let (name, message) = (name.into(), message.into());
        self.outcome(Outcome::Exception { name, message }).await
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        // While the handler runs, the processor decides what an unsent reply
        // means once the handler ends; after that, the last holder does.
        if !self.slot.handler_done.load(Ordering::Acquire) {
            return;
        }
        if let Some(target) = self.slot.take() {
            let text = format!(
                "the handler of {:?} dropped its reply unsent",
                self.slot.command
            );
            spawn_error_reply(target, text);
        }
    }
}

fn spawn_error_reply(target: ReplyTarget, text: String) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(target.answer(Outcome::Error { message: text }));
    }
}

/// Builds a [`Processor`].
pub struct ProcessorBuilder<P> {
    handlers: Arc<P>,
    consumer: ConsumerBuilder,
    fingerprint: Option<Fingerprint>,
    concurrency: usize,
    quit_command: bool,
    restart_command: bool,
    control_senders: Option<Vec<String>>,
    max_deliveries: u64,
}

/// The redelivery bound of [`ProcessorBuilder::max_deliveries`].
pub const DEFAULT_MAX_DELIVERIES: u64 = 5;

impl<P> fmt::Debug for ProcessorBuilder<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessorBuilder")
            .field("consumer", &self.consumer)
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

impl<P: Handlers> ProcessorBuilder<P> {
    /// Binds these (queue, key) pairs to `exchange` (Python's `eqk` entry).
    #[must_use]
    pub fn bind<Q: Into<Queue>, K: Into<String>>(
        mut self,
        exchange: Exchange,
        queues: impl IntoIterator<Item = (Q, K)>,
    ) -> Self {
        self.consumer = self.consumer.bind(exchange, queues);
        self
    }

    /// Prefetch per queue (default
    /// [`DEFAULT_PREFETCH`](crate::consumer::DEFAULT_PREFETCH)).
    #[must_use]
    pub fn prefetch(mut self, prefetch: u16) -> Self {
        self.consumer = self.consumer.prefetch(prefetch);
        self
    }

    /// The largest body decoded (default
    /// [`DEFAULT_MAX_BODY_SIZE`](crate::consumer::DEFAULT_MAX_BODY_SIZE));
    /// a larger one is rejected unread.
    #[must_use]
    pub fn max_body_size(mut self, bytes: usize) -> Self {
        self.consumer = self.consumer.max_body_size(bytes);
        self
    }

    /// A message the broker says it delivered this many times before (the
    /// `x-delivery-count` header of quorum queues) is rejected without
    /// running its handlers, so that a message that crashes its consumer
    /// is dead-lettered instead of retried forever (default
    /// [`DEFAULT_MAX_DELIVERIES`]). Classic queues do not count deliveries;
    /// failed handlers never requeue, so only a crash redelivers there.
    #[must_use]
    pub fn max_deliveries(mut self, deliveries: u64) -> Self {
        self.max_deliveries = deliveries;
        self
    }

    /// Replaces the encoder for incoming messages and replies.
    #[must_use]
    pub fn encoder(mut self, encoder: impl Encoder) -> Self {
        self.consumer = self.consumer.encoder(encoder);
        self
    }

    /// The fingerprint put into replies (default: anonymous).
    #[must_use]
    pub fn fingerprint(mut self, fingerprint: Fingerprint) -> Self {
        self.fingerprint = Some(fingerprint);
        self
    }

    /// How many handlers may run at once (default 1, which keeps the
    /// order of arrival, as Python Postage).
    #[must_use]
    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.max(1);
        self
    }

    /// Whether `command quit` stops the processor (default on). A handler
    /// of your own for `command quit` replaces the default.
    #[must_use]
    pub fn quit_command(mut self, enabled: bool) -> Self {
        self.quit_command = enabled;
        self
    }

    /// Whether `command restart` restarts the process (default on). A
    /// handler of your own for `command restart` replaces the default.
    #[must_use]
    pub fn restart_command(mut self, enabled: bool) -> Self {
        self.restart_command = enabled;
        self
    }

    /// Accept `quit` / `restart` only from senders whose fingerprint name
    /// is one of these.
    #[must_use]
    pub fn control_senders<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.control_senders = Some(names.into_iter().map(Into::into).collect());
        self
    }

    /// Declares and binds the queues and starts consuming.
    pub async fn connect(self, connection: &Connection) -> Result<Processor<P>> {
        let encoder = self.consumer.encoder_arc();
        let consumer = self.consumer.connect(connection).await?;
        let fingerprint = self
            .fingerprint
            .unwrap_or_else(|| Fingerprint::anonymous().with_vhost(connection.config().vhost()));
        let table = P::handlers();
        let mut index: Index = Vec::new();
        for (i, handler) in table.iter().enumerate() {
            let key = (handler.kind, handler.name);
            let at = match index.binary_search_by(|(k, _)| k.cmp(&key)) {
                Ok(at) => at,
                Err(at) => {
                    index.insert(at, (key, Routes::default()));
                    at
                }
            };
            let routes = &mut index[at].1;
            match handler.category {
                Category::Message => routes.message.push(i),
                Category::Rpc if routes.rpc.is_some() => tracing::warn!(
                    kind = handler.kind,
                    name = handler.name,
                    "more than one RPC handler; only the first replies"
                ),
                Category::Rpc => routes.rpc = Some(i),
            }
        }
        let core = Arc::new(Core {
            handlers: self.handlers,
            table,
            index,
            reply_channel: consumer.channel().clone(),
            fingerprint: Arc::new(WireFingerprint::from(&fingerprint)),
            encoder,
            control: Control::new(),
            quit_command: self.quit_command,
            restart_command: self.restart_command,
            control_senders: self.control_senders,
            max_deliveries: self.max_deliveries,
        });
        Ok(Processor {
            core,
            consumer,
            connection: connection.clone(),
            concurrency: self.concurrency,
        })
    }
}

/// The handlers of each (type, name), sorted by it (a handful of strings
/// compared beats hashing them).
type Index = Vec<((&'static str, &'static str), Routes)>;

#[derive(Default)]
struct Routes {
    message: Vec<usize>,
    rpc: Option<usize>,
}

struct Core<P: 'static> {
    handlers: Arc<P>,
    table: &'static [Handler<P>],
    index: Index,
    reply_channel: Channel,
    fingerprint: Arc<WireFingerprint>,
    encoder: Arc<dyn Encoder>,
    control: Control,
    quit_command: bool,
    restart_command: bool,
    control_senders: Option<Vec<String>>,
    max_deliveries: u64,
}

/// A consumer with a dispatch table: receives messages, runs their
/// handlers, replies to RPC requests, and acknowledges.
///
/// - `message` category: every handler for (type, name) runs, in
///   declaration order.
/// - `rpc` category: the RPC handler runs and replies to `reply_to` with
///   the request's correlation id, if any. No handler: the caller gets an
///   error result at once.
/// - A message is acknowledged after its handlers finish. A body that
///   cannot be decoded, or an RPC request without `reply_to`, is rejected
///   without requeue (dead-lettered if the queue has a dead-letter
///   exchange) and logged. A handler that fails or panics is logged; an RPC
///   caller gets an exception result naming the failure; the processor
///   keeps running.
/// - `command quit` stops it, `command restart` ends it with
///   [`Stop::Restart`] (unless switched off or handled by your own handler).
pub struct Processor<P: 'static> {
    core: Arc<Core<P>>,
    consumer: Consumer,
    connection: Connection,
    concurrency: usize,
}

impl<P: 'static> fmt::Debug for Processor<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Processor")
            .field("consumer", &self.consumer)
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

impl<P: Handlers> Processor<P> {
    /// Starts building a processor around `handlers`.
    pub fn builder(handlers: P) -> ProcessorBuilder<P> {
        Self::builder_arc(Arc::new(handlers))
    }

    /// Like [`builder`](Processor::builder), sharing an `Arc`.
    pub fn builder_arc(handlers: Arc<P>) -> ProcessorBuilder<P> {
        ProcessorBuilder {
            handlers,
            consumer: ConsumerBuilder::default(),
            fingerprint: None,
            concurrency: 1,
            quit_command: true,
            restart_command: true,
            control_senders: None,
            max_deliveries: DEFAULT_MAX_DELIVERIES,
        }
    }

    /// The handler object.
    pub fn handlers(&self) -> &Arc<P> {
        &self.core.handlers
    }

    /// Stops this processor from elsewhere.
    pub fn control(&self) -> Control {
        self.core.control.clone()
    }

    /// The consumer: bind more queues at run time, read its health.
    pub fn consumer(&self) -> ConsumerHandle {
        self.consumer.handle()
    }

    /// The connection the processor uses.
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// Runs until `quit`, `restart`, [`Control`] or the consumer's end. A
    /// consumer whose health turns [`Health::Failed`](crate::Health::Failed)
    /// (its queue deleted, its connection's recovery stalled) ends the
    /// processor with [`Error::ConsumerLost`], so that the program (or its
    /// supervisor) can act instead of idling.
    pub async fn run(self) -> Result<Stop> {
        self.run_until(std::future::pending::<()>()).await
    }

    /// Runs until `shutdown` resolves (then ends with [`Stop::Shutdown`]),
    /// or as [`run`](Processor::run). Handlers already running finish and
    /// their messages are acknowledged; deliveries not started go back to
    /// the queue.
    pub async fn run_until(mut self, shutdown: impl Future<Output = ()> + Send) -> Result<Stop> {
        let core = self.core.clone();
        let semaphore = Arc::new(Semaphore::new(self.concurrency));
        let mut running = JoinSet::new();
        let mut shutdown = std::pin::pin!(shutdown);
        // A consumer that was lost ends the processor with an error rather
        // than leaving it idle.
        let handle = self.consumer.handle();
        let mut failed = std::pin::pin!(handle.failed());
        let mut lost = None;
        // One subscription for the whole run, not one per delivery.
        let mut stopped = std::pin::pin!(core.control.stopped());
        let stop = loop {
            tokio::select! {
                biased;
                stop = &mut stopped => break stop,
                () = &mut shutdown => break Stop::Shutdown,
                reason = &mut failed => {
                    tracing::error!(%reason, "the processor's consumer is lost; the processor ends");
                    lost = Some(reason);
                    break Stop::Ended;
                }
                delivery = self.consumer.next() => {
                    let Some(delivery) = delivery else { break Stop::Ended };
                    if self.concurrency == 1 {
                        core.process(delivery).await;
                    } else {
                        let Ok(permit) = semaphore.clone().acquire_owned().await else {
                            break Stop::Ended;
                        };
                        let core = core.clone();
                        running.spawn(async move {
                            core.process(delivery).await;
                            drop(permit);
                        });
                    }
                    while running.try_join_next().is_some() {}
                }
            }
        };
        tracing::debug!(?stop, "processor stopping");
        self.consumer.stop().await;
        while running.join_next().await.is_some() {}
        self.consumer.close().await;
        match lost {
            Some(reason) => Err(Error::ConsumerLost(reason)),
            None => Ok(stop),
        }
    }
}

impl<P: Handlers> Core<P> {
    async fn process(&self, mut delivery: Delivery) {
        let message = match delivery.take_message() {
            Ok(message) => message,
            Err(reason) => {
                tracing::warn!(
                    queue = delivery.queue(),
                    routing_key = delivery.routing_key(),
                    sender = %sender_of_undecodable(delivery.body(), &reason),
                    %reason,
                    "rejecting a message that cannot be decoded"
                );
                finish(&delivery, false).await;
                return;
            }
        };
        if let Some(count) = delivery.delivery_count()
            && count >= self.max_deliveries
        {
            tracing::warn!(
                queue = delivery.queue(),
                kind = %message.kind,
                name = %message.name,
                sender = %message.sender(),
                deliveries = count,
                "rejecting a message delivered too many times"
            );
            finish(&delivery, false).await;
            return;
        }
        match message.category {
            Category::Rpc => self.process_rpc(delivery, message).await,
            Category::Message => self.process_message(delivery, message).await,
        }
    }

    async fn process_message(&self, delivery: Delivery, message: Message) {
        let handlers = self
            .routes(&message)
            .map_or(&[][..], |routes| routes.message.as_slice());
        if handlers.is_empty() && message.kind == "command" {
            let stop = match message.name.as_str() {
                "quit" if self.quit_command => Some(Stop::Quit),
                "restart" if self.restart_command => Some(Stop::Restart),
                _ => None,
            };
            if let Some(stop) = stop {
                let sender = message.sender();
                if self.control_allowed(&sender) {
                    tracing::info!(command = %message.name, %sender, "control command received");
                    finish(&delivery, true).await;
                    self.control.request(stop);
                } else {
                    tracing::warn!(command = %message.name, %sender, "control command from a sender not allowed; ignored");
                    finish(&delivery, true).await;
                }
                return;
            }
        }
        if handlers.is_empty() && message.is_result() {
            tracing::warn!(
                queue = delivery.queue(),
                sender = %message.sender(),
                "rejecting a result message where commands are expected"
            );
            finish(&delivery, false).await;
            return;
        }
        if handlers.is_empty() {
            tracing::debug!(kind = %message.kind, name = %message.name, "no handler; message dropped");
            finish(&delivery, true).await;
            return;
        }
        let last = handlers.len() - 1;
        let mut message = Some(message);
        for (position, &i) in handlers.iter().enumerate() {
            let handler = &self.table[i];
            let Some(current) = (if position == last {
                message.take()
            } else {
                message.clone()
            }) else {
                break;
            };
            let future = match &handler.call {
                HandlerFn::Message(f) => call(|| f(self.handlers.clone(), current.content)),
                HandlerFn::FullBody(f) => call(|| f(self.handlers.clone(), current)),
                HandlerFn::Context(f) => {
                    let context = self.context(&delivery, current, None);
                    call(|| f(context))
                }
                HandlerFn::Rpc(_) => continue,
            };
            if let Err(error) = run_handler(future).await {
                tracing::error!(handler = handler.label, kind = handler.kind, name = handler.name, %error, "handler failed");
            }
        }
        finish(&delivery, true).await;
    }

    async fn process_rpc(&self, delivery: Delivery, mut message: Message) {
        let Some(reply_to) = delivery.reply_to().map(str::to_owned) else {
            tracing::warn!(
                name = %message.name,
                sender = %message.sender(),
                "rejecting an RPC request without reply_to"
            );
            finish(&delivery, false).await;
            return;
        };
        let target = ReplyTarget {
            channel: self.reply_channel.clone(),
            reply_to,
            correlation_id: delivery.correlation_id().map(str::to_owned),
            fingerprint: self.fingerprint.clone(),
            encoder: self.encoder.clone(),
        };
        let Some(i) = self.routes(&message).and_then(|routes| routes.rpc) else {
            tracing::debug!(kind = %message.kind, name = %message.name, "no RPC handler; replying with an error");
            let text = format!("no handler for RPC {} {:?}", message.kind, message.name);
            target.answer(Outcome::Error { message: text }).await;
            finish(&delivery, true).await;
            return;
        };
        let handler = &self.table[i];
        // An RPC handler gets the content alone: the name moves to the slot.
        let command = match handler.call {
            HandlerFn::Rpc(_) => std::mem::take(&mut message.name),
            _ => message.name.clone(),
        };
        let slot = Arc::new(ReplySlot {
            target: Mutex::new(Some(target)),
            handler_done: AtomicBool::new(false),
            command,
        });
        let reply = Reply { slot: slot.clone() };
        let future = match &handler.call {
            HandlerFn::Rpc(f) => call(|| f(self.handlers.clone(), message.content, reply)),
            HandlerFn::Context(f) => {
                let context = self.context(&delivery, message, Some(reply));
                call(|| f(context))
            }
            HandlerFn::Message(_) | HandlerFn::FullBody(_) => {
                drop(reply);
                Box::pin(async { Ok(()) })
            }
        };
        let outcome = run_handler(future).await;
        slot.handler_done.store(true, Ordering::Release);
        if let Err(error) = &outcome {
            tracing::error!(handler = handler.label, kind = handler.kind, name = handler.name, %error, "RPC handler failed");
        }
        // Only the processor's reference left: the handler dropped its
        // reply; otherwise someone still holds it and answers later.
        if Arc::strong_count(&slot) == 1
            && let Some(target) = slot.take()
        {
            let answer = match outcome {
                Ok(()) => Outcome::Error {
                    message: format!(
                        "the handler of {:?} finished without replying",
                        slot.command
                    ),
                },
                Err(error) => Outcome::Exception {
                    name: error.name,
                    message: error.message,
                },
            };
            target.answer(answer).await;
        }
        finish(&delivery, true).await;
    }

    fn routes(&self, message: &Message) -> Option<&Routes> {
        let key = (message.kind.as_str(), message.name.as_str());
        let at = self.index.binary_search_by(|(k, _)| k.cmp(&key)).ok()?;
        Some(&self.index[at].1)
    }

    fn context(&self, delivery: &Delivery, message: Message, reply: Option<Reply>) -> Context<P> {
        Context {
            processor: self.handlers.clone(),
            message,
            reply,
            control: self.control.clone(),
            queue: delivery.queue().to_owned(),
            routing_key: delivery.routing_key().to_owned(),
            redelivered: delivery.redelivered(),
        }
    }

    fn control_allowed(&self, sender: &Fingerprint) -> bool {
        match &self.control_senders {
            None => true,
            Some(allowed) => sender
                .name
                .as_ref()
                .is_some_and(|name| allowed.iter().any(|a| a == name)),
        }
    }
}

/// The sender of a body that is not a valid message, when it is at least a
/// JSON object with a fingerprint; `unknown` otherwise.
fn sender_of_undecodable(body: &[u8], reason: &DecodeError) -> String {
    if matches!(reason, DecodeError::TooLarge { .. }) {
        return "unknown".to_owned();
    }
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|value| match value.get("fingerprint") {
            Some(Value::Object(map)) => Some(Fingerprint::from_map(map).to_string()),
            _ => None,
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Calls a handler entry, turning a panic in the call itself into a
/// failed future.
fn call(f: impl FnOnce() -> HandlerFuture) -> HandlerFuture {
    match std::panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(future) => future,
        Err(panic) => {
            let error = HandlerError::panic(&*panic);
            Box::pin(async move { Err(error) })
        }
    }
}

async fn run_handler(future: HandlerFuture) -> HandlerResult {
    match AssertUnwindSafe(future).catch_unwind().await {
        Ok(result) => result,
        Err(panic) => Err(HandlerError::panic(&*panic)),
    }
}

async fn finish(delivery: &Delivery, ack: bool) {
    let result = if ack {
        delivery.ack().await
    } else {
        delivery.reject(false).await
    };
    if let Err(error) = result {
        tracing::warn!(%error, "could not acknowledge a delivery; the broker will redeliver it");
    }
}

/// Replaces this process with a fresh run of the same executable and
/// arguments (same pid). Returns only if that fails.
pub fn restart_process() -> std::io::Error {
    use std::os::unix::process::CommandExt;
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(error) => return error,
    };
    // A rebuilt binary replaces the old file: run the new one at that path.
    let exe = exe
        .to_str()
        .and_then(|s| s.strip_suffix(" (deleted)"))
        .map_or(exe.clone(), std::path::PathBuf::from);
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    tracing::info!(exe = %exe.display(), "restarting");
    std::process::Command::new(exe).args(args).exec()
}

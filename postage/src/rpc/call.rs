//! [`RpcCall`]: one call's options, then its sends, each awaited within
//! the timeout, and its retries.

use std::borrow::Cow;
use std::future::IntoFuture;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::oneshot;
use tokio::time::Instant;
use tracing::Instrument;

use super::pending::Wait;
use super::reader::WaiterGuard;
use super::state::RpcState;
use super::{DIRECT_REPLY_TO, PendingReply, ReplyStrategy};
use crate::BoxFuture;
use crate::encoding::Encoder;
use crate::error::{Error, Result};
use crate::message::{Category, Message, WireFingerprint};
use crate::middleware::{Outgoing, SendService, send};
use crate::telemetry::{About, RpcOutcome, span};
use crate::topology::{Exchange, Queue, Target};
use crate::transport::{Channel, Connection, OutgoingProperties};

/// What a call needs of the producer that makes it, borrowed.
#[derive(Clone, Copy)]
pub(crate) struct Origin<'a> {
    /// The producer's connection (for the direct reply-to channel).
    pub(crate) connection: &'a Connection,
    /// The producer's channel (queue-per-call requests, declarations).
    pub(crate) channel: &'a Channel,
    /// The producer's default (exchange, key) pairs.
    pub(crate) defaults: &'a [(Exchange, String)],
    pub(crate) encoder: &'a Arc<dyn Encoder>,
    /// The producer's fingerprint, as written into messages.
    pub(crate) fingerprint: &'a WireFingerprint,
    /// Persistent delivery of requests?
    pub(crate) persistent: bool,
    pub(crate) state: &'a RpcState,
    /// The producer's layers around each publish, if any.
    pub(crate) layers: Option<&'a SendService>,
    /// The AMQP `user_id` of its requests, if the producer sets one.
    pub(crate) user_id: Option<&'a str>,
}

/// An RPC call being prepared; `.await` it for the reply message (a
/// success, error or exception result: see [`Message::outcome`]).
///
/// A call has no delayed form (a send's `send_after`): its timeout runs
/// from the moment it is sent, and a caller waiting for a reply would
/// wait through the delay too. Send a command later instead, and have its
/// handler send the result as a message.
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
    origin: Origin<'a>,
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
    /// A command encoded from its parameters without a `Message` (or why
    /// it could not be).
    Command {
        name: Arc<str>,
        body: Result<Vec<u8>>,
    },
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
    pub(crate) fn new(origin: Origin<'a>, mut message: Message) -> Self {
        message.category = Category::Rpc;
        Self::with(origin, Request::Message(message))
    }

    /// A call of the RPC command `name`.
    pub(crate) fn command(origin: Origin<'a>, name: &str, body: Result<Vec<u8>>) -> Self {
        let name = name.into();
        Self::with(origin, Request::Command { name, body })
    }

    fn with(origin: Origin<'a>, request: Request) -> Self {
        let settings = origin.state.settings;
        RpcCall {
            origin,
            request,
            target: Target::Default,
            timeout: settings.timeout,
            retries: settings.retries,
            strategy: settings.strategy,
        }
    }

    /// The command called.
    pub(crate) fn command_name(&self) -> &str {
        self.request.command()
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
        let origin = self.origin;
        let pairs = origin
            .channel
            .destinations(self.target, origin.defaults)
            .await?;
        let (exchange, key) = pairs.first().cloned().ok_or(Error::NoDestination)?;
        let (kind, command, body) = match self.request {
            Request::Message(message) => {
                let body = origin
                    .encoder
                    .encode_with_fingerprint(&message, origin.fingerprint)?;
                (Cow::Owned(message.kind), message.name.as_str().into(), body)
            }
            Request::Command { name, body } => (Cow::Borrowed("command"), name, body?),
        };
        Ok(Prepared {
            origin,
            exchange,
            key,
            body,
            kind,
            command,
            timeout: self.timeout,
            strategy: self.strategy,
        })
    }

    async fn run(self) -> Result<Message> {
        let retries = self.retries;
        let prepared = self.prepare().await?;
        let span = span::rpc_call(prepared.exchange.name(), &prepared.key, &prepared.about());
        let started = Instant::now();
        let mut tries = Tries::default();
        let result = if span.is_disabled() {
            prepared.attempts(started, retries, &mut tries).await
        } else {
            prepared
                .attempts(started, retries, &mut tries)
                .instrument(span.clone())
                .await
        };
        let outcome = match &result {
            Ok(reply) => match reply.result_kind() {
                Some("error") => RpcOutcome::Error,
                Some("exception") => RpcOutcome::Exception,
                _ => RpcOutcome::Success,
            },
            Err(Error::RpcTimeout { .. }) => RpcOutcome::Timeout,
            Err(_) => RpcOutcome::Failed,
        };
        prepared.origin.state.instruments.record(
            &prepared.command,
            outcome,
            started.elapsed(),
            tries.timed_out,
        );
        if !span.is_disabled() {
            span.record("postage.rpc.attempts", tries.made);
            span.record("postage.outcome", outcome.label());
            match &result {
                Err(error) => span::failed(&span, error.kind_name()),
                Ok(_) if outcome != RpcOutcome::Success => span::failed(&span, outcome.label()),
                Ok(_) => {}
            }
        }
        result
    }
}

/// `deadline` in milliseconds since the Unix epoch, by the system clock:
/// what the request's [`DEADLINE_HEADER`](crate::transport::DEADLINE_HEADER)
/// says.
fn epoch_millis(deadline: Instant) -> Option<u64> {
    let left = deadline.saturating_duration_since(Instant::now());
    let at = SystemTime::now().checked_add(left)?;
    u64::try_from(at.duration_since(UNIX_EPOCH).ok()?.as_millis()).ok()
}

/// What became of a call's attempts.
#[derive(Default)]
struct Tries {
    made: u32,
    timed_out: u32,
}

impl<'a> IntoFuture for RpcCall<'a> {
    type Output = Result<Message>;
    type IntoFuture = BoxFuture<'a, Result<Message>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}

struct Prepared<'a> {
    origin: Origin<'a>,
    exchange: Exchange,
    key: String,
    body: Vec<u8>,
    /// The request's message type.
    kind: Cow<'static, str>,
    command: Arc<str>,
    timeout: Duration,
    strategy: ReplyStrategy,
}

impl Prepared<'_> {
    /// The call's attempts, each within the timeout, until a reply or
    /// the last one; the first starts at `started`.
    async fn attempts(&self, started: Instant, retries: u32, tries: &mut Tries) -> Result<Message> {
        let attempts = retries.saturating_add(1);
        let mut last_error = None;
        for attempt in 1..=attempts {
            tries.made = attempt;
            // The whole attempt (publish, confirm, a wait for a lost
            // connection to come back, and the reply) fits in the timeout.
            let start = if attempt == 1 {
                started
            } else {
                Instant::now()
            };
            let deadline = start + self.timeout;
            // One timer for the attempt, reused while waiting for the reply.
            let mut sleep = std::pin::pin!(tokio::time::sleep_until(deadline));
            let sent = tokio::select! {
                sent = self.send_once(deadline) => sent,
                () = &mut sleep => Err(self.timed_out(1)),
            };
            let outcome = match sent {
                Ok(pending) => pending.wait_with(sleep).await,
                Err(error) => Err(error),
            };
            match outcome {
                Err(Error::RpcTimeout { .. }) => {
                    tries.timed_out += 1;
                    tracing::debug!(command = %self.command, attempt, "RPC attempt timed out");
                }
                // A channel or connection lost mid-call: the next attempt
                // goes out on a fresh one.
                Err(
                    error @ (Error::Amqp { .. }
                    | Error::ReplyLost { .. }
                    | Error::Unconfirmed { .. }
                    | Error::PublishTimeout { .. }
                    | Error::PublishInterrupted { .. }),
                ) => {
                    tracing::warn!(command = %self.command, attempt, error = %error.report(), "RPC attempt failed");
                    last_error = Some(error);
                }
                other => return other,
            }
        }
        if let Some(reason) = self.origin.connection.blocked() {
            // No reply because the broker blocks publishing: a request may
            // have left and still be taken when the broker unblocks.
            return Err(Error::Blocked {
                exchange: self.exchange.name().to_owned(),
                key: self.key.clone(),
                reason,
                waited: self.timeout * attempts,
                sent: true,
            });
        }
        Err(last_error.unwrap_or_else(|| self.timed_out(attempts)))
    }

    /// What the request's spans and metrics say of it.
    fn about(&self) -> About<'_> {
        About {
            kind: &self.kind,
            name: &self.command,
            category: "rpc",
        }
    }

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
        let origin = self.origin;
        let (number, id) = origin.state.next_id();
        let (channel, reader) = match self.strategy {
            ReplyStrategy::DirectReplyTo => {
                let (channel, reader) = origin
                    .state
                    .direct_channel(origin.connection, origin.encoder)
                    .await?;
                (channel, Some(reader))
            }
            ReplyStrategy::QueuePerCall => (origin.channel.clone(), None),
        };
        let channel = &channel;
        let (reply_queue, wait) = match reader {
            Some(reader) => {
                let (tx, rx) = oneshot::channel();
                origin
                    .state
                    .waiters
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(number, tx);
                let guard = WaiterGuard {
                    waiters: origin.state.waiters.clone(),
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
                        encoder: origin.encoder.clone(),
                    },
                )
            }
        };
        let props = OutgoingProperties {
            content_type: Some(origin.encoder.content_type()),
            persistent: origin.persistent,
            // Taken up only on a channel with confirms (see `publish`).
            mandatory: true,
            reply_to: Some(&reply_queue),
            correlation_id: Some(&id),
            message_id: None,
            user_id: origin.user_id,
            expiration_ms: Some(self.timeout.as_millis().max(1)),
            headers: None,
            deadline_ms: epoch_millis(deadline),
        };
        match origin.layers {
            None => {
                channel
                    .publish(
                        self.exchange.name(),
                        &self.key,
                        &self.body,
                        &props,
                        &self.about(),
                    )
                    .await?;
            }
            Some(layers) => {
                let target = vec![(self.exchange.clone(), self.key.clone())];
                let outgoing = Outgoing::new(&self.about(), self.body.clone(), target, &props);
                send(layers, outgoing).await?;
            }
        }
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

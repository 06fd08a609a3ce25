//! Deliveries, and consumers that survive the replacement of their
//! channel: each consumer's slot holds the lapin consumer of the channel
//! now, replaced when the channel is opened again.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;
use futures_util::{Stream, StreamExt};
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicRejectOptions};
use lapin::types::FieldTable;

use super::channel::ChannelShared;
use super::convert::{amqp_error, count, json_table, text};
use super::declare;
use super::session::Shared;
use crate::error::{Error, Result};
use crate::transport::Headers;

/// A delivery as lapin received it, with the generation of the channel
/// it came on: it can be settled only on that channel.
pub(crate) struct Delivery {
    inner: lapin::message::Delivery,
    generation: u64,
    channel: Arc<ChannelShared>,
}

/// One consumer of a channel, across the channel's replacements.
pub(crate) struct Slot {
    queue: Mutex<String>,
    no_ack: bool,
    current: Mutex<Started>,
    /// The generation of `current`, read by every poll of its stream: a
    /// stream whose consumer was replaced ends, so that its reader moves
    /// to the new one (the replaced channel may never close).
    generation: AtomicU64,
    /// Wakes the stream's reader when the consumer is replaced.
    replaced: AtomicWaker,
    cancelled: AtomicBool,
}

/// The lapin consumer of a slot now, with the generation of its channel
/// and the epoch of that channel's connection.
#[derive(Clone)]
pub(super) struct Started {
    pub(super) consumer: lapin::Consumer,
    pub(super) generation: u64,
    pub(super) epoch: u64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Slot {
    pub(super) fn new(queue: &str, no_ack: bool, started: Started) -> Arc<Self> {
        Arc::new(Slot {
            queue: Mutex::new(queue.to_owned()),
            no_ack,
            generation: AtomicU64::new(started.generation),
            current: Mutex::new(started),
            replaced: AtomicWaker::new(),
            cancelled: AtomicBool::new(false),
        })
    }

    /// The queue consumed (its name now, for a renamed server-named queue).
    pub(super) fn queue(&self) -> String {
        lock(&self.queue).clone()
    }

    /// The generation of the channel the consumer runs on now.
    pub(super) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The consumer tag now.
    pub(super) fn tag(&self) -> String {
        lock(&self.current).consumer.tag().to_string()
    }

    pub(super) fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }

    pub(super) fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// Follows a renamed queue.
    pub(super) fn rename(&self, renames: &[(String, String)]) {
        let mut queue = lock(&self.queue);
        if let Some((_, new)) = renames.iter().find(|(old, _)| *old == *queue) {
            new.clone_into(&mut queue);
        }
    }

    /// Starts this consumer on `channel` (its queue declared again first
    /// from `connection`'s record, with `redeclare`).
    pub(super) async fn start_on(
        &self,
        connection: &Shared,
        channel: &lapin::Channel,
        redeclare: bool,
    ) -> lapin::Result<lapin::Consumer> {
        if redeclare
            && let Some(renamed) =
                declare::recorded_queue(connection, channel, &self.queue()).await?
        {
            self.rename(&[renamed]);
        }
        channel
            .basic_consume(
                self.queue().as_str().into(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: self.no_ack,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await
    }

    /// The consumer started on the channel of `generation`, on the
    /// connection of `epoch`.
    pub(super) fn replace(&self, consumer: lapin::Consumer, generation: u64, epoch: u64) {
        *lock(&self.current) = Started {
            consumer,
            generation,
            epoch,
        };
        self.generation.store(generation, Ordering::Release);
        self.replaced.wake();
    }
}

/// A consumer's stream of deliveries, from the lapin consumer of one
/// generation of its channel. Cheap to clone (a handle).
#[derive(Clone)]
pub(crate) struct Consumer {
    slot: Arc<Slot>,
    started: Started,
    channel: Arc<ChannelShared>,
}

impl Consumer {
    pub(super) fn new(slot: Arc<Slot>, channel: Arc<ChannelShared>) -> Self {
        let started = lock(&slot.current).clone();
        Consumer {
            slot,
            started,
            channel,
        }
    }

    pub(super) fn slot(&self) -> &Arc<Slot> {
        &self.slot
    }

    pub(crate) fn id(&self) -> ConsumerId {
        ConsumerId(self.slot.clone())
    }

    /// The channel generation and connection epoch it was started in.
    pub(super) fn started(&self) -> (u64, u64) {
        (self.started.generation, self.started.epoch)
    }

    /// The consumer that replaced this one (the same when none did).
    pub(super) fn resumed(&self) -> Consumer {
        Consumer::new(self.slot.clone(), self.channel.clone())
    }

    /// Is `other` the same lapin consumer as this one?
    pub(super) fn same_as(&self, other: &Consumer) -> bool {
        self.started.generation == other.started.generation
            && self.started.consumer.tag() == other.started.consumer.tag()
    }
}

/// A consumer's name for cancelling it: its slot, not its stream.
#[derive(Clone)]
pub(crate) struct ConsumerId(pub(super) Arc<Slot>);

/// Why a consumer's stream was interrupted (usually a lost connection).
#[derive(Debug)]
pub(crate) struct Interruption(Option<lapin::Error>);

impl Interruption {
    /// lapin's error, if it gave one.
    pub(super) fn error(&self) -> Option<&lapin::Error> {
        self.0.as_ref()
    }

    /// The error of a consumer that cannot be resumed after this.
    pub(super) fn into_error(self, operation: String, reason: &str) -> Error {
        let source = match self.0 {
            Some(error) => format!("{error}; {reason}"),
            None => reason.to_owned(),
        };
        Error::Amqp {
            operation,
            reply_code: None,
            source: source.into(),
        }
    }
}

impl std::fmt::Display for Interruption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(error) => error.fmt(f),
            None => f.write_str("the consumer's channel closed"),
        }
    }
}

impl Stream for Consumer {
    type Item = Result<Delivery, Interruption>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.started.consumer.poll_next_unpin(cx);
        if polled.is_pending() {
            // Woken too when the consumer is replaced on a new channel
            // (checked after registering: no replacement is missed).
            self.slot.replaced.register(cx.waker());
        }
        if self.slot.generation() != self.started.generation {
            return Poll::Ready(Some(Err(Interruption(None))));
        }
        match std::task::ready!(polled) {
            Some(Ok(delivery)) => Poll::Ready(Some(Ok(Delivery {
                inner: delivery,
                generation: self.started.generation,
                channel: self.channel.clone(),
            }))),
            Some(Err(error)) => Poll::Ready(Some(Err(Interruption(Some(error))))),
            // Cancelled on request, or by the broker (its queue deleted),
            // or its channel replaced: the last is an interruption, which
            // the channel tells apart (`resume_consumer`).
            None if self.slot.is_cancelled() => Poll::Ready(None),
            None => Poll::Ready(Some(Err(Interruption(None)))),
        }
    }
}

impl Delivery {
    pub(crate) fn data(&self) -> &[u8] {
        &self.inner.data
    }

    pub(crate) fn exchange(&self) -> &str {
        self.inner.exchange.as_str()
    }

    pub(crate) fn routing_key(&self) -> &str {
        self.inner.routing_key.as_str()
    }

    pub(crate) fn redelivered(&self) -> bool {
        self.inner.redelivered
    }

    pub(crate) fn reply_to(&self) -> Option<&str> {
        self.inner
            .properties
            .reply_to()
            .as_ref()
            .map(|s| s.as_str())
    }

    pub(crate) fn message_id(&self) -> Option<&str> {
        self.inner
            .properties
            .message_id()
            .as_ref()
            .map(|s| s.as_str())
    }

    pub(crate) fn user_id(&self) -> Option<&str> {
        self.inner.properties.user_id().as_ref().map(|s| s.as_str())
    }

    pub(crate) fn correlation_id(&self) -> Option<&str> {
        self.inner
            .properties
            .correlation_id()
            .as_ref()
            .map(|s| s.as_str())
    }

    pub(crate) fn content_type(&self) -> Option<&str> {
        self.inner
            .properties
            .content_type()
            .as_ref()
            .map(|s| s.as_str())
    }

    pub(crate) fn headers(&self) -> Headers {
        self.inner
            .properties
            .headers()
            .as_ref()
            .map(json_table)
            .unwrap_or_default()
    }

    pub(crate) fn is_persistent(&self) -> bool {
        *self.inner.properties.delivery_mode() == Some(2)
    }

    pub(crate) fn header_text(&self, key: &str) -> Option<&str> {
        let headers = self.inner.properties.headers().as_ref()?;
        text(headers.inner().get(key)?)
    }

    pub(crate) fn delivery_tag(&self) -> u64 {
        self.inner.delivery_tag
    }

    pub(crate) fn delivery_count(&self) -> Option<u64> {
        self.header_count("x-delivery-count")
    }

    pub(crate) fn header_count(&self, key: &str) -> Option<u64> {
        let headers = self.inner.properties.headers().as_ref()?;
        count(headers.inner().get(key)?)
    }

    pub(crate) async fn ack(&self) -> Result<()> {
        self.settle("basic.ack", self.inner.ack(BasicAckOptions::default()))
            .await
    }

    pub(crate) async fn ack_up_to(&self) -> Result<()> {
        let multiple = BasicAckOptions { multiple: true };
        self.settle("basic.ack", self.inner.ack(multiple)).await
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    pub(crate) async fn reject(&self, requeue: bool) -> Result<()> {
        self.settle(
            "basic.reject",
            self.inner.reject(BasicRejectOptions { requeue }),
        )
        .await
    }

    /// Acknowledges or rejects on the channel the delivery came on. Once
    /// that channel is closed or replaced (its connection lost, or the
    /// broker closed it), nothing can settle the delivery (the broker
    /// delivers it again) and nothing is sent on the replacement: an
    /// error at once.
    async fn settle(
        &self,
        operation: &'static str,
        settling: impl Future<Output = lapin::Result<bool>>,
    ) -> Result<()> {
        let link = &self.channel.connection.link;
        let down = link.down_notified();
        // Cheap, per acknowledgement: a loss not noticed yet is caught by
        // `down` below, a closed channel by lapin (which refuses to send
        // on it).
        let gone = || link.recovering() || self.channel.generation() != self.generation;
        let lost = || Error::Amqp {
            operation: operation.to_owned(),
            reply_code: None,
            source: "the channel the delivery came on is closed; the broker delivers it again"
                .into(),
        };
        if gone() {
            return Err(lost());
        }
        tokio::select! {
            biased;
            settled = settling => match settled {
                Ok(true) => Ok(()),
                // Not sent: lapin found the channel closed.
                Ok(false) => Err(lost()),
                Err(e) => Err(amqp_error(operation, e)),
            },
            () = down => Err(lost()),
        }
    }
}

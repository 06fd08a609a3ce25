//! Deliveries of the in-memory broker, the consumers that stream them
//! across connection replacements, and why a stream was interrupted.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use futures_util::Stream;
use serde_json::Value;
use tokio::sync::mpsc;

use super::flow::Settle;
use super::session::Session;
use super::state::{Message, Refusal};
use crate::error::{Error, Result};
use crate::transport::Headers;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the broker sends a consumer.
#[derive(Debug)]
pub(crate) enum Event {
    Deliver(Delivered),
    /// The broker cancelled the consumer (its queue was deleted).
    Cancelled,
    /// The broker closed the consumer's channel.
    Closed(Refusal),
}

/// One delivery, as the broker made it.
#[derive(Debug)]
pub(crate) struct Delivered {
    pub(super) message: Arc<Message>,
    pub(super) tag: u64,
    pub(super) redelivered: bool,
    /// Returns counted by a quorum queue (`x-delivery-count`), once any.
    pub(super) returns: Option<u64>,
}

/// A delivery, and the channel that settles it.
pub(crate) struct Delivery {
    delivered: Delivered,
    channel: u64,
    /// The connection it came on.
    connection: u64,
    session: Arc<Session>,
}

/// A consumer as its channel keeps it: started again on the channel that
/// replaces its own.
pub(super) struct Slot {
    pub(super) no_ack: bool,
    current: Mutex<Current>,
    cancelled: std::sync::atomic::AtomicBool,
}

/// The consumer's queue, tag, channel and stream now.
#[derive(Clone)]
struct Current {
    queue: String,
    tag: String,
    channel: u64,
    generation: u64,
    events: Arc<Mutex<mpsc::UnboundedReceiver<Event>>>,
}

impl Slot {
    pub(super) fn new(
        queue: &str,
        no_ack: bool,
        tag: String,
        channel: u64,
        generation: u64,
        events: mpsc::UnboundedReceiver<Event>,
    ) -> Arc<Self> {
        Arc::new(Slot {
            no_ack,
            current: Mutex::new(Current {
                queue: queue.to_owned(),
                tag,
                channel,
                generation,
                events: Arc::new(Mutex::new(events)),
            }),
            cancelled: Default::default(),
        })
    }

    pub(super) fn queue(&self) -> String {
        lock(&self.current).queue.clone()
    }

    pub(super) fn tag(&self) -> (u64, String) {
        let current = lock(&self.current);
        (current.channel, current.tag.clone())
    }

    pub(super) fn cancel(&self) {
        self.cancelled
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub(super) fn is_cancelled(&self) -> bool {
        self.cancelled.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The consumer was started again (on a renamed queue, perhaps).
    pub(super) fn replace(
        &self,
        queue: String,
        tag: String,
        channel: u64,
        generation: u64,
        events: mpsc::UnboundedReceiver<Event>,
    ) {
        *lock(&self.current) = Current {
            queue,
            tag,
            channel,
            generation,
            events: Arc::new(Mutex::new(events)),
        };
    }
}

/// A consumer's stream. Cheap to clone (a handle).
#[derive(Clone)]
pub(crate) struct Consumer {
    slot: Arc<Slot>,
    current: Current,
    session: Arc<Session>,
}

impl Consumer {
    pub(super) fn new(slot: Arc<Slot>, session: Arc<Session>) -> Self {
        let current = lock(&slot.current).clone();
        Consumer {
            slot,
            current,
            session,
        }
    }

    pub(super) fn slot(&self) -> &Arc<Slot> {
        &self.slot
    }

    pub(crate) fn id(&self) -> ConsumerId {
        ConsumerId(self.slot.clone())
    }

    /// The connection it was started on.
    pub(super) fn generation(&self) -> u64 {
        self.current.generation
    }

    /// The consumer that replaced this one (the same when none did).
    pub(super) fn resumed(&self) -> Consumer {
        Consumer::new(self.slot.clone(), self.session.clone())
    }

    /// Is `other` the same broker consumer as this one?
    pub(super) fn same_as(&self, other: &Consumer) -> bool {
        self.current.channel == other.current.channel && self.current.tag == other.current.tag
    }
}

/// A consumer's name for cancelling it.
#[derive(Clone)]
pub(crate) struct ConsumerId(pub(super) Arc<Slot>);

/// Why a consumer's stream was interrupted.
#[derive(Debug)]
pub(crate) enum Interruption {
    /// Its connection was lost.
    Lost,
    /// The broker cancelled it (its queue was deleted).
    Cancelled,
    /// The broker closed its channel.
    Closed(Refusal),
}

impl Interruption {
    /// The error of a consumer that cannot be resumed after this.
    pub(super) fn into_error(self, operation: String, reason: &str) -> Error {
        let (reply_code, source) = match self {
            Interruption::Closed(refusal) => {
                (Some(refusal.code), format!("{}; {reason}", refusal.text))
            }
            Interruption::Lost | Interruption::Cancelled => (None, format!("{self}; {reason}")),
        };
        Error::Amqp {
            operation,
            reply_code,
            source: source.into(),
        }
    }
}

impl std::fmt::Display for Interruption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Interruption::Lost => f.write_str("the connection was lost"),
            Interruption::Cancelled => f.write_str("the broker cancelled the consumer"),
            Interruption::Closed(refusal) => f.write_str(&refusal.text),
        }
    }
}

impl Stream for Consumer {
    type Item = Result<Delivery, Interruption>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let next = lock(&this.current.events).poll_recv(cx);
        Poll::Ready(match std::task::ready!(next) {
            Some(Event::Deliver(delivered)) => Some(Ok(Delivery {
                delivered,
                channel: this.current.channel,
                connection: this.current.generation,
                session: this.session.clone(),
            })),
            Some(Event::Cancelled) => Some(Err(Interruption::Cancelled)),
            Some(Event::Closed(refusal)) => Some(Err(Interruption::Closed(refusal))),
            None if this.slot.is_cancelled() => None,
            None => Some(Err(Interruption::Lost)),
        })
    }
}

impl Delivery {
    pub(crate) fn data(&self) -> &[u8] {
        &self.delivered.message.body
    }

    pub(crate) fn exchange(&self) -> &str {
        &self.delivered.message.exchange
    }

    pub(crate) fn routing_key(&self) -> &str {
        &self.delivered.message.routing_key
    }

    pub(crate) fn redelivered(&self) -> bool {
        self.delivered.redelivered
    }

    pub(crate) fn reply_to(&self) -> Option<&str> {
        self.delivered.message.reply_to.as_deref()
    }

    pub(crate) fn correlation_id(&self) -> Option<&str> {
        self.delivered.message.correlation_id.as_deref()
    }

    pub(crate) fn message_id(&self) -> Option<&str> {
        self.delivered.message.message_id.as_deref()
    }

    pub(crate) fn user_id(&self) -> Option<&str> {
        self.delivered.message.user_id.as_deref()
    }

    pub(crate) fn content_type(&self) -> Option<&str> {
        self.delivered.message.content_type.as_deref()
    }

    pub(crate) fn delivery_count(&self) -> Option<u64> {
        self.delivered.returns.or_else(|| {
            self.delivered
                .message
                .headers
                .get("x-delivery-count")
                .and_then(Value::as_u64)
        })
    }

    pub(crate) fn header_count(&self, key: &str) -> Option<u64> {
        self.delivered.message.headers.get(key)?.as_u64()
    }

    pub(crate) fn header_text(&self, key: &str) -> Option<&str> {
        self.delivered.message.headers.get(key)?.as_str()
    }

    pub(crate) fn delivery_tag(&self) -> u64 {
        self.delivered.tag
    }

    pub(crate) fn headers(&self) -> Headers {
        let mut headers = self.delivered.message.headers.clone();
        if let Some(returns) = self.delivered.returns {
            headers.insert("x-delivery-count".into(), Value::from(returns));
        }
        headers
    }

    pub(crate) fn is_persistent(&self) -> bool {
        self.delivered.message.persistent
    }

    pub(crate) async fn ack(&self) -> Result<()> {
        self.settle("basic.ack", Settle::Ack)
    }

    pub(crate) async fn ack_up_to(&self) -> Result<()> {
        self.settle("basic.ack", Settle::AckUpTo)
    }

    /// The broker's id of its channel: tags count from 1 on each, and a
    /// channel opened again gets a greater id.
    pub(crate) fn generation(&self) -> u64 {
        self.channel
    }

    pub(crate) async fn reject(&self, requeue: bool) -> Result<()> {
        let outcome = if requeue {
            Settle::Requeue
        } else {
            Settle::Discard
        };
        self.settle("basic.reject", outcome)
    }

    /// Settles on the channel the delivery came on; once its connection
    /// is lost nothing can (the broker delivers it again).
    fn settle(&self, operation: &'static str, outcome: Settle) -> Result<()> {
        self.session
            .settle(self.channel, self.connection, self.delivered.tag, outcome)
            .map_err(|refusal| match refusal {
                Some(refusal) => refusal.into_error(operation.to_owned()),
                None => Error::Amqp {
                    operation: operation.to_owned(),
                    reply_code: None,
                    source:
                        "the connection the delivery came on was lost; the broker delivers it again"
                            .into(),
                },
            })
    }
}

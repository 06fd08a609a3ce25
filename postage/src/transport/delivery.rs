//! What a broker delivers: `RawDelivery`s from a `RawConsumer`'s stream,
//! or an `Interruption` of it.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::{Stream, StreamExt};

use super::{Headers, amqp};
use crate::error::Result;

/// A delivery as received, before decoding.
// Not boxed: a delivery from RabbitMQ would cost an allocation more.
#[allow(clippy::large_enum_variant)]
pub(crate) enum RawDelivery {
    Amqp(amqp::Delivery),
    #[cfg(feature = "testing")]
    Memory(super::memory::Delivery),
}

/// Runs the same code on whichever backend it is.
macro_rules! on_backend {
    ($value:expr, $enum:ident, $inner:ident => $body:expr) => {
        match $value {
            $enum::Amqp($inner) => $body,
            #[cfg(feature = "testing")]
            $enum::Memory($inner) => $body,
        }
    };
}

/// A broker consumer's stream of deliveries. Cheap to clone (a handle on
/// the same consumer).
#[derive(Clone)]
pub(crate) enum RawConsumer {
    Amqp(amqp::Consumer),
    #[cfg(feature = "testing")]
    Memory(super::memory::Consumer),
}

/// Names a consumer to cancel it, without holding on to its stream (nor
/// to the channel it ran on before a recovery).
#[derive(Clone)]
pub(crate) enum ConsumerId {
    Amqp(amqp::ConsumerId),
    #[cfg(feature = "testing")]
    Memory(super::memory::ConsumerId),
}

impl RawConsumer {
    /// What [`Channel::cancel`](super::Channel::cancel) takes.
    pub(crate) fn id(&self) -> ConsumerId {
        match self {
            RawConsumer::Amqp(consumer) => ConsumerId::Amqp(consumer.id()),
            #[cfg(feature = "testing")]
            RawConsumer::Memory(consumer) => ConsumerId::Memory(consumer.id()),
        }
    }
}

/// Why a consumer's stream was interrupted (usually a lost connection):
/// hand it to [`Channel::resume_consumer`](super::Channel::resume_consumer).
#[derive(Debug)]
pub(crate) enum Interruption {
    Amqp(amqp::Interruption),
    #[cfg(feature = "testing")]
    Memory(super::memory::Interruption),
}

impl std::fmt::Display for Interruption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        on_backend!(self, Interruption, interruption => interruption.fmt(f))
    }
}

impl Stream for RawConsumer {
    type Item = Result<RawDelivery, Interruption>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.get_mut() {
            RawConsumer::Amqp(consumer) => consumer.poll_next_unpin(cx).map(|next| {
                next.map(|item| item.map(RawDelivery::Amqp).map_err(Interruption::Amqp))
            }),
            #[cfg(feature = "testing")]
            RawConsumer::Memory(consumer) => consumer.poll_next_unpin(cx).map(|next| {
                next.map(|item| item.map(RawDelivery::Memory).map_err(Interruption::Memory))
            }),
        }
    }
}

impl RawDelivery {
    /// The body.
    pub(crate) fn data(&self) -> &[u8] {
        on_backend!(self, RawDelivery, delivery => delivery.data())
    }

    /// The exchange it was published to.
    pub(crate) fn exchange(&self) -> &str {
        on_backend!(self, RawDelivery, delivery => delivery.exchange())
    }

    /// Its routing key.
    pub(crate) fn routing_key(&self) -> &str {
        on_backend!(self, RawDelivery, delivery => delivery.routing_key())
    }

    /// Was it delivered before?
    pub(crate) fn redelivered(&self) -> bool {
        on_backend!(self, RawDelivery, delivery => delivery.redelivered())
    }

    /// The `reply_to` property.
    pub(crate) fn reply_to(&self) -> Option<&str> {
        on_backend!(self, RawDelivery, delivery => delivery.reply_to())
    }

    /// The `message_id` property.
    pub(crate) fn message_id(&self) -> Option<&str> {
        on_backend!(self, RawDelivery, delivery => delivery.message_id())
    }

    /// The `user_id` property.
    pub(crate) fn user_id(&self) -> Option<&str> {
        on_backend!(self, RawDelivery, delivery => delivery.user_id())
    }

    /// The `correlation_id` property.
    pub(crate) fn correlation_id(&self) -> Option<&str> {
        on_backend!(self, RawDelivery, delivery => delivery.correlation_id())
    }

    /// The `content_type` property.
    pub(crate) fn content_type(&self) -> Option<&str> {
        on_backend!(self, RawDelivery, delivery => delivery.content_type())
    }

    /// Its headers.
    pub(crate) fn headers(&self) -> Headers {
        on_backend!(self, RawDelivery, delivery => delivery.headers())
    }

    /// A header's text, when it is a string.
    pub(crate) fn header_text(&self, key: &str) -> Option<&str> {
        on_backend!(self, RawDelivery, delivery => delivery.header_text(key))
    }

    /// Its delivery tag on its channel.
    pub(crate) fn delivery_tag(&self) -> u64 {
        on_backend!(self, RawDelivery, delivery => delivery.delivery_tag())
    }

    /// Was it published persistent?
    pub(crate) fn is_persistent(&self) -> bool {
        on_backend!(self, RawDelivery, delivery => delivery.is_persistent())
    }

    /// A header's value when it is a non-negative integer.
    pub(crate) fn header_count(&self, key: &str) -> Option<u64> {
        on_backend!(self, RawDelivery, delivery => delivery.header_count(key))
    }

    /// The generation of the channel it came on: delivery tags count from
    /// 1 again on each.
    pub(crate) fn generation(&self) -> u64 {
        on_backend!(self, RawDelivery, delivery => delivery.generation())
    }

    /// Acknowledges it and every delivery before it on its channel that is
    /// still outstanding (`basic.ack` with `multiple`).
    pub(crate) async fn ack_up_to(&self) -> Result<()> {
        on_backend!(self, RawDelivery, delivery => delivery.ack_up_to().await)
    }

    /// The `x-delivery-count` header (quorum queues), if any.
    pub(crate) fn delivery_count(&self) -> Option<u64> {
        on_backend!(self, RawDelivery, delivery => delivery.delivery_count())
    }

    /// Acknowledges it.
    pub(crate) async fn ack(&self) -> Result<()> {
        on_backend!(self, RawDelivery, delivery => delivery.ack().await)
    }

    /// Rejects it, requeued or not.
    pub(crate) async fn reject(&self, requeue: bool) -> Result<()> {
        on_backend!(self, RawDelivery, delivery => delivery.reject(requeue).await)
    }
}

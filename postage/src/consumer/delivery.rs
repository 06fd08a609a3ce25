//! [`Delivery`]: a received message, decoded, with its acknowledgement.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::watch::InHand;
use crate::encoding::{DecodeError, Encoder};
use crate::error::Result;
use crate::message::Message;
use crate::transport::{DEADLINE_HEADER, Headers, RawDelivery};

/// A received message, decoded, waiting for its acknowledgement.
///
/// Drop it without [`ack`](Delivery::ack) or [`reject`](Delivery::reject)
/// and the broker redelivers it when the channel closes.
pub struct Delivery {
    pub(super) raw: RawDelivery,
    pub(super) queue: InHand,
    pub(super) message: Result<Message, DecodeError>,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("queue", &self.queue())
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
        self.raw.data()
    }

    /// The queue it came from.
    pub fn queue(&self) -> &str {
        self.queue.queue()
    }

    /// The exchange it was published to.
    pub fn exchange(&self) -> &str {
        self.raw.exchange()
    }

    /// Its routing key.
    pub fn routing_key(&self) -> &str {
        self.raw.routing_key()
    }

    /// Was it delivered before (and not acknowledged)?
    pub fn redelivered(&self) -> bool {
        self.raw.redelivered()
    }

    /// The `reply_to` property, for RPC requests.
    pub fn reply_to(&self) -> Option<&str> {
        self.raw.reply_to()
    }

    /// The `message_id` property: unique per send from Postage senders;
    /// Python Postage sets none.
    pub fn message_id(&self) -> Option<&str> {
        self.raw.message_id()
    }

    /// The `user_id` property: the broker user that published it, when
    /// the sender said; RabbitMQ refuses a publish whose `user_id` is not
    /// its connection's user, so a present one can be trusted.
    pub fn user_id(&self) -> Option<&str> {
        self.raw.user_id()
    }

    /// The `correlation_id` property.
    pub fn correlation_id(&self) -> Option<&str> {
        self.raw.correlation_id()
    }

    /// How many times the broker delivered this message before (the
    /// `x-delivery-count` header that quorum queues set), if known.
    pub fn delivery_count(&self) -> Option<u64> {
        self.raw.delivery_count()
    }

    /// When the caller of an RPC request stops waiting for its reply (the
    /// `postage-deadline` header Postage callers write), if it said.
    pub fn deadline(&self) -> Option<SystemTime> {
        let ms = self.raw.header_count(DEADLINE_HEADER)?;
        UNIX_EPOCH.checked_add(Duration::from_millis(ms))
    }

    /// The `content_type` property.
    pub fn content_type(&self) -> Option<&str> {
        self.raw.content_type()
    }

    /// Its headers: the sender's, and those the broker adds (`x-death`
    /// on a dead-lettered message, `x-delivery-count` from a quorum
    /// queue).
    pub fn headers(&self) -> Headers {
        self.raw.headers()
    }

    /// The delivery tag: the broker's number for it on its channel.
    pub fn delivery_tag(&self) -> u64 {
        self.raw.delivery_tag()
    }

    /// A header's value when it is a string (`traceparent`, say),
    /// without converting the other headers.
    pub fn header_text(&self, key: &str) -> Option<&str> {
        self.raw.header_text(key)
    }

    /// Was it published persistent (delivery mode 2)?
    pub fn is_persistent(&self) -> bool {
        self.raw.is_persistent()
    }

    /// Acknowledges this delivery and every one before it on the
    /// consumer's channel that is still unacknowledged (`basic.ack` with
    /// `multiple`): one frame for a run of finished messages. Only for
    /// code that knows every earlier delivery is finished, as a
    /// processor's acknowledgement batching does.
    pub(crate) async fn ack_up_to(&self) -> Result<()> {
        self.raw.ack_up_to().await
    }

    /// The generation of the channel it came on (delivery tags start
    /// from 1 on each).
    pub(crate) fn generation(&self) -> u64 {
        self.raw.generation()
    }

    /// Acknowledges: the broker forgets the message.
    pub async fn ack(&self) -> Result<()> {
        self.raw.ack().await
    }

    /// Rejects; with `requeue` false the message is dropped or, when the
    /// queue has a dead-letter exchange, dead-lettered.
    pub async fn reject(&self, requeue: bool) -> Result<()> {
        self.raw.reject(requeue).await
    }
}

pub(super) fn decode(
    encoder: &dyn Encoder,
    delivery: &RawDelivery,
    max_body_size: usize,
) -> Result<Message, DecodeError> {
    if delivery.data().len() > max_body_size {
        return Err(DecodeError::TooLarge {
            size: delivery.data().len(),
            limit: max_body_size,
        });
    }
    if let Some(content_type) = delivery.content_type()
        && content_type != encoder.content_type()
    {
        return Err(DecodeError::ContentType {
            found: content_type.to_string(),
            expected: encoder.content_type().to_owned(),
        });
    }
    encoder.decode(delivery.data())
}

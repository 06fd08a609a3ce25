//! The [`Encoder`] trait: how messages become bodies and back.

use std::fmt::Debug;

use super::{DecodeError, EncodeError};
use crate::message::{Message, MessageParts, WireFingerprint};

/// Turns messages into bodies and back. Replaceable per producer and per
/// consumer; every component on an exchange must agree on it.
///
/// ```
/// use postage::encoding::{Encoder, JsonEncoder};
/// use postage::message::{Message, MessageCommand};
///
/// let encoder = JsonEncoder;
/// let message: Message = MessageCommand::new("echo", "hi").into();
/// let body = encoder.encode(&message).unwrap();
/// assert_eq!(encoder.decode(&body).unwrap(), message);
/// assert_eq!(encoder.content_type(), "application/json");
/// ```
pub trait Encoder: Debug + Send + Sync + 'static {
    /// The AMQP `content_type` property this encoder writes.
    fn content_type(&self) -> &str;
    /// Encodes a message.
    fn encode(&self, message: &Message) -> Result<Vec<u8>, EncodeError>;
    /// Decodes a body.
    fn decode(&self, body: &[u8]) -> Result<Message, DecodeError>;

    /// Encodes `message` with `fingerprint` in place of its own: what a
    /// producer or a reply sends. The default copies the message with the
    /// fingerprint set and calls [`encode`](Encoder::encode);
    /// [`JsonEncoder`](crate::JsonEncoder) writes the borrowed message and
    /// fingerprint directly (the JSON text it keeps when it was built from a
    /// [`Fingerprint`](crate::Fingerprint)), and copies nothing.
    fn encode_with_fingerprint(
        &self,
        message: &Message,
        fingerprint: &WireFingerprint,
    ) -> Result<Vec<u8>, EncodeError> {
        let mut message = message.clone();
        message.fingerprint = fingerprint.clone();
        self.encode(&message)
    }

    /// Encodes a command or result given by its parts, with `fingerprint`:
    /// what [`Producer::command`](crate::Producer::command), RPC calls and
    /// replies send. The default builds the
    /// [`Message`] and calls
    /// [`encode_with_fingerprint`](Encoder::encode_with_fingerprint);
    /// [`JsonEncoder`](crate::JsonEncoder) writes the parts directly.
    fn encode_parts(
        &self,
        parts: &MessageParts<'_>,
        fingerprint: &WireFingerprint,
    ) -> Result<Vec<u8>, EncodeError> {
        self.encode_with_fingerprint(&parts.to_message(), fingerprint)
    }
}

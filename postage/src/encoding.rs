//! How messages become bytes: the [`Encoder`] trait and [`JsonEncoder`].

use std::fmt::Debug;

use crate::message::Message;

/// Why a body could not be read as a message. Every variant says what is
/// wrong in words fit for a log line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The body is not valid JSON (or not UTF-8).
    #[error("body is not valid JSON: {0}")]
    Syntax(String),
    /// The body is JSON, but not an object.
    #[error("body is JSON but not an object")]
    NotAnObject,
    /// The object lacks a key or has one of the wrong type.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// The message's content type is not the encoder's.
    #[error("content type {found:?} where {expected:?} was expected")]
    ContentType {
        /// What the message said.
        found: String,
        /// What the encoder reads.
        expected: String,
    },
    /// The body is larger than the configured limit.
    #[error("body of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The body size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A result was expected and this is not one.
    #[error("not a result: {0}")]
    NotAResult(String),
    /// Command parameters do not fit the handler's type.
    #[error("parameters do not fit: {0}")]
    Parameters(String),
}

/// Why a message could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot encode message: {0}")]
pub struct EncodeError(pub String);

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
}

/// The default encoder: UTF-8 JSON, `application/json`, as Python Postage.
///
/// Reads `\uXXXX` escapes (Python escapes all non-ASCII text) and writes
/// UTF-8.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonEncoder;

impl Encoder for JsonEncoder {
    fn content_type(&self) -> &str {
        "application/json"
    }

    fn encode(&self, message: &Message) -> Result<Vec<u8>, EncodeError> {
        serde_json::to_vec(message).map_err(|e| EncodeError(e.to_string()))
    }

    fn decode(&self, body: &[u8]) -> Result<Message, DecodeError> {
        serde_json::from_slice(body).map_err(|e| classify(body, &e))
    }
}

fn classify(body: &[u8], error: &serde_json::Error) -> DecodeError {
    use serde_json::error::Category as C;
    match error.classify() {
        C::Syntax | C::Eof | C::Io => DecodeError::Syntax(error.to_string()),
        C::Data => {
            let first = body.iter().find(|b| !b.is_ascii_whitespace());
            if first == Some(&b'{') {
                DecodeError::Malformed(error.to_string())
            } else {
                DecodeError::NotAnObject
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_errors() {
        let e = JsonEncoder;
        assert!(matches!(
            e.decode(b"{not json"),
            Err(DecodeError::Syntax(_))
        ));
        assert!(matches!(e.decode(b"[1,2]"), Err(DecodeError::NotAnObject)));
        assert!(matches!(e.decode(b"\"x\""), Err(DecodeError::NotAnObject)));
        assert!(matches!(e.decode(b"{}"), Err(DecodeError::Malformed(_))));
        assert!(matches!(e.decode(b"\xff\xfe"), Err(DecodeError::Syntax(_))));
        assert!(matches!(e.decode(b""), Err(DecodeError::Syntax(_))));
    }
}

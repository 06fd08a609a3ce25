//! Why a body could not be decoded, or a message encoded.

use std::sync::Arc;

/// Why a body could not be read as a message. Each variant says what is
/// wrong in words fit for a log line; the parser's own words are its
/// [`source`](std::error::Error::source) (print the whole chain with
/// [`Report`](crate::Report)).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The body is not valid JSON (or not UTF-8).
    #[error("the body is not valid JSON")]
    Syntax(#[source] Arc<serde_json::Error>),
    /// The body is JSON, but not an object.
    #[error("the body is JSON but not an object")]
    NotAnObject,
    /// The object lacks a key or has one of the wrong type.
    #[error("malformed message")]
    Malformed(#[source] Arc<serde_json::Error>),
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
}

/// Two errors are equal when they say the same thing.
impl PartialEq for DecodeError {
    fn eq(&self, other: &Self) -> bool {
        use DecodeError as D;
        match (self, other) {
            (D::Syntax(a), D::Syntax(b)) | (D::Malformed(a), D::Malformed(b)) => {
                a.to_string() == b.to_string()
            }
            (D::NotAnObject, D::NotAnObject) => true,
            (
                D::ContentType { found, expected },
                D::ContentType {
                    found: f,
                    expected: e,
                },
            ) => found == f && expected == e,
            (D::TooLarge { size, limit }, D::TooLarge { size: s, limit: l }) => {
                size == s && limit == l
            }
            _ => false,
        }
    }
}

impl Eq for DecodeError {}

/// Why a message could not be encoded; the encoder's own error is its
/// [`source`](std::error::Error::source).
///
/// ```
/// use postage::EncodeError;
///
/// let error = EncodeError::new("a value this format cannot hold");
/// assert_eq!(error.to_string(), "cannot encode the message");
/// assert_eq!(
///     postage::Report::from(error).to_string(),
///     "cannot encode the message: a value this format cannot hold"
/// );
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot encode the message")]
pub struct EncodeError {
    #[source]
    source: Arc<dyn std::error::Error + Send + Sync>,
}

impl EncodeError {
    /// An encoding failure caused by `cause` (an error value, or a text).
    pub fn new(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        EncodeError {
            source: Arc::from(cause.into()),
        }
    }
}

/// Two errors are equal when their causes say the same thing.
impl PartialEq for EncodeError {
    fn eq(&self, other: &Self) -> bool {
        self.source.to_string() == other.source.to_string()
    }
}

impl Eq for EncodeError {}

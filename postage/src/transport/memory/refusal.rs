//! What the in-memory broker refuses, as RabbitMQ words it.

use crate::error::Error;

/// A refusal by the broker: its reply code and text. Every refusal
/// modelled closes the channel (as RabbitMQ's do), not the connection.
#[derive(Debug, Clone)]
pub(crate) struct Refusal {
    pub(super) code: u16,
    pub(super) text: String,
}

impl Refusal {
    pub(super) fn new(code: u16, text: impl Into<String>) -> Self {
        Refusal {
            code,
            text: text.into(),
        }
    }

    pub(super) fn not_found(what: &str, name: &str) -> Self {
        Refusal::new(404, format!("NOT_FOUND - no {what} '{name}' in vhost '/'"))
    }

    pub(super) fn precondition(text: impl std::fmt::Display) -> Self {
        Refusal::new(406, format!("PRECONDITION_FAILED - {text}"))
    }

    pub(super) fn locked(queue: &str) -> Self {
        Refusal::new(
            405,
            format!(
                "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{queue}' in vhost '/'. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration."
            ),
        )
    }

    pub(super) fn access(text: impl std::fmt::Display) -> Self {
        Refusal::new(403, format!("ACCESS_REFUSED - {text}"))
    }

    /// The error an operation gets.
    pub(super) fn into_error(self, operation: String) -> Error {
        Error::Amqp {
            operation,
            reply_code: Some(self.code),
            source: self.text.into(),
        }
    }
}

pub(super) type Refused<T> = Result<T, Refusal>;

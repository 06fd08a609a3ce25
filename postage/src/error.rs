//! The one error type of the runtime, and its `Result` alias.

use std::time::Duration;

use crate::config::ConfigError;
use crate::encoding::{DecodeError, EncodeError};

/// Everything that can go wrong in Postage.
///
/// Errors coming from the broker carry the AMQP operation that failed. No
/// variant ever contains a password: connection settings appear in their
/// redacted form only.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is invalid (see [`ConfigError`]).
    #[error(transparent)]
    Config(#[from] ConfigError),

    /// The broker could not be reached or refused the connection.
    #[error("cannot connect to RabbitMQ at {endpoint}: {source}")]
    Connect {
        /// Where we tried to connect, without the password.
        endpoint: String,
        /// What lapin reported.
        #[source]
        source: lapin::Error,
    },

    /// Nothing answered at the broker's address.
    #[error("RabbitMQ is not reachable at {endpoint}: {source}")]
    Unreachable {
        /// Where we tried to connect, without the password.
        endpoint: String,
        /// The network error.
        #[source]
        source: std::io::Error,
    },

    /// An AMQP operation failed.
    #[error("AMQP {operation} failed: {source}")]
    Amqp {
        /// The operation, e.g. `queue.declare events`.
        operation: String,
        /// What lapin reported.
        #[source]
        source: lapin::Error,
    },

    /// A message could not be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),

    /// A body could not be decoded into a message.
    #[error(transparent)]
    Decode(#[from] DecodeError),

    /// The broker answered a publish with a negative acknowledgement.
    #[error("the broker refused (nack) the message sent to exchange {exchange:?} with key {key:?}")]
    Nacked {
        /// The exchange published to.
        exchange: String,
        /// The routing key used.
        key: String,
    },

    /// A mandatory message matched no queue and was returned by the broker.
    #[error(
        "no queue is bound to exchange {exchange:?} for key {key:?}: the broker returned the message ({reply})"
    )]
    Unroutable {
        /// The exchange published to.
        exchange: String,
        /// The routing key used.
        key: String,
        /// The broker's reply text (usually `NO_ROUTE`).
        reply: String,
    },

    /// A send had nowhere to go: the producer has no (exchange, key) pair.
    #[error("nowhere to send: the producer has no (exchange, routing key) pair")]
    NoDestination,

    /// Every attempt of an RPC call timed out.
    ///
    /// Python Postage reports the same situation as an exception result named
    /// `TimeoutError`; [`Error::to_result_message`] gives that message when a
    /// peer expects it.
    #[error("RPC {command:?} got no reply: {attempts} attempt(s) of {timeout:?} each timed out")]
    RpcTimeout {
        /// The command called.
        command: String,
        /// How many sends were made.
        attempts: u32,
        /// How long each attempt waited.
        timeout: Duration,
    },

    /// An operating-system operation failed.
    #[error("cannot {what}: {source}")]
    Io {
        /// What was attempted.
        what: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// A processor's consumer was lost and could not be restored.
    #[error("the processor's consumer was lost: {0}")]
    ConsumerLost(String),

    /// A graceful shutdown did not finish in time; the remaining tasks
    /// were aborted.
    #[error("shutdown did not finish within {0:?}; the remaining tasks were aborted")]
    ShutdownTimeout(Duration),

    /// The connection or channel is closed (after `close`, `quit` or a
    /// failed recovery).
    #[error("the AMQP {0} is closed")]
    Closed(&'static str),
}

/// `Result` with [`Error`] as its error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn amqp(operation: impl Into<String>, source: lapin::Error) -> Self {
        Error::Amqp {
            operation: operation.into(),
            source,
        }
    }

    /// Is this an RPC timeout?
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::RpcTimeout { .. })
    }

    /// The exception result Python Postage would produce for this error:
    /// `TimeoutError` for an RPC timeout, the variant's name otherwise.
    pub fn to_result_message(&self) -> crate::message::MessageResultException {
        let name = match self {
            Error::RpcTimeout { .. } => "TimeoutError",
            Error::Config(_) => "ConfigError",
            Error::Connect { .. } | Error::Unreachable { .. } => "ConnectionError",
            Error::Amqp { .. } => "AMQPError",
            Error::Encode(_) => "EncodeError",
            Error::Decode(_) => "DecodeError",
            Error::Nacked { .. } => "NackError",
            Error::Unroutable { .. } => "UnroutableError",
            Error::NoDestination => "NoDestinationError",
            Error::Io { .. } => "OSError",
            Error::ShutdownTimeout(_) => "ShutdownTimeout",
            Error::ConsumerLost(_) => "ConsumerLost",
            Error::Closed(_) => "ClosedError",
        };
        crate::message::MessageResultException::new(name, self.to_string())
    }
}

//! The one error type of the runtime, its `Result` alias, and [`Report`],
//! which prints an error with its causes as one sentence.

use std::fmt;
use std::time::Duration;

use crate::config::ConfigError;
use crate::encoding::{DecodeError, EncodeError};
use crate::message::ContentError;

/// A cause of any type, kept as an error's
/// [`source`](std::error::Error::source).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in Postage.
///
/// Each variant's text says what failed at its own level; what caused it
/// is its [`source`](std::error::Error::source). [`Error::report`] (or a
/// [`Report`]) prints the whole chain as one sentence. No variant ever
/// contains a password: connection settings appear in their redacted form
/// only, and no dependency's type is part of the API (broker errors are
/// kept as boxed causes).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is invalid (see [`ConfigError`]).
    #[error(transparent)]
    Config(#[from] ConfigError),

    /// The broker could not be reached or refused the connection (a login
    /// refused, a TLS handshake failed).
    #[error("cannot connect to RabbitMQ at {endpoint}")]
    Connect {
        /// Where we tried to connect, without the password.
        endpoint: String,
        /// What the AMQP client reported.
        #[source]
        source: BoxError,
    },

    /// Nothing answered at the broker's address.
    #[error("RabbitMQ is not reachable at {endpoint}")]
    Unreachable {
        /// Where we tried to connect, without the password.
        endpoint: String,
        /// The network error.
        #[source]
        source: std::io::Error,
    },

    /// An AMQP operation failed.
    #[error("AMQP {operation} failed")]
    Amqp {
        /// The operation, e.g. `queue.declare "events"`.
        operation: String,
        /// The broker's reply code when the broker refused the operation
        /// and closed the channel or connection (404 `NOT_FOUND`, 405
        /// `RESOURCE_LOCKED`, 406 `PRECONDITION_FAILED`, ...).
        reply_code: Option<u16>,
        /// What the AMQP client reported.
        #[source]
        source: BoxError,
    },

    /// A message could not be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),

    /// A body could not be decoded into a message.
    #[error(transparent)]
    Decode(#[from] DecodeError),

    /// A message's content is not what was asked of it (parameters that do
    /// not fit, a message that is not a result).
    #[error(transparent)]
    Content(#[from] ContentError),

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

    /// The broker did not confirm a publish within the publish time limit
    /// ([`Config::with_publish_timeout`](crate::Config::with_publish_timeout)):
    /// a link too slow, or a connection that did not come back in time.
    /// The message may or may not have reached the broker.
    #[error(
        "no publisher confirmation came for the message sent to exchange {exchange:?} with key {key:?} within {timeout:?}"
    )]
    Unconfirmed {
        /// The exchange published to.
        exchange: String,
        /// The routing key used.
        key: String,
        /// How long the confirmation was awaited.
        timeout: Duration,
    },

    /// The broker blocked the connection's publishers (a memory or disk
    /// alarm: `rabbitmqctl status` shows it) for longer than the publish
    /// time limit ([`Config::with_publish_timeout`](crate::Config::with_publish_timeout)).
    /// Unless `sent`, the message was held back and never published;
    /// when `sent`, it had left before the broker said it blocks (RabbitMQ
    /// blocks a connection on its first publish under an alarm), and the
    /// broker publishes it once it reads again.
    #[error(
        "the broker blocks publishing ({reason}): the message for exchange {exchange:?} with key {key:?} was {} within {waited:?}",
        if *sent { "sent but not confirmed (the broker takes it when it unblocks)" } else { "not published" }
    )]
    Blocked {
        /// The exchange published to.
        exchange: String,
        /// The routing key used.
        key: String,
        /// Why, as the broker says (`low on memory`, `low on disk`).
        reason: String,
        /// How long the send waited.
        waited: Duration,
        /// Had the message left before the broker blocked the connection?
        sent: bool,
    },

    /// A publish without publisher confirms could not be handed to the
    /// connection within the publish time limit (a link that takes
    /// nothing, a connection that did not come back).
    #[error(
        "the message for exchange {exchange:?} with key {key:?} could not be published within {timeout:?}"
    )]
    PublishTimeout {
        /// The exchange published to.
        exchange: String,
        /// The routing key used.
        key: String,
        /// The publish time limit.
        timeout: Duration,
    },

    /// A publish was interrupted by lost connections too many times in a
    /// row.
    #[error(
        "publishing to exchange {exchange:?} with key {key:?} was interrupted by a lost connection {attempts} times in a row"
    )]
    PublishInterrupted {
        /// The exchange published to.
        exchange: String,
        /// The routing key used.
        key: String,
        /// How many times it was sent.
        attempts: u32,
    },

    /// A send had nowhere to go: the producer has no (exchange, key) pair.
    #[error("nowhere to send: the producer has no (exchange, routing key) pair")]
    NoDestination,

    /// A delayed send's delay is longer than the delay levels hold
    /// (`postage::producer::MAX_DELAY`).
    #[error("a delay of {delay:?} is longer than the longest, {max:?}")]
    DelayTooLong {
        /// The delay asked for.
        delay: Duration,
        /// The longest delay.
        max: Duration,
    },

    /// A delayed send had an expiration: the delay levels hold a message
    /// longer than it, and the broker drops it when it moves the message
    /// from one level to the next.
    #[error("a delayed send cannot have an expiration")]
    DelayedExpiration,

    /// An id given to cancel a delayed send is not one (`Scheduled::id`
    /// gives them).
    #[error("{0:?} is not the id of a delayed send")]
    InvalidDelayId(String),

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

    /// A typed RPC call (`RpcCall::returning`, or the sender of a
    /// `build_rpc_*` method returning `RpcCommand<T>`) got an error
    /// result: the handler said what went wrong.
    #[error("RPC {command:?} answered with an error: {message}")]
    RpcError {
        /// The command called.
        command: String,
        /// The error result's message.
        message: String,
    },

    /// A typed RPC call got an exception result: the handler failed
    /// (`name` is the exception, `TimeoutError` for a Python peer's
    /// timeout, `Panic` for a Rust handler that panicked).
    #[error("RPC {command:?} answered with the exception {name}: {message}")]
    RpcException {
        /// The command called.
        command: String,
        /// The exception's name.
        name: String,
        /// Its message.
        message: String,
    },

    /// The reply of an RPC call can no longer arrive: the consumer of its
    /// reply queue ended (a channel or connection lost for good).
    #[error("the reply to RPC {command:?} cannot arrive: its reply consumer ended")]
    ReplyLost {
        /// The command called.
        command: String,
    },

    /// An operating-system operation failed.
    #[error("cannot {what}")]
    Io {
        /// What was attempted.
        what: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// A queue was bound on a consumer that was stopped.
    #[error("the consumer is stopped: no queue can be added to it")]
    ConsumerStopped,

    /// A consumer of an auto-delete queue cannot pause: the broker
    /// deletes such a queue, with its messages, when its last consumer is
    /// cancelled.
    #[error(
        "cannot pause: queue {queue} is auto-delete, and the broker would delete it with its \
         messages when its consumer is cancelled"
    )]
    CannotPause {
        /// The auto-delete queue.
        queue: String,
    },

    /// A processor's consumer was lost and could not be restored.
    #[error("the processor's consumer was lost: {0}")]
    ConsumerLost(String),

    /// A graceful shutdown did not finish in time; the remaining tasks
    /// were aborted.
    #[error("shutdown did not finish within {0:?}; the remaining tasks were aborted")]
    ShutdownTimeout(Duration),

    /// A processor's failure policy cannot work with its bindings.
    #[error("the failure policy cannot apply: {reason}")]
    FailurePolicy {
        /// Why.
        reason: &'static str,
    },
    /// A producer's middleware layer failed the send (its own error; a
    /// Postage error out of the layers comes back as itself).
    #[error("a middleware layer refused the send")]
    Middleware(#[source] tower::BoxError),

    /// A periodic job's schedule is invalid.
    #[error("invalid job schedule {schedule:?}: {reason}")]
    Schedule {
        /// The schedule as given.
        schedule: String,
        /// Why it is invalid.
        reason: String,
    },

    /// A layer was added for a handler the processor does not have.
    #[error("no handler named {handler:?} to add a layer to")]
    UnknownHandler {
        /// The name given.
        handler: String,
    },
}

/// `Result` with [`Error`] as its error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The variant's name (`Unroutable`, `RpcTimeout`…): the `error.type`
    /// of a failed span.
    pub(crate) fn kind_name(&self) -> &'static str {
        match self {
            Error::Config(_) => "Config",
            Error::Connect { .. } => "Connect",
            Error::Unreachable { .. } => "Unreachable",
            Error::Amqp { .. } => "Amqp",
            Error::Encode(_) => "Encode",
            Error::Decode(_) => "Decode",
            Error::Content(_) => "Content",
            Error::Nacked { .. } => "Nacked",
            Error::Unroutable { .. } => "Unroutable",
            Error::Unconfirmed { .. } => "Unconfirmed",
            Error::Blocked { .. } => "Blocked",
            Error::PublishTimeout { .. } => "PublishTimeout",
            Error::PublishInterrupted { .. } => "PublishInterrupted",
            Error::NoDestination => "NoDestination",
            Error::DelayTooLong { .. } => "DelayTooLong",
            Error::DelayedExpiration => "DelayedExpiration",
            Error::InvalidDelayId(_) => "InvalidDelayId",
            Error::RpcTimeout { .. } => "RpcTimeout",
            Error::ReplyLost { .. } => "ReplyLost",
            Error::RpcError { .. } => "RpcError",
            Error::RpcException { .. } => "RpcException",
            Error::Io { .. } => "Io",
            Error::ConsumerStopped => "ConsumerStopped",
            Error::CannotPause { .. } => "CannotPause",
            Error::ConsumerLost(_) => "ConsumerLost",
            Error::ShutdownTimeout(_) => "ShutdownTimeout",
            Error::FailurePolicy { .. } => "FailurePolicy",
            Error::UnknownHandler { .. } => "UnknownHandler",
            Error::Middleware(_) => "Middleware",
            Error::Schedule { .. } => "Schedule",
        }
    }

    /// Is this an RPC timeout?
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::RpcTimeout { .. })
    }

    /// The broker's reply code, when the broker refused an operation (404
    /// `NOT_FOUND`, 405 `RESOURCE_LOCKED`, 406 `PRECONDITION_FAILED`, ...).
    pub fn reply_code(&self) -> Option<u16> {
        match self {
            Error::Amqp { reply_code, .. } => *reply_code,
            _ => None,
        }
    }

    /// The error and its causes as one sentence, for a log line or a
    /// terminal: `AMQP queue.declare "jobs" failed: PRECONDITION_FAILED - ...`.
    ///
    /// ```
    /// use postage::{Config, Error};
    ///
    /// let error = Error::from(Config::from_url("http://example.com").unwrap_err());
    /// assert_eq!(
    ///     error.report().to_string(),
    ///     "invalid URL: unsupported scheme \"http\" (expected amqp or amqps)"
    /// );
    /// ```
    pub fn report(&self) -> impl fmt::Display + '_ {
        Chain(self)
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
            Error::Content(_) => "ContentError",
            Error::Nacked { .. } => "NackError",
            Error::Unroutable { .. } => "UnroutableError",
            Error::Unconfirmed { .. }
            | Error::Blocked { .. }
            | Error::PublishTimeout { .. }
            | Error::PublishInterrupted { .. } => "PublishError",
            Error::NoDestination => "NoDestinationError",
            Error::UnknownHandler { .. } => "UnknownHandlerError",
            Error::Middleware(_) => "MiddlewareError",
            Error::Schedule { .. } => "ScheduleError",
            Error::DelayTooLong { .. } | Error::DelayedExpiration | Error::InvalidDelayId(_) => {
                "ValueError"
            }
            Error::ReplyLost { .. } => "ReplyLostError",
            Error::RpcError { .. } => "RpcError",
            Error::RpcException { name, .. } => name.as_str(),
            Error::Io { .. } => "OSError",
            Error::ConsumerStopped => "ClosedError",
            Error::CannotPause { .. } => "ValueError",
            Error::ShutdownTimeout(_) => "ShutdownTimeout",
            Error::ConsumerLost(_) => "ConsumerLost",
            Error::FailurePolicy { .. } => "ValueError",
        };
        crate::message::MessageResultException::new(name, self.report().to_string())
    }
}

/// An error and its causes, written `error: cause: cause's cause`. A
/// cause whose text its error already ends with (some libraries repeat
/// their source in their own message) is not written again.
pub(crate) struct Chain<'a>(pub(crate) &'a (dyn std::error::Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut said = self.0.to_string();
        f.write_str(&said)?;
        let mut cause = self.0.source();
        while let Some(error) = cause {
            let text = error.to_string();
            if !said.ends_with(&text) {
                write!(f, ": {text}")?;
            }
            said = text;
            cause = error.source();
        }
        Ok(())
    }
}

/// Any error with its causes, printed as one sentence by both `Display`
/// and `Debug`: return it from `main` and a failure reads as
/// `Error: RabbitMQ is not reachable at amqp://guest@127.0.0.1:5672/%2f:
/// Connection refused (os error 111)` instead of a nest of structs.
///
/// `?` converts every error into it, as with `anyhow::Error`; it is not an
/// error type itself (that is what lets `?` convert all of them).
///
/// ```no_run
/// #[tokio::main]
/// async fn main() -> Result<(), postage::Report> {
///     let connection = postage::Connection::from_env().await?;
///     connection.close().await?;
///     Ok(())
/// }
/// ```
pub struct Report(BoxError);

impl Report {
    /// The error reported.
    pub fn error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.0
    }

    /// Takes the error out.
    pub fn into_inner(self) -> BoxError {
        self.0
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for Report {
    fn from(error: E) -> Self {
        Report(Box::new(error))
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&Chain(&*self.0), f)
    }
}

impl fmt::Debug for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&Chain(&*self.0), f)
    }
}

/// An error out of a stack of middleware layers: a Postage error as it
/// was, any other as [`Error::Middleware`].
impl From<tower::BoxError> for Error {
    fn from(error: tower::BoxError) -> Self {
        match error.downcast::<Error>() {
            Ok(error) => *error,
            Err(error) => Error::Middleware(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_is_the_error_and_its_causes_in_one_sentence() {
        let error = Error::Unreachable {
            endpoint: "amqp://guest@127.0.0.1:1/%2f".into(),
            source: std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused"),
        };
        let expected = "RabbitMQ is not reachable at amqp://guest@127.0.0.1:1/%2f: refused";
        assert_eq!(error.report().to_string(), expected);
        let report = Report::from(error);
        assert_eq!(report.to_string(), expected);
        assert_eq!(format!("{report:?}"), expected);
        assert!(report.error().source().is_some());
        // A transparent variant reports its own chain once.
        let decode = Error::from(DecodeError::Syntax(std::sync::Arc::new(
            serde_json::from_str::<serde_json::Value>("{").unwrap_err(),
        )));
        assert_eq!(
            decode.report().to_string(),
            "the body is not valid JSON: EOF while parsing an object at line 1 column 1"
        );
        // A cause its error already quotes is not repeated.
        #[derive(Debug, thiserror::Error)]
        #[error("login failed: {0}")]
        struct Quoting(#[source] std::io::Error);
        let quoting = Error::Connect {
            endpoint: "amqp://guest@h:5672/%2f".into(),
            source: Box::new(Quoting(std::io::Error::other("refused"))),
        };
        assert_eq!(
            quoting.report().to_string(),
            "cannot connect to RabbitMQ at amqp://guest@h:5672/%2f: login failed: refused"
        );
    }

    #[test]
    fn result_messages_name_the_error_as_python_postage() {
        let timeout = Error::RpcTimeout {
            command: "sum".into(),
            attempts: 2,
            timeout: Duration::from_secs(1),
        };
        let message: crate::message::Message = timeout.to_result_message().into();
        assert_eq!(message.content["value"], "TimeoutError");
        assert_eq!(
            Error::ConsumerStopped.to_result_message().content["value"],
            "ClosedError"
        );
    }
}

//! What value-returning RPC handlers reply with: [`IntoReply`] for the
//! value, [`IntoErrorReply`] and [`RpcError`] for the error of a `Result`.

use std::fmt;

use serde::Serialize;

use crate::message::Outcome;

/// What an RPC handler without a `Reply` argument may return: any
/// `Serialize` value, sent as a success result.
#[diagnostic::on_unimplemented(
    message = "an RPC handler cannot reply with `{Self}`",
    label = "the returned value must implement `serde::Serialize`",
    note = "return a `Serialize` value or a `Result<T, E>`, or take a `reply: Reply` argument and reply yourself"
)]
pub trait IntoReply {
    /// The reply: a success carrying the value, or an `EncodeError`
    /// exception when the value cannot be serialized.
    fn into_reply(self) -> Outcome;
}

impl<T: Serialize> IntoReply for T {
    fn into_reply(self) -> Outcome {
        match serde_json::to_value(self) {
            Ok(value) => Outcome::Success {
                value,
                message: String::new(),
            },
            Err(e) => Outcome::Exception {
                name: "EncodeError".into(),
                message: e.to_string(),
            },
        }
    }
}

/// The error side of a `Result` an RPC handler returns: anything
/// `Display` becomes an error result with its text; an [`RpcError`]
/// chooses error or exception.
#[diagnostic::on_unimplemented(
    message = "an RPC handler cannot fail with `{Self}`",
    label = "the error type must implement `Display`, or be `postage::RpcError`"
)]
pub trait IntoErrorReply {
    /// The reply: an error or an exception.
    fn into_error_reply(self) -> Outcome;
}

impl<E: fmt::Display> IntoErrorReply for E {
    fn into_error_reply(self) -> Outcome {
        Outcome::Error {
            message: self.to_string(),
        }
    }
}

impl IntoErrorReply for RpcError {
    fn into_error_reply(self) -> Outcome {
        match self {
            RpcError::Error(message) => Outcome::Error { message },
            RpcError::Exception { name, message } => Outcome::Exception { name, message },
        }
    }
}

/// The error an RPC handler returns to choose the result kind.
///
/// Any `Display` error converts into [`RpcError::Error`] with `?`. It has
/// no `Display` itself (that is what lets `?` convert every other error).
///
/// ```
/// # use postage::prelude::*;
/// struct Math;
///
/// #[processor]
/// impl Math {
///     #[rpc_handler("command", "div")]
///     async fn div(&self, Params((a, b)): Params<(i64, i64)>) -> Result<i64, RpcError> {
///         if b == 0 {
///             return Err(RpcError::exception("ZeroDivisionError", "division by zero"));
///         }
///         let n: i64 = "12".parse()?; // a ParseIntError becomes an error result
///         Ok(a / b + n - 12)
///     }
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RpcError {
    /// An error result (the call failed in an expected way).
    Error(String),
    /// An exception result (`value` is the exception's name).
    Exception {
        /// The exception's name, e.g. `ValueError`.
        name: String,
        /// Its text.
        message: String,
    },
}

impl RpcError {
    /// An error result saying `message`.
    pub fn error(message: impl Into<String>) -> Self {
        RpcError::Error(message.into())
    }

    /// An exception result called `name` saying `message`.
    pub fn exception(name: impl Into<String>, message: impl Into<String>) -> Self {
        RpcError::Exception {
            name: name.into(),
            message: message.into(),
        }
    }
}

impl<E: fmt::Display> From<E> for RpcError {
    fn from(error: E) -> Self {
        RpcError::Error(error.to_string())
    }
}

//! [`TypedRpcCall`]: an RPC call whose success value is decoded into a
//! type of the caller's, and whose error and exception results are errors.

use std::future::IntoFuture;
use std::marker::PhantomData;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::de::DeserializeOwned;

use super::{ReplyStrategy, RpcCall};
use crate::error::{Error, Result};
use crate::message::{ContentError, Message, Outcome};
use crate::topology::Exchange;

/// An RPC call that gives the success value as a `T`: `.await` it for a
/// `Result<T>`. An error result is [`Error::RpcError`], an exception
/// result [`Error::RpcException`], a value that is not a `T` an
/// [`Error::Content`]. Made by [`RpcCall::returning`], or by the `rpc_*`
/// sender of a `build_rpc_*` method that returns `RpcCommand<T>`.
///
/// ```no_run
/// # async fn run(producer: postage::Producer) -> postage::Result<()> {
/// #[derive(serde::Deserialize)]
/// struct Total { sum: i64 }
///
/// let total: Total = producer
///     .rpc("sum", serde_json::json!({"a": 2, "b": 3}))
///     .returning::<Total>()
///     .await?;
/// # let _ = total.sum; Ok(()) }
/// ```
#[must_use = "an RPC call does nothing until it is awaited"]
pub struct TypedRpcCall<'a, T> {
    call: RpcCall<'a>,
    value: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for TypedRpcCall<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedRpcCall")
            .field("call", &self.call)
            .field("value", &std::any::type_name::<T>())
            .finish()
    }
}

impl<'a> RpcCall<'a> {
    /// The call, giving its success value as a `T` (as reqwest's
    /// `.json::<T>()`); error and exception results become errors.
    pub fn returning<T: DeserializeOwned>(self) -> TypedRpcCall<'a, T> {
        TypedRpcCall {
            call: self,
            value: PhantomData,
        }
    }
}

impl<'a, T> TypedRpcCall<'a, T> {
    /// How long each attempt waits: see [`RpcCall::timeout`].
    pub fn timeout(self, timeout: Duration) -> Self {
        self.map(|call| call.timeout(timeout))
    }

    /// Retries after the first attempt: see [`RpcCall::retries`].
    pub fn retries(self, retries: u32) -> Self {
        self.map(|call| call.retries(retries))
    }

    /// Sends with this key: see [`RpcCall::key`].
    pub fn key(self, key: impl Into<String>) -> Self {
        self.map(|call| call.key(key))
    }

    /// Sends to the first of these pairs: see [`RpcCall::eks`].
    pub fn eks<K: Into<String>>(self, eks: impl IntoIterator<Item = (Exchange, K)>) -> Self {
        self.map(|call| call.eks(eks))
    }

    /// The reply strategy: see [`RpcCall::strategy`].
    pub fn strategy(self, strategy: ReplyStrategy) -> Self {
        self.map(|call| call.strategy(strategy))
    }

    /// The call with its reply as a message, not typed.
    pub fn untyped(self) -> RpcCall<'a> {
        self.call
    }

    fn map(self, change: impl FnOnce(RpcCall<'a>) -> RpcCall<'a>) -> Self {
        TypedRpcCall {
            call: change(self.call),
            value: PhantomData,
        }
    }
}

/// The success value of `reply`, the answer to `command`, as a `T`.
fn decode<T: DeserializeOwned>(command: &str, reply: &Message) -> Result<T> {
    match reply.outcome()? {
        Outcome::Success { value, .. } => {
            T::deserialize(value).map_err(|e| Error::Content(ContentError::value(e)))
        }
        Outcome::Error { message } => Err(Error::RpcError {
            command: command.to_owned(),
            message,
        }),
        Outcome::Exception { name, message } => Err(Error::RpcException {
            command: command.to_owned(),
            name,
            message,
        }),
    }
}

impl<'a, T: DeserializeOwned + 'a> IntoFuture for TypedRpcCall<'a, T> {
    type Output = Result<T>;
    type IntoFuture = BoxFuture<'a, Result<T>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let command = self.call.command_name().to_owned();
            let reply = self.call.await?;
            decode(&command, &reply)
        })
    }
}

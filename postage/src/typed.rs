//! Typed producers and typed handlers: the runtime side of `#[producer]`
//! and `#[processor]`.
//!
//! - [`ProducerSpec`] is what `#[producer]` implements: the default
//!   (exchange, key) pairs, the static [`MessageApi`] list, and
//!   [`connect`](ProducerSpec::connect), which gives the typed API
//!   ([`ProducerApi<S>`]) with one `message_<name>` / `rpc_<name>` method per
//!   `build_` method.
//! - [`Params<T>`] is a handler argument decoded from a command's
//!   `parameters` with serde ([`FromContent`]).
//! - RPC handlers may return a value ([`IntoReply`]) or a `Result` whose
//!   error becomes an error or exception result ([`IntoErrorReply`],
//!   [`RpcError`]).
//!
//! ```no_run
//! use postage::prelude::*;
//!
//! const ECHO: Exchange = Exchange::direct("echo-exchange");
//!
//! struct EchoProducer;
//!
//! #[producer(eks = [(ECHO, "echo-rk")])]
//! impl EchoProducer {
//!     fn build_message_echo(&self, text: &str) -> MessageCommand {
//!         MessageCommand::new("echo", text)
//!     }
//!     fn build_rpc_sum(&self, a: i64, b: i64) -> RpcCommand {
//!         RpcCommand::new("sum", serde_json::json!({ "a": a, "b": b }))
//!     }
//! }
//!
//! # async fn run() -> postage::Result<()> {
//! let connection = Connection::from_env().await?;
//! let producer = EchoProducer.connect(&connection).await?;
//! producer.message_echo("hi").await?;
//! producer.message_echo("to all").key("echo-fanout-rk").await?;
//! let reply = producer.rpc_sum(2, 3).timeout(std::time::Duration::from_secs(5)).await?;
//! assert!(reply.is_ok());
//! // Commands without a build method: the plain producer's methods.
//! producer.command("echo", "untyped").await?;
//! // The API, listed statically.
//! assert_eq!(EchoProducer::API[1].to_string(), "rpc sum(a: i64, b: i64)");
//! # Ok(()) }
//! ```

use std::fmt;
use std::future::Future;
use std::ops::{Deref, DerefMut};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::encoding::DecodeError;
use crate::error::Result;
use crate::exchange::Exchange;
use crate::message::{Category, Content, Outcome};
use crate::producer::{Producer, ProducerBuilder};
use crate::transport::Connection;

/// A producer described by `#[producer]`: its default pairs, its message
/// API, and how it wraps a connected [`Producer`].
///
/// `#[producer]` implements it; call [`connect`](ProducerSpec::connect) on
/// a value of the spec type to get its typed API.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a Postage producer",
    label = "no #[producer] impl for this type",
    note = "put #[postage::producer(eks = [...])] on an impl block of `{Self}` with build_message_<name> / build_rpc_<name> methods"
)]
pub trait ProducerSpec: Sized + Send + Sync + 'static {
    /// The connected, typed API: `message_<name>` / `rpc_<name>` methods,
    /// and every [`Producer`] method through `Deref`.
    type Api;

    /// Every typed sender, in declaration order.
    const API: &'static [MessageApi];

    /// The default (exchange, routing key) pairs (the `eks = [...]` of
    /// `#[producer]`, evaluated with `self` in scope).
    fn default_eks(&self) -> Vec<(Exchange, String)>;

    /// Wraps an already connected producer.
    fn bind(self, producer: Producer) -> Self::Api;

    /// Connects a producer with the default pairs and an anonymous
    /// fingerprint.
    fn connect(self, connection: &Connection) -> impl Future<Output = Result<Self::Api>> + Send {
        self.connect_with(Producer::builder(), connection)
    }

    /// Connects a producer configured by `builder` (fingerprint, encoder,
    /// RPC defaults, ...). The spec's default pairs come after any pairs
    /// the builder already has.
    fn connect_with(
        self,
        builder: ProducerBuilder,
        connection: &Connection,
    ) -> impl Future<Output = Result<Self::Api>> + Send {
        async move {
            let producer = builder.eks(self.default_eks()).connect(connection).await?;
            Ok(self.bind(producer))
        }
    }
}

/// The typed API of a `#[producer]` spec `S`, as [`ProducerSpec::connect`]
/// returns it. Name it in fields and signatures:
/// `producer: ProducerApi<EchoProducer>`.
pub type ProducerApi<S> = <S as ProducerSpec>::Api;

/// One typed sender of a producer: `message_echo(text: &str)` is
/// `MessageApi { name: "echo", category: Message, sender: "message_echo",
/// params: [text: &str] }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageApi {
    /// The command's name in the method (`echo` for `message_echo`).
    pub name: &'static str,
    /// `message` for `message_<name>`, `rpc` for `rpc_<name>`.
    pub category: Category,
    /// The sender method's name.
    pub sender: &'static str,
    /// Its parameters, as written in the build method.
    pub params: &'static [ApiParam],
}

/// A parameter of a typed sender: its name and its type as source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiParam {
    /// The parameter's name.
    pub name: &'static str,
    /// Its type, as written (`&str`, `Vec<i64>`).
    pub ty: &'static str,
}

impl MessageApi {
    /// A `message_<name>` sender.
    pub const fn message(
        name: &'static str,
        sender: &'static str,
        params: &'static [ApiParam],
    ) -> Self {
        MessageApi {
            name,
            category: Category::Message,
            sender,
            params,
        }
    }

    /// An `rpc_<name>` sender.
    pub const fn rpc(
        name: &'static str,
        sender: &'static str,
        params: &'static [ApiParam],
    ) -> Self {
        MessageApi {
            name,
            category: Category::Rpc,
            sender,
            params,
        }
    }
}

impl ApiParam {
    /// A parameter `name: ty`.
    pub const fn new(name: &'static str, ty: &'static str) -> Self {
        ApiParam { name, ty }
    }
}

/// `message echo(text: &str)`, `rpc sum(a: i64, b: i64)`.
impl fmt::Display for MessageApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}(", self.category, self.name)?;
        for (i, param) in self.params.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}: {}", param.name, param.ty)?;
        }
        f.write_str(")")
    }
}

/// A handler argument decoded from the command's `parameters` with serde.
///
/// ```
/// # use postage::prelude::*;
/// #[derive(serde::Deserialize)]
/// struct Sum { a: i64, b: i64 }
///
/// struct Math;
///
/// #[processor]
/// impl Math {
///     #[rpc_handler("command", "sum")]
///     async fn sum(&self, Params(sum): Params<Sum>) -> i64 {
///         sum.a + sum.b
///     }
/// }
/// ```
///
/// When the parameters do not fit `T`, the handler does not run: an RPC
/// caller gets an error result saying why, a message is logged and
/// acknowledged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Params<T>(pub T);

impl<T> Params<T> {
    /// The decoded value.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> Deref for Params<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> DerefMut for Params<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

/// What a `#[handler]` / `#[rpc_handler]` method may take as its content
/// argument: [`Content`] as it came, or [`Params<T>`] decoded.
#[diagnostic::on_unimplemented(
    message = "a Postage handler cannot take `{Self}` as its content argument",
    label = "expected `Content` or `Params<T>` with `T: serde::Deserialize`",
    note = "full-body handlers take `Message` (#[full_body_handler]); context handlers take `Context<Self>` (#[context_handler])"
)]
pub trait FromContent: Sized {
    /// Reads the argument from the content.
    fn from_content(content: Content) -> std::result::Result<Self, DecodeError>;
}

impl FromContent for Content {
    fn from_content(content: Content) -> std::result::Result<Self, DecodeError> {
        Ok(content)
    }
}

impl<T: DeserializeOwned> FromContent for Params<T> {
    fn from_content(content: Content) -> std::result::Result<Self, DecodeError> {
        content.parameters_as().map(Params)
    }
}

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

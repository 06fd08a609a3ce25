//! [`ProducerSpec`]: what `#[producer]` implements (default pairs, the
//! static [`MessageApi`] list, and the typed API it connects).
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

use super::{Producer, ProducerBuilder};
use crate::error::Result;
use crate::message::Category;
use crate::topology::Exchange;
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

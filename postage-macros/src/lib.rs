//! Procedural macros for Postage: `#[producer]`, `#[processor]` and the
//! handler attributes. Use them through `postage` (`use
//! postage::prelude::*;`); generated code names the runtime as
//! `::postage` unless told otherwise with `crate = "path"`.
//!
//! # `#[producer]`
//!
//! On an inherent impl block of a type of yours (the *spec*). Arguments:
//!
//! - `eks = [(EXCHANGE, "key"), ...]`: the default (exchange, routing key)
//!   pairs. Each element is any expression giving an `Exchange` and one
//!   giving a key (`&str` or `String`); `self` (the spec) is in scope, so
//!   names made at run time read `(self.exchange.clone(), "rk")`.
//! - `crate = "path"`: where the runtime crate is (default `::postage`).
//!
//! Every `fn build_message_<name>(&self, args...) -> M` becomes a sender
//! `message_<name>(args...)` and every `fn build_rpc_<name>` a sender
//! `rpc_<name>(args...)`, with the build method's parameter names and
//! types; `M` is any message (`postage::IntoMessage`). The build method
//! runs when the sender is called, so borrowed arguments are fine. Other
//! methods are left alone.
//!
//! ```ignore
//! struct EchoProducer;
//!
//! #[producer(eks = [(ECHO, "echo-rk")])]
//! impl EchoProducer {
//!     fn build_message_echo(&self, text: &str) -> MessageCommand {
//!         MessageCommand::new("echo", text)
//!     }
//!     fn build_rpc_sum(&self, a: i64, b: i64) -> RpcCommand {
//!         RpcCommand::new("sum", json!({ "a": a, "b": b }))
//!     }
//! }
//!
//! let producer = EchoProducer.connect(&connection).await?;  // ProducerSpec, in the prelude
//! producer.message_echo("hi").await?;
//! producer.message_echo("hi").key("echo-fanout-rk").await?; // options: key, eks, persistent, mandatory
//! let reply = producer.rpc_sum(2, 3).timeout(d).retries(1).await?; // and key, eks, strategy, queue_only()
//! producer.command("other", "no build method").await?;      // every Producer method, through Deref
//! ```
//!
//! expands to the impl block unchanged, plus (paths shortened):
//!
//! ```ignore
//! #[doc(hidden)]
//! #[derive(Clone)]
//! pub struct __PostageEchoProducerApi {
//!     producer: ::postage::Producer,
//!     spec: Arc<EchoProducer>,
//! }
//!
//! impl __PostageEchoProducerApi {
//!     pub fn spec(&self) -> &EchoProducer { &self.spec }
//!     pub fn message_echo(&self, text: &str) -> ::postage::producer::Publish<'_> {
//!         self.producer.send(::postage::__private::message(self.spec.build_message_echo(text)))
//!     }
//!     pub fn rpc_sum(&self, a: i64, b: i64) -> ::postage::rpc::RpcCall<'_> {
//!         self.producer.rpc_message(::postage::__private::message(self.spec.build_rpc_sum(a, b)))
//!     }
//! }
//!
//! impl Deref for __PostageEchoProducerApi { type Target = ::postage::Producer; /* ... */ }
//! impl Debug for __PostageEchoProducerApi { /* ... */ }
//!
//! impl ::postage::ProducerSpec for EchoProducer {
//!     type Api = __PostageEchoProducerApi;               // also named ProducerApi<EchoProducer>
//!     const API: &'static [::postage::MessageApi] = &[
//!         ::postage::MessageApi::message("echo", "message_echo", &[::postage::ApiParam::new("text", "&str")]),
//!         ::postage::MessageApi::rpc("sum", "rpc_sum", &[
//!             ::postage::ApiParam::new("a", "i64"),
//!             ::postage::ApiParam::new("b", "i64"),
//!         ]),
//!     ];
//!     fn default_eks(&self) -> Vec<(::postage::Exchange, String)> {
//!         vec![(ECHO, Into::into("echo-rk"))]
//!     }
//!     fn bind(self, producer: ::postage::Producer) -> __PostageEchoProducerApi {
//!         __PostageEchoProducerApi { producer, spec: Arc::new(self) }
//!     }
//! }
//! ```
//!
//! `ProducerSpec::connect(self, &connection)` connects with the default
//! pairs; `connect_with(self, Producer::builder().fingerprint(..), &connection)`
//! takes a builder for the fingerprint, encoder and RPC defaults.
//!
//! Compile errors: an `eks` that is not a list of pairs, an unknown
//! argument, a build method that is async, does not take `&self`, or does
//! not return a message (reported on its return type).
//!
//! # `#[processor]` and the handler attributes
//!
//! On an inherent impl block of the handler type. Argument: `crate =
//! "path"`. Each method marked with one of these attributes becomes an
//! entry of the dispatch table (`postage::Handlers`); the attributes are
//! removed, the methods stay as written. Handlers are `async fn`, take
//! `&self` or no receiver, and return `()` or `Result<(), E: Display>`
//! unless said otherwise.
//!
//! | attribute | method | runs for |
//! |---|---|---|
//! | `#[handler("command", "echo")]` | `(&self)`, `(&self, content: Content)` or `(&self, p: Params<T>)` | `message` category |
//! | `#[full_body_handler("command", "echo")]` | `(&self, message: Message)` | `message` category |
//! | `#[rpc_handler("command", "echo")]` | `(&self, [content,] reply: Reply)`: replies itself | `rpc` category |
//! | `#[rpc_handler("command", "echo")]` | `(&self [, content]) -> T` (`T: Serialize`) or `-> Result<T, E>` | `rpc` category |
//! | `#[context_handler("message" \| "rpc", "command", "echo")]` | `([&self,] ctx: Context<Self>)` | that category |
//!
//! - `content` is `Content`, or `Params<T>` for a `T: Deserialize` read from
//!   the command's `parameters`. Parameters that do not fit: the method
//!   does not run, an RPC caller gets an error result naming the problem,
//!   a message is logged.
//! - An RPC handler is the reply form when its last argument's type is
//!   written `Reply`. Otherwise what it returns is the reply: a value is a
//!   success result; for a return type written `Result<..>`, `Ok(v)` is a
//!   success, `Err(e)` an error result with `e`'s text, and
//!   `Err(RpcError::exception(name, text))` an exception result. Both are
//!   read from the signature as written, by the type's last path segment:
//!   a type alias of `Result` is not a `Result` there (see
//!   [`rpc_handler`](macro@rpc_handler)).
//! - Several `message` handlers may share a (type, name); an RPC (type,
//!   name) has one handler.
//!
//! ```ignore
//! struct EchoReceiver;
//!
//! #[processor]
//! impl EchoReceiver {
//!     #[handler("command", "echo")]
//!     async fn echo(&self, content: Content) { /* ... */ }
//!
//!     #[rpc_handler("command", "echo")]
//!     async fn rpc_echo(&self, content: Content, reply: Reply) -> postage::Result<()> {
//!         reply.success(content.parameters().cloned().unwrap_or_default()).await
//!     }
//!
//!     #[rpc_handler("command", "sum")]
//!     async fn sum(&self, Params(numbers): Params<Vec<i64>>) -> i64 {
//!         numbers.iter().sum()
//!     }
//! }
//! ```
//!
//! expands to the impl block without the attributes, plus:
//!
//! ```ignore
//! impl ::postage::Handlers for EchoReceiver {
//!     fn handlers() -> &'static [::postage::__private::Handler<Self>] {
//!         const TABLE: &[::postage::__private::Handler<EchoReceiver>] = &[
//!             ::postage::__private::Handler::<EchoReceiver>::message("command", "echo", |this, content| {
//!                 ::postage::__private::boxed(async move {
//!                     ::postage::__private::done(this.echo(::postage::__private::params(content)?).await)
//!                 })
//!             })
//!             .labeled("echo"),
//!             ::postage::__private::Handler::<EchoReceiver>::rpc("command", "echo", |this, content, reply| {
//!                 ::postage::__private::boxed(async move {
//!                     let (content, reply) = ::postage::__private::rpc_params(content, reply).await?;
//!                     ::postage::__private::done(this.rpc_echo(content, reply).await)
//!                 })
//!             })
//!             .labeled("rpc_echo"),
//!             ::postage::__private::Handler::<EchoReceiver>::rpc("command", "sum", |this, content, reply| {
//!                 ::postage::__private::boxed(async move {
//!                     let (content, reply) = ::postage::__private::rpc_params(content, reply).await?;
//!                     ::postage::__private::reply_value(reply, this.sum(content).await).await
//!                 })
//!             })
//!             .labeled("sum")
//!             // For documents: the parameters' type, and its JSON Schema
//!             // when it has one (`schemars::JsonSchema`, feature `schemars`).
//!             .with_params(::postage::__private::ParamType::with_schema("Vec<i64>", || {
//!                 use ::postage::__private::{HasSchema as _, NoSchema as _};
//!                 (&&::postage::__private::SchemaProbe::<Vec<i64>>(::core::marker::PhantomData)).schema()
//!             })),
//!         ];
//!         TABLE
//!     }
//! }
//! ```
//!
//! Compile errors: a handler that is not `async`, is generic, takes
//! `&mut self` or `self`, has too many or too few arguments, has a
//! missing, empty or non-string type / name / category, an unknown
//! argument, two RPC handlers for one (type, name), a handler attribute on
//! something other than a method. Argument and return types are checked
//! by the compiler, with the error on the argument or return type:
//! `postage::FromContent`, `postage::IntoReply`, `postage::IntoErrorReply`
//! and `postage::processor::IntoHandlerResult` say what fits.
//!
//! Every error of one impl block is reported at once, and the impl block is
//! still emitted (with the entries that are fine), so other code keeps
//! compiling against it.

mod common;
mod ctxt;
mod processor;
mod producer;

use proc_macro::TokenStream;

/// Typed senders from `build_message_<name>` / `build_rpc_<name>` methods.
/// See the [crate docs](crate).
#[proc_macro_attribute]
pub fn producer(args: TokenStream, item: TokenStream) -> TokenStream {
    producer::producer(args.into(), item.into()).into()
}

/// A dispatch table from `#[handler]`, `#[full_body_handler]`,
/// `#[rpc_handler]` and `#[context_handler]` methods. See the [crate
/// docs](crate).
#[proc_macro_attribute]
pub fn processor(args: TokenStream, item: TokenStream) -> TokenStream {
    processor::processor(args.into(), item.into()).into()
}

/// `#[handler("type", "name")]`: a `message` handler taking `Content` or
/// `Params<T>`. Only inside a `#[processor]` impl block.
#[proc_macro_attribute]
pub fn handler(_args: TokenStream, item: TokenStream) -> TokenStream {
    processor::standalone("handler", item.into()).into()
}

/// `#[full_body_handler("type", "name")]`: a `message` handler taking the
/// whole `Message`. Only inside a `#[processor]` impl block.
#[proc_macro_attribute]
pub fn full_body_handler(_args: TokenStream, item: TokenStream) -> TokenStream {
    processor::standalone("full_body_handler", item.into()).into()
}

/// `#[rpc_handler("type", "name")]`: an RPC handler that replies through a
/// `Reply` or returns its reply. Only inside a `#[processor]` impl block.
///
/// Which it is comes from the signature as written, by the last path
/// segment of a type: the reply form when the last argument's type is
/// `Reply` (`Reply`, `postage::Reply`); a `Result` handler when the return
/// type is `Result` (`Result<T, E>`, `std::result::Result<T, E>`,
/// `postage::Result<T>`); otherwise the returned value is the reply.
///
/// # Type aliases of `Result`
///
/// The macro cannot see through a type alias. With
/// `type Answer = Result<i64, RpcError>;`, a handler `-> Answer` is not a
/// `Result` handler: the whole `Result` is the value to reply with, which
/// must implement `postage::IntoReply` (`serde::Serialize`):
///
/// - when `T` and `E` are both `Serialize` (`Result<i64, String>`), it
///   compiles, and every call gets a *success* result whose value is
///   serde's form of the `Result`: `{"Ok": 3}`, or `{"Err": "text"}`; an
///   `Err` is not an error result;
/// - otherwise (`RpcError`, or most error types) it does not compile: the
///   error is on the return type, "the trait bound `RpcError: Serialize`
///   is not satisfied", followed by "required for `Result<i64, RpcError>`
///   to implement `IntoReply`".
///
/// An alias whose name merely ends in `Result` is no different
/// (`MyResult<T>`'s last segment is `MyResult`). Write the `Result` in the
/// signature, `-> Result<i64, RpcError>` or
/// `-> std::result::Result<i64, RpcError>`, or name the alias `Result`
/// (`mod calc { pub type Result<T> = std::result::Result<T, RpcError>; }`,
/// then `-> calc::Result<i64>`), as `postage::Result<T>` is.
///
/// ```ignore
/// type Answer = Result<i64, RpcError>;
///
/// #[rpc_handler("command", "div")]
/// async fn div(&self, Params((a, b)): Params<(i64, i64)>) -> Answer { .. }  // RpcError: Serialize not satisfied
///
/// #[rpc_handler("command", "div")]
/// async fn div(&self, Params((a, b)): Params<(i64, i64)>) -> Result<i64, RpcError> { .. }  // fine
/// ```
#[proc_macro_attribute]
pub fn rpc_handler(_args: TokenStream, item: TokenStream) -> TokenStream {
    processor::standalone("rpc_handler", item.into()).into()
}

/// `#[context_handler("message" | "rpc", "type", "name")]`: a handler
/// taking a `Context<Self>`. Only inside a `#[processor]` impl block.
#[proc_macro_attribute]
pub fn context_handler(_args: TokenStream, item: TokenStream) -> TokenStream {
    processor::standalone("context_handler", item.into()).into()
}

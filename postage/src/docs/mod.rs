//! AsyncAPI documents of components: [`AsyncApi`] gathers processors'
//! handler tables and bindings, producers' API lists (`#[producer]`'s
//! [`ProducerSpec::API`](crate::ProducerSpec::API)), and the `info`
//! answers of running components ([`remote`](crate::remote)), and writes
//! an [AsyncAPI 3.0.0](https://www.asyncapi.com/docs/reference/specification/v3.0.0)
//! document as JSON (`postage docs` prints it as YAML or JSON).
//!
//! Channels are (exchange, routing key) pairs with their AMQP bindings;
//! a processor's handlers are `receive` operations (an RPC handler's with
//! a reply to the request's `reply_to`), a producer's messages `send`
//! operations; every payload is the envelope of the wire format, with the
//! parameters' JSON Schema when their type implements
//! `schemars::JsonSchema` (feature `schemars`, for handlers taking
//! `Params<T>`) and the Rust type's name otherwise.
//!
//! ```
//! use postage::prelude::*;
//! use postage::Binding;
//! use postage::docs::AsyncApi;
//!
//! const ECHO: Exchange = Exchange::direct("echo-exchange");
//!
//! struct Echo;
//!
//! #[processor]
//! impl Echo {
//!     #[rpc_handler("command", "echo")]
//!     async fn echo(&self, Params(text): Params<String>) -> String {
//!         text
//!     }
//! }
//!
//! struct EchoProducer;
//!
//! #[producer(eks = [(ECHO, "echo-rk")])]
//! impl EchoProducer {
//!     fn build_rpc_echo(&self, text: &str) -> RpcCommand {
//!         RpcCommand::new("echo", text)
//!     }
//! }
//!
//! let doc = AsyncApi::new("Echo", "1.0.0")
//!     .processor::<Echo>("echo_receive", &[Binding::new(ECHO, [("echo-queue", "echo-rk")])])
//!     .producer::<EchoProducer>("echo_send", &EchoProducer.default_eks())
//!     .to_value();
//! assert_eq!(doc["asyncapi"], "3.0.0");
//! assert_eq!(doc["channels"]["echo-exchange.echo-rk"]["address"], "echo-rk");
//! assert_eq!(doc["operations"]["echo_receive.echo.echo-exchange.echo-rk"]["action"], "receive");
//! assert_eq!(doc["operations"]["echo_send.rpc_echo.echo-exchange.echo-rk"]["action"], "send");
//! ```
//!
//! | file | holds |
//! |---|---|
//! | `asyncapi` | [`AsyncApi`]: channels, operations and messages of components |
//! | `schema` | the payload schemas: the wire format's envelope, parameters, results |

mod asyncapi;
mod schema;

pub use asyncapi::AsyncApi;
#[cfg(feature = "schemars")]
pub use schema::json_schema;

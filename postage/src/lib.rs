//! # Postage
//!
//! Messaging components over AMQP (RabbitMQ), wire-compatible with the
//! Python library of the same name.
//!
//! A component sends **messages** (commands, statuses, results) through
//! **producers**, which know the default (exchange, routing key) pairs of
//! an API, and receives them in **processors**, which bind queues to
//! exchanges and run **handlers** for (type, name) pairs. RPC calls wait
//! for a result: success, error or exception.
//!
//! | module | what it holds |
//! |---|---|
//! | [`config`] | [`Config`]: `POSTAGE_*` variables, URLs, redacted secrets |
//! | [`fingerprint`] | [`Fingerprint`]: who a component is |
//! | [`message`] | [`Message`] and its kinds |
//! | [`encoding`] | [`Encoder`], [`JsonEncoder`] |
//! | [`topology`] | [`Exchange`], [`Queue`], [`Binding`]: declarations as values |
//! | [`producer`](mod@producer) | [`Producer`], its send builder, [`ProducerSpec`] of `#[producer]` |
//! | [`rpc`] | RPC calls: reply strategies, timeouts, retries |
//! | [`remote`] | remote control: `ping`, `info`, `quit`, `restart` by component through the control exchange |
//! | [`consumer`] | [`Consumer`], deliveries, prefetch |
//! | [`docs`] | [`AsyncApi`](docs::AsyncApi): AsyncAPI 3.0 documents of components |
//! | [`processor`](mod@processor) | [`Processor`], handler tables, extractors, replies, `quit` / `restart` |
//! | [`jobs`] | [`Job`](jobs::Job): periodic jobs, every interval or on a cron expression, one runner per component |
//! | [`middleware`] | `tower` layers around handlers and sends: timeout, concurrency and rate limits, `from_fn` |
//! | [`scheduler`] | [`Scheduler`]: many processors, signals, graceful shutdown, restart |
//! | [`telemetry`] | spans (OpenTelemetry's messaging conventions), trace context (feature `opentelemetry`), metric names |
//! | [`error`] | [`Error`], [`Report`] |
//! | `testing` | with the `testing` feature: `MemoryBroker`, a broker in the test process, and `Probe` |
//! | [`macros`] | the macros' documentation: `#[producer]`, `#[processor]`, the handler attributes, every argument |
//!
//! Everything that talks to the broker goes through one internal seam
//! (`transport`): the AMQP backend behind it is the only code that knows
//! the AMQP client library, and the in-memory broker of the `testing`
//! feature is a second backend, on which components run unchanged in
//! their tests. Postage runs on Unix (Linux, macOS): signals
//! and restarting in place use Unix APIs.
//!
//! ## Sending and receiving by hand
//!
//! ```no_run
//! use postage::prelude::*;
//!
//! const ECHO: Exchange = Exchange::direct("echo-exchange");
//!
//! #[tokio::main]
//! async fn main() -> Result<(), postage::Report> {
//!     // POSTAGE_URL, or POSTAGE_HOST / _PORT / _VHOST / _USER / _PASSWORD.
//!     let connection = Connection::from_env().await?;
//!
//!     // Receive: a queue bound to the exchange with a routing key.
//!     let mut consumer = Consumer::builder()
//!         .bind(ECHO, [("echo-queue", "echo-rk")])
//!         .connect(&connection)
//!         .await?;
//!
//!     // Send: a producer with its default (exchange, key) pair.
//!     let producer = Producer::builder()
//!         .ek(ECHO, "echo-rk")
//!         .fingerprint(Fingerprint::new("echo_send", "application"))
//!         .connect(&connection)
//!         .await?;
//!     producer.command("echo", "A test message").await?;
//!
//!     let delivery = consumer.next().await.expect("consumer open");
//!     let message = delivery.message().expect("a Postage message");
//!     assert_eq!(message.name, "echo");
//!     assert_eq!(message.content.parameters(), Some(&"A test message".into()));
//!     assert_eq!(message.sender().name.as_deref(), Some("echo_send"));
//!     delivery.ack().await?;
//!
//!     connection.close().await?;
//!     Ok(())
//! }
//! ```
//!
//! ## An RPC server and client without macros
//!
//! ```no_run
//! use std::sync::Arc;
//! use postage::prelude::*;
//! use postage::processor::{Handler, HandlerResult};
//!
//! const MATH: Exchange = Exchange::direct("math-exchange");
//!
//! struct Math;
//!
//! impl Handlers for Math {
//!     fn handlers() -> &'static [Handler<Self>] {
//!         const TABLE: &[Handler<Math>] = &[Handler::rpc("command", "sum", |_math, content, reply| {
//!             Box::pin(async move {
//!                 let numbers: Vec<i64> = match content.parameters_as() {
//!                     Ok(numbers) => numbers,
//!                     Err(e) => return Ok(reply.error(e.to_string()).await?),
//!                 };
//!                 reply.success(numbers.iter().sum::<i64>()).await?;
//!                 Ok(())
//!             })
//!         })];
//!         TABLE
//!     }
//! }
//!
//! #[tokio::main]
//! async fn main() -> postage::Result<()> {
//!     let connection = Connection::from_env().await?;
//!
//!     // Server
//!     let processor = Processor::builder(Math)
//!         .bind(MATH, [("math-queue", "math-rk")])
//!         .fingerprint(Fingerprint::new("math", "service"))
//!         .connect(&connection)
//!         .await?;
//!     let control = processor.control();
//!     let server = tokio::spawn(processor.run());
//!
//!     // Client
//!     let producer = Producer::builder().ek(MATH, "math-rk").connect(&connection).await?;
//!     let reply = producer
//!         .rpc("sum", serde_json::json!([1, 2, 3]))
//!         .timeout(std::time::Duration::from_secs(5))
//!         .await?;
//!     assert!(reply.is_ok());
//!     assert_eq!(reply.outcome()?, Outcome::Success { value: 6.into(), message: String::new() });
//!
//!     control.quit();
//!     let _ = server.await;
//!     connection.close().await
//! }
//! ```

use std::future::Future;
use std::pin::Pin;

pub mod config;
#[doc = include_str!("macros.md")]
pub mod macros {}
pub mod consumer;
pub mod docs;
pub mod encoding;
pub mod error;
pub mod fingerprint;
pub mod flow;
pub mod jobs;
pub mod message;
pub mod middleware;
pub mod processor;
pub mod producer;
pub mod remote;
pub mod rpc;
pub mod scheduler;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
pub mod topology;
mod transport;

#[doc(hidden)]
pub mod __private;

/// The boxed future a send or call builder resolves to.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Exchanges as values: now the [`topology`] module.
#[deprecated(
    since = "0.2.0",
    note = "use `postage::topology` (or the root re-exports)"
)]
pub mod exchange {
    pub use crate::topology::{Exchange, ExchangeKind};
}

/// The runtime side of the macros: now in [`producer`](mod@crate::producer)
/// (the producer spec) and [`processor`](mod@crate::processor) (handler
/// arguments and replies).
#[deprecated(
    since = "0.2.0",
    note = "use `postage::producer` or `postage::processor` (or the root re-exports)"
)]
pub mod typed {
    pub use crate::processor::{FromContent, IntoErrorReply, IntoReply, Params, RpcError};
    pub use crate::producer::{ApiParam, MessageApi, ProducerApi, ProducerSpec};
}

pub use config::{AddressOrder, Config, ConfigError};
pub use consumer::{Consumer, Delivery, Health};
pub use encoding::{DecodeError, EncodeError, Encoder, JsonEncoder};
pub use error::{Error, Report, Result};
pub use fingerprint::Fingerprint;
pub use message::{
    Category, Content, ContentError, ContentParts, GenericMessage, IntoMessage, Message,
    MessageCommand, MessageParts, MessageResult, MessageResultError, MessageResultException,
    MessageStatus, Outcome, RpcCommand, WireFingerprint,
};
pub use postage_macros::{
    context_handler, full_body_handler, handler, processor, producer, rpc_handler,
};
pub use processor::{
    Context, Control, FromContent, Handlers, IntoErrorReply, IntoReply, OnError, Params, Processor,
    Reply, RpcError, Stop,
};
pub use producer::{ApiParam, MessageApi, Producer, ProducerApi, ProducerBuilder, ProducerSpec};
pub use rpc::{PendingReply, ReplyStrategy};
pub use scheduler::{Scheduler, restart_process};
pub use topology::{Binding, Exchange, ExchangeKind, Queue};
pub use transport::{Connection, Headers};

/// The names most components need: `use postage::prelude::*;`.
pub mod prelude {
    pub use crate::processor::HandlerError;
    pub use crate::{
        AddressOrder, Category, Config, Connection, Consumer, Content, Context, Control, Exchange,
        ExchangeKind, Fingerprint, GenericMessage, Handlers, IntoMessage, Message, MessageCommand,
        MessageResult, MessageResultError, MessageResultException, MessageStatus, OnError, Outcome,
        Processor, Producer, Queue, Reply, ReplyStrategy, RpcCommand, Scheduler,
    };
    pub use crate::{Params, ProducerApi, ProducerSpec, RpcError};
    pub use postage_macros::{
        context_handler, full_body_handler, handler, processor, producer, rpc_handler,
    };
}

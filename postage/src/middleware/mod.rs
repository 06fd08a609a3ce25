//! Middleware: [`tower`] layers around a processor's handlers, one
//! handler, or a producer's sends.
//!
//! A layer wraps a service, as in axum, tonic and hyper. Postage's
//! services are:
//!
//! | where | added with | the request | the outcome |
//! |---|---|---|---|
//! | around all handlers of a processor | [`ProcessorBuilder::layer`](crate::processor::ProcessorBuilder::layer) | [`Incoming`]: the decoded message, its queue, key, headers, deadline, the handlers that will run | `Result<(), E>`: the first handler's failure, or the layer's own |
//! | around one handler | [`ProcessorBuilder::layer_for`](crate::processor::ProcessorBuilder::layer_for) | [`Incoming`], routed to that handler | that handler's |
//! | around each publish of a producer | [`ProducerBuilder::layer`](crate::ProducerBuilder::layer) | [`Outgoing`]: the encoded message, its targets and properties | the publish's (confirmed, when confirms are on) |
//!
//! A layer can refuse (return an error without calling the service it
//! wraps), transform (change the message, add headers), time, count or
//! limit. The first layer added is the outermost: it sees the request
//! first and the outcome last. A processor's layers run inside its
//! `process` span and outside its per-handler layers; a handler's time
//! limit ([`handler_timeout`](crate::processor::ProcessorBuilder::handler_timeout))
//! applies inside all of them.
//!
//! An error out of a processor's layers fails the message as a handler's
//! failure would: the [failure policy](crate::OnError) of its (first)
//! handler applies, and an RPC caller gets an exception result. A
//! [`HandlerError`](crate::processor::HandlerError) keeps its name and
//! permanence (return `HandlerError::permanent` to park at once); a
//! timeout layer's error becomes `TimeoutError`; any other error
//! `MiddlewareError` with its text. An error out of a producer's layers
//! is the send's error; a [`crate::Error`] comes back as it is, any other
//! as [`Error::Middleware`](crate::Error::Middleware).
//!
//! Built in: [`TimeoutLayer`] and [`ConcurrencyLimitLayer`] (tower's
//! own), [`RateLimitLayer`] (messages per second, shared across
//! concurrent deliveries), and [`from_fn`] to write one as an async
//! function. A processor's layers are dispatched statically (the stack's
//! type is part of its builder's); a processor without layers runs its
//! handlers directly, building no request. One handler's layers, a producer's
//! layers and [`from_fn`] are boxed.
//!
//! Authentication of senders, as an async function:
//!
//! ```no_run
//! use std::time::Duration;
//! use postage::middleware::{Next, TimeoutLayer, from_fn};
//! use postage::processor::{HandlerError, Incoming};
//! use postage::prelude::*;
//!
//! const BILLING: Exchange = Exchange::direct("billing");
//!
//! struct Billing;
//!
//! #[processor]
//! impl Billing {
//!     #[handler("command", "charge")]
//!     async fn charge(&self, Params(cents): Params<u64>) {
//!         println!("charging {cents}");
//!     }
//! }
//!
//! /// Lets through only messages from the `orders` component.
//! async fn only_orders(incoming: Incoming, next: Next<Incoming>) -> Result<(), HandlerError> {
//!     let sender = incoming.sender();
//!     if sender.name.as_deref() != Some("orders") {
//!         // Permanent: parked (or dropped) at once, never retried.
//!         return Err(HandlerError::permanent("Unauthorized", format!("{sender} may not bill")));
//!     }
//!     Ok(next.run(incoming).await?)
//! }
//!
//! # async fn run() -> postage::Result<()> {
//! let connection = Connection::from_env().await?;
//! let processor = Processor::builder(Billing)
//!     .bind(BILLING, [("billing", "charge")])
//!     .layer(from_fn(only_orders))
//!     .layer(TimeoutLayer::new(Duration::from_secs(10)))
//!     .connect(&connection)
//!     .await?;
//! processor.run().await?;
//! # Ok(()) }
//! ```

mod from_fn;
mod outgoing;
mod partition;
mod rate;

pub use from_fn::{FromFn, FromFnLayer, Next, from_fn};
pub use rate::{RateLimit, RateLimitLayer};
pub use tower;
pub use tower::limit::ConcurrencyLimitLayer;
pub use tower::timeout::TimeoutLayer;
pub use tower::{BoxError, Layer, Service, ServiceBuilder};

pub use crate::processor::Incoming;
pub use outgoing::{Outgoing, OutgoingParts, SendService};
pub(crate) use outgoing::{SendLayers, publish_outgoing, send};
pub use partition::{PartitionLayer, Partitioned};

//! Processors: a consumer plus a dispatch table of handlers.
//!
//! The table is a `&'static [Handler<P>]` returned by [`Handlers`]; the
//! `#[processor]` macro writes it, or you write it by hand:
//!
//! ```no_run
//! use std::sync::Arc;
//! use postage::prelude::*;
//! use postage::processor::{Handler, HandlerResult};
//!
//! const ECHO: Exchange = Exchange::direct("echo-exchange");
//!
//! struct Echo;
//!
//! impl Echo {
//!     async fn echo(&self, content: Content) -> HandlerResult {
//!         println!("{}", content.parameters().unwrap_or(&serde_json::Value::Null));
//!         Ok(())
//!     }
//!     async fn rpc_echo(&self, content: Content, reply: Reply) -> HandlerResult {
//!         let text = content.parameters().cloned().unwrap_or_default();
//!         reply.success(text).await?;
//!         Ok(())
//!     }
//! }
//!
//! impl Handlers for Echo {
//!     fn handlers() -> &'static [Handler<Self>] {
//!         const TABLE: &[Handler<Echo>] = &[
//!             Handler::message("command", "echo", |this, content| {
//!                 Box::pin(async move { this.echo(content).await })
//!             }),
//!             Handler::rpc("command", "echo", |this, content, reply| {
//!                 Box::pin(async move { this.rpc_echo(content, reply).await })
//!             }),
//!         ];
//!         TABLE
//!     }
//! }
//!
//! # async fn run() -> postage::Result<()> {
//! let connection = Connection::from_env().await?;
//! let processor = Processor::builder(Echo)
//!     .bind(ECHO, [("echo-queue", "echo-rk")])
//!     .fingerprint(Fingerprint::new("echo_receive", "controller"))
//!     .connect(&connection)
//!     .await?;
//! let mut scheduler = Scheduler::new();
//! scheduler.add(processor);
//! scheduler.run().await
//! # }
//! ```
//!
//! | file | holds |
//! |---|---|
//! | `handler` | [`Handler`] entries, [`Handlers`], [`HandlerResult`], [`HandlerError`], [`ParamType`] |
//! | `extract` | handler arguments: [`Params<T>`], [`FromContent`] |
//! | `answer` | what RPC handlers return: [`IntoReply`], [`IntoErrorReply`], [`RpcError`] |
//! | `reply` | [`Reply`]: the answer to an RPC request |
//! | `context` | [`Context`]: what a context handler can reach |
//! | `control` | [`Stop`], [`Control`], who may send `quit` / `restart` |
//! | `policy` | [`OnError`]: what becomes of a message whose handler failed |
//! | `failure` | a failure policy carried out: retry and parking queues, replay |
//! | `discovery` | the control consumer: `ping`, `info`, `quit` and `restart` through the control exchange ([`remote`](crate::remote)) |
//! | `routes` | which handlers serve each (type, name) |
//! | `builder` | [`ProcessorBuilder`] |
//! | `flow_options` | the builder's flow options: order by key, kill switch, partitions |
//! | `incoming` | [`Incoming`]: a message as its middleware sees it |
//! | `stack` | the layers around the handlers, built into one service: [`Handling`], [`HandlerService`] |
//! | `unhandled` | messages no handler takes: counted, said once, acknowledged or dead-lettered |
//! | `dispatch` | one delivery's way through the handlers to its acknowledgement |
//! | `acks` | acknowledgements coalesced: a finished run in one `basic.ack(multiple)` |
//! | `lanes` | keyed lanes: order per [`OrderKey`](crate::flow::OrderKey) among concurrent deliveries |
//! | `run` | [`Processor`] and its run loop |

mod acks;
mod answer;
mod builder;
mod context;
mod control;
mod discovery;
mod dispatch;
mod extract;
mod failure;
mod flow_options;
mod handler;
mod incoming;
mod lanes;
mod policy;
mod reply;
mod routes;
mod run;
mod running;
mod stack;
mod unhandled;

pub use acks::DEFAULT_ACK_DELAY;
pub use answer::{IntoErrorReply, IntoReply, RpcError};
pub use builder::{DEFAULT_MAX_DELIVERIES, ProcessorBuilder};
pub use context::Context;
pub use control::{Control, Stop};
pub(crate) use discovery::{binding_infos, handler_info};
pub use extract::{FromContent, Params};
pub use failure::replay_parked;
pub(crate) use handler::short_type_name;
pub use handler::{
    Handler, HandlerError, HandlerFn, HandlerFuture, HandlerResult, Handlers, IntoHandlerResult,
    ParamType,
};
pub use incoming::Incoming;
pub use policy::{OnError, failure_headers, parking_queue};
pub use reply::Reply;
pub use run::Processor;
pub use stack::{HandlerService, Handling, ProcessorLayers};

//! Remote control of running components: discovery (`ping`, `info`) and
//! `quit` / `restart` by component, through one fanout exchange.
//!
//! Every processor, unless its builder says
//! `discoverable(false)` (see [`Processor`](crate::Processor)),
//! also consumes from [`CONTROL_EXCHANGE`] (`postage-control`, fanout,
//! durable, as Python Postage declares exchanges) through a queue of its
//! own that the broker names, on a consumer of its own: it answers even
//! while its handlers are busy.
//!
//! The control commands are ordinary Postage RPC commands, so any Postage
//! peer can send them: type `command`, category `rpc`, name `ping`,
//! `info`, `quit` or `restart`, parameters `{"destination": [SELECTOR,
//! ...]}` (see [`Destination`]: a name, a `pid@host` or a type; none
//! selects every component), a `reply_to` and a `correlation_id`. A
//! processor the destination does not select stays silent; the others
//! answer with a result:
//!
//! | command | answer |
//! |---|---|
//! | `ping` | success, value [`Pong`]: fingerprint, uptime, Postage version |
//! | `info` | success, value [`Info`]: handlers, bindings, counters, consumer health |
//! | `quit`, `restart` | success (`{"command": ..., "fingerprint": ...}`), then the processor stops as for the classic command; or an error when the command is switched off, or its sender is not among the processor's `control_senders`, or its broker user (the `user_id` every `Remote` command carries, checked by RabbitMQ) not among its `control_users` (the refusal is logged at WARN) |
//!
//! Answers never carry credentials, URLs or the environment.
//!
//! [`Remote`] is the client side (the `postage` command line uses it):
//!
//! ```no_run
//! use std::time::Duration;
//! use postage::prelude::*;
//! use postage::remote::{Destination, Remote};
//!
//! # async fn run() -> postage::Result<()> {
//! let connection = Connection::from_env().await?;
//! let mut remote = Remote::connect(&connection, Fingerprint::new("ops", "tool")).await?;
//! let wait = Duration::from_secs(1);
//! for info in remote.info(&Destination::new(["controller"]), wait).await? {
//!     println!("{}: {} received, {}", info.fingerprint, info.counters.received, info.health);
//! }
//! remote.close().await;
//! # Ok(()) }
//! ```
//!
//! | file | holds |
//! |---|---|
//! | `destination` | [`Destination`]: selectors by name, `pid@host` or type |
//! | `answers` | [`ControlRequest`], [`Pong`], [`Info`] and its parts |
//! | `client` | [`Remote`], [`Answer`] |

mod answers;
mod client;
mod destination;

use crate::topology::Exchange;

pub use answers::{
    BindingInfo, ControlRequest, Counters, HandlerInfo, Info, JobInfo, ParamsInfo, Pong,
};
pub use client::{Answer, Remote};
pub use destination::Destination;

/// The fanout exchange every discoverable processor listens on.
pub const CONTROL_EXCHANGE: Exchange = Exchange::fanout("postage-control");

/// The control command asking who is there.
pub const PING: &str = "ping";
/// The control command asking for a component's handlers, bindings and
/// counters.
pub const INFO: &str = "info";
/// The control command that stops a component.
pub const QUIT: &str = "quit";
/// The control command that restarts a component in place.
pub const RESTART: &str = "restart";
/// The control command that pauses a processor's consumption: its broker
/// consumers are cancelled, the work in flight finishes, nothing new
/// arrives until `resume`.
pub const PAUSE: &str = "pause";
/// The control command that resumes a paused processor.
pub const RESUME: &str = "resume";

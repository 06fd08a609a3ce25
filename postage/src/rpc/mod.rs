//! RPC on the caller side: reply strategies, correlation, timeout, retries
//! and queue-only calls.
//!
//! A call sends an RPC command to the producer's first (exchange, key) pair
//! with `reply_to`, a fresh `correlation_id` and an `expiration` equal to
//! the timeout (a request nobody took in time is dropped by the broker, not
//! run late), then waits for the reply. Each retry is a fresh send with a
//! fresh correlation id. When every attempt times out the call fails with
//! [`Error::RpcTimeout`](crate::Error::RpcTimeout); Python Postage returns an exception result named
//! `TimeoutError` instead, which [`Error::to_result_message`](crate::Error::to_result_message) produces.
//!
//! Over direct reply-to the reply is what confirms a request, so requests
//! go out without publisher confirms unless the producer asks for them
//! ([`ProducerBuilder::rpc_confirms`](crate::ProducerBuilder::rpc_confirms)):
//! then a request no queue takes fails at once with [`Error::Unroutable`](crate::Error::Unroutable)
//! instead of at its timeout, at the cost of one more broker round trip
//! per call. Requests with a queue per call use the producer's channel and
//! its [`confirms`](crate::ProducerBuilder::confirms) setting.

//!
//! | file | holds |
//! |---|---|
//! | `state` | [`ReplyStrategy`], the defaults, a producer's RPC state and its direct reply-to channel |
//! | `reader` | the direct reply-to consumer, read by the waiting calls themselves |
//! | `call` | [`RpcCall`]: one call's options, its sends and retries |
//! | `pending` | [`PendingReply`]: a sent request whose reply is awaited |
//! | `typed` | [`TypedRpcCall`]: a call whose success value is decoded into a type of yours |

mod call;
mod pending;
mod reader;
mod state;
mod typed;

pub use crate::transport::DEADLINE_HEADER;
pub(crate) use call::Origin;
pub use call::RpcCall;
pub use pending::PendingReply;
pub use state::{DEFAULT_RETRIES, DEFAULT_TIMEOUT, DIRECT_REPLY_TO, ReplyStrategy};
pub(crate) use state::{RpcSettings, RpcState};
pub use typed::TypedRpcCall;

//! Producers: default (exchange, key) pairs, overrides, the send builder,
//! and the producer spec of `#[producer]`.
//!
//! | file | holds |
//! |---|---|
//! | `builder` | [`ProducerBuilder`] |
//! | `sender` | [`Producer`]: sends, RPC calls |
//! | `publish` | [`Publish`]: one send's options, awaited to send |
//! | `delay` | [`DelayedPublish`], [`Scheduled`]: sends for later, through the broker's delay levels |
//! | `spec` | [`ProducerSpec`], [`ProducerApi`], [`MessageApi`], [`ApiParam`]: the runtime side of `#[producer]` |

mod builder;
mod delay;
mod publish;
mod sender;
mod spec;

pub use crate::BoxFuture;
pub use builder::ProducerBuilder;
pub use delay::{
    DELAY_DUE_HEADER, DELAY_EXCHANGE_HEADER, DELAY_ID_HEADER, DelayedPublish, MAX_DELAY, Scheduled,
};
pub use publish::Publish;
pub use sender::Producer;
pub use spec::{ApiParam, MessageApi, ProducerApi, ProducerSpec};

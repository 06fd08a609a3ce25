//! Testing components without RabbitMQ (feature `testing`).
//!
//! [`MemoryBroker`] is a broker in the test process: producers,
//! processors, the macros' typed senders and handlers, RPC (both reply
//! strategies), quit and restart commands and the scheduler run on its
//! connections unchanged. It routes as RabbitMQ does (default, direct,
//! fanout, topic and headers exchanges, exchange-to-exchange bindings),
//! keeps RabbitMQ's queue semantics (server-named, exclusive and
//! auto-delete queues, TTLs, length limits, dead-lettering with `x-death`,
//! quorum queues' delivery count and limit, prefetch, round-robin,
//! redelivery), confirms, returns unroutable mandatory messages, answers
//! direct reply-to, and refuses what RabbitMQ refuses with the same
//! [`Error`](crate::Error) and reply code. Postage checks this by running
//! one conformance suite on both brokers.
//!
//! [`Probe`] is a channel for tests to act on either broker directly:
//! declare, bind, delete, publish with any properties, consume and settle
//! raw deliveries.
//!
//! Enable it for tests only:
//!
//! ```toml
//! [dev-dependencies]
//! postage-amqp = { version = "0.3", features = ["testing"] }
//! ```
//!
//! A processor called through a producer, in process:
//!
//! ```
//! use postage::prelude::*;
//! use postage::testing::MemoryBroker;
//!
//! const MATH: Exchange = Exchange::direct("math-exchange");
//!
//! struct Math;
//!
//! #[processor]
//! impl Math {
//!     #[rpc_handler("command", "add")]
//!     async fn add(&self, Params(numbers): Params<Vec<i64>>) -> i64 {
//!         numbers.iter().sum()
//!     }
//! }
//!
//! struct MathProducer;
//!
//! #[producer(eks = [(MATH, "math-rk")])]
//! impl MathProducer {
//!     fn build_rpc_add(&self, numbers: &[i64]) -> RpcCommand<i64> {
//!         RpcCommand::new("add", numbers)
//!     }
//! }
//!
//! // In your tests, under #[tokio::test].
//! async fn adds() -> postage::Result<()> {
//!     let broker = MemoryBroker::new();
//!     let connection = broker.connect().await?;
//!     let processor = Processor::builder(Math)
//!         .bind(MATH, [("math-queue", "math-rk")])
//!         .connect(&connection)
//!         .await?;
//!     let control = processor.control();
//!     let server = tokio::spawn(processor.run());
//!
//!     let math = MathProducer.connect(&connection).await?;
//!     assert_eq!(math.rpc_add(&[1, 2, 3]).await?, 6);
//!     assert_eq!(broker.queue("math-queue").map(|q| q.messages), Some(0));
//!
//!     control.quit();
//!     let _ = server.await;
//!     Ok(())
//! }
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> postage::Result<()> {
//! #     adds().await
//! # }
//! ```

mod probe;

pub use crate::transport::memory::{BindingInfo, DeadLetter, MemoryBroker, QueueInfo};
pub use probe::{Probe, ProbeConsumer, ProbeDelivery, ProbePublish, QueueDeclared};

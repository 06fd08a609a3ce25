//! The conformance suite's fixture: one test body, run on RabbitMQ and on
//! the in-memory broker.
//!
//! ```ignore
//! conformance! {
//!     /// What the behaviour is.
//!     async fn a_behaviour(broker) {
//!         let connection = broker.connect().await;
//!         ...
//!     }
//! }
//! ```
//!
//! makes a module `a_behaviour` with two tests, `on_rabbitmq` and
//! `in_memory`: `cargo test -p postage-tests in_memory` runs only the
//! in-memory half (no RabbitMQ needed).

use std::time::Duration;

use postage::Connection;
use postage::testing::{MemoryBroker, Probe, ProbeConsumer, ProbeDelivery};

/// The broker a conformance test runs on.
#[derive(Clone, Debug)]
pub enum TestBroker {
    /// The shared RabbitMQ (`POSTAGE_TEST_URL`).
    RabbitMq,
    /// A fresh in-memory broker.
    Memory(MemoryBroker),
}

impl TestBroker {
    /// The shared RabbitMQ.
    pub fn rabbitmq() -> Self {
        TestBroker::RabbitMq
    }

    /// A new in-memory broker.
    pub fn memory() -> Self {
        crate::init_tracing();
        TestBroker::Memory(MemoryBroker::new())
    }

    /// Is it the in-memory broker?
    pub fn is_memory(&self) -> bool {
        matches!(self, TestBroker::Memory(_))
    }

    /// A new connection (failing the test loudly when RabbitMQ is down).
    pub async fn connect(&self) -> Connection {
        match self {
            TestBroker::RabbitMq => crate::connect().await,
            TestBroker::Memory(broker) => match broker.connect().await {
                Ok(connection) => connection,
                Err(e) => panic!("the in-memory broker refused a connection: {e}"),
            },
        }
    }

    /// A probe (with confirms) on a new connection.
    pub async fn probe(&self) -> Probe {
        let connection = self.connect().await;
        probe(&connection).await
    }
}

/// A probe with confirms on `connection`.
pub async fn probe(connection: &Connection) -> Probe {
    match Probe::open(connection).await {
        Ok(probe) => probe,
        Err(e) => panic!("cannot open a probe: {e}"),
    }
}

/// The next delivery within `millis`, or the test fails saying what was
/// awaited.
pub async fn delivered(consumer: &mut ProbeConsumer, millis: u64) -> ProbeDelivery {
    match consumer.next_within(Duration::from_millis(millis)).await {
        Some(Ok(delivery)) => delivery,
        Some(Err(e)) => panic!("the consumer failed: {e}"),
        None => panic!("nothing delivered within {millis} ms"),
    }
}

/// Nothing is delivered within `millis`.
pub async fn silent(consumer: &mut ProbeConsumer, millis: u64) -> bool {
    match consumer.next_within(Duration::from_millis(millis)).await {
        None => true,
        Some(Ok(delivery)) => {
            tracing::warn!(?delivery, "unexpected delivery");
            false
        }
        Some(Err(e)) => panic!("the consumer failed: {e}"),
    }
}

/// Runs a test body on both brokers. See the module docs.
#[macro_export]
macro_rules! conformance {
    ($($(#[$meta:meta])* async fn $name:ident($broker:ident) $body:block)*) => {
        $(
            $(#[$meta])*
            mod $name {
                #[allow(unused_imports)]
                use super::*;

                async fn body($broker: $crate::conformance::TestBroker) $body

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn on_rabbitmq() {
                    body($crate::conformance::TestBroker::rabbitmq()).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn in_memory() {
                    body($crate::conformance::TestBroker::memory()).await;
                }
            }
        )*
    };
}

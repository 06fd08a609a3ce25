//! One conformance suite, two brokers: every behaviour here runs on
//! RabbitMQ (`on_rabbitmq`) and on the in-memory broker (`in_memory`), and
//! both must agree. `cargo test -p postage-tests in_memory` runs the
//! in-memory half alone, with no RabbitMQ.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::print_stderr)]

mod acknowledgements;
mod consumers;
mod delays;
mod failures;
mod flow;
mod jobs;
mod middleware;
mod ordering;
mod processors;
mod publishing;
mod queues;
mod routing;
mod smoke;

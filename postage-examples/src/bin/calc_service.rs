//! `calc_service`: a calculator on `calc-exchange` (queue `calc-queue`, key
//! `calc-rk`) with typed parameters:
//!
//! | RPC command | parameters | reply |
//! |---|---|---|
//! | `add`, `mul` | `{"a": x, "b": y}` | success: the number |
//! | `div` | `{"a": x, "b": y}` | success, or an error result for `b = 0` |
//! | `sqrt` | a number | success, or a `ValueError` exception result for a negative |
//!
//! Parameters of the wrong shape get an error result naming the problem.
//! It broadcasts its status (`online`, then `offline`) on the fanout
//! exchange `calc-status`. Prints `ready pid=PID`, then `OP PARAMS` per call.
#![allow(clippy::print_stdout)]

use postage::prelude::*;
use postage_examples::init_logging;
use serde::Deserialize;

const CALC: Exchange = Exchange::direct("calc-exchange");
const STATUS: Exchange = Exchange::fanout("calc-status");

#[derive(Debug, Deserialize)]
struct Operands {
    a: f64,
    b: f64,
}

struct Calculator;

#[processor]
impl Calculator {
    #[rpc_handler("command", "add")]
    async fn add(&self, Params(ops): Params<Operands>) -> f64 {
        println!("add {ops:?}");
        ops.a + ops.b
    }

    #[rpc_handler("command", "mul")]
    async fn mul(&self, Params(ops): Params<Operands>) -> f64 {
        println!("mul {ops:?}");
        ops.a * ops.b
    }

    #[rpc_handler("command", "div")]
    async fn div(&self, Params(ops): Params<Operands>) -> Result<f64, RpcError> {
        println!("div {ops:?}");
        if ops.b == 0.0 {
            return Err(RpcError::error("division by zero"));
        }
        Ok(ops.a / ops.b)
    }

    #[rpc_handler("command", "sqrt")]
    async fn sqrt(&self, Params(x): Params<f64>) -> Result<f64, RpcError> {
        println!("sqrt {x}");
        if x < 0.0 {
            return Err(RpcError::exception("ValueError", "math domain error"));
        }
        Ok(x.sqrt())
    }
}

struct StatusProducer;

#[producer(eks = [(STATUS, "")])]
impl StatusProducer {
    fn build_message_status(&self, status: &str) -> MessageStatus {
        MessageStatus::new(status)
    }
}

#[tokio::main]
async fn main() -> Result<(), postage::Report> {
    init_logging();
    let fingerprint = Fingerprint::new("calc_service", "service");
    let connection = Connection::from_env().await?;
    let processor = Processor::builder(Calculator)
        .bind(CALC, [("calc-queue", "calc-rk")])
        .fingerprint(fingerprint.clone())
        .concurrency(8)
        .connect(&connection)
        .await?;
    let status = StatusProducer
        .connect_with(Producer::builder().fingerprint(fingerprint), &connection)
        .await?;
    status.message_status("online").await?;
    println!("ready pid={}", std::process::id());
    let mut scheduler = Scheduler::new();
    scheduler.add(processor);
    let result = scheduler.run().await;
    // The scheduler closed the connection; say goodbye on a fresh one.
    if let Ok(connection) = Connection::from_env().await {
        if let Ok(status) = StatusProducer.connect(&connection).await {
            let _ = status.message_status("offline").await;
        }
        let _ = connection.close().await;
    }
    Ok(result?)
}

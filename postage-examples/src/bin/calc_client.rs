//! `calc_client OP ARGS...`: calls the calculator and prints one line:
//! `ok: VALUE`, `error: TEXT` or `exception: NAME: TEXT`. Exit status 0
//! for a success, 1 otherwise.
//!
//! ```text
//! calc_client add 2 3      # ok: 5.0
//! calc_client div 1 0      # error: division by zero
//! calc_client sqrt -1      # exception: ValueError: math domain error
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::time::Duration;

use postage::prelude::*;
use postage_examples::components::CalcProducer;
use postage_examples::{init_logging, text};

/// A number argument; a missing or bad one is a usage error (status 2).
fn number(arg: Option<&String>) -> f64 {
    let Some(arg) = arg else {
        usage("missing number");
    };
    arg.parse()
        .unwrap_or_else(|_| usage(&format!("{arg:?} is not a number")))
}

fn usage(problem: &str) -> ! {
    eprintln!("calc_client: {problem}\nusage: calc_client add|mul|div A B | sqrt X");
    std::process::exit(2);
}

#[tokio::main]
async fn main() {
    init_logging();
    if let Err(error) = run().await {
        eprintln!("calc_client: {error}");
        std::process::exit(2);
    }
}

async fn run() -> Result<(), postage::Report> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(op) = args.first() else {
        usage("missing operation");
    };
    let connection = Connection::from_env().await?;
    let calc = CalcProducer.connect(&connection).await?;
    let call = if op == "sqrt" {
        calc.rpc("sqrt", number(args.get(1)))
    } else {
        calc.rpc_binary(op, number(args.get(1)), number(args.get(2)))
    };
    let reply = call.timeout(Duration::from_secs(5)).retries(1).await?;
    connection.close().await?;
    match reply.outcome()? {
        Outcome::Success { value, .. } => println!("ok: {}", text(&value)),
        Outcome::Error { message } => {
            println!("error: {message}");
            std::process::exit(1);
        }
        Outcome::Exception { name, message } => {
            println!("exception: {name}: {message}");
            std::process::exit(1);
        }
    }
    Ok(())
}

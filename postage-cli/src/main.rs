//! `postage`: the operator's command line for Postage components, Rust
//! and Python alike, on one RabbitMQ.
//!
//! | command | what |
//! |---|---|
//! | `send` | send a command message (`--count N` for many) |
//! | `call` | call an RPC command and print its result |
//! | `tail` | print every message an exchange routes |
//! | `ping`, `ps` | find running components; list them with their counters |
//! | `quit`, `restart` | stop or restart components by name, `pid@host` or type |
//! | `docs` | an AsyncAPI 3.0 document of running components |
//! | `parked` | list or replay the messages a failure policy parked |
//!
//! Configured like every component: `POSTAGE_URL` (or `POSTAGE_HOST`,
//! `POSTAGE_VHOST`, ...), or `--url`. Exit status: 0 done, 1 an error or
//! exception result, a refusal, or nobody answered, 2 a timeout, 3 a
//! connection or usage error.

// Printing is what a command line does.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod args;
mod control;
mod docs;
mod failure;
mod output;
mod parked;
mod send;
mod tail;

use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Command};
use failure::Failure;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return failure::usage(&error),
    };
    init_logging(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return Failure::connection(format!("cannot start: {error}")).exit(),
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.exit(),
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let url = cli.url.as_deref();
    match cli.command {
        Command::Send(args) => send::send(url, args).await,
        Command::Call(args) => send::call(url, args).await,
        Command::Tail(args) => tail::tail(url, args).await,
        Command::Ping(args) => control::ping(url, args).await,
        Command::Ps(args) => control::ps(url, args).await,
        Command::Quit(args) => control::stop(url, postage::remote::QUIT, args).await,
        Command::Restart(args) => control::stop(url, postage::remote::RESTART, args).await,
        Command::Pause(args) => control::pause(url, postage::remote::PAUSE, args).await,
        Command::Resume(args) => control::pause(url, postage::remote::RESUME, args).await,
        Command::Docs(args) => docs::docs(url, args).await,
        Command::Parked(args) => parked::parked(url, args).await,
    }
}

/// Warnings and errors on standard error (`RUST_LOG` or `-v` for more);
/// the AMQP client library's own lines only when `RUST_LOG` asks.
fn init_logging(verbose: bool) {
    let default = if verbose {
        "info,lapin=off"
    } else {
        "error,lapin=off"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

//! The command line, as clap reads it.

use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Send, call, watch, find, stop and document Postage components on a
/// RabbitMQ broker.
///
/// The broker is the one components use: POSTAGE_URL
/// (amqp://user:password@host:port/vhost), or POSTAGE_HOST, POSTAGE_PORT,
/// POSTAGE_VHOST, POSTAGE_USER, POSTAGE_PASSWORD; --url overrides
/// POSTAGE_URL.
///
/// Exit status: 0 done; 1 an error or exception result, a refused
/// command, or no component answered; 2 a timeout; 3 a connection or
/// usage error.
#[derive(Debug, Parser)]
#[command(name = "postage", version, max_term_width = 100)]
pub(crate) struct Cli {
    /// The broker's URL (overrides POSTAGE_URL).
    #[arg(long, global = true, value_name = "URL")]
    pub(crate) url: Option<String>,

    /// Log what Postage does (on standard error).
    #[arg(long, short, global = true)]
    pub(crate) verbose: bool,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Send a command message to an exchange with a routing key.
    Send(SendArgs),
    /// Call an RPC command and print the result it gets.
    Call(CallArgs),
    /// Print the messages an exchange routes, as they arrive.
    Tail(TailArgs),
    /// Ask which components are running (all, or those named).
    Ping(QueryArgs),
    /// List the running components with their handlers and counters.
    Ps(QueryArgs),
    /// Stop components, by name, pid@host or type.
    Quit(StopArgs),
    /// Restart components in place, by name, pid@host or type.
    Restart(StopArgs),
    /// Pause processors' consumption: the work in flight finishes,
    /// nothing new arrives (`ps` shows them paused).
    Pause(PauseArgs),
    /// Resume paused processors.
    Resume(PauseArgs),
    /// Write an AsyncAPI 3.0 document of the running components.
    Docs(DocsArgs),
    /// Show or replay the messages a failure policy parked.
    Parked(ParkedArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ParkedArgs {
    #[command(subcommand)]
    pub(crate) command: ParkedCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ParkedCommand {
    /// Show the messages parked from QUEUE (in QUEUE.parked), leaving
    /// them there.
    List {
        /// The queue they were parked from.
        queue: String,
        /// One JSON object per message.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        wait: Wait,
    },
    /// Move every message parked from QUEUE back into it, for its
    /// handlers to try again with every attempt of their policy.
    Replay {
        /// The queue they were parked from.
        queue: String,
    },
}

/// Where a message goes and what it says.
#[derive(Debug, Args)]
pub(crate) struct Target {
    /// The exchange (it must exist, unless --exchange-type declares it).
    pub(crate) exchange: String,
    /// The routing key.
    pub(crate) key: String,
    /// The command's name, e.g. echo.
    pub(crate) command: String,
    /// The command's parameters as JSON, e.g. '{"a": 2}' or '"text"'
    /// (default {}).
    #[arg(value_name = "PARAMS_JSON")]
    pub(crate) params: Option<String>,
    /// Declare the exchange with this type (durable, as Python Postage
    /// declares it) instead of checking that it exists.
    #[arg(long, value_enum, value_name = "TYPE")]
    pub(crate) exchange_type: Option<ExchangeType>,
}

/// The types of exchanges.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum ExchangeType {
    Direct,
    Fanout,
    Topic,
    Headers,
}

#[derive(Debug, Args)]
pub(crate) struct SendArgs {
    #[command(flatten)]
    pub(crate) target: Target,
    /// Send it N times, with a progress bar, and print the rate.
    #[arg(long, short = 'n', value_name = "N", default_value_t = 1)]
    pub(crate) count: u64,
    /// Persistent delivery (kept across a broker restart in a durable
    /// queue).
    #[arg(long)]
    pub(crate) persistent: bool,
    /// Wait for the broker to confirm each message, and fail when no
    /// queue takes it.
    #[arg(long)]
    pub(crate) confirm: bool,
}

#[derive(Debug, Args)]
pub(crate) struct CallArgs {
    #[command(flatten)]
    pub(crate) target: Target,
    /// How long to wait for the result, in seconds.
    #[arg(long, short, value_name = "SECONDS", default_value = "5", value_parser = seconds)]
    pub(crate) timeout: Duration,
    /// Print the result on one line.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct TailArgs {
    /// The exchange to watch (it must exist).
    pub(crate) exchange: String,
    /// Routing keys to bind (default #: everything a topic or fanout
    /// exchange routes).
    pub(crate) keys: Vec<String>,
    /// Stop after N messages.
    #[arg(long, short = 'n', value_name = "N")]
    pub(crate) count: Option<u64>,
    /// One JSON object per message.
    #[arg(long)]
    pub(crate) json: bool,
}

/// How long to wait for answers.
#[derive(Debug, Args)]
pub(crate) struct Wait {
    /// How long to wait for answers, in seconds.
    #[arg(long, short, value_name = "SECONDS", default_value = "1", value_parser = seconds)]
    pub(crate) timeout: Duration,
}

/// `ping` and `ps`: whom to ask, how long to wait, how to print.
#[derive(Debug, Args)]
pub(crate) struct QueryArgs {
    /// Components by name, pid@host or type (default: all).
    #[arg(value_name = "DESTINATION")]
    pub(crate) destination: Vec<String>,
    #[command(flatten)]
    pub(crate) wait: Wait,
    /// JSON: one object per answer (ping), or the `info` answers as an
    /// array (ps; what `docs --from` reads).
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct StopArgs {
    /// Components by name, pid@host or type, through the control
    /// exchange.
    #[arg(
        value_name = "DESTINATION",
        required_unless_present = "exchange",
        conflicts_with = "exchange"
    )]
    pub(crate) destination: Vec<String>,
    /// Send the command the classic way instead (what Python Postage
    /// components understand): to this exchange, with --key.
    #[arg(long, requires = "key", value_name = "EXCHANGE")]
    pub(crate) exchange: Option<String>,
    /// The routing key of the classic way.
    #[arg(long, requires = "exchange", value_name = "KEY")]
    pub(crate) key: Option<String>,
    #[command(flatten)]
    pub(crate) wait: Wait,
}

#[derive(Debug, Args)]
pub(crate) struct PauseArgs {
    /// Components by name, pid@host or type, through the control
    /// exchange.
    #[arg(value_name = "DESTINATION", required = true)]
    pub(crate) destination: Vec<String>,
    #[command(flatten)]
    pub(crate) wait: Wait,
}

#[derive(Debug, Args)]
pub(crate) struct DocsArgs {
    /// Document the components running now (their `info` answers).
    #[arg(long, required_unless_present = "from")]
    pub(crate) live: bool,
    /// Document the components of `postage ps --json` saved in FILE.
    #[arg(long, value_name = "FILE", conflicts_with = "live")]
    pub(crate) from: Option<std::path::PathBuf>,
    /// Components by name, pid@host or type (default: all; with --live).
    #[arg(value_name = "DESTINATION")]
    pub(crate) destination: Vec<String>,
    /// JSON instead of YAML.
    #[arg(long)]
    pub(crate) json: bool,
    /// The document's title.
    #[arg(long, default_value = "Postage components")]
    pub(crate) title: String,
    #[command(flatten)]
    pub(crate) wait: Wait,
}

/// A number of seconds (fractions allowed).
fn seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("{text:?} is not a duration"))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}

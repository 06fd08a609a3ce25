//! What components answer on the control exchange: [`Pong`] to `ping`,
//! [`Info`] to `info`; and the parameters of every control command,
//! [`ControlRequest`].

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Destination;
use crate::fingerprint::Fingerprint;

/// The parameters of a control command: `{"destination": [...]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlRequest {
    /// The components it is for (every one when empty or missing).
    #[serde(default)]
    pub destination: Destination,
}

/// The answer to `ping`: who, for how long, on which Postage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pong {
    /// The component's fingerprint.
    pub fingerprint: Fingerprint,
    /// Seconds since the processor was built.
    pub uptime_secs: f64,
    /// The Postage version it runs (`0.3.0`).
    #[serde(default)]
    pub postage: String,
}

/// The answer to `info`: a processor's handlers, bindings, tallies and
/// consumer health. Never credentials, URLs or the environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Info {
    /// The component's fingerprint.
    pub fingerprint: Fingerprint,
    /// Seconds since the processor was built.
    pub uptime_secs: f64,
    /// The Postage version it runs.
    #[serde(default)]
    pub postage: String,
    /// Its handler table, in order.
    #[serde(default)]
    pub handlers: Vec<HandlerInfo>,
    /// Its bindings: one entry per (exchange, queue, key).
    #[serde(default)]
    pub bindings: Vec<BindingInfo>,
    /// What it did with its deliveries so far.
    #[serde(default)]
    pub counters: Counters,
    /// Its consumer's health: `consuming`, `recovering`, `stopped`, or
    /// `failed: REASON`.
    #[serde(default)]
    pub health: String,
    /// How many handlers may run at once.
    #[serde(default)]
    pub concurrency: usize,
    /// The middleware layers around its handlers, outermost first, by
    /// type name (`TimeoutLayer`, say).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<String>,
    /// Its periodic jobs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jobs: Vec<JobInfo>,
    /// The queues it consumes now: its bindings' and, for a worker of a
    /// partition group, the partitions it holds (`<group>.p03`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queues: Vec<String>,
}

/// One periodic job of a processor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobInfo {
    /// Its name.
    pub name: String,
    /// When it runs: `every 60s`, `cron 0 0 2 * * *`.
    pub schedule: String,
    /// Its next run, in seconds since the Unix epoch (as this process
    /// knows it: the runner's is exact).
    #[serde(default)]
    pub next_run: Option<f64>,
    /// Up to when it is covered (its last run), in seconds since the Unix
    /// epoch, when this process is the runner.
    #[serde(default)]
    pub last_run: Option<f64>,
    /// This process runs the component's jobs; the others stand by.
    #[serde(default)]
    pub runner: bool,
}

/// One entry of a handler table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandlerInfo {
    /// The message type, e.g. `command`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The message name, e.g. `echo`.
    pub name: String,
    /// `message` or `rpc`.
    pub category: String,
    /// The handler's (method's) name.
    #[serde(default)]
    pub handler: String,
    /// The type its parameters are decoded into, when it says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<ParamsInfo>,
    /// The middleware layers around this handler alone, outermost first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<String>,
}

/// The type of a handler's parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParamsInfo {
    /// The Rust type, as written.
    #[serde(rename = "type")]
    pub type_name: String,
    /// Its JSON Schema, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
}

/// One binding: a queue bound to an exchange with a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindingInfo {
    /// The exchange.
    pub exchange: String,
    /// Its type: `direct`, `fanout`, `topic` or `headers`.
    pub exchange_type: String,
    /// Is the exchange durable?
    #[serde(default)]
    pub exchange_durable: bool,
    /// The queue as declared (empty for a queue the broker names).
    pub queue: String,
    /// The routing key.
    pub key: String,
    /// Is the queue durable?
    #[serde(default)]
    pub durable: bool,
    /// Is it exclusive to its connection?
    #[serde(default)]
    pub exclusive: bool,
    /// Is it deleted with its last consumer?
    #[serde(default)]
    pub auto_delete: bool,
}

/// What a processor did with its deliveries since it was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Deliveries received.
    pub received: u64,
    /// Every handler succeeded (or a control command was obeyed).
    pub handled: u64,
    /// A handler failed or panicked.
    pub failed: u64,
    /// No handler ran (undecodable, no handler, refused, ...).
    pub rejected: u64,
    /// Of the rejected, those for which the processor has no handler (a
    /// command sent to the wrong component, a status where a command was
    /// expected): acknowledged, or dead-lettered when the processor says
    /// so.
    #[serde(default)]
    pub unhandled: u64,
}

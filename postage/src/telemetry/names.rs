//! The names of the metrics Postage records, and what their labels may
//! hold. The README's "Metrics" table documents each one.

/// Counter: messages sent to the broker (`basic.publish`), whatever came
/// of them. Labels: `exchange`, `type`, `name`.
pub const MESSAGES_PUBLISHED: &str = "postage_messages_published_total";
/// Counter: messages the broker confirmed (channels with publisher
/// confirms only). Labels: `exchange`, `type`, `name`.
pub const MESSAGES_CONFIRMED: &str = "postage_messages_confirmed_total";
/// Counter: mandatory messages the broker returned as unroutable.
/// Labels: `exchange`, `type`, `name`.
pub const MESSAGES_RETURNED: &str = "postage_messages_returned_total";
/// Counter: sends that failed otherwise (refused, unconfirmed, the
/// channel lost). Labels: `exchange`, `type`, `name`.
pub const PUBLISH_FAILURES: &str = "postage_publish_failures_total";
/// Counter: deliveries a processor received. Label: `processor`.
pub const DELIVERIES_RECEIVED: &str = "postage_deliveries_received_total";
/// Counter: deliveries whose handlers all succeeded (control commands
/// obeyed included). Label: `processor`.
pub const DELIVERIES_HANDLED: &str = "postage_deliveries_handled_total";
/// Counter: deliveries of which a handler failed or panicked. Label:
/// `processor`.
pub const DELIVERIES_FAILED: &str = "postage_deliveries_failed_total";
/// Counter: failed deliveries sent back for another attempt by the
/// failure policy (`OnError::Retry`, `OnError::Requeue`). Label:
/// `processor`.
pub const DELIVERIES_RETRIED: &str = "postage_deliveries_retried_total";
/// Counter: failed deliveries parked by the failure policy. Label:
/// `processor`.
pub const DELIVERIES_PARKED: &str = "postage_deliveries_parked_total";
/// Counter: deliveries no handler ran for. Labels: `processor`, `reason`
/// (one of [`REJECTION_REASONS`]).
pub const DELIVERIES_REJECTED: &str = "postage_deliveries_rejected_total";
/// Histogram, seconds: how long a handler ran. Labels: `processor`,
/// `handler`, `outcome` (`ok`, `error`).
pub const HANDLER_DURATION: &str = "postage_handler_duration_seconds";
/// Gauge: deliveries a processor is working on. Label: `processor`.
pub const MESSAGES_IN_FLIGHT: &str = "postage_messages_in_flight";
/// Histogram, seconds: a whole RPC call, retries included. Labels: `name`
/// (the command), `outcome` (one of [`RPC_OUTCOMES`]).
pub const RPC_CALL_DURATION: &str = "postage_rpc_call_duration_seconds";
/// Counter: RPC attempts that got no reply in time. Label: `name`.
pub const RPC_TIMEOUTS: &str = "postage_rpc_timeouts_total";
/// Counter: lost connections that came back.
pub const CONNECTION_RECOVERIES: &str = "postage_connection_recoveries_total";
/// Counter: recoveries found stalled (a broker answers, the connection
/// does not come back).
pub const CONNECTION_STALLS: &str = "postage_connection_stalls_total";
/// Gauge: connections whose publishers the broker blocks now (a memory
/// or disk alarm); 0 when none.
pub const CONNECTIONS_BLOCKED: &str = "postage_connections_blocked";
/// Counter: stalls a consumer's watchdog found (ready messages, none
/// delivered), each followed by a new channel. Label: `consumer`.
pub const CONSUMER_STALLS: &str = "postage_consumer_stalls_total";
/// Gauge: 1 for a consumer's current health, 0 for the others. Labels:
/// `consumer` (a processor's fingerprint name), `state` (`consuming`,
/// `recovering`, `blocked`, `stalled`, `standing_by`, `paused`, `tripped`, `failed`,
/// `stopped`).
pub const CONSUMER_HEALTH: &str = "postage_consumer_health";

/// The values of `reason` on [`DELIVERIES_REJECTED`].
pub const REJECTION_REASONS: &[&str] = &[
    "undecodable",
    "too_large",
    "content_type",
    "delivery_limit",
    "no_reply_to",
    "unexpected_result",
    "no_handler",
    "sender_not_allowed",
    "expired",
];

/// The values of `outcome` on [`RPC_CALL_DURATION`].
pub const RPC_OUTCOMES: &[&str] = &["success", "error", "exception", "timeout", "failed"];

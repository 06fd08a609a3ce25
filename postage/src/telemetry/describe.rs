//! [`describe_metrics`]: descriptions and units for a recorder.

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

use super::names::{
    CONNECTION_RECOVERIES, CONNECTION_STALLS, CONNECTIONS_BLOCKED, CONSUMER_HEALTH,
    CONSUMER_STALLS, DELIVERIES_FAILED, DELIVERIES_HANDLED, DELIVERIES_PARKED, DELIVERIES_RECEIVED,
    DELIVERIES_REJECTED, DELIVERIES_RETRIED, HANDLER_DURATION, MESSAGES_CONFIRMED,
    MESSAGES_IN_FLIGHT, MESSAGES_PUBLISHED, MESSAGES_RETURNED, PUBLISH_FAILURES, RPC_CALL_DURATION,
    RPC_TIMEOUTS,
};

/// Gives the installed `metrics` recorder the description and unit of
/// every metric Postage records (Prometheus shows them as `# HELP` and
/// `# TYPE` lines). Call it once, after installing the recorder.
pub fn describe_metrics() {
    let counters = [
        (MESSAGES_PUBLISHED, "Messages sent to the broker"),
        (MESSAGES_CONFIRMED, "Messages the broker confirmed"),
        (
            MESSAGES_RETURNED,
            "Mandatory messages returned as unroutable",
        ),
        (
            PUBLISH_FAILURES,
            "Sends refused, unconfirmed or interrupted",
        ),
        (DELIVERIES_RECEIVED, "Deliveries a processor received"),
        (
            DELIVERIES_HANDLED,
            "Deliveries whose handlers all succeeded",
        ),
        (DELIVERIES_FAILED, "Deliveries of which a handler failed"),
        (
            DELIVERIES_RETRIED,
            "Failed deliveries sent back for another attempt",
        ),
        (DELIVERIES_PARKED, "Failed deliveries parked"),
        (
            DELIVERIES_REJECTED,
            "Deliveries no handler ran for, by reason",
        ),
        (RPC_TIMEOUTS, "RPC attempts that got no reply in time"),
        (CONNECTION_RECOVERIES, "Lost connections that came back"),
        (CONNECTION_STALLS, "Connection recoveries found stalled"),
        (
            CONSUMER_STALLS,
            "Consumers found stalled (ready messages, none delivered) and given a new channel",
        ),
    ];
    for (name, help) in counters {
        describe_counter!(name, Unit::Count, help);
    }
    describe_histogram!(HANDLER_DURATION, Unit::Seconds, "How long a handler ran");
    describe_histogram!(
        RPC_CALL_DURATION,
        Unit::Seconds,
        "How long an RPC call took, retries included"
    );
    describe_gauge!(
        MESSAGES_IN_FLIGHT,
        Unit::Count,
        "Deliveries being processed"
    );
    describe_gauge!(
        CONNECTIONS_BLOCKED,
        Unit::Count,
        "Connections whose publishers the broker blocks (memory or disk alarm)"
    );
    describe_gauge!(
        CONSUMER_HEALTH,
        "1 for a consumer's current health state, 0 for the others"
    );
}

//! The metrics of the outbox and the inbox, through the `metrics` facade
//! as Postage's own (`postage::telemetry`): recorded when a recorder is
//! installed, free otherwise.

use metrics::{Unit, counter, describe_counter};

/// Counter: messages a relay published and recorded as sent.
pub const OUTBOX_PUBLISHED: &str = "postage_outbox_published_total";
/// Counter: a relay's publishes that failed (the row stays for another
/// try).
pub const OUTBOX_PUBLISH_FAILURES: &str = "postage_outbox_publish_failures_total";
/// Counter: a relay's passes that the database failed.
pub const OUTBOX_DATABASE_ERRORS: &str = "postage_outbox_database_errors_total";
/// Counter: messages an inbox acknowledged without running their
/// handlers, their id recorded already. Label: `consumer`.
pub const INBOX_DUPLICATES: &str = "postage_inbox_duplicates_total";

/// Gives the installed recorder the description and unit of each metric
/// of this crate (as `postage::telemetry::describe_metrics` does for
/// Postage's).
pub fn describe_metrics() {
    for (name, text) in [
        (
            OUTBOX_PUBLISHED,
            "Outbox messages published and recorded sent",
        ),
        (OUTBOX_PUBLISH_FAILURES, "Outbox publishes that failed"),
        (OUTBOX_DATABASE_ERRORS, "Relay passes the database failed"),
        (INBOX_DUPLICATES, "Messages acknowledged as handled before"),
    ] {
        describe_counter!(name, Unit::Count, text);
    }
}

pub(crate) fn published(count: usize) {
    counter!(OUTBOX_PUBLISHED).increment(count as u64);
}

pub(crate) fn publish_failed() {
    counter!(OUTBOX_PUBLISH_FAILURES).increment(1);
}

pub(crate) fn database_failed() {
    counter!(OUTBOX_DATABASE_ERRORS).increment(1);
}

pub(crate) fn duplicate(consumer: &str) {
    counter!(INBOX_DUPLICATES, "consumer" => consumer.to_owned()).increment(1);
}

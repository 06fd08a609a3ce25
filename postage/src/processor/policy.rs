//! Failure policies: what a processor does with a message whose handler
//! failed ([`OnError`]), and the decision for one failure, given how many
//! attempts the message's headers say were made before.

use std::time::Duration;

use serde_json::Value;

use crate::transport::Headers;

/// What a processor does with a message when one of its handlers fails
/// (or panics). Set for a whole processor with
/// [`ProcessorBuilder::on_error`](crate::processor::ProcessorBuilder::on_error), or for
/// one handler with `on_error = ...` in its attribute:
///
/// ```
/// use std::time::Duration;
/// use postage::prelude::*;
///
/// struct Thumbnails;
///
/// #[processor]
/// impl Thumbnails {
///     // Tried 4 times in all: at once, then 1 s, 5 s and 30 s after each
///     // failure; then parked in `<queue>.parked`.
///     #[handler("command", "resize", on_error = OnError::retry(&[
///         Duration::from_secs(1),
///         Duration::from_secs(5),
///         Duration::from_secs(30),
///     ]))]
///     async fn resize(&self, Params(path): Params<String>) -> Result<(), std::io::Error> {
///         std::fs::metadata(path).map(drop)
///     }
///
///     // Parked at once: an operator looks at it.
///     #[handler("command", "bill", on_error = OnError::Park)]
///     async fn bill(&self, _content: Content) {}
/// }
/// ```
///
/// Retries and parking use RabbitMQ alone (no plugin): the processor
/// copies the message to a queue of its own and then acknowledges it.
/// A retry after a delay goes through the durable queue
/// `<queue>.retry.<milliseconds>` (`x-message-ttl` the delay, dead-lettered
/// back into `<queue>` through the default exchange), a retry at once
/// straight back into `<queue>`; a parked message goes to the durable
/// queue `<queue>.parked`. The attempts are counted from the `x-death`
/// header the broker writes each time a retry queue sends the message
/// back, and from Postage's `postage-attempts` header, so the bound holds
/// on classic and quorum queues alike. A handler that marks its error
/// [permanent](crate::processor::HandlerError::permanent) has its message
/// parked at once, under every policy that parks.
///
/// Only `message` category handlers follow a policy: a failed RPC handler
/// answers its caller with an exception result, as before. When several
/// handlers serve one message, the first one that fails decides, and a
/// retry runs every handler again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OnError {
    /// Acknowledge the message and log the failure: the message is gone
    /// (the default, as in Python Postage).
    #[default]
    Acknowledge,
    /// Reject it without requeueing: the broker dead-letters it when its
    /// queue has a dead-letter exchange, and drops it otherwise.
    DeadLetter,
    /// Put it back into its queue at once (at the tail), at most `times`
    /// times, then park it.
    Requeue {
        /// How many times it is put back.
        times: u32,
    },
    /// Put it back into its queue after each of `delays` in turn, one
    /// retry per delay, then park it. A zero delay puts it back at once.
    Retry {
        /// The delay before each retry.
        delays: &'static [Duration],
    },
    /// Park it at once in `<queue>.parked`.
    Park,
}

impl OnError {
    /// [`OnError::Retry`] after each of `delays`, then park. A `const`
    /// (usable in handler attributes); for delays known only at run time,
    /// see [`retry_after`](OnError::retry_after).
    pub const fn retry(delays: &'static [Duration]) -> Self {
        OnError::Retry { delays }
    }

    /// [`OnError::Retry`] after each of `delays`, which may come from run
    /// time configuration; then park. The delays are kept for the rest of
    /// the program (a processor's policy lives as long): make the policy
    /// once, not per message.
    ///
    /// ```
    /// use std::time::Duration;
    /// use postage::OnError;
    ///
    /// let seconds: Vec<u64> = "1,5,30".split(',').map(|s| s.parse().unwrap()).collect();
    /// let policy = OnError::retry_after(seconds.into_iter().map(Duration::from_secs));
    /// const SAME: OnError = OnError::retry(&[
    ///     Duration::from_secs(1),
    ///     Duration::from_secs(5),
    ///     Duration::from_secs(30),
    /// ]);
    /// assert_eq!(policy, SAME);
    /// ```
    pub fn retry_after(delays: impl IntoIterator<Item = Duration>) -> Self {
        let delays: Vec<Duration> = delays.into_iter().collect();
        OnError::Retry {
            delays: Vec::leak(delays),
        }
    }

    /// [`OnError::Requeue`] at most `times` times, then park.
    pub const fn requeue(times: u32) -> Self {
        OnError::Requeue { times }
    }

    /// Does the policy copy messages to queues of its own (and so need a
    /// named queue, and a channel with confirms)?
    pub(super) fn republishes(self) -> bool {
        matches!(
            self,
            OnError::Requeue { .. } | OnError::Retry { .. } | OnError::Park
        )
    }

    /// What to do with a message that failed on attempt `attempt` (1 for
    /// its first delivery), `permanent` if its handler said the error
    /// would not go away.
    pub(super) fn decide(self, attempt: u32, permanent: bool) -> Decision {
        let retry_after = match self {
            OnError::Acknowledge => return Decision::Acknowledge,
            OnError::DeadLetter => return Decision::DeadLetter,
            OnError::Park => return Decision::Park(ParkReason::Policy),
            OnError::Requeue { times } => (attempt <= times).then_some(Duration::ZERO),
            OnError::Retry { delays } => usize::try_from(attempt - 1)
                .ok()
                .and_then(|i| delays.get(i))
                .copied(),
        };
        match retry_after {
            _ if permanent => Decision::Park(ParkReason::Permanent),
            Some(delay) => Decision::Retry(delay),
            None => Decision::Park(ParkReason::Exhausted),
        }
    }
}

/// What becomes of one failed delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Decision {
    /// Acknowledged: gone.
    Acknowledge,
    /// Rejected without requeue.
    DeadLetter,
    /// Copied back to its queue after this delay.
    Retry(Duration),
    /// Copied to the parking queue.
    Park(ParkReason),
}

/// Why a message was parked: the `postage-parked-reason` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ParkReason {
    /// The policy parks at once.
    Policy,
    /// The handler said its error is permanent.
    Permanent,
    /// Every retry was made.
    Exhausted,
}

impl ParkReason {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            ParkReason::Policy => "policy",
            ParkReason::Permanent => "permanent",
            ParkReason::Exhausted => "retries exhausted",
        }
    }
}

/// The headers Postage writes on the copies it makes.
pub mod failure_headers {
    /// How many times the handlers ran on the message and failed.
    pub const ATTEMPTS: &str = "postage-attempts";
    /// When its handlers first failed (RFC 3339, UTC).
    pub const FIRST_FAILURE: &str = "postage-first-failure";
    /// When its handlers last failed (RFC 3339, UTC).
    pub const LAST_FAILURE: &str = "postage-last-failure";
    /// The last failure: `Name: text`, as an RPC caller would see it.
    pub const ERROR: &str = "postage-error";
    /// The handler that failed (its method's name).
    pub const HANDLER: &str = "postage-handler";
    /// On a parked message: why it was parked (`policy`, `permanent`,
    /// `retries exhausted`).
    pub const PARKED_REASON: &str = "postage-parked-reason";
    /// On a parked message: the queue it was parked from.
    pub const PARKED_FROM: &str = "postage-parked-from";
}

/// The name of the queue where a retry after `delay` waits.
pub(super) fn retry_queue(queue: &str, delay: Duration) -> String {
    format!("{queue}.retry.{}", delay.as_millis())
}

/// The name of the parking queue of `queue`.
pub fn parking_queue(queue: &str) -> String {
    format!("{queue}.parked")
}

/// How many times the handlers of a message from `queue` already failed:
/// the times the broker sent it back from one of the queue's retry queues
/// (`x-death`), or what Postage wrote on its last copy
/// (`postage-attempts`), whichever is more.
pub(super) fn failed_before(queue: &str, headers: &Headers) -> u32 {
    let prefix = format!("{queue}.retry.");
    let from_deaths: u64 = headers
        .get("x-death")
        .and_then(Value::as_array)
        .map(|deaths| {
            deaths
                .iter()
                .filter(|death| {
                    death.get("reason").and_then(Value::as_str) == Some("expired")
                        && death
                            .get("queue")
                            .and_then(Value::as_str)
                            .is_some_and(|q| q.starts_with(&prefix))
                })
                .filter_map(|death| death.get("count").and_then(Value::as_u64))
                .sum()
        })
        .unwrap_or(0);
    let written = headers
        .get(failure_headers::ATTEMPTS)
        .and_then(Value::as_u64)
        .unwrap_or(0);
    u32::try_from(from_deaths.max(written)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SECS: &[Duration] = &[Duration::from_secs(1), Duration::from_secs(5)];

    #[test]
    fn each_policy_decides_by_attempt_and_permanence() {
        use Decision::*;
        assert_eq!(OnError::default(), OnError::Acknowledge);
        assert_eq!(OnError::Acknowledge.decide(1, true), Acknowledge);
        assert_eq!(OnError::DeadLetter.decide(9, false), DeadLetter);
        assert_eq!(OnError::Park.decide(1, false), Park(ParkReason::Policy));
        let retry = OnError::retry(SECS);
        assert_eq!(retry.decide(1, false), Retry(Duration::from_secs(1)));
        assert_eq!(retry.decide(2, false), Retry(Duration::from_secs(5)));
        assert_eq!(retry.decide(3, false), Park(ParkReason::Exhausted));
        assert_eq!(retry.decide(1, true), Park(ParkReason::Permanent));
        let requeue = OnError::requeue(2);
        assert_eq!(requeue.decide(1, false), Retry(Duration::ZERO));
        assert_eq!(requeue.decide(2, false), Retry(Duration::ZERO));
        assert_eq!(requeue.decide(3, false), Park(ParkReason::Exhausted));
        assert_eq!(
            OnError::requeue(0).decide(1, false),
            Park(ParkReason::Exhausted)
        );
        assert!(!OnError::Acknowledge.republishes() && !OnError::DeadLetter.republishes());
        assert!(retry.republishes() && requeue.republishes() && OnError::Park.republishes());
    }

    #[test]
    fn attempts_are_read_from_the_deaths_in_the_retry_queues_and_the_header() {
        let headers = |value: Value| -> Headers { serde_json::from_value(value).unwrap() };
        assert_eq!(failed_before("jobs", &Headers::new()), 0);
        let deaths = headers(json!({"x-death": [
            {"queue": "jobs.retry.5000", "reason": "expired", "count": 1},
            {"queue": "jobs.retry.1000", "reason": "expired", "count": 2},
            // Not one of this queue's retry queues, or not an expiry.
            {"queue": "other.retry.1000", "reason": "expired", "count": 7},
            {"queue": "jobs", "reason": "rejected", "count": 4},
        ]}));
        assert_eq!(failed_before("jobs", &deaths), 3);
        // A broker that did not count: the header says more.
        let written = headers(json!({
            "x-death": [{"queue": "jobs.retry.1000", "reason": "expired", "count": 1}],
            "postage-attempts": 2,
        }));
        assert_eq!(failed_before("jobs", &written), 2);
        let garbage = headers(json!({"x-death": "no", "postage-attempts": "two"}));
        assert_eq!(failed_before("jobs", &garbage), 0);
    }

    #[test]
    fn queues_are_named_after_the_queue_and_the_delay() {
        assert_eq!(
            retry_queue("jobs", Duration::from_millis(1500)),
            "jobs.retry.1500"
        );
        assert_eq!(parking_queue("jobs"), "jobs.parked");
    }
}

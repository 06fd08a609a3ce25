//! Carrying out a failure policy: a failed delivery acknowledged,
//! dead-lettered, copied to a retry queue or back to its queue, or parked;
//! and parked messages replayed.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::HandlerError;
use super::policy::{
    Decision, OnError, ParkReason, failed_before, failure_headers, parking_queue, retry_queue,
};
use crate::consumer::{Consumer, Delivery};
use crate::error::{Error, Result};
use crate::telemetry::About;
use crate::topology::{Exchange, Queue};
use crate::transport::{Channel, Connection, Headers, OutgoingProperties, Role};

/// How long a replay waits for the next parked message before it ends.
const REPLAY_QUIET: Duration = Duration::from_secs(5);

/// The longest error text written into a header.
const ERROR_TEXT_LIMIT: usize = 1024;

/// What a processor needs to carry out its failure policies.
pub(super) struct Failures {
    /// The policy of handlers without their own.
    pub(super) default: OnError,
    /// A channel with confirms for the copies, when a policy makes them.
    channel: Option<Channel>,
    /// The retry and parking queues declared so far.
    declared: Mutex<HashSet<String>>,
}

/// One failure of a delivery's handlers.
pub(super) struct Failure<'a> {
    /// The policy that applies.
    pub(super) policy: OnError,
    /// The handler that failed.
    pub(super) handler: &'a str,
    /// How.
    pub(super) error: &'a HandlerError,
}

/// What became of a failed delivery, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Settled {
    /// Acknowledged, dead-lettered, or left to the broker to redeliver.
    Other,
    /// Sent back for another attempt.
    Retried,
    /// Parked.
    Parked,
}

impl Failures {
    /// Opens the channel for copies when `policies` has one that makes
    /// them.
    pub(super) async fn new(
        connection: &Connection,
        default: OnError,
        mut policies: impl Iterator<Item = OnError>,
    ) -> Result<Self> {
        let channel = if default.republishes() || policies.any(OnError::republishes) {
            Some(connection.open_channel(Role::Publish, true).await?)
        } else {
            None
        };
        Ok(Failures {
            default,
            channel,
            declared: Mutex::new(HashSet::new()),
        })
    }

    /// What becomes of `delivery`, whose handlers failed as `failure`
    /// says: a copy made where the policy sends it (confirmed before this
    /// returns), and how the delivery itself is then settled.
    pub(super) async fn settle(
        &self,
        delivery: &Delivery,
        failure: &Failure<'_>,
    ) -> (Settled, Settle) {
        let permanent = failure.error.is_permanent();
        if !failure.policy.republishes() {
            let settle = match failure.policy.decide(1, permanent) {
                Decision::DeadLetter => Settle::DeadLetter,
                _ => Settle::Ack,
            };
            return (Settled::Other, settle);
        }
        let queue = delivery.queue();
        let Some(channel) = self.channel.as_ref().filter(|_| !queue.starts_with("amq.")) else {
            tracing::error!(
                queue,
                "a message of a server-named queue cannot be retried or parked; dead-lettered instead"
            );
            return (Settled::Other, Settle::DeadLetter);
        };
        let mut headers = delivery.headers();
        let attempt = failed_before(queue, &headers).saturating_add(1);
        let decision = failure.policy.decide(attempt, permanent);
        let (target, settled) = match self.target(channel, queue, decision, &mut headers).await {
            Ok(target) => target,
            Err(error) => return requeue_after(delivery, &error),
        };
        mark_failure(&mut headers, attempt, failure);
        match copy(channel, delivery, &target, &headers).await {
            Ok(()) => {
                if settled == Settled::Parked {
                    tracing::warn!(queue, parked_in = %target, attempts = attempt, handler = failure.handler, error = %failure.error, "message parked");
                } else {
                    tracing::info!(queue, retry_in = %target, attempt, handler = failure.handler, "message sent back for another attempt");
                }
                (settled, Settle::Ack)
            }
            Err(error) => requeue_after(delivery, &error),
        }
    }

    /// Where a failed message of `queue` goes for `decision` (a queue,
    /// declared), with the parking headers added for a parked one.
    async fn target(
        &self,
        channel: &Channel,
        queue: &str,
        decision: Decision,
        headers: &mut Headers,
    ) -> Result<(String, Settled)> {
        match decision {
            Decision::Retry(Duration::ZERO) => Ok((queue.to_owned(), Settled::Retried)),
            Decision::Retry(delay) => {
                let retry = retry_queue(queue, delay);
                let ttl = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
                let declaration = Queue::new(retry.as_str())
                    .durable(true)
                    .argument("x-message-ttl", ttl)
                    .dead_letter_exchange("")
                    .dead_letter_routing_key(queue);
                self.declare(channel, &declaration).await?;
                Ok((retry, Settled::Retried))
            }
            // A policy that copies messages decides to retry or to park;
            // anything else would be parked, as the safe choice.
            Decision::Park(_) | Decision::Acknowledge | Decision::DeadLetter => {
                let reason = match decision {
                    Decision::Park(reason) => reason,
                    _ => ParkReason::Policy,
                };
                let parked = parking_queue(queue);
                self.declare(channel, &Queue::new(parked.as_str()).durable(true))
                    .await?;
                headers.insert(
                    failure_headers::PARKED_REASON.into(),
                    reason.as_str().into(),
                );
                headers.insert(failure_headers::PARKED_FROM.into(), queue.into());
                Ok((parked, Settled::Parked))
            }
        }
    }

    /// Declares a retry or parking queue once.
    async fn declare(&self, channel: &Channel, queue: &Queue) -> Result<()> {
        if self.declared().contains(queue.name()) {
            return Ok(());
        }
        channel.declare_queue(queue).await?;
        self.declared().insert(queue.name().to_owned());
        Ok(())
    }

    fn declared(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.declared.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Publishes a copy of `delivery` (body and properties, with `headers`)
/// to `queue` through the default exchange, and waits for the broker's
/// confirmation. A queue deleted since it was declared is declared again
/// by the channel's recovery only: an unroutable copy is an error.
async fn copy(
    channel: &Channel,
    delivery: &Delivery,
    queue: &str,
    headers: &Headers,
) -> Result<()> {
    let props = OutgoingProperties {
        content_type: delivery.content_type(),
        persistent: delivery.is_persistent(),
        mandatory: true,
        reply_to: delivery.reply_to(),
        correlation_id: delivery.correlation_id(),
        expiration_ms: None,
        headers: Some(headers),
        ..OutgoingProperties::default()
    };
    let about = match delivery.message() {
        Ok(message) => About {
            kind: &message.kind,
            name: &message.name,
            category: message.category.as_str(),
        },
        Err(_) => About::UNKNOWN,
    };
    channel
        .publish("", queue, delivery.body(), &props, &about)
        .await
}

/// The failure written into the copy's headers.
fn mark_failure(headers: &mut Headers, attempt: u32, failure: &Failure<'_>) {
    let now = Value::from(rfc3339(SystemTime::now()));
    headers.remove("x-delivery-count");
    headers.insert(failure_headers::ATTEMPTS.into(), attempt.into());
    headers
        .entry(failure_headers::FIRST_FAILURE.into())
        .or_insert_with(|| now.clone());
    headers.insert(failure_headers::LAST_FAILURE.into(), now);
    headers.insert(failure_headers::HANDLER.into(), failure.handler.into());
    let mut error = failure.error.to_string();
    if error.len() > ERROR_TEXT_LIMIT {
        let mut end = ERROR_TEXT_LIMIT;
        while !error.is_char_boundary(end) {
            end -= 1;
        }
        error.truncate(end);
        error.push('…');
    }
    headers.insert(failure_headers::ERROR.into(), error.into());
}

/// A copy could not be made: the delivery goes back to its queue, as it
/// is, for the broker to deliver again.
fn requeue_after(delivery: &Delivery, error: &Error) -> (Settled, Settle) {
    tracing::error!(queue = delivery.queue(), error = %error.report(), "could not retry or park a failed message; it goes back to its queue");
    (Settled::Other, Settle::Requeue)
}

/// How a delivery is settled.
#[derive(Debug, Clone, Copy)]
pub(super) enum Settle {
    Ack,
    DeadLetter,
    Requeue,
}

/// Settles a delivery, logging a failure to (the broker redelivers it).
pub(super) async fn finish(delivery: &Delivery, settle: Settle) {
    let result = match settle {
        Settle::Ack => delivery.ack().await,
        Settle::DeadLetter => delivery.reject(false).await,
        Settle::Requeue => delivery.reject(true).await,
    };
    if let Err(error) = result {
        tracing::warn!(error = %error.report(), "could not acknowledge a delivery; the broker will redeliver it");
    }
}

/// Moves the messages parked from `queue` (in `<queue>.parked`, see
/// [`OnError`]) back into it, with the headers of their failures removed,
/// so that they are handled again with every attempt of the failure
/// policy; returns how many were moved. Messages parked while the replay
/// runs wait for the next one. Each is moved with a confirmed publish
/// before it leaves the parking queue: none is lost, and a replay
/// interrupted by a lost connection may at worst leave one in both
/// queues.
///
/// ```no_run
/// # async fn run() -> postage::Result<()> {
/// let connection = postage::Connection::from_env().await?;
/// let moved = postage::processor::replay_parked(&connection, "jobs").await?;
/// println!("{moved} parked messages are back in jobs");
/// # Ok(()) }
/// ```
pub async fn replay_parked(connection: &Connection, queue: &str) -> Result<u64> {
    let parked = parking_queue(queue);
    let channel = connection.open_channel(Role::Publish, true).await?;
    let declared = channel
        .declare_queue_counted(&Queue::new(parked.as_str()).durable(true))
        .await?;
    let mut moved = 0;
    if declared.messages > 0 {
        let mut consumer = Consumer::builder()
            .bind(
                Exchange::direct(""),
                [(Queue::new(parked.as_str()).durable(true), parked.as_str())],
            )
            .prefetch(64)
            .connect(connection)
            .await?;
        while moved < u64::from(declared.messages) {
            // Another consumer of the parking queue may hold the rest.
            let Ok(Some(delivery)) = tokio::time::timeout(REPLAY_QUIET, consumer.next()).await
            else {
                break;
            };
            let mut headers = delivery.headers();
            headers.retain(|key, _| {
                !key.starts_with("postage-") && key != "x-death" && key != "x-delivery-count"
            });
            copy(&channel, &delivery, queue, &headers).await?;
            delivery.ack().await?;
            moved += 1;
        }
        consumer.close().await;
    }
    channel.close().await;
    tracing::info!(queue, moved, "parked messages replayed");
    Ok(moved)
}

/// `time` as RFC 3339 in UTC, to the millisecond.
fn rfc3339(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Days to a civil date (H. Hinnant's algorithm), from 1970-01-01.
    let z = i64::try_from(days).unwrap_or(0) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3_600,
        rest % 3_600 / 60,
        rest % 60,
        since.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_written_in_rfc3339() {
        let at = |secs: u64, millis: u64| UNIX_EPOCH + Duration::from_millis(secs * 1000 + millis);
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(at(951_782_400, 5)), "2000-02-29T00:00:00.005Z");
        assert_eq!(rfc3339(at(1_796_212_800, 999)), "2026-12-02T12:00:00.999Z");
        assert_eq!(rfc3339(at(4_102_444_799, 0)), "2099-12-31T23:59:59.000Z");
    }

    #[test]
    fn a_failure_is_written_into_the_headers_and_its_first_time_kept() {
        let error = HandlerError::new("IoError", "é".repeat(ERROR_TEXT_LIMIT));
        let failure = Failure {
            policy: OnError::Park,
            handler: "resize",
            error: &error,
        };
        let mut headers = Headers::new();
        headers.insert("x-delivery-count".into(), 3.into());
        headers.insert(failure_headers::FIRST_FAILURE.into(), "earlier".into());
        mark_failure(&mut headers, 2, &failure);
        assert_eq!(headers[failure_headers::ATTEMPTS], 2);
        assert_eq!(headers[failure_headers::FIRST_FAILURE], "earlier");
        assert_eq!(headers[failure_headers::HANDLER], "resize");
        assert!(
            headers[failure_headers::LAST_FAILURE]
                .as_str()
                .unwrap()
                .ends_with('Z')
        );
        let text = headers[failure_headers::ERROR].as_str().unwrap();
        assert!(
            text.starts_with("IoError: é") && text.ends_with('…'),
            "{text}"
        );
        assert!(text.len() <= ERROR_TEXT_LIMIT + '…'.len_utf8());
        assert!(!headers.contains_key("x-delivery-count"));
    }
}

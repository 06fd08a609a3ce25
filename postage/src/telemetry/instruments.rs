//! Metric handles, registered once (when a component is built, or at the
//! first use of a label set) and kept: recording is then a branch when no
//! recorder is installed, and no lookup when one is.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};

use super::names::{
    CONNECTION_RECOVERIES, CONNECTION_STALLS, CONNECTIONS_BLOCKED, CONSUMER_HEALTH,
    CONSUMER_STALLS, DELIVERIES_FAILED, DELIVERIES_HANDLED, DELIVERIES_PARKED, DELIVERIES_RECEIVED,
    DELIVERIES_REJECTED, DELIVERIES_RETRIED, HANDLER_DURATION, MESSAGES_CONFIRMED,
    MESSAGES_IN_FLIGHT, MESSAGES_PUBLISHED, MESSAGES_RETURNED, PUBLISH_FAILURES, REJECTION_REASONS,
    RPC_CALL_DURATION, RPC_OUTCOMES, RPC_TIMEOUTS,
};

/// Label sets kept per cache; beyond, handles are registered at each use.
const CACHE_LIMIT: usize = 256;

/// A small cache of handles by label set: a handful of entries, scanned.
struct Cache<K, V>(Mutex<Vec<(K, V)>>);

impl<K, V> Default for Cache<K, V> {
    fn default() -> Self {
        Cache(Mutex::new(Vec::new()))
    }
}

impl<K, V> Cache<K, V> {
    /// Runs `f` on the handles of the label set `matches` finds, made by
    /// `make` at its first use.
    fn with<R>(
        &self,
        matches: impl Fn(&K) -> bool,
        make: impl FnOnce() -> (K, V),
        f: impl FnOnce(&V) -> R,
    ) -> R {
        let mut entries = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, value)) = entries.iter().find(|(key, _)| matches(key)) {
            return f(value);
        }
        let (key, value) = make();
        let result = f(&value);
        if entries.len() < CACHE_LIMIT {
            entries.push((key, value));
        }
        result
    }
}

/// What became of a publish, as the metrics count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Published {
    /// Sent on a channel without confirms.
    Sent,
    /// Confirmed by the broker.
    Confirmed,
    /// Returned as unroutable.
    Returned,
    /// Refused, unconfirmed or interrupted.
    Failed,
}

struct PublishCounters {
    published: Counter,
    confirmed: Counter,
    returned: Counter,
    failed: Counter,
}

/// The labels of a publish: exchange, type, name.
type PublishLabels = (Box<str>, Box<str>, Box<str>);

/// A channel's publish counters, by (exchange, type, name).
#[derive(Default)]
pub(crate) struct PublishInstruments {
    cache: Cache<PublishLabels, PublishCounters>,
}

impl PublishInstruments {
    /// Counts one publish to `exchange` of a message of type `kind`
    /// called `name`.
    pub(crate) fn record(&self, exchange: &str, kind: &str, name: &str, outcome: Published) {
        self.cache.with(
            |(e, k, n)| **e == *exchange && **k == *kind && **n == *name,
            || {
                let labels = [
                    ("exchange", exchange.to_owned()),
                    ("type", kind.to_owned()),
                    ("name", name.to_owned()),
                ];
                let counters = PublishCounters {
                    published: counter!(MESSAGES_PUBLISHED, &labels),
                    confirmed: counter!(MESSAGES_CONFIRMED, &labels),
                    returned: counter!(MESSAGES_RETURNED, &labels),
                    failed: counter!(PUBLISH_FAILURES, &labels),
                };
                ((exchange.into(), kind.into(), name.into()), counters)
            },
            |counters| {
                counters.published.increment(1);
                match outcome {
                    Published::Sent => {}
                    Published::Confirmed => counters.confirmed.increment(1),
                    Published::Returned => counters.returned.increment(1),
                    Published::Failed => counters.failed.increment(1),
                }
            },
        );
    }
}

/// Why a processor ran no handler for a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejection {
    /// Not a Postage message.
    Undecodable,
    /// Larger than the consumer's bound.
    TooLarge,
    /// Another content type than the encoder's.
    ContentType,
    /// Delivered too many times.
    DeliveryLimit,
    /// An RPC request without `reply_to`.
    NoReplyTo,
    /// A result where commands are expected.
    UnexpectedResult,
    /// No handler for its (type, name).
    NoHandler,
    /// A control command from a sender not allowed.
    SenderNotAllowed,
    /// An RPC request that arrived after its caller's deadline.
    Expired,
}

impl Rejection {
    /// The `reason` label (and the span's `error.type`).
    pub(crate) fn label(self) -> &'static str {
        REJECTION_REASONS[self as usize]
    }
}

/// How many deliveries a processor received, handled, failed and
/// rejected since it was built: its own tallies, kept whether or not a
/// metrics recorder is installed (what `info` answers report).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Tallies {
    pub(crate) received: u64,
    pub(crate) handled: u64,
    pub(crate) failed: u64,
    pub(crate) rejected: u64,
    pub(crate) unhandled: u64,
}

#[derive(Default)]
struct TallyCells {
    received: AtomicU64,
    handled: AtomicU64,
    failed: AtomicU64,
    rejected: AtomicU64,
    unhandled: AtomicU64,
}

fn bump(cell: &AtomicU64) {
    cell.fetch_add(1, Ordering::Relaxed);
}

/// A processor's handles, registered when it is built.
pub(crate) struct ProcessorInstruments {
    /// Relaxed atomics: a few nanoseconds per delivery.
    tallies: TallyCells,
    received: Counter,
    handled: Counter,
    failed: Counter,
    retried: Counter,
    parked: Counter,
    rejected: Vec<Counter>,
    in_flight: Gauge,
    /// Per handler of the table: (ok, error) durations.
    handlers: Vec<[Histogram; 2]>,
}

impl ProcessorInstruments {
    /// The handles of processor `processor` whose table has handlers
    /// labelled `handlers`, in order.
    pub(crate) fn new<'a>(processor: &str, handlers: impl IntoIterator<Item = &'a str>) -> Self {
        let p = || ("processor", processor.to_owned());
        let duration = |handler: &str, outcome: &'static str| {
            let labels = [
                p(),
                ("handler", handler.to_owned()),
                ("outcome", outcome.into()),
            ];
            histogram!(HANDLER_DURATION, &labels)
        };
        ProcessorInstruments {
            tallies: Default::default(),
            received: counter!(DELIVERIES_RECEIVED, &[p()]),
            handled: counter!(DELIVERIES_HANDLED, &[p()]),
            failed: counter!(DELIVERIES_FAILED, &[p()]),
            retried: counter!(DELIVERIES_RETRIED, &[p()]),
            parked: counter!(DELIVERIES_PARKED, &[p()]),
            rejected: REJECTION_REASONS
                .iter()
                .map(|&reason| counter!(DELIVERIES_REJECTED, &[p(), ("reason", reason.into())]))
                .collect(),
            in_flight: gauge!(MESSAGES_IN_FLIGHT, &[p()]),
            handlers: handlers
                .into_iter()
                .map(|handler| [duration(handler, "ok"), duration(handler, "error")])
                .collect(),
        }
    }

    /// A delivery arrived: counted, and in flight until the guard drops.
    pub(crate) fn received(&self) -> InFlight<'_> {
        bump(&self.tallies.received);
        self.received.increment(1);
        self.in_flight.increment(1.0);
        InFlight(&self.in_flight)
    }

    /// Its handlers all succeeded.
    pub(crate) fn handled(&self) {
        bump(&self.tallies.handled);
        self.handled.increment(1);
    }

    /// One of its handlers failed.
    pub(crate) fn failed(&self) {
        bump(&self.tallies.failed);
        self.failed.increment(1);
    }

    /// Its failure policy sent it back for another attempt.
    pub(crate) fn retried(&self) {
        self.retried.increment(1);
    }

    /// Its failure policy parked it.
    pub(crate) fn parked(&self) {
        self.parked.increment(1);
    }

    /// No handler ran for it.
    pub(crate) fn rejected(&self, why: Rejection) {
        bump(&self.tallies.rejected);
        if why == Rejection::NoHandler {
            bump(&self.tallies.unhandled);
        }
        if let Some(counter) = self.rejected.get(why as usize) {
            counter.increment(1);
        }
    }

    /// The tallies so far.
    pub(crate) fn tallies(&self) -> Tallies {
        let cells = &self.tallies;
        let read = |cell: &AtomicU64| cell.load(Ordering::Relaxed);
        Tallies {
            received: read(&cells.received),
            handled: read(&cells.handled),
            failed: read(&cells.failed),
            rejected: read(&cells.rejected),
            unhandled: read(&cells.unhandled),
        }
    }

    /// Handler `index` of the table ran for `duration`.
    pub(crate) fn handler_ran(&self, index: usize, duration: Duration, ok: bool) {
        if let Some([ok_time, error_time]) = self.handlers.get(index) {
            let histogram = if ok { ok_time } else { error_time };
            histogram.record(duration.as_secs_f64());
        }
    }
}

/// A delivery in flight; the gauge goes down when it drops.
pub(crate) struct InFlight<'a>(&'a Gauge);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// How an RPC call ended, as the metrics count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RpcOutcome {
    /// A success result.
    Success,
    /// An error result.
    Error,
    /// An exception result.
    Exception,
    /// No reply within the timeout, every attempt.
    Timeout,
    /// No reply for another reason (the connection lost, a send refused).
    Failed,
}

impl RpcOutcome {
    /// The `outcome` label.
    pub(crate) fn label(self) -> &'static str {
        RPC_OUTCOMES[self as usize]
    }
}

struct RpcHandles {
    durations: Vec<Histogram>,
    timeouts: Counter,
}

/// A producer's RPC handles, by command name.
#[derive(Default)]
pub(crate) struct RpcInstruments {
    cache: Cache<Box<str>, RpcHandles>,
}

impl RpcInstruments {
    /// A call of `name` ended with `outcome` after `duration`, with
    /// `timeouts` of its attempts timed out.
    pub(crate) fn record(
        &self,
        name: &str,
        outcome: RpcOutcome,
        duration: Duration,
        timeouts: u32,
    ) {
        self.cache.with(
            |n| **n == *name,
            || {
                let handles = RpcHandles {
                    durations: RPC_OUTCOMES
                        .iter()
                        .map(|&outcome| {
                            let labels = [("name", name.to_owned()), ("outcome", outcome.into())];
                            histogram!(RPC_CALL_DURATION, &labels)
                        })
                        .collect(),
                    timeouts: counter!(RPC_TIMEOUTS, "name" => name.to_owned()),
                };
                (name.into(), handles)
            },
            |handles| {
                if let Some(histogram) = handles.durations.get(outcome as usize) {
                    histogram.record(duration.as_secs_f64());
                }
                if timeouts > 0 {
                    handles.timeouts.increment(u64::from(timeouts));
                }
            },
        );
    }
}

/// The states of a consumer's health, as the gauge labels them.
pub(crate) const HEALTH_STATES: [&str; 9] = [
    "consuming",
    "recovering",
    "blocked",
    "stalled",
    "standing_by",
    "paused",
    "tripped",
    "failed",
    "stopped",
];

/// A consumer's health gauge (one series per state) and its stall
/// counter.
pub(crate) struct HealthGauge(Vec<Gauge>, Counter);

impl HealthGauge {
    /// The gauge of consumer `consumer`.
    pub(crate) fn new(consumer: &str) -> Self {
        HealthGauge(
            HEALTH_STATES
                .iter()
                .map(|&state| {
                    let labels = [("consumer", consumer.to_owned()), ("state", state.into())];
                    gauge!(CONSUMER_HEALTH, &labels)
                })
                .collect(),
            counter!(CONSUMER_STALLS, "consumer" => consumer.to_owned()),
        )
    }

    /// The watchdog found the consumer stalled.
    pub(crate) fn stalled(&self) {
        self.1.increment(1);
    }

    /// The consumer is now in state `state` (one of [`HEALTH_STATES`]).
    pub(crate) fn set(&self, state: &str) {
        for (gauge, name) in self.0.iter().zip(HEALTH_STATES) {
            gauge.set(if name == state { 1.0 } else { 0.0 });
        }
    }
}

/// A lost connection came back.
pub(crate) fn connection_recovered() {
    counter!(CONNECTION_RECOVERIES).increment(1);
}

/// A recovery stalled.
pub(crate) fn connection_stalled() {
    counter!(CONNECTION_STALLS).increment(1);
}

/// The broker blocked (`true`) or unblocked a connection's publishers.
pub(crate) fn connection_blocked(blocked: bool) {
    let gauge = gauge!(CONNECTIONS_BLOCKED);
    if blocked {
        gauge.increment(1.0);
    } else {
        gauge.decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_follow_the_documented_lists() {
        let reasons = [
            (Rejection::Undecodable, "undecodable"),
            (Rejection::TooLarge, "too_large"),
            (Rejection::ContentType, "content_type"),
            (Rejection::DeliveryLimit, "delivery_limit"),
            (Rejection::NoReplyTo, "no_reply_to"),
            (Rejection::UnexpectedResult, "unexpected_result"),
            (Rejection::NoHandler, "no_handler"),
            (Rejection::SenderNotAllowed, "sender_not_allowed"),
            (Rejection::Expired, "expired"),
        ];
        assert_eq!(reasons.len(), REJECTION_REASONS.len());
        for (why, label) in reasons {
            assert_eq!(why.label(), label);
        }
        let outcomes = [
            (RpcOutcome::Success, "success"),
            (RpcOutcome::Error, "error"),
            (RpcOutcome::Exception, "exception"),
            (RpcOutcome::Timeout, "timeout"),
            (RpcOutcome::Failed, "failed"),
        ];
        assert_eq!(outcomes.len(), RPC_OUTCOMES.len());
        for (outcome, label) in outcomes {
            assert_eq!(outcome.label(), label);
        }
    }

    #[test]
    fn a_processor_tallies_its_deliveries_without_a_recorder() {
        let instruments = ProcessorInstruments::new("tallied", ["echo"]);
        for _ in 0..3 {
            drop(instruments.received());
        }
        instruments.handled();
        instruments.failed();
        instruments.rejected(Rejection::NoHandler);
        assert_eq!(
            instruments.tallies(),
            Tallies {
                received: 3,
                handled: 1,
                failed: 1,
                rejected: 1,
                unhandled: 1
            }
        );
    }

    #[test]
    fn a_cache_keeps_one_entry_per_label_set_up_to_its_limit() {
        let cache: Cache<u32, u32> = Cache::default();
        let mut made = 0;
        for key in [1, 2, 1, 1, 2] {
            let value = cache.with(
                |k| *k == key,
                || {
                    made += 1;
                    (key, key * 10)
                },
                |v| *v,
            );
            assert_eq!(value, key * 10);
        }
        assert_eq!(made, 2);
        assert_eq!(cache.with(|k| *k == 2, || (2, 0), |v| *v), 20);
        let full: Cache<usize, usize> = Cache::default();
        for key in 0..CACHE_LIMIT + 10 {
            assert_eq!(full.with(|k| *k == key, || (key, key), |v| *v), key);
        }
        let entries = full.0.lock().unwrap_or_else(PoisonError::into_inner).len();
        assert_eq!(entries, CACHE_LIMIT);
    }
}

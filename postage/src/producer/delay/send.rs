//! [`DelayedPublish`]: a send for later, awaited to a [`Scheduled`] send
//! that can be cancelled until it is due.

use std::collections::hash_map::RandomState;
use std::future::IntoFuture;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::plan::Plan;
use super::topology::{DELAY_DUE_HEADER, DELAY_EXCHANGE_HEADER, DELAY_ID_HEADER, bit_header};
use crate::BoxFuture;
use crate::error::{Error, Result};
use crate::middleware::{Outgoing, send};
use crate::producer::{Producer, Publish};
use crate::topology::{Exchange, ExchangeKind};

/// How long the broker keeps a cancellation after the send's due time
/// (the `x-expires` of its queue, counted from the cancellation).
const CANCELLATION_KEPT: Duration = Duration::from_secs(600);

/// When a delayed send is due.
#[derive(Debug, Clone, Copy)]
pub(in crate::producer) enum Due {
    After(Duration),
    At(SystemTime),
}

/// A send for later: [`Publish::send_after`] or [`Publish::send_at`].
/// `.await` it to hand the message to the broker, which holds it until it
/// is due and then delivers it to the (exchange, key) pairs of the send;
/// it gives a [`Scheduled`] send, which can be cancelled until then.
///
/// The delay is rounded up to the next whole second: the message is
/// delivered no earlier than its due time, and usually within a second
/// after it. The longest delay is [`MAX_DELAY`](crate::producer::MAX_DELAY)
/// (2^22 − 1 s, about 48.5 days); a longer one is
/// [`Error::DelayTooLong`]. A send with an
/// [`expiration`](Publish::expiration) is refused
/// ([`Error::DelayedExpiration`]): the levels hold messages longer than
/// it, and the broker drops a message's expiration when it moves it on.
///
/// ```no_run
/// # use std::time::Duration;
/// # async fn run(producer: postage::Producer) -> postage::Result<()> {
/// let scheduled = producer
///     .command("remind", "stand up")
///     .persistent(true)
///     .send_after(Duration::from_secs(30 * 60))
///     .await?;
/// let id = scheduled.id().to_owned(); // keep it to cancel from anywhere
/// if scheduled.cancel().await? {
///     // cancelled in time: it never arrives
/// }
/// # let _ = id; Ok(()) }
/// ```
#[must_use = "a send does nothing until it is awaited"]
#[derive(Debug)]
pub struct DelayedPublish<'a> {
    publish: Publish<'a>,
    due: Due,
}

impl<'a> DelayedPublish<'a> {
    pub(in crate::producer) fn new(publish: Publish<'a>, due: Due) -> Self {
        DelayedPublish { publish, due }
    }

    async fn run(self) -> Result<Scheduled> {
        let now = SystemTime::now();
        let delay = match self.due {
            Due::After(delay) => delay,
            Due::At(time) => time.duration_since(now).unwrap_or_default(),
        };
        let plan = Plan::new(delay).ok_or(Error::DelayTooLong {
            delay,
            max: super::MAX_DELAY,
        })?;
        let prepared = self.publish.prepare().await?;
        if prepared.expiration.is_some() {
            return Err(Error::DelayedExpiration);
        }
        let producer = prepared.producer;
        let channel = &producer.inner.channel;
        let delays = &producer.inner.delays;
        let due = now + plan.waited();
        let id = new_id(due, plan.waited());
        delays.ensure_base(channel).await?;
        let entry = match plan.top() {
            Some(top) => {
                delays.ensure_levels(channel, top).await?;
                delays.level(top)
            }
            None => delays.gate(),
        };
        let mut headers = prepared.headers.clone().unwrap_or_default();
        for (level, waits) in plan.levels() {
            headers.insert(
                bit_header(level),
                Value::from(if waits { "1" } else { "0" }),
            );
        }
        headers.insert(DELAY_ID_HEADER.to_owned(), Value::from(id.as_str()));
        headers.insert(DELAY_DUE_HEADER.to_owned(), Value::from(millis(due)));
        let about = prepared.about();
        for (exchange, key) in prepared.pairs.iter() {
            delays.ensure_target(channel, exchange.name()).await?;
            headers.insert(
                DELAY_EXCHANGE_HEADER.to_owned(),
                Value::from(exchange.name()),
            );
            let props = prepared.properties(Some(&headers));
            match &producer.inner.layers {
                None => {
                    channel
                        .publish(&entry, key, &prepared.body, &props, &about)
                        .await?;
                }
                // The producer's layers see it as it goes to its first
                // delay level.
                Some(layers) => {
                    let level = Exchange::new(entry.clone(), ExchangeKind::Headers);
                    let target = vec![(level, key.clone())];
                    let outgoing = Outgoing::new(&about, prepared.body.clone(), target, &props);
                    send(layers, outgoing).await?;
                }
            }
        }
        tracing::debug!(%id, ?delay, "delayed send scheduled");
        Ok(Scheduled {
            producer: producer.clone(),
            id,
            due,
        })
    }
}

impl<'a> IntoFuture for DelayedPublish<'a> {
    type Output = Result<Scheduled>;
    type IntoFuture = BoxFuture<'a, Result<Scheduled>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}

/// A delayed send the broker holds: its id, when it is due, and
/// [`cancel`](Scheduled::cancel).
#[derive(Debug, Clone)]
pub struct Scheduled {
    producer: Producer,
    id: String,
    due: SystemTime,
}

impl Scheduled {
    /// The send's id: what [`Producer::cancel_delayed`] takes, from any
    /// process (it says when the send is due), and what its messages
    /// carry in the [`DELAY_ID_HEADER`](crate::producer::DELAY_ID_HEADER).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// When the send is due (the delay rounded up to whole seconds).
    pub fn due(&self) -> SystemTime {
        self.due
    }

    /// Cancels the send: see [`Producer::cancel_delayed`].
    pub async fn cancel(&self) -> Result<bool> {
        self.producer.cancel_delayed(&self.id).await
    }
}

impl Producer {
    /// Cancels the delayed send `id` ([`Scheduled::id`]): its messages
    /// are dropped when they leave the delay levels, instead of being
    /// delivered. True when the cancellation was in place before the
    /// send's due time (by this machine's clock): then none of its
    /// messages is ever delivered. False when it came later: the messages
    /// may have been delivered already. Cancelling twice is no error.
    ///
    /// The cancellation is a durable queue bound to the delay gate, which
    /// drops the send's messages; the broker deletes it by itself once it
    /// has been unused for the send's delay plus 10 minutes (`x-expires`,
    /// counted from the last cancellation: always past the due time). An id that is not one of a delayed send is
    /// [`Error::InvalidDelayId`].
    pub async fn cancel_delayed(&self, id: &str) -> Result<bool> {
        let (due, delay) = parse_id(id).ok_or_else(|| Error::InvalidDelayId(id.to_owned()))?;
        // The same for every cancellation of a send (RabbitMQ refuses to
        // declare a queue again with another x-expires), and longer than
        // the send's wait from any cancellation.
        let expires = u64::try_from((delay + CANCELLATION_KEPT).as_millis()).unwrap_or(u64::MAX);
        let inner = &*self.inner;
        inner.delays.cancel(&inner.channel, id, expires).await?;
        let in_time = SystemTime::now() < due;
        tracing::debug!(id, in_time, "delayed send cancelled");
        Ok(in_time)
    }
}

fn millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A new id for a send due at `due` after waiting `delay` (whole
/// seconds): `<due in ms since the epoch>-<delay in s>-<16 hex digits>`,
/// unique by a hash of the time, the process and a counter.
fn new_id(due: SystemTime, delay: Duration) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let random = RandomState::new().hash_one((nanos, std::process::id(), count));
    format!("{}-{}-{random:016x}", millis(due), delay.as_secs())
}

/// The due time and the wait an id says.
fn parse_id(id: &str) -> Option<(SystemTime, Duration)> {
    let mut parts = id.split('-');
    let (due, delay, random) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some()
        || random.len() != 16
        || !random.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return None;
    }
    let due = UNIX_EPOCH.checked_add(Duration::from_millis(due.parse().ok()?))?;
    let delay = Duration::from_secs(delay.parse().ok()?);
    (delay <= super::MAX_DELAY).then_some((due, delay))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_says_when_its_send_is_due_and_how_long_it_waits() {
        let due = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let delay = Duration::from_secs(90);
        let id = new_id(due, delay);
        assert!(id.starts_with("1700000000123-90-"), "{id}");
        assert_eq!(parse_id(&id), Some((due, delay)));
        assert_ne!(new_id(due, delay), id, "two sends, two ids");
        for bad in [
            "",
            "123",
            "x-1-0123456789abcdef",
            "1-x-0123456789abcdef",
            "1-1-0123",
            "1-1-0123456789abcdeg",
            "1-1-0123456789abcdef-2",
            "1-99999999-0123456789abcdef",
        ] {
            assert_eq!(parse_id(bad), None, "{bad:?}");
        }
    }
}

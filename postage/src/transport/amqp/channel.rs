//! A channel Postage opens again: on the new connection when its own was
//! lost, or alone on the same connection when the broker closed it (a
//! refused operation, a delivery left unacknowledged past the queue's
//! `consumer_timeout`) or when it stopped making progress (a publisher
//! the broker only nacks, a consumer that receives nothing while its
//! queue holds messages).
//!
//! Every opening draws a new generation from the connection, so a
//! delivery, an acknowledgement or a consumer knows whether the channel
//! it belongs to is still the one in use: nothing of a replaced channel
//! is ever sent on its replacement.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use lapin::options::BasicQosOptions;
use tokio::time::Instant;

use super::convert::amqp_error;
use super::delivery::Slot;
use super::session::{Shared, open_lapin_channel};
use crate::error::{Error, Result};

/// How many times an operation interrupted by a lost connection (or a
/// closed channel) is tried again once the channel is back.
pub(super) const RETRIES: u32 = 5;

/// How long a failure that may be a connection's loss waits for the loss
/// to be noticed (the connection's failure can reach an operation before
/// the connection's own state says so).
const LOSS_NOTICE: Duration = Duration::from_secs(2);

/// How long a replaced channel keeps waiting for the confirmations of
/// what was published on it before it is closed.
const DRAIN: Duration = Duration::from_secs(5);

/// Reopenings of a channel this close to each other make a streak.
const REOPEN_STREAK: Duration = Duration::from_secs(2);

/// The pause before the second reopening of a streak is twice this; it
/// doubles with each next one, up to `MAX_REOPEN_PAUSE`.
const REOPEN_PAUSE: Duration = Duration::from_millis(50);

/// The longest pause before a channel is opened again.
const MAX_REOPEN_PAUSE: Duration = Duration::from_secs(5);

/// A channel. Cheap to clone: clones are the same channel.
#[derive(Clone)]
pub(crate) struct Channel(pub(super) Arc<ChannelShared>);

/// What the clones of a channel share, and what recovery reopens.
pub(crate) struct ChannelShared {
    pub(super) connection: Arc<Shared>,
    /// Read by every publish from any task: a read lock, which readers do
    /// not contend for.
    current: RwLock<Now>,
    pub(super) confirms: bool,
    /// Held while a publish takes its confirmation number and queues its
    /// frames (see [`publish`](Channel::publish)).
    pub(super) numbering: Mutex<()>,
    /// Held for reading by each publish until its confirmation, for
    /// writing by a mandatory one (see [`publish`](Channel::publish)).
    pub(super) returns: tokio::sync::RwLock<()>,
    prefetch: Mutex<Option<u16>>,
    /// The consumers to start again on a new channel.
    pub(super) slots: Mutex<Vec<Arc<Slot>>>,
    closed: AtomicBool,
    /// Held while the channel is being opened again, by the connection's
    /// recovery or on its own.
    reopening: tokio::sync::Mutex<()>,
    /// When the channel was last replaced while it was still open (see
    /// [`renew`](ChannelShared::renew)).
    pub(super) renewed_at: Mutex<Option<Instant>>,
    /// When it was last opened again alone, and how many times in a row
    /// that came soon after the time before: a channel the broker keeps
    /// closing (a message whose handler makes it fail, over and over) is
    /// opened again more and more slowly.
    reopened_at: Mutex<Option<(Instant, u32)>>,
}

/// The lapin channel now, its generation, and the epoch of the
/// connection it is on.
#[derive(Clone)]
pub(super) struct Now {
    pub(super) lapin: Arc<lapin::Channel>,
    pub(super) generation: u64,
    pub(super) epoch: u64,
}

impl From<Arc<ChannelShared>> for Channel {
    fn from(shared: Arc<ChannelShared>) -> Self {
        Channel(shared)
    }
}

pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ChannelShared {
    pub(super) fn new(
        connection: Arc<Shared>,
        lapin: lapin::Channel,
        generation: u64,
        epoch: u64,
        confirms: bool,
    ) -> Arc<Self> {
        Arc::new(ChannelShared {
            connection,
            current: RwLock::new(Now {
                lapin: Arc::new(lapin),
                generation,
                epoch,
            }),
            confirms,
            numbering: Mutex::new(()),
            returns: tokio::sync::RwLock::new(()),
            prefetch: Mutex::new(None),
            slots: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
            reopening: tokio::sync::Mutex::new(()),
            renewed_at: Mutex::new(None),
            reopened_at: Mutex::new(None),
        })
    }

    pub(super) fn now(&self) -> Now {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(super) fn generation(&self) -> u64 {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .generation
    }

    pub(super) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// Was the connection lost (or is it being recovered) since a channel
    /// was opened on the connection of `epoch`? A failure then is the
    /// loss's; otherwise the broker refused the operation.
    pub(super) fn lost_since(&self, epoch: u64) -> bool {
        self.connection.link.recovering()
            || self.connection.epoch() != epoch
            || !self.connection.is_up()
    }

    /// Did the broker close the channel `now` while its connection stayed
    /// up?
    pub(super) fn closed_by_broker(&self, now: &Now) -> bool {
        !self.is_closed() && !now.lapin.status().connected() && !self.lost_since(now.epoch)
    }

    /// Is a failure of work on a channel of the connection of `epoch` the
    /// loss of that connection? A refusal by the broker (a soft error) is
    /// not; other failures can come a moment before the connection is
    /// seen lost, so the connection is given that moment.
    pub(super) async fn failed_by_loss(&self, epoch: u64, error: Option<&lapin::Error>) -> bool {
        if self.lost_since(epoch) {
            return true;
        }
        match error.map(lapin::Error::kind) {
            Some(lapin::ErrorKind::ProtocolError(refusal))
                if matches!(refusal.kind(), lapin::protocol::AMQPErrorKind::Soft(_)) =>
            {
                return false;
            }
            // The channel is closed, the connection still up: the
            // broker closed it.
            Some(lapin::ErrorKind::InvalidChannelState(..)) if self.connection.is_up() => {
                return false;
            }
            _ => {}
        }
        let link = &self.connection.link;
        let down = link.down_notified();
        self.connection.lost.notify_one();
        let _ = tokio::time::timeout(LOSS_NOTICE, down).await;
        self.lost_since(epoch)
    }

    /// Waits until the channel of `generation` has been replaced by an
    /// open one: on the connection that replaced its own when that was
    /// lost (within the recovery timeout), or here, on the same
    /// connection, when the broker closed the channel alone.
    pub(super) async fn reopened_after(&self, generation: u64) -> Result<(), &'static str> {
        let deadline = Instant::now() + self.connection.config.recovery_timeout();
        self.reopened_within(generation, Some(deadline)).await
    }

    /// [`reopened_after`](ChannelShared::reopened_after), for as long as
    /// it takes when `deadline` is `None`: a consumer waits for its
    /// connection however long the broker is away (a recovery that
    /// stalls is reported through the connection's state, not here).
    pub(super) async fn reopened_within(
        &self,
        generation: u64,
        deadline: Option<Instant>,
    ) -> Result<(), &'static str> {
        let link = &self.connection.link;
        let mut pause = Duration::from_millis(100);
        self.connection.lost.notify_one();
        loop {
            let recovered = link.recovered_notified();
            if self.is_closed() || self.connection.closed() {
                return Err("the channel was closed");
            }
            let now = self.now();
            if now.generation > generation
                && now.epoch == self.connection.epoch()
                && now.lapin.status().connected()
            {
                return Ok(());
            }
            if self.closed_by_broker(&now) {
                match self.reopen_alone(now.generation).await {
                    Ok(()) => continue,
                    Err(error) => {
                        tracing::debug!(%error, "opening a closed channel again failed");
                    }
                }
            }
            tokio::select! {
                () = recovered => {}
                () = tokio::time::sleep(pause) => pause = (pause * 2).min(Duration::from_secs(2)),
                () = until(deadline) => {
                    return Err("the channel did not come back within the recovery timeout");
                }
            }
        }
    }

    /// Runs `work` on a channel of the connection of `epoch` until it ends
    /// or the connection is found lost (lapin never answers on a lost
    /// connection).
    pub(super) async fn until_lost<T>(
        &self,
        epoch: u64,
        work: impl Future<Output = lapin::Result<T>>,
    ) -> lapin::Result<T> {
        let link = &self.connection.link;
        let down = link.down_notified();
        // Cheap, per publish without confirms: a loss not noticed yet is
        // caught by `down` below.
        if link.recovering() || self.connection.epoch() != epoch {
            return Err(lost_connection());
        }
        tokio::select! {
            done = work => done,
            () = down => Err(lost_connection()),
        }
    }

    /// Runs `operation` on the channel; when a lost connection interrupts
    /// it, or the channel was closed by the broker before it ran, runs it
    /// again on the channel that replaces this one. A refusal of the
    /// operation itself is its answer (the broker closes the channel; the
    /// next operation opens it again). Gives the generation of the channel
    /// it succeeded on with its value. The whole takes at most the
    /// recovery timeout (a link that carries nothing, a connection that
    /// does not come back).
    pub(super) async fn with_channel<T, F, Fut>(
        &self,
        what: impl Fn() -> String,
        operation: F,
    ) -> Result<(T, u64)>
    where
        F: Fn(Arc<lapin::Channel>) -> Fut,
        Fut: Future<Output = lapin::Result<T>>,
    {
        let limit = self.connection.config.recovery_timeout();
        match tokio::time::timeout(limit, self.with_channel_unbounded(&what, operation)).await {
            Ok(done) => done,
            Err(_) => Err(unusable(
                what(),
                &format!("no answer within the recovery timeout ({limit:?})"),
            )),
        }
    }

    async fn with_channel_unbounded<T, F, Fut>(
        &self,
        what: &impl Fn() -> String,
        operation: F,
    ) -> Result<(T, u64)>
    where
        F: Fn(Arc<lapin::Channel>) -> Fut,
        Fut: Future<Output = lapin::Result<T>>,
    {
        let mut tries = 0;
        loop {
            let now = self.now();
            if self.closed_by_broker(&now) && tries < RETRIES {
                tries += 1;
                if let Err(reason) = self.reopened_after(now.generation).await {
                    return Err(unusable(what(), reason));
                }
                continue;
            }
            let error = match self.until_lost(now.epoch, operation(now.lapin)).await {
                Ok(value) => return Ok((value, now.generation)),
                Err(error) => error,
            };
            // Closed by the broker just before the operation (lapin did
            // not send it): run it on the channel that replaces this one.
            if matches!(error.kind(), lapin::ErrorKind::InvalidChannelState(..))
                && !self.lost_since(now.epoch)
                && tries < RETRIES
            {
                tries += 1;
                if let Err(reason) = self.reopened_after(now.generation).await {
                    return Err(lost(what(), error, reason));
                }
                continue;
            }
            if tries == RETRIES || !self.failed_by_loss(now.epoch, Some(&error)).await {
                return Err(amqp_error(what(), error));
            }
            tries += 1;
            if let Err(reason) = self.reopened_after(now.generation).await {
                return Err(lost(what(), error, reason));
            }
        }
    }

    /// Opens this channel again on `lapin` (a new connection of `epoch`,
    /// or the same one when the channel alone is replaced): confirms,
    /// prefetch and consumers as they were (consumers of a renamed queue on
    /// its new name), as the channel of `generation`. With `redeclare`,
    /// each consumed queue that the connection declared is declared again
    /// first, with its bindings (the broker may have lost it: deleted
    /// from outside, or gone with a node).
    pub(super) async fn reopen(
        &self,
        lapin: &lapin::Connection,
        generation: u64,
        epoch: u64,
        renames: &[(String, String)],
        redeclare: bool,
    ) -> lapin::Result<()> {
        let channel = open_lapin_channel(lapin, self.confirms).await?;
        let prefetch = *lock(&self.prefetch);
        if let Some(prefetch) = prefetch {
            channel
                .basic_qos(prefetch, BasicQosOptions::default())
                .await?;
        }
        // Consumers registered while this runs are started too: the
        // channel is swapped under the consumers' lock once none is left
        // (see `Channel::consume`).
        loop {
            let pending: Vec<Arc<Slot>> = lock(&self.slots)
                .iter()
                .filter(|slot| slot.generation() < generation)
                .cloned()
                .collect();
            if pending.is_empty() {
                let slots = lock(&self.slots);
                if slots.iter().any(|slot| slot.generation() < generation) {
                    continue;
                }
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = Now {
                    lapin: Arc::new(channel),
                    generation,
                    epoch,
                };
                drop(slots);
                break;
            }
            for slot in pending {
                slot.rename(renames);
                let consumer = slot.start_on(&self.connection, &channel, redeclare).await?;
                slot.replace(consumer, generation, epoch);
            }
        }
        Ok(())
    }

    /// Opens the channel again on `lapin`, the connection of `epoch` that
    /// replaces its own (what was declared was declared again already).
    pub(super) async fn reopen_on(
        &self,
        lapin: &lapin::Connection,
        epoch: u64,
        renames: &[(String, String)],
    ) -> lapin::Result<()> {
        let _reopening = self.reopening.lock().await;
        let generation = self.connection.next_generation();
        self.reopen(lapin, generation, epoch, renames, false).await
    }

    /// Opens the channel of `generation` again on its own connection,
    /// unless it was replaced already (or its connection is lost: the
    /// connection's recovery reopens it then). A replaced channel that is
    /// still open is closed once what was published on it is confirmed.
    pub(super) async fn reopen_alone(&self, generation: u64) -> lapin::Result<()> {
        let _reopening = self.reopening.lock().await;
        let old = self.now();
        if old.generation != generation || self.is_closed() {
            return Ok(());
        }
        if self.lost_since(old.epoch) {
            return Err(lost_connection());
        }
        let streak = match *lock(&self.reopened_at) {
            Some((at, streak)) if at.elapsed() < REOPEN_STREAK => streak + 1,
            _ => 0,
        };
        if streak > 0 {
            let pause = (REOPEN_PAUSE * 2_u32.saturating_pow(streak)).min(MAX_REOPEN_PAUSE);
            tracing::warn!(
                ?pause,
                "the broker keeps closing the channel; opening it again after a pause"
            );
            tokio::time::sleep(pause).await;
        }
        *lock(&self.reopened_at) = Some((Instant::now(), streak));
        let lapin = self.connection.lapin();
        let generation = self.connection.next_generation();
        let opening = self.reopen(&lapin, generation, old.epoch, &[], true);
        match tokio::time::timeout(
            self.connection.config.connect_timeout(),
            self.until_lost(old.epoch, opening),
        )
        .await
        {
            Ok(opened) => opened?,
            Err(_) => return Err(lost_connection()),
        }
        if old.lapin.status().connected() {
            let confirms = self.confirms;
            tokio::spawn(async move {
                if confirms {
                    let _ = tokio::time::timeout(DRAIN, old.lapin.wait_for_confirms()).await;
                }
                if let Err(error) = old.lapin.close(200, "replaced".into()).await {
                    tracing::debug!(%error, "closing a replaced channel");
                }
            });
        }
        Ok(())
    }

    /// Replaces the channel of `generation`, although it is open, at most
    /// once per `every` (waiting for its turn): for a channel that makes
    /// no progress while the broker says there is work. True when it was
    /// replaced (here or by another task).
    pub(super) async fn renew(&self, generation: u64, every: Duration, why: &str) -> bool {
        loop {
            let turn = {
                let mut renewed_at = lock(&self.renewed_at);
                if self.generation() != generation {
                    return true;
                }
                match *renewed_at {
                    Some(at) if at.elapsed() < every => at + every,
                    _ => {
                        *renewed_at = Some(Instant::now());
                        break;
                    }
                }
            };
            tokio::time::sleep_until(turn).await;
        }
        tracing::warn!(why, "replacing the channel");
        match self.reopen_alone(generation).await {
            Ok(()) => true,
            Err(error) => {
                tracing::debug!(%error, "replacing the channel failed");
                self.generation() != generation
            }
        }
    }
}

/// Resolves at `deadline`, or never.
async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// What an operation on a lost connection fails with.
pub(super) fn lost_connection() -> lapin::Error {
    lapin::ErrorKind::InvalidConnectionState(lapin::ConnectionState::Closed).into()
}

/// The error of an operation a lost connection interrupted for good.
pub(super) fn lost(operation: String, error: lapin::Error, reason: &str) -> Error {
    Error::Amqp {
        operation,
        reply_code: None,
        source: format!("{error}; {reason}").into(),
    }
}

/// The error of an operation on a channel that did not come back.
fn unusable(operation: String, reason: &str) -> Error {
    Error::Amqp {
        operation,
        reply_code: None,
        source: reason.into(),
    }
}

impl Channel {
    pub(crate) async fn qos(&self, prefetch: u16) -> Result<()> {
        // Recorded first: a channel opened again meanwhile gets it too.
        *lock(&self.0.prefetch) = Some(prefetch);
        self.0
            .with_channel(
                || "basic.qos".to_owned(),
                |channel| async move {
                    channel
                        .basic_qos(prefetch, BasicQosOptions::default())
                        .await
                },
            )
            .await?;
        Ok(())
    }

    pub(crate) async fn renew(&self) {
        let generation = self.0.generation();
        self.0
            .renew(generation, Duration::ZERO, "it made no progress")
            .await;
    }

    pub(crate) fn is_open(&self) -> bool {
        !self.0.is_closed()
            && !self.0.connection.link.recovering()
            && self.0.now().lapin.status().connected()
    }

    pub(crate) async fn close(&self) {
        self.0.closed.store(true, Ordering::Relaxed);
        let now = self.0.now();
        if now.lapin.status().connected()
            && let Err(e) = self
                .0
                .until_lost(now.epoch, now.lapin.close(200, "OK".into()))
                .await
        {
            tracing::debug!(error = %e, "channel close");
        }
    }
}

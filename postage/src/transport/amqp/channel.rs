//! A channel Postage opens again when its connection is replaced:
//! declarations, consumers, and publishing through a lost connection.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use lapin::options::{
    BasicCancelOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Confirmation};

use super::convert::{amqp_error, field_table};
use super::delivery::{Consumer, ConsumerId, Interruption, Slot};
use super::session::{Shared, open_lapin_channel};
use crate::error::{Error, Result};
use crate::transport::{DEADLINE_HEADER, OutgoingProperties};

/// How many times an operation interrupted by a lost connection is tried
/// again once the connection is back.
const RETRIES: u32 = 5;

/// How long a failure that may be a connection's loss waits for the loss
/// to be noticed (the connection's failure can reach an operation before
/// the connection's own state says so).
const LOSS_NOTICE: Duration = Duration::from_secs(2);

/// A channel. Cheap to clone: clones are the same channel.
#[derive(Clone)]
pub(crate) struct Channel(pub(super) Arc<ChannelShared>);

/// What the clones of a channel share, and what recovery reopens.
pub(crate) struct ChannelShared {
    pub(super) connection: Arc<Shared>,
    /// Read by every publish from any task: a read lock, which readers do
    /// not contend for.
    current: RwLock<Current>,
    confirms: bool,
    prefetch: Mutex<Option<u16>>,
    /// The consumers to start again on a new channel.
    slots: Mutex<Vec<Arc<Slot>>>,
    closed: AtomicBool,
}

/// The lapin channel now, and the connection's recovery count when it was
/// opened.
struct Current {
    lapin: Arc<lapin::Channel>,
    generation: u64,
}

impl From<Arc<ChannelShared>> for Channel {
    fn from(shared: Arc<ChannelShared>) -> Self {
        Channel(shared)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn basic_properties(props: &OutgoingProperties<'_>) -> BasicProperties {
    let mut properties = BasicProperties::default();
    if let Some(content_type) = props.content_type {
        properties = properties.with_content_type(content_type.into());
    }
    if props.persistent {
        properties = properties.with_delivery_mode(2);
    }
    if let Some(reply_to) = props.reply_to {
        properties = properties.with_reply_to(reply_to.into());
    }
    if let Some(correlation_id) = props.correlation_id {
        properties = properties.with_correlation_id(correlation_id.into());
    }
    if let Some(ms) = props.expiration_ms {
        properties = properties.with_expiration(ms.to_string().into());
    }
    let mut headers = props.headers.map(field_table);
    if let Some(ms) = props.deadline_ms {
        headers.get_or_insert_with(FieldTable::default).insert(
            DEADLINE_HEADER.into(),
            AMQPValue::LongLongInt(i64::try_from(ms).unwrap_or(i64::MAX)),
        );
    }
    if let Some(headers) = headers {
        properties = properties.with_headers(headers);
    }
    properties
}

impl ChannelShared {
    pub(super) fn new(
        connection: Arc<Shared>,
        lapin: lapin::Channel,
        generation: u64,
        confirms: bool,
    ) -> Arc<Self> {
        Arc::new(ChannelShared {
            connection,
            current: RwLock::new(Current {
                lapin: Arc::new(lapin),
                generation,
            }),
            confirms,
            prefetch: Mutex::new(None),
            slots: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
        })
    }

    fn current(&self) -> (Arc<lapin::Channel>, u64) {
        let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
        (current.lapin.clone(), current.generation)
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

    /// Was the connection lost (or is it being recovered) since the
    /// channel of `generation` (the epoch of its connection) was opened? A
    /// failure then is the loss's; otherwise the broker refused the
    /// operation.
    fn lost_since(&self, generation: u64) -> bool {
        self.connection.link.recovering()
            || self.connection.epoch() != generation
            || !self.connection.is_up()
    }

    /// Is a failure of work on the channel of `generation` the loss of its
    /// connection? A refusal by the broker (a soft error) is not; other
    /// failures can come a moment before the connection is seen lost, so
    /// the connection is given that moment.
    async fn failed_by_loss(&self, generation: u64, error: Option<&lapin::Error>) -> bool {
        if self.lost_since(generation) {
            return true;
        }
        if let Some(lapin::ErrorKind::ProtocolError(refusal)) = error.map(lapin::Error::kind)
            && matches!(refusal.kind(), lapin::protocol::AMQPErrorKind::Soft(_))
        {
            return false;
        }
        let link = &self.connection.link;
        let down = link.down_notified();
        self.connection.lost.notify_one();
        let _ = tokio::time::timeout(LOSS_NOTICE, down).await;
        self.lost_since(generation)
    }

    /// Waits until the channel of `generation` has been replaced by one on
    /// the connection that replaced its own, within the recovery timeout.
    pub(super) async fn reopened_after(&self, generation: u64) -> Result<(), &'static str> {
        let link = &self.connection.link;
        let deadline = tokio::time::Instant::now() + self.connection.config.recovery_timeout();
        self.connection.lost.notify_one();
        loop {
            let recovered = link.recovered_notified();
            if self.is_closed() || self.connection.closed() {
                return Err("the channel was closed");
            }
            let now = self.generation();
            if now > generation && now == self.connection.epoch() {
                return Ok(());
            }
            tokio::select! {
                () = recovered => {}
                () = tokio::time::sleep(Duration::from_millis(100)) => {}
                () = tokio::time::sleep_until(deadline) => {
                    return Err("the connection did not recover within the recovery timeout");
                }
            }
        }
    }

    /// Runs `work` on the channel of `generation` until it ends or the
    /// connection is found lost (lapin never answers on a lost connection).
    async fn until_lost<T>(
        &self,
        generation: u64,
        work: impl Future<Output = lapin::Result<T>>,
    ) -> lapin::Result<T> {
        let link = &self.connection.link;
        let down = link.down_notified();
        // Cheap, per publish without confirms: a loss not noticed yet is
        // caught by `down` below.
        if link.recovering() || self.connection.epoch() != generation {
            return Err(lost_connection());
        }
        tokio::select! {
            done = work => done,
            () = down => Err(lost_connection()),
        }
    }

    /// Runs `operation` on the channel; when a lost connection interrupts
    /// it, runs it again on the channel that replaces this one. Gives the
    /// generation of the channel it succeeded on with its value.
    pub(super) async fn with_channel<T, F, Fut>(
        &self,
        what: impl Fn() -> String,
        operation: F,
    ) -> Result<(T, u64)>
    where
        F: Fn(Arc<lapin::Channel>) -> Fut,
        Fut: Future<Output = lapin::Result<T>>,
    {
        let mut tries = 0;
        loop {
            let (channel, generation) = self.current();
            let error = match self.until_lost(generation, operation(channel)).await {
                Ok(value) => return Ok((value, generation)),
                Err(error) => error,
            };
            if tries == RETRIES || !self.failed_by_loss(generation, Some(&error)).await {
                return Err(amqp_error(what(), error));
            }
            tries += 1;
            if let Err(reason) = self.reopened_after(generation).await {
                return Err(lost(what(), error, reason));
            }
        }
    }

    /// Opens this channel again on a new connection, `lapin`: confirms,
    /// prefetch and consumers as they were (consumers of a renamed queue
    /// on its new name). Part of an attempt to replace the connection,
    /// whose epoch is `generation`.
    pub(super) async fn reopen(
        &self,
        lapin: &lapin::Connection,
        generation: u64,
        renames: &[(String, String)],
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
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = Current {
                    lapin: Arc::new(channel),
                    generation,
                };
                drop(slots);
                break;
            }
            for slot in pending {
                slot.rename(renames);
                let consumer = channel
                    .basic_consume(
                        slot.queue().as_str().into(),
                        "".into(),
                        BasicConsumeOptions {
                            no_ack: slot.no_ack(),
                            ..BasicConsumeOptions::default()
                        },
                        FieldTable::default(),
                    )
                    .await?;
                slot.replace(consumer, generation);
            }
        }
        Ok(())
    }
}

/// What an operation on a lost connection fails with.
fn lost_connection() -> lapin::Error {
    lapin::ErrorKind::InvalidConnectionState(lapin::ConnectionState::Closed).into()
}

/// The error of an operation a lost connection interrupted for good.
fn lost(operation: String, error: lapin::Error, reason: &str) -> Error {
    Error::Amqp {
        operation,
        reply_code: None,
        source: format!("{error}; {reason}").into(),
    }
}

impl Channel {
    pub(crate) async fn qos(&self, prefetch: u16) -> Result<()> {
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
        *lock(&self.0.prefetch) = Some(prefetch);
        Ok(())
    }

    pub(crate) async fn consume(&self, queue: &str, no_ack: bool) -> Result<Consumer> {
        let what = || format!("basic.consume {queue:?}");
        loop {
            let (started, generation) = self
                .0
                .with_channel(what, |channel| async move {
                    channel
                        .basic_consume(
                            queue.into(),
                            "".into(),
                            BasicConsumeOptions {
                                no_ack,
                                ..BasicConsumeOptions::default()
                            },
                            FieldTable::default(),
                        )
                        .await
                })
                .await?;
            // Registered under the consumers' lock, on which a recovery
            // swaps the channel: either the recovery sees this consumer and
            // starts it on the new channel, or the channel was swapped
            // already and the consumer is started again there.
            let mut slots = lock(&self.0.slots);
            if self.0.generation() != generation {
                continue;
            }
            let slot = Slot::new(queue, no_ack, started.clone(), generation);
            slots.push(slot.clone());
            return Ok(Consumer::new(
                slot,
                started,
                generation,
                self.0.connection.clone(),
            ));
        }
    }

    pub(crate) async fn cancel(&self, consumer: &ConsumerId) -> Result<()> {
        let slot = &consumer.0;
        slot.cancel();
        let queue = slot.queue();
        let others = {
            let mut slots = lock(&self.0.slots);
            slots.retain(|s| !Arc::ptr_eq(s, slot));
            slots.iter().any(|s| *s.queue() == *queue)
        };
        if !others {
            self.0.connection.state().record.consumers_gone(&queue);
        }
        let (channel, generation) = self.0.current();
        let tag = slot.tag();
        match channel
            .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
            .await
        {
            Ok(()) => Ok(()),
            // Gone with the connection: nothing left to cancel.
            Err(_) if self.0.lost_since(generation) => Ok(()),
            Err(e) => Err(amqp_error("basic.cancel", e)),
        }
    }

    /// See [`transport::Channel::publish`](crate::transport::Channel::publish).
    pub(crate) async fn publish(
        &self,
        exchange: &str,
        key: &str,
        body: &[u8],
        props: &OutgoingProperties<'_>,
    ) -> Result<()> {
        let shared = &*self.0;
        let link = &shared.connection.link;
        let recovery_timeout = shared.connection.config.recovery_timeout();
        let options = BasicPublishOptions {
            // Without confirms lapin keeps a returned message to itself,
            // never reported: mandatory is only asked for with confirms.
            mandatory: props.mandatory && shared.confirms,
            immediate: false,
        };
        let mut retries = 0;
        loop {
            let (channel, generation) = shared.current();
            let attempt = async {
                channel
                    .basic_publish(
                        exchange.into(),
                        key.into(),
                        options,
                        body,
                        basic_properties(props),
                    )
                    .await?
                    .await
            };
            let outcome = if shared.confirms {
                // A confirmation lost with the connection may never come:
                // the attempt ends when the connection is replaced, or at
                // the recovery timeout. Armed before the attempt, so that
                // no replacement is missed.
                let recovered = link.recovered_notified();
                tokio::select! {
                    outcome = tokio::time::timeout(recovery_timeout, attempt) => match outcome {
                        Ok(outcome) => outcome,
                        Err(_) => return Err(Error::Unconfirmed {
                            exchange: exchange.to_owned(),
                            key: key.to_owned(),
                            timeout: recovery_timeout,
                        }),
                    },
                    () = recovered, if generation == shared.connection.epoch() => {
                        if retries == RETRIES {
                            return Err(Error::PublishInterrupted {
                                exchange: exchange.to_owned(),
                                key: key.to_owned(),
                                attempts: retries + 1,
                            });
                        }
                        retries += 1;
                        tracing::warn!(exchange, key, "the connection was replaced before the publisher confirmation came; publishing again");
                        continue;
                    }
                }
            } else {
                // Without confirms the attempt ends once the frames are
                // written or rejected (lapin refuses a publish on a channel
                // that is down at once, and fails the frames it could not
                // write when its connection dies).
                attempt.await
            };
            let error = match outcome {
                Ok(confirmation) => return confirmed(confirmation, exchange, key),
                Err(error) => error,
            };
            if retries == RETRIES || !shared.failed_by_loss(generation, Some(&error)).await {
                return Err(amqp_error(format!("basic.publish to {exchange:?}"), error));
            }
            retries += 1;
            tracing::warn!(exchange, key, %error, "publish interrupted; waiting for the connection to recover");
            if let Err(reason) = shared.reopened_after(generation).await {
                return Err(lost(
                    format!("basic.publish to {exchange:?}"),
                    error,
                    reason,
                ));
            }
        }
    }

    /// Waits until `consumer`'s channel has been opened again after
    /// `interruption`, and gives the consumer that replaces it; an error
    /// when the consumer ended for another reason or cannot be restored.
    pub(crate) async fn resume_consumer(
        &self,
        queue: &str,
        consumer: &Consumer,
        interruption: Interruption,
    ) -> Result<Consumer> {
        let what = format!("basic.consume {queue:?}");
        let generation = consumer.generation();
        if consumer.slot().is_cancelled() {
            return Err(interruption.into_error(what, "the consumer was cancelled"));
        }
        if !self
            .0
            .failed_by_loss(generation, interruption.error())
            .await
        {
            return Err(interruption
                .into_error(what, "the broker ended the consumer or closed its channel"));
        }
        tracing::warn!(queue, %interruption, "consumer interrupted; waiting for recovery");
        if let Err(reason) = self.0.reopened_after(generation).await {
            return Err(interruption.into_error(what, reason));
        }
        let resumed = consumer.resumed();
        if resumed.generation() <= generation {
            return Err(interruption.into_error(what, "the consumer was not started again"));
        }
        tracing::info!(queue, "consumer recovered");
        Ok(resumed)
    }

    pub(crate) fn is_open(&self) -> bool {
        !self.0.is_closed()
            && !self.0.connection.link.recovering()
            && self.0.current().0.status().connected()
    }

    pub(crate) async fn close(&self) {
        self.0.closed.store(true, Ordering::Relaxed);
        let (channel, generation) = self.0.current();
        if channel.status().connected()
            && let Err(e) = self
                .0
                .until_lost(generation, channel.close(200, "OK".into()))
                .await
        {
            tracing::debug!(error = %e, "channel close");
        }
    }
}

/// A confirmation as a result: a nack or a returned (unroutable) mandatory
/// message is an error.
fn confirmed(confirmation: Confirmation, exchange: &str, key: &str) -> Result<()> {
    match confirmation {
        Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
        Confirmation::Ack(Some(returned)) | Confirmation::Nack(Some(returned)) => {
            Err(Error::Unroutable {
                exchange: exchange.to_owned(),
                key: key.to_owned(),
                reply: returned.reply_text.to_string(),
            })
        }
        Confirmation::Nack(None) => Err(Error::Nacked {
            exchange: exchange.to_owned(),
            key: key.to_owned(),
        }),
    }
}

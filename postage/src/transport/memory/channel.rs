//! A channel of the in-memory broker, opened again when its connection is
//! attached again: declarations, consumers and publishing.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;

use super::broker::Guard;
use super::delivery::{Consumer, ConsumerId, Interruption, Slot};
use super::flow::Published;
use super::session::Session;
use super::state::{Destination, Message, Refusal, Refused, State};
use crate::error::{Error, Result};
use crate::topology::{Exchange, Queue};
use crate::transport::record::Record;
use crate::transport::{DEADLINE_HEADER, Declared, OutgoingProperties, new_message_id};

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A channel. Cheap to clone: clones are the same channel.
#[derive(Clone)]
pub(crate) struct Channel(Arc<ChannelShared>);

/// What the clones of a channel share, and what recovery reopens.
pub(crate) struct ChannelShared {
    session: Arc<Session>,
    confirms: bool,
    current: Mutex<Current>,
    closed: AtomicBool,
}

struct Current {
    /// The broker's id of the channel now.
    id: u64,
    /// The connection it is on.
    generation: u64,
    prefetch: Option<u16>,
    slots: Vec<Arc<Slot>>,
}

impl From<Arc<ChannelShared>> for Channel {
    fn from(shared: Arc<ChannelShared>) -> Self {
        Channel(shared)
    }
}

/// The error of an operation on a channel that can no longer be used.
fn unusable(operation: String, reason: impl Into<String>) -> Error {
    Error::Amqp {
        operation,
        reply_code: None,
        source: reason.into().into(),
    }
}

impl ChannelShared {
    pub(super) fn new(
        session: Arc<Session>,
        id: u64,
        generation: u64,
        confirms: bool,
    ) -> Arc<Self> {
        Arc::new(ChannelShared {
            session,
            confirms,
            current: Mutex::new(Current {
                id,
                generation,
                prefetch: None,
                slots: Vec::new(),
            }),
            closed: AtomicBool::new(false),
        })
    }

    /// Opens this channel again on connection `connection` (a new one,
    /// or its own when the broker closed the channel), with its prefetch
    /// and consumers (on renamed queues' new names). With `record`, each
    /// consumed queue it holds is declared again first, with its
    /// bindings.
    pub(super) fn reopen(
        &self,
        state: &mut Guard<'_>,
        connection: u64,
        renames: &[(String, String)],
        mut record: Option<&mut Record>,
    ) {
        if self.closed.load(Ordering::Relaxed) {
            return;
        }
        let mut current = lock(&self.current);
        let Some(id) = state.open_channel(connection) else {
            return;
        };
        current.id = id;
        current.generation = connection;
        if let Some(prefetch) = current.prefetch {
            let _ = state.qos(id, prefetch);
        }
        for slot in &current.slots {
            let mut queue = slot.queue();
            if let Some((_, new)) = renames.iter().find(|(old, _)| *old == queue) {
                queue.clone_from(new);
            }
            if let Some(record) = record.as_deref_mut() {
                match redeclare_queue(state, id, record, &queue) {
                    Ok(Some(renamed)) => queue = renamed,
                    Ok(None) => {}
                    Err(refusal) => {
                        tracing::warn!(queue, reason = %refusal.text, "a queue could not be declared again");
                    }
                }
            }
            let (tx, rx) = mpsc::unbounded_channel();
            match state.consume(id, &queue, slot.no_ack, tx) {
                Ok(tag) => slot.replace(queue, tag, id, connection, rx),
                Err(refusal) => {
                    tracing::warn!(queue, reason = %refusal.text, "a consumer could not be started again");
                }
            }
        }
    }

    /// Opens the channel again on its own connection when the broker
    /// closed it (its consumers' queues declared again from the record);
    /// false when the connection is lost (its recovery reopens it) or the
    /// channel is open.
    fn reopen_alone(&self, state: &mut Guard<'_>) -> bool {
        let (id, connection) = {
            let current = lock(&self.current);
            (current.id, current.generation)
        };
        if self.session.id() != Some(connection) || state.channels.contains_key(&id) {
            return false;
        }
        let mut session = lock(&self.session.state);
        self.reopen(state, connection, &[], Some(&mut session.record));
        true
    }

    /// Waits until the channel of `generation` has been opened again on
    /// the connection that replaced its own, within the recovery timeout
    /// (or for as long as it takes, without `deadline`).
    async fn reopened_after(
        &self,
        generation: u64,
        deadline: Option<tokio::time::Instant>,
    ) -> std::result::Result<(), &'static str> {
        let session = &self.session;
        let until = async {
            match deadline {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        let mut until = std::pin::pin!(until);
        loop {
            let recovered = session.link.recovered_notified();
            if self.closed.load(Ordering::Relaxed) || session.closed() {
                return Err("the channel was closed");
            }
            let now = lock(&self.current).generation;
            if now != generation && session.id() == Some(now) {
                return Ok(());
            }
            tokio::select! {
                () = recovered => {}
                () = tokio::time::sleep(Duration::from_millis(20)) => {}
                () = &mut until => {
                    return Err("the connection did not recover within the recovery timeout");
                }
            }
        }
    }

    /// Runs `operation` on the channel under the broker's lock; while the
    /// connection is lost, waits for it to be attached again. A refusal
    /// closes the channel, as RabbitMQ closes it.
    async fn run<T>(
        &self,
        what: impl Fn() -> String,
        mut operation: impl FnMut(&mut State, u64, &mut Current) -> Refused<T>,
    ) -> Result<T> {
        loop {
            let generation = {
                let mut state = self.session.broker.lock();
                if self.closed.load(Ordering::Relaxed) || self.session.closed() {
                    return Err(unusable(what(), "the channel is closed"));
                }
                // Closed by the broker (an earlier refusal): opened again.
                self.reopen_alone(&mut state);
                let mut current = lock(&self.current);
                if self.session.id() == Some(current.generation) {
                    let id = current.id;
                    return operation(&mut state, id, &mut current).map_err(|refusal| {
                        state.close_channel(id, Some(&refusal));
                        refusal.into_error(what())
                    });
                }
                current.generation
            };
            let deadline = tokio::time::Instant::now() + self.session.config.recovery_timeout();
            if let Err(reason) = self.reopened_after(generation, Some(deadline)).await {
                return Err(unusable(what(), reason));
            }
        }
    }

    fn record(&self) -> MutexGuard<'_, super::session::SessionState> {
        lock(&self.session.state)
    }
}

impl Channel {
    pub(crate) async fn declare_exchange(&self, exchange: &Exchange) -> Result<()> {
        let what = || format!("exchange.declare {:?}", exchange.name());
        self.0
            .run(what, |state, id, _| state.declare_exchange(id, exchange))
            .await?;
        self.0.record().record.exchange(exchange);
        Ok(())
    }

    pub(crate) async fn declare_queue(&self, queue: &Queue) -> Result<Declared> {
        let what = || format!("queue.declare {:?}", queue.name());
        let (name, messages, consumers) = self
            .0
            .run(what, |state, id, _| {
                state.declare_queue(id, queue, queue.is_passive())
            })
            .await?;
        if !queue.is_passive() {
            self.0.record().record.queue(queue, &name);
        }
        Ok(Declared {
            name,
            messages,
            consumers,
        })
    }

    pub(crate) async fn bind(
        &self,
        destination: &str,
        to_exchange: bool,
        exchange: &str,
        key: &str,
        arguments: &BTreeMap<String, Value>,
    ) -> Result<()> {
        let what = || format!("bind {destination:?} to {exchange:?} with key {key:?}");
        let target = Destination::new(destination, to_exchange);
        self.0
            .run(what, |state, id, _| {
                state.bind(id, target.clone(), exchange, key, arguments)
            })
            .await?;
        self.0
            .record()
            .record
            .binding(destination, to_exchange, exchange, key, arguments);
        Ok(())
    }

    pub(crate) async fn unbind(
        &self,
        destination: &str,
        to_exchange: bool,
        exchange: &str,
        key: &str,
    ) -> Result<()> {
        let what = || format!("unbind {destination:?} from {exchange:?} with key {key:?}");
        let target = Destination::new(destination, to_exchange);
        self.0
            .run(what, |state, id, _| {
                state.unbind(id, &target, exchange, key)
            })
            .await?;
        self.0.record().record.unbound(destination, exchange, key);
        Ok(())
    }

    pub(crate) async fn delete_queue(&self, queue: &str) -> Result<u32> {
        let what = || format!("queue.delete {queue:?}");
        let messages = self
            .0
            .run(what, |state, id, _| state.delete_queue(id, queue))
            .await?;
        self.0.record().record.forget_queue(queue);
        Ok(messages)
    }

    pub(crate) async fn delete_exchange(&self, exchange: &str) -> Result<()> {
        let what = || format!("exchange.delete {exchange:?}");
        self.0
            .run(what, |state, id, _| state.delete_exchange(id, exchange))
            .await?;
        self.0.record().record.forget_exchange(exchange);
        Ok(())
    }

    pub(crate) async fn qos(&self, prefetch: u16) -> Result<()> {
        self.0
            .run(
                || "basic.qos".to_owned(),
                |state, id, current| {
                    state.qos(id, prefetch)?;
                    current.prefetch = Some(prefetch);
                    Ok(())
                },
            )
            .await
    }

    pub(crate) async fn consume(&self, queue: &str, no_ack: bool) -> Result<Consumer> {
        let what = || format!("basic.consume {queue:?}");
        let slot = self
            .0
            .run(what, |state, id, current| {
                let (tx, rx) = mpsc::unbounded_channel();
                let tag = state.consume(id, queue, no_ack, tx)?;
                let slot = Slot::new(queue, no_ack, tag, id, current.generation, rx);
                current.slots.push(slot.clone());
                Ok(slot)
            })
            .await?;
        Ok(Consumer::new(slot, self.0.session.clone()))
    }

    pub(crate) async fn cancel(&self, consumer: &ConsumerId) -> Result<()> {
        let slot = &consumer.0;
        slot.cancel();
        let queue = slot.queue();
        let mut state = self.0.session.broker.lock();
        let others = {
            let mut current = lock(&self.0.current);
            current.slots.retain(|s| !Arc::ptr_eq(s, slot));
            current.slots.iter().any(|s| s.queue() == queue)
        };
        let (channel, tag) = slot.tag();
        // Gone with a lost connection or a closed channel: nothing to cancel.
        let _ = state.cancel(channel, &tag);
        drop(state);
        if !others {
            self.0.record().record.consumers_gone(&queue);
        }
        Ok(())
    }

    /// See [`transport::Channel::publish`](crate::transport::Channel::publish).
    pub(crate) async fn publish(
        &self,
        exchange: &str,
        key: &str,
        body: &[u8],
        props: &OutgoingProperties<'_>,
    ) -> Result<()> {
        let confirms = self.0.confirms;
        let body: Arc<[u8]> = Arc::from(body);
        let message_id = props.message_id.map_or_else(new_message_id, str::to_owned);
        let message = || Message {
            exchange: exchange.to_owned(),
            routing_key: key.to_owned(),
            body: body.clone(),
            content_type: props.content_type.map(str::to_owned),
            persistent: props.persistent,
            reply_to: props.reply_to.map(str::to_owned),
            correlation_id: props.correlation_id.map(str::to_owned),
            message_id: Some(message_id.clone()),
            user_id: props.user_id.map(str::to_owned),
            expiration: props.expiration_ms.map(|ms| ms.to_string()),
            headers: {
                let mut headers = props.headers.cloned().unwrap_or_default();
                if let Some(ms) = props.deadline_ms {
                    headers.insert(DEADLINE_HEADER.into(), ms.into());
                }
                headers
            },
        };
        let what = || format!("basic.publish to {exchange:?}");
        let user = self.0.session.config.user();
        let published = self
            .0
            .run(what, |state, id, _| match props.user_id {
                // As RabbitMQ: a user_id must be the connection's user.
                Some(user_id) if user_id != user => Err(Refusal::precondition(format!(
                    "user_id property set to '{user_id}' but authenticated user was '{user}'"
                ))),
                _ => state.publish(id, message()),
            })
            .await;
        match published {
            Ok(Published::Routed) => Ok(()),
            Ok(Published::Unroutable) if confirms && props.mandatory => Err(Error::Unroutable {
                exchange: exchange.to_owned(),
                key: key.to_owned(),
                reply: "NO_ROUTE".to_owned(),
            }),
            Ok(Published::Unroutable) => Ok(()),
            Ok(Published::Refused) if confirms => Err(Error::Nacked {
                exchange: exchange.to_owned(),
                key: key.to_owned(),
            }),
            Ok(Published::Refused) => Ok(()),
            // Without confirms a refused publish is not answered: the
            // channel is closed, and the next operation on it fails.
            Err(Error::Amqp {
                reply_code: Some(_),
                ..
            }) if !confirms => Ok(()),
            Err(error) => Err(error),
        }
    }

    pub(crate) async fn resume_consumer(
        &self,
        queue: &str,
        consumer: &Consumer,
        interruption: Interruption,
        redeclare: bool,
    ) -> Result<Consumer> {
        let what = format!("basic.consume {queue:?}");
        if consumer.slot().is_cancelled() {
            return Err(interruption.into_error(what, "the consumer was cancelled"));
        }
        let replaced = consumer.resumed();
        if !replaced.same_as(consumer) && self.is_open() {
            // Started again already, on a channel that replaced its own.
            return Ok(replaced);
        }
        match &interruption {
            Interruption::Lost => {
                tracing::warn!(queue, "consumer interrupted; waiting for recovery");
                // However long it takes: a consumer waits for its
                // connection.
                let cancelled = async {
                    while !consumer.slot().is_cancelled() {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                };
                let reopened = tokio::select! {
                    reopened = self.0.reopened_after(consumer.generation(), None) => reopened,
                    () = cancelled => Err("the consumer was cancelled"),
                };
                if let Err(reason) = reopened {
                    return Err(interruption.into_error(what, reason));
                }
            }
            Interruption::Closed(refusal) => {
                tracing::warn!(queue, reason = %refusal.text, "the broker closed the consumer's channel; opening it again");
                let mut state = self.0.session.broker.lock();
                self.0.reopen_alone(&mut state);
            }
            Interruption::Cancelled if redeclare => {
                tracing::warn!(
                    queue,
                    "the broker cancelled the consumer (its queue was deleted?); declaring the queue again"
                );
                if let Err(refusal) = self.restart(consumer) {
                    return Err(interruption.into_error(what, &refusal.text));
                }
            }
            Interruption::Cancelled => {
                return Err(interruption.into_error(
                    what,
                    "the broker cancelled the consumer (its queue was deleted?)",
                ));
            }
        }
        let resumed = consumer.resumed();
        if resumed.same_as(consumer) {
            return Err(interruption.into_error(what, "the consumer was not started again"));
        }
        tracing::info!(queue, "consumer resumed");
        Ok(resumed)
    }

    /// Starts a consumer the broker cancelled again on the channel, its
    /// queue declared again from the record first.
    fn restart(&self, consumer: &Consumer) -> std::result::Result<(), Refusal> {
        let slot = consumer.slot();
        let mut state = self.0.session.broker.lock();
        self.0.reopen_alone(&mut state);
        let current = lock(&self.0.current);
        let mut session = lock(&self.0.session.state);
        let mut queue = slot.queue();
        if let Some(renamed) = redeclare_queue(&mut state, current.id, &mut session.record, &queue)?
        {
            queue = renamed;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let tag = state.consume(current.id, &queue, slot.no_ack, tx)?;
        slot.replace(queue, tag, current.id, current.generation, rx);
        Ok(())
    }

    pub(crate) async fn renew(&self) {
        let mut state = self.0.session.broker.lock();
        let id = lock(&self.0.current).id;
        state.close_channel(id, None);
        self.0.reopen_alone(&mut state);
    }

    pub(crate) fn is_open(&self) -> bool {
        if self.0.closed.load(Ordering::Relaxed) || self.0.session.closed() {
            return false;
        }
        let state = self.0.session.broker.lock();
        let current = lock(&self.0.current);
        self.0.session.id() == Some(current.generation) && state.channels.contains_key(&current.id)
    }

    pub(crate) async fn close(&self) {
        self.0.closed.store(true, Ordering::Relaxed);
        let mut state = self.0.session.broker.lock();
        let current = lock(&self.0.current);
        for slot in &current.slots {
            slot.cancel();
        }
        state.close_channel(current.id, None);
    }
}

/// Declares `queue` again on channel `channel` as `record` has it (the
/// exchanges its bindings name, the queue, its bindings); nothing when the
/// record does not hold it. Gives the new name of a server-named queue.
fn redeclare_queue(
    state: &mut State,
    channel: u64,
    record: &mut Record,
    queue: &str,
) -> std::result::Result<Option<String>, Refusal> {
    let Some((declared, exchanges, bindings)) = record.queue_topology(queue) else {
        return Ok(None);
    };
    for exchange in &exchanges {
        state.declare_exchange(channel, exchange)?;
    }
    let (name, _, _) = state.declare_queue(channel, &declared.declaration, false)?;
    for binding in &bindings {
        state.bind(
            channel,
            Destination::new(&name, false),
            &binding.exchange,
            &binding.key,
            &binding.arguments,
        )?;
    }
    if name == queue {
        return Ok(None);
    }
    record.renamed(queue, &name);
    Ok(Some(name))
}

//! `Channel`: what the runtime asks of a broker, over one channel.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use super::{ConsumerId, Interruption, OutgoingProperties, RawConsumer, amqp};
use crate::error::{Error, Result};
use crate::topology::{Exchange, Queue, Target};

/// A channel. Cheap to clone: clones share the channel and the record of
/// the exchanges declared on it.
#[derive(Clone)]
pub(crate) struct Channel {
    backend: Backend,
    /// Log every body sent and received (`POSTAGE_DEBUG_MODE`).
    debug: bool,
    /// The names of the exchanges declared through this channel.
    declared: Arc<Mutex<HashSet<String>>>,
}

/// The broker behind a channel.
#[derive(Clone)]
pub(super) enum Backend {
    Amqp(amqp::Channel),
}

impl Channel {
    pub(super) fn new(backend: Backend, debug: bool) -> Self {
        Channel {
            backend,
            debug,
            declared: Arc::default(),
        }
    }

    /// Declares an exchange (the default exchange needs none).
    pub(crate) async fn declare_exchange(&self, exchange: &Exchange) -> Result<()> {
        if exchange.is_default() {
            return Ok(());
        }
        match &self.backend {
            Backend::Amqp(channel) => channel.declare_exchange(exchange).await?,
        }
        self.declared
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(exchange.name().to_owned());
        Ok(())
    }

    /// Declares an exchange unless it was declared through this channel
    /// before.
    async fn ensure_exchange(&self, exchange: &Exchange) -> Result<()> {
        let known = self
            .declared
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(exchange.name());
        if known {
            return Ok(());
        }
        self.declare_exchange(exchange).await
    }

    /// The (exchange, key) pairs of a send to `target` given the default
    /// pairs `defaults`, whose exchanges were declared on this channel;
    /// exchanges named by the target alone are declared first.
    pub(crate) async fn destinations<'a>(
        &self,
        target: Target,
        defaults: &'a [(Exchange, String)],
    ) -> Result<Cow<'a, [(Exchange, String)]>> {
        let (pairs, named) = target.pairs(defaults);
        if pairs.is_empty() {
            return Err(Error::NoDestination);
        }
        if named {
            for (exchange, _) in pairs.iter() {
                self.ensure_exchange(exchange).await?;
            }
        }
        Ok(pairs)
    }

    /// Declares a queue and returns its name (the broker's for a
    /// server-named queue).
    pub(crate) async fn declare_queue(&self, queue: &Queue) -> Result<String> {
        match &self.backend {
            Backend::Amqp(channel) => channel.declare_queue(queue).await,
        }
    }

    /// Binds `queue` to `exchange` with `key`.
    pub(crate) async fn bind(&self, queue: &str, exchange: &str, key: &str) -> Result<()> {
        match &self.backend {
            Backend::Amqp(channel) => channel.bind(queue, exchange, key).await,
        }
    }

    /// How many unacknowledged deliveries the broker sends ahead.
    pub(crate) async fn qos(&self, prefetch: u16) -> Result<()> {
        match &self.backend {
            Backend::Amqp(channel) => channel.qos(prefetch).await,
        }
    }

    /// Starts consuming `queue`; with `no_ack` deliveries need no
    /// acknowledgement.
    pub(crate) async fn consume(&self, queue: &str, no_ack: bool) -> Result<RawConsumer> {
        match &self.backend {
            Backend::Amqp(channel) => channel.consume(queue, no_ack).await.map(RawConsumer::Amqp),
        }
    }

    /// Cancels a consumer.
    pub(crate) async fn cancel(&self, consumer: &ConsumerId) -> Result<()> {
        match (&self.backend, consumer) {
            (Backend::Amqp(channel), ConsumerId::Amqp(consumer)) => channel.cancel(consumer).await,
        }
    }

    /// Publishes a body and, on a channel with confirms, waits for the
    /// broker's confirmation: a nack or a returned (unroutable) mandatory
    /// message is an error. A publish interrupted by a lost connection, or
    /// whose confirmation was still awaited when the connection came back,
    /// is sent again once the connection has recovered (at least once: the
    /// broker may then hold it twice).
    pub(crate) async fn publish(
        &self,
        exchange: &str,
        key: &str,
        body: &[u8],
        props: &OutgoingProperties<'_>,
    ) -> Result<()> {
        if self.debug {
            tracing::debug!(exchange, key, body = %String::from_utf8_lossy(body), "publish");
        }
        match &self.backend {
            Backend::Amqp(channel) => channel.publish(exchange, key, body, props).await,
        }
    }

    /// Waits until the channel of `consumer` (of `queue`) has recovered
    /// after `interruption`, and gives the consumer that replaces it; an
    /// error when the consumer ended for another reason (cancelled by the
    /// broker, its channel closed) or cannot be restored.
    pub(crate) async fn resume_consumer(
        &self,
        queue: &str,
        consumer: &RawConsumer,
        interruption: Interruption,
    ) -> Result<RawConsumer> {
        match (&self.backend, consumer, interruption) {
            (
                Backend::Amqp(channel),
                RawConsumer::Amqp(consumer),
                Interruption::Amqp(interruption),
            ) => channel
                .resume_consumer(queue, consumer, interruption)
                .await
                .map(RawConsumer::Amqp),
        }
    }

    /// Is the channel open (not closing, closed or recovering)?
    pub(crate) fn is_open(&self) -> bool {
        match &self.backend {
            Backend::Amqp(channel) => channel.is_open(),
        }
    }

    /// Log every body sent and received?
    pub(crate) fn debug(&self) -> bool {
        self.debug
    }

    /// Closes the channel; a failure to close is logged.
    pub(crate) async fn close(&self) {
        match &self.backend {
            Backend::Amqp(channel) => channel.close().await,
        }
    }
}

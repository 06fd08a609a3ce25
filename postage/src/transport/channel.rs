//! `Channel`: what the runtime asks of a broker, over one channel.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::Value;

use tracing::Instrument;

use super::{ConsumerId, Declared, Interruption, OutgoingProperties, RawConsumer, amqp};
use crate::error::{Error, Result};
use crate::telemetry::{self, About, PublishInstruments, Published};
use crate::topology::{Exchange, Queue, Target};

/// A channel. Cheap to clone: clones share the channel and the record of
/// the exchanges declared on it.
#[derive(Clone)]
pub(crate) struct Channel {
    backend: Backend,
    /// Log every body sent and received (`POSTAGE_DEBUG_MODE`).
    debug: bool,
    /// Publisher confirms on?
    confirms: bool,
    /// The names of the exchanges declared through this channel.
    declared: Arc<Mutex<HashSet<String>>>,
    /// What the metrics count of the channel's publishes.
    published: Arc<PublishInstruments>,
}

/// The broker behind a channel.
#[derive(Clone)]
pub(super) enum Backend {
    Amqp(amqp::Channel),
    #[cfg(feature = "testing")]
    Memory(super::memory::Channel),
}

/// Runs the same code on whichever backend it is.
macro_rules! on_backend {
    ($backend:expr, $channel:ident => $body:expr) => {
        match $backend {
            Backend::Amqp($channel) => $body,
            #[cfg(feature = "testing")]
            Backend::Memory($channel) => $body,
        }
    };
}

impl Channel {
    pub(super) fn new(backend: Backend, debug: bool, confirms: bool) -> Self {
        Channel {
            backend,
            debug,
            confirms,
            declared: Arc::default(),
            published: Arc::default(),
        }
    }

    /// Declares an exchange (the default exchange needs none).
    pub(crate) async fn declare_exchange(&self, exchange: &Exchange) -> Result<()> {
        if exchange.is_default() {
            return Ok(());
        }
        on_backend!(&self.backend, channel => channel.declare_exchange(exchange).await?);
        self.declared
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(exchange.name().to_owned());
        Ok(())
    }

    /// Declares an exchange unless it was declared through this channel
    /// before.
    pub(crate) async fn ensure_exchange(&self, exchange: &Exchange) -> Result<()> {
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
        self.declare_queue_counted(queue)
            .await
            .map(|declared| declared.name)
    }

    /// Declares (or, passive, checks) a queue: its name, ready messages
    /// and consumers.
    pub(crate) async fn declare_queue_counted(&self, queue: &Queue) -> Result<Declared> {
        on_backend!(&self.backend, channel => channel.declare_queue(queue).await)
    }

    /// Binds a queue (or, `to_exchange`, an exchange) `destination` to
    /// `exchange` with `key` and `arguments`.
    pub(crate) async fn bind(
        &self,
        destination: &str,
        to_exchange: bool,
        exchange: &str,
        key: &str,
        arguments: &BTreeMap<String, Value>,
    ) -> Result<()> {
        on_backend!(&self.backend, channel => {
            channel.bind(destination, to_exchange, exchange, key, arguments).await
        })
    }

    /// Removes a binding.
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    pub(crate) async fn unbind(
        &self,
        destination: &str,
        to_exchange: bool,
        exchange: &str,
        key: &str,
    ) -> Result<()> {
        on_backend!(&self.backend, channel => {
            channel.unbind(destination, to_exchange, exchange, key).await
        })
    }

    /// Deletes a queue; gives how many messages it held.
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    pub(crate) async fn delete_queue(&self, queue: &str) -> Result<u32> {
        on_backend!(&self.backend, channel => channel.delete_queue(queue).await)
    }

    /// Deletes an exchange.
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    pub(crate) async fn delete_exchange(&self, exchange: &str) -> Result<()> {
        self.declared
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(exchange);
        on_backend!(&self.backend, channel => channel.delete_exchange(exchange).await)
    }

    /// How many unacknowledged deliveries the broker sends ahead.
    pub(crate) async fn qos(&self, prefetch: u16) -> Result<()> {
        on_backend!(&self.backend, channel => channel.qos(prefetch).await)
    }

    /// Starts consuming `queue`; with `no_ack` deliveries need no
    /// acknowledgement.
    pub(crate) async fn consume(&self, queue: &str, no_ack: bool) -> Result<RawConsumer> {
        match &self.backend {
            Backend::Amqp(channel) => channel.consume(queue, no_ack).await.map(RawConsumer::Amqp),
            #[cfg(feature = "testing")]
            Backend::Memory(channel) => channel
                .consume(queue, no_ack)
                .await
                .map(RawConsumer::Memory),
        }
    }

    /// Cancels a consumer.
    pub(crate) async fn cancel(&self, consumer: &ConsumerId) -> Result<()> {
        match (&self.backend, consumer) {
            (Backend::Amqp(channel), ConsumerId::Amqp(consumer)) => channel.cancel(consumer).await,
            #[cfg(feature = "testing")]
            (Backend::Memory(channel), ConsumerId::Memory(consumer)) => {
                channel.cancel(consumer).await
            }
            #[cfg(feature = "testing")]
            _ => Ok(()),
        }
    }

    /// Publishes a body and, on a channel with confirms, waits for the
    /// broker's confirmation: a nack or a returned (unroutable) mandatory
    /// message is an error. A publish interrupted by a lost connection, or
    /// whose confirmation was still awaited when the connection came back,
    /// is sent again once the connection has recovered (at least once: the
    /// broker may then hold it twice).
    ///
    /// Within a `publish` span (its trace context added to the headers
    /// with the `opentelemetry` feature), counted by the metrics as a
    /// message of `about`.
    pub(crate) async fn publish(
        &self,
        exchange: &str,
        key: &str,
        body: &[u8],
        props: &OutgoingProperties<'_>,
        about: &About<'_>,
    ) -> Result<()> {
        if self.debug {
            tracing::debug!(exchange, key, body = %String::from_utf8_lossy(body), "publish");
        }
        let span = telemetry::span::publish(exchange, key, body.len(), props.correlation_id, about);
        let result = if span.is_disabled() {
            self.publish_raw(exchange, key, body, props).await
        } else {
            let traced = telemetry::inject(&span, props.headers);
            let props = OutgoingProperties {
                headers: traced.as_ref().or(props.headers),
                ..props.clone()
            };
            let result = self
                .publish_raw(exchange, key, body, &props)
                .instrument(span.clone())
                .await;
            if let Err(error) = &result {
                telemetry::span::failed(&span, error.kind_name());
            }
            result
        };
        let outcome = match &result {
            Ok(()) if self.confirms => Published::Confirmed,
            Ok(()) => Published::Sent,
            Err(Error::Unroutable { .. }) => Published::Returned,
            Err(_) => Published::Failed,
        };
        self.published
            .record(exchange, about.kind, about.name, outcome);
        result
    }

    async fn publish_raw(
        &self,
        exchange: &str,
        key: &str,
        body: &[u8],
        props: &OutgoingProperties<'_>,
    ) -> Result<()> {
        on_backend!(&self.backend, channel => channel.publish(exchange, key, body, props).await)
    }

    /// Waits until `consumer` (of `queue`) runs again after
    /// `interruption` and gives the consumer that replaces it: after its
    /// connection is recovered, after its channel (closed by the broker)
    /// is opened again, or, when the broker cancelled the consumer alone
    /// (its queue deleted) and `redeclare` is on, after the queue is
    /// declared again from the connection's record. An error when the
    /// consumer was cancelled on request or cannot be restored within the
    /// recovery timeout.
    pub(crate) async fn resume_consumer(
        &self,
        queue: &str,
        consumer: &RawConsumer,
        interruption: Interruption,
        redeclare: bool,
    ) -> Result<RawConsumer> {
        match (&self.backend, consumer, interruption) {
            (
                Backend::Amqp(channel),
                RawConsumer::Amqp(consumer),
                Interruption::Amqp(interruption),
            ) => channel
                .resume_consumer(queue, consumer, interruption, redeclare)
                .await
                .map(RawConsumer::Amqp),
            #[cfg(feature = "testing")]
            (
                Backend::Memory(channel),
                RawConsumer::Memory(consumer),
                Interruption::Memory(interruption),
            ) => channel
                .resume_consumer(queue, consumer, interruption, redeclare)
                .await
                .map(RawConsumer::Memory),
            #[cfg(feature = "testing")]
            (_, _, interruption) => Err(Error::Amqp {
                operation: format!("basic.consume {queue:?}"),
                reply_code: None,
                source: format!("{interruption}; the consumer is of another broker").into(),
            }),
        }
    }

    /// Replaces the channel although it is open (its consumers started
    /// again on the new one, its unsettled deliveries left to the broker
    /// to deliver again): for a channel that makes no progress while the
    /// broker says there is work.
    pub(crate) async fn renew(&self) {
        on_backend!(&self.backend, channel => channel.renew().await)
    }

    /// Is the channel open (not closing, closed or recovering)?
    pub(crate) fn is_open(&self) -> bool {
        on_backend!(&self.backend, channel => channel.is_open())
    }

    /// Log every body sent and received?
    pub(crate) fn debug(&self) -> bool {
        self.debug
    }

    /// Closes the channel; a failure to close is logged.
    pub(crate) async fn close(&self) {
        on_backend!(&self.backend, channel => channel.close().await)
    }
}

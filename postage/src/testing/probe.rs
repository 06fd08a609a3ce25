//! [`Probe`]: a channel for tests to act on a broker directly.

use std::collections::BTreeMap;
use std::future::IntoFuture;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;

use crate::BoxFuture;
use crate::error::Result;
use crate::telemetry::About;
use crate::topology::{Exchange, Queue};
use crate::transport::{
    Channel, Connection, Headers, OutgoingProperties, RawConsumer, RawDelivery, Role,
};

/// A channel on any connection (to RabbitMQ or to a
/// [`MemoryBroker`](super::MemoryBroker)) that declares, binds, deletes,
/// publishes with any properties, and consumes raw deliveries: what a test
/// needs to set a broker up, or to check what a component did to it.
///
/// A refusal by the broker is an [`Error::Amqp`](crate::Error::Amqp) with its reply code, and
/// closes the probe's channel as RabbitMQ closes it: open another probe
/// after one.
///
/// ```
/// use postage::testing::{MemoryBroker, Probe};
/// use postage::{Exchange, Queue};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> postage::Result<()> {
/// let broker = MemoryBroker::new();
/// let probe = Probe::open(&broker.connect().await?).await?;
/// probe.declare_exchange(&Exchange::headers("by-format")).await?;
/// probe.declare_queue(&Queue::new("pdfs")).await?;
/// let mut arguments = postage::Headers::new();
/// arguments.insert("format".into(), "pdf".into());
/// probe.bind_with("pdfs", "by-format", "", &arguments).await?;
/// probe.publish("by-format", "", "report").header("format", "pdf").await?;
///
/// let mut pdfs = probe.consume("pdfs").await?;
/// let delivery = pdfs.next().await.expect("open")?;
/// assert_eq!(delivery.body(), b"report");
/// delivery.ack().await?;
///
/// let missing = probe.declare_queue(&Queue::new("nothing").passive(true)).await;
/// assert_eq!(missing.unwrap_err().reply_code(), Some(404));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Probe {
    channel: Channel,
}

impl std::fmt::Debug for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probe")
            .field("open", &self.channel.is_open())
            .finish()
    }
}

/// A queue as a declaration found it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueDeclared {
    /// Its name (the broker's, for a server-named queue).
    pub name: String,
    /// Messages ready in it.
    pub messages: u32,
    /// Its consumers.
    pub consumers: u32,
}

impl Probe {
    /// A probe with publisher confirms: a publish returns once the broker
    /// confirmed it.
    pub async fn open(connection: &Connection) -> Result<Probe> {
        Ok(Probe {
            channel: connection.open_channel(Role::Consume, true).await?,
        })
    }

    /// A probe without publisher confirms.
    pub async fn open_unconfirmed(connection: &Connection) -> Result<Probe> {
        Ok(Probe {
            channel: connection.open_channel(Role::Consume, false).await?,
        })
    }

    /// Declares an exchange (or, passive, checks it exists).
    pub async fn declare_exchange(&self, exchange: &Exchange) -> Result<()> {
        self.channel.declare_exchange(exchange).await
    }

    /// Declares a queue (or, passive, checks it exists): its name, ready
    /// messages and consumers.
    pub async fn declare_queue(&self, queue: &Queue) -> Result<QueueDeclared> {
        let declared = self.channel.declare_queue_counted(queue).await?;
        Ok(QueueDeclared {
            name: declared.name,
            messages: declared.messages,
            consumers: declared.consumers,
        })
    }

    /// How many messages are ready in `queue` (a passive declaration).
    pub async fn depth(&self, queue: &str) -> Result<u32> {
        let declared = self.declare_queue(&Queue::new(queue).passive(true)).await?;
        Ok(declared.messages)
    }

    /// Binds `queue` to `exchange` with `key`.
    pub async fn bind(&self, queue: &str, exchange: &str, key: &str) -> Result<()> {
        self.channel
            .bind(queue, false, exchange, key, &BTreeMap::new())
            .await
    }

    /// Binds `queue` to `exchange` with `key` and binding `arguments`
    /// (`x-match` and the headers a headers exchange matches).
    pub async fn bind_with(
        &self,
        queue: &str,
        exchange: &str,
        key: &str,
        arguments: &Headers,
    ) -> Result<()> {
        self.channel
            .bind(queue, false, exchange, key, arguments)
            .await
    }

    /// Binds exchange `destination` to exchange `source` with `key`.
    pub async fn bind_exchange(&self, destination: &str, source: &str, key: &str) -> Result<()> {
        self.channel
            .bind(destination, true, source, key, &BTreeMap::new())
            .await
    }

    /// Removes the binding of `queue` to `exchange` with `key`.
    pub async fn unbind(&self, queue: &str, exchange: &str, key: &str) -> Result<()> {
        self.channel.unbind(queue, false, exchange, key).await
    }

    /// Deletes a queue; gives how many messages it held.
    pub async fn delete_queue(&self, queue: &str) -> Result<u32> {
        self.channel.delete_queue(queue).await
    }

    /// Deletes an exchange.
    pub async fn delete_exchange(&self, exchange: &str) -> Result<()> {
        self.channel.delete_exchange(exchange).await
    }

    /// How many unacknowledged deliveries each consumer started after
    /// this gets ahead (0: no limit).
    pub async fn qos(&self, prefetch: u16) -> Result<()> {
        self.channel.qos(prefetch).await
    }

    /// Publishes `body` to `exchange` with `key`; set properties on the
    /// returned builder, then await it.
    pub fn publish<'a>(
        &'a self,
        exchange: &'a str,
        key: &'a str,
        body: impl Into<Vec<u8>>,
    ) -> ProbePublish<'a> {
        ProbePublish {
            probe: self,
            exchange,
            key,
            body: body.into(),
            headers: None,
            expiration: None,
            persistent: false,
            mandatory: false,
            reply_to: None,
            correlation_id: None,
            content_type: None,
            user_id: None,
        }
    }

    /// Consumes `queue`, acknowledging by hand.
    pub async fn consume(&self, queue: &str) -> Result<ProbeConsumer> {
        self.start(queue, false).await
    }

    /// Consumes `queue` with no acknowledgements (`no_ack`).
    pub async fn consume_no_ack(&self, queue: &str) -> Result<ProbeConsumer> {
        self.start(queue, true).await
    }

    async fn start(&self, queue: &str, no_ack: bool) -> Result<ProbeConsumer> {
        Ok(ProbeConsumer {
            raw: self.channel.consume(queue, no_ack).await?,
            channel: self.channel.clone(),
            queue: queue.to_owned(),
        })
    }

    /// Is the channel open (not closed by a refusal, not recovering)?
    pub fn is_open(&self) -> bool {
        self.channel.is_open()
    }

    /// Closes the channel: its consumers end, unacknowledged deliveries
    /// are requeued.
    pub async fn close(&self) {
        self.channel.close().await;
    }
}

/// A publish being prepared by a [`Probe`]; `.await` it to send.
#[must_use = "a publish does nothing until it is awaited"]
#[derive(Debug)]
pub struct ProbePublish<'a> {
    probe: &'a Probe,
    exchange: &'a str,
    key: &'a str,
    body: Vec<u8>,
    headers: Option<Headers>,
    expiration: Option<Duration>,
    persistent: bool,
    mandatory: bool,
    reply_to: Option<String>,
    correlation_id: Option<String>,
    content_type: Option<String>,
    user_id: Option<String>,
}

impl ProbePublish<'_> {
    /// The AMQP `user_id` (the broker refuses one that is not the
    /// connection's user, closing the channel).
    pub fn user_id(mut self, user_id: impl Into<String>) -> Self {
        self.user_id = Some(user_id.into());
        self
    }

    /// Adds a header.
    pub fn header(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.headers
            .get_or_insert_with(Headers::new)
            .insert(key.into(), value.into());
        self
    }

    /// The per-message TTL (`expiration`).
    pub fn expiration(mut self, ttl: Duration) -> Self {
        self.expiration = Some(ttl);
        self
    }

    /// Persistent (delivery mode 2).
    pub fn persistent(mut self, persistent: bool) -> Self {
        self.persistent = persistent;
        self
    }

    /// Mandatory: with confirms, an unroutable message is
    /// [`Error::Unroutable`](crate::Error::Unroutable).
    pub fn mandatory(mut self, mandatory: bool) -> Self {
        self.mandatory = mandatory;
        self
    }

    /// The `reply_to` property.
    pub fn reply_to(mut self, queue: impl Into<String>) -> Self {
        self.reply_to = Some(queue.into());
        self
    }

    /// The `correlation_id` property.
    pub fn correlation_id(mut self, id: impl Into<String>) -> Self {
        self.correlation_id = Some(id.into());
        self
    }

    /// The `content_type` property.
    pub fn content_type(mut self, content_type: impl Into<String>) -> Self {
        self.content_type = Some(content_type.into());
        self
    }
}

impl<'a> IntoFuture for ProbePublish<'a> {
    type Output = Result<()>;
    type IntoFuture = BoxFuture<'a, Result<()>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let props = OutgoingProperties {
                content_type: self.content_type.as_deref(),
                persistent: self.persistent,
                mandatory: self.mandatory,
                reply_to: self.reply_to.as_deref(),
                correlation_id: self.correlation_id.as_deref(),
                message_id: None,
                user_id: self.user_id.as_deref(),
                expiration_ms: self.expiration.map(|ttl| ttl.as_millis()),
                headers: self.headers.as_ref(),
                deadline_ms: None,
            };
            self.probe
                .channel
                .publish(self.exchange, self.key, &self.body, &props, &About::UNKNOWN)
                .await
        })
    }
}

/// The deliveries of one queue to a [`Probe`].
pub struct ProbeConsumer {
    raw: RawConsumer,
    channel: Channel,
    queue: String,
}

impl std::fmt::Debug for ProbeConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProbeConsumer")
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}

impl ProbeConsumer {
    /// The next delivery; `None` once cancelled, an error when the
    /// consumer was ended by the broker or could not be resumed after a
    /// lost connection.
    pub async fn next(&mut self) -> Option<Result<ProbeDelivery>> {
        loop {
            match self.raw.next().await? {
                Ok(raw) => return Some(Ok(ProbeDelivery { raw })),
                Err(interruption) => {
                    match self
                        .channel
                        .resume_consumer(&self.queue, &self.raw, interruption, false)
                        .await
                    {
                        Ok(resumed) => self.raw = resumed,
                        Err(error) => return Some(Err(error)),
                    }
                }
            }
        }
    }

    /// The next delivery if one comes within `wait`.
    pub async fn next_within(&mut self, wait: Duration) -> Option<Result<ProbeDelivery>> {
        tokio::time::timeout(wait, self.next()).await.ok().flatten()
    }

    /// Cancels the consumer (its unacknowledged deliveries stay with the
    /// channel until settled or the channel closes).
    pub async fn cancel(self) -> Result<()> {
        self.channel.cancel(&self.raw.id()).await
    }
}

/// A raw delivery to a [`Probe`].
pub struct ProbeDelivery {
    raw: RawDelivery,
}

impl std::fmt::Debug for ProbeDelivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProbeDelivery")
            .field("exchange", &self.exchange())
            .field("routing_key", &self.routing_key())
            .field("body", &String::from_utf8_lossy(self.body()))
            .finish_non_exhaustive()
    }
}

impl ProbeDelivery {
    /// The body.
    pub fn body(&self) -> &[u8] {
        self.raw.data()
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(self.raw.data()).into_owned()
    }

    /// The exchange it was published to.
    pub fn exchange(&self) -> &str {
        self.raw.exchange()
    }

    /// Its AMQP `message_id`.
    pub fn message_id(&self) -> Option<&str> {
        self.raw.message_id()
    }

    /// Its AMQP `user_id`.
    pub fn user_id(&self) -> Option<&str> {
        self.raw.user_id()
    }

    /// Its routing key.
    pub fn routing_key(&self) -> &str {
        self.raw.routing_key()
    }

    /// Was it delivered before?
    pub fn redelivered(&self) -> bool {
        self.raw.redelivered()
    }

    /// Its headers.
    pub fn headers(&self) -> Headers {
        self.raw.headers()
    }

    /// The `reply_to` property.
    pub fn reply_to(&self) -> Option<&str> {
        self.raw.reply_to()
    }

    /// The `correlation_id` property.
    pub fn correlation_id(&self) -> Option<&str> {
        self.raw.correlation_id()
    }

    /// The `content_type` property.
    pub fn content_type(&self) -> Option<&str> {
        self.raw.content_type()
    }

    /// The `x-delivery-count` header (quorum queues).
    pub fn delivery_count(&self) -> Option<u64> {
        self.raw.delivery_count()
    }

    /// Was it published persistent?
    pub fn is_persistent(&self) -> bool {
        self.raw.is_persistent()
    }

    /// Acknowledges it.
    pub async fn ack(&self) -> Result<()> {
        self.raw.ack().await
    }

    /// Rejects it, requeued or not (then dead-lettered, or dropped).
    pub async fn reject(&self, requeue: bool) -> Result<()> {
        self.raw.reject(requeue).await
    }
}

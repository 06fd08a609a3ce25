//! Producers: default (exchange, key) pairs, overrides, and the send
//! builder.

use std::borrow::Cow;
use std::collections::HashSet;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::Value;

use crate::encoding::{Encoder, JsonEncoder};
use crate::error::{Error, Result};
use crate::exchange::Exchange;
use crate::fingerprint::Fingerprint;
use crate::message::{Category, IntoMessage, Message, MessageParts, WireFingerprint};
use crate::rpc::{ReplyStrategy, RpcCall, RpcSettings, RpcState};
use crate::transport::{Channel, Connection, OutgoingProperties};

/// The boxed future a builder resolves to.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Builds a [`Producer`].
#[derive(Debug, Clone)]
pub struct ProducerBuilder {
    eks: Vec<(Exchange, String)>,
    fingerprint: Option<Fingerprint>,
    encoder: Arc<dyn Encoder>,
    confirms: bool,
    persistent: bool,
    mandatory: bool,
    rpc: RpcSettings,
}

impl Default for ProducerBuilder {
    fn default() -> Self {
        ProducerBuilder {
            eks: Vec::new(),
            fingerprint: None,
            encoder: Arc::new(JsonEncoder),
            confirms: true,
            persistent: false,
            mandatory: false,
            rpc: RpcSettings::default(),
        }
    }
}

impl ProducerBuilder {
    /// Adds a default (exchange, routing key) pair.
    #[must_use]
    pub fn ek(mut self, exchange: Exchange, key: impl Into<String>) -> Self {
        self.eks.push((exchange, key.into()));
        self
    }

    /// Adds default (exchange, routing key) pairs (Python's `eks`).
    #[must_use]
    pub fn eks<K: Into<String>>(mut self, eks: impl IntoIterator<Item = (Exchange, K)>) -> Self {
        self.eks.extend(
            eks.into_iter()
                .map(|(exchange, key)| (exchange, key.into())),
        );
        self
    }

    /// The fingerprint put into every message (default: an anonymous one
    /// with the connection's virtual host).
    #[must_use]
    pub fn fingerprint(mut self, fingerprint: Fingerprint) -> Self {
        self.fingerprint = Some(fingerprint);
        self
    }

    /// Replaces the encoder (default [`JsonEncoder`]).
    #[must_use]
    pub fn encoder(mut self, encoder: impl Encoder) -> Self {
        self.encoder = Arc::new(encoder);
        self
    }

    /// Publisher confirms (default on): a send returns once the broker has
    /// taken the message, and a nack is an error.
    #[must_use]
    pub fn confirms(mut self, confirms: bool) -> Self {
        self.confirms = confirms;
        self
    }

    /// Persistent delivery (default off, transient, as Python Postage).
    #[must_use]
    pub fn persistent(mut self, persistent: bool) -> Self {
        self.persistent = persistent;
        self
    }

    /// Mandatory publishing (default off): with confirms, a message no
    /// queue receives is returned and the send fails with
    /// [`Error::Unroutable`]; without confirms the flag is not sent, since
    /// nothing would report the returned message. RPC requests are always
    /// mandatory, so with [`rpc_confirms`](Self::rpc_confirms) an
    /// unroutable request fails at once.
    #[must_use]
    pub fn mandatory(mut self, mandatory: bool) -> Self {
        self.mandatory = mandatory;
        self
    }

    /// Default RPC timeout per attempt (30 s).
    #[must_use]
    pub fn rpc_timeout(mut self, timeout: Duration) -> Self {
        self.rpc.timeout = timeout;
        self
    }

    /// Default RPC retries after the first attempt (4, so 5 sends in all).
    #[must_use]
    pub fn rpc_retries(mut self, retries: u32) -> Self {
        self.rpc.retries = retries;
        self
    }

    /// Publisher confirms on RPC requests sent over direct reply-to
    /// (default off: the reply confirms the request). On, a request that no
    /// queue takes fails at once with [`Error::Unroutable`] instead of
    /// timing out, and each call waits for one more broker round trip.
    #[must_use]
    pub fn rpc_confirms(mut self, confirms: bool) -> Self {
        self.rpc.confirms = confirms;
        self
    }

    /// How RPC replies come back (default [`ReplyStrategy::DirectReplyTo`]).
    #[must_use]
    pub fn reply_strategy(mut self, strategy: ReplyStrategy) -> Self {
        self.rpc.strategy = strategy;
        self
    }

    /// Opens the producer's channel and declares its exchanges.
    pub async fn connect(self, connection: &Connection) -> Result<Producer> {
        let channel = connection.open_channel(self.confirms).await?;
        let mut declared = HashSet::new();
        for (exchange, _) in &self.eks {
            if declared.insert(exchange.name().to_owned()) {
                channel.declare_exchange(exchange).await?;
            }
        }
        let fingerprint = self
            .fingerprint
            .unwrap_or_else(|| Fingerprint::anonymous().with_vhost(connection.config().vhost()));
        Ok(Producer {
            inner: Arc::new(Inner {
                connection: connection.clone(),
                wire_fingerprint: WireFingerprint::from(&fingerprint),
                fingerprint,
                channel,
                eks: self.eks,
                encoder: self.encoder,
                confirms: self.confirms,
                persistent: self.persistent,
                mandatory: self.mandatory,
                declared: Mutex::new(declared),
                rpc: RpcState::new(self.rpc),
            }),
        })
    }
}

/// Sends messages to its default (exchange, key) pairs, or elsewhere on
/// request. Cheap to clone; clones share one channel.
///
/// ```no_run
/// use postage::prelude::*;
///
/// const ECHO: Exchange = Exchange::direct("echo-exchange");
///
/// # async fn run() -> postage::Result<()> {
/// let connection = Connection::from_env().await?;
/// let producer = Producer::builder()
///     .ek(ECHO, "echo-rk")
///     .fingerprint(Fingerprint::new("echo_send", "application"))
///     .connect(&connection)
///     .await?;
///
/// producer.command("echo", "A test message").await?;                       // every pair
/// producer.command("echo", "to all").key("echo-fanout-rk").await?;         // first exchange, this key
/// producer.send(MessageStatus::new("online")).persistent(true).await?;     // any message
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Producer {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) connection: Connection,
    pub(crate) fingerprint: Fingerprint,
    /// The fingerprint as written into messages, encoded once.
    pub(crate) wire_fingerprint: WireFingerprint,
    pub(crate) channel: Channel,
    pub(crate) eks: Vec<(Exchange, String)>,
    pub(crate) encoder: Arc<dyn Encoder>,
    pub(crate) confirms: bool,
    pub(crate) persistent: bool,
    pub(crate) mandatory: bool,
    declared: Mutex<HashSet<String>>,
    pub(crate) rpc: RpcState,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field(
                "eks",
                &self
                    .inner
                    .eks
                    .iter()
                    .map(|(e, k)| (e.name(), k.as_str()))
                    .collect::<Vec<_>>(),
            )
            .field("fingerprint", &self.inner.fingerprint)
            .field("confirms", &self.inner.confirms)
            .finish_non_exhaustive()
    }
}

/// Where a send goes.
#[derive(Debug, Clone, Default)]
pub(crate) enum Target {
    /// Every default pair.
    #[default]
    Default,
    /// The first default exchange, with this key.
    Key(String),
    /// These pairs instead of the defaults.
    Eks(Vec<(Exchange, String)>),
}

impl Target {
    /// Python's `_key`: ignored once pairs are given.
    pub(crate) fn with_key(self, key: String) -> Self {
        match self {
            Target::Eks(eks) => Target::Eks(eks),
            _ => Target::Key(key),
        }
    }

    /// Python's `_eks`.
    pub(crate) fn eks<K: Into<String>>(eks: impl IntoIterator<Item = (Exchange, K)>) -> Self {
        Target::Eks(eks.into_iter().map(|(e, k)| (e, k.into())).collect())
    }
}

impl Producer {
    /// Starts building a producer.
    pub fn builder() -> ProducerBuilder {
        ProducerBuilder::default()
    }

    /// The fingerprint put into every message.
    pub fn fingerprint(&self) -> &Fingerprint {
        &self.inner.fingerprint
    }

    /// The default (exchange, key) pairs.
    pub fn eks(&self) -> &[(Exchange, String)] {
        &self.inner.eks
    }

    /// The connection the producer uses.
    pub fn connection(&self) -> &Connection {
        &self.inner.connection
    }

    /// Sends any message (the producer's fingerprint replaces the
    /// message's). Await the returned builder, after setting options.
    pub fn send(&self, message: impl IntoMessage) -> Publish<'_> {
        self.publish(Body::Message(Box::new(message.into_message())))
    }

    /// Sends a command (Python's `message_<name>(parameters)`), encoded
    /// from its parts (no [`Message`] is built for it).
    pub fn command(&self, name: &str, parameters: impl Into<Value>) -> Publish<'_> {
        let parameters = parameters.into();
        let parts = MessageParts::command(name, Category::Message, &parameters);
        let body = self.encode_parts(&parts);
        self.publish(Body::Encoded(body))
    }

    /// Forwards a raw body unchanged (no fingerprint, no re-encoding), with
    /// the encoder's content type.
    pub fn forward(&self, body: impl Into<Vec<u8>>) -> Publish<'_> {
        self.publish(Body::Encoded(Ok(body.into())))
    }

    /// Calls an RPC command and waits for its reply (Python's
    /// `rpc_<name>(parameters)`). See [`RpcCall`] for options.
    pub fn rpc(&self, name: &str, parameters: impl Into<Value>) -> RpcCall<'_> {
        RpcCall::command(self, name, parameters.into())
    }

    /// Calls with a prepared message (its category becomes `rpc`).
    pub fn rpc_message(&self, message: impl IntoMessage) -> RpcCall<'_> {
        RpcCall::new(self, message.into_message())
    }

    /// Closes the producer's channel. Other clones stop working too.
    pub async fn close(&self) {
        self.inner.channel.close().await;
    }

    /// Resolves a target to (exchange, key) pairs, declaring any exchange
    /// not declared before.
    pub(crate) async fn resolve(&self, target: Target) -> Result<Cow<'_, [(Exchange, String)]>> {
        let pairs = match target {
            // The defaults are borrowed: no copy per send.
            Target::Default => Cow::Borrowed(self.inner.eks.as_slice()),
            Target::Key(key) => match self.inner.eks.first() {
                Some((exchange, _)) => Cow::Owned(vec![(exchange.clone(), key)]),
                None => Cow::Owned(Vec::new()),
            },
            Target::Eks(eks) => {
                for (exchange, _) in &eks {
                    self.declare(exchange).await?;
                }
                Cow::Owned(eks)
            }
        };
        if pairs.is_empty() {
            return Err(Error::NoDestination);
        }
        Ok(pairs)
    }

    async fn declare(&self, exchange: &Exchange) -> Result<()> {
        let known = self
            .inner
            .declared
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(exchange.name());
        if !known {
            self.inner.channel.declare_exchange(exchange).await?;
            self.inner
                .declared
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(exchange.name().to_owned());
        }
        Ok(())
    }

    /// Encodes a message with the producer's fingerprint.
    pub(crate) fn encode(&self, message: Message) -> Result<Vec<u8>> {
        Ok(self
            .inner
            .encoder
            .encode_with_fingerprint(message, &self.inner.wire_fingerprint)?)
    }

    /// A send of `body` to the default pairs, with the producer's options.
    fn publish(&self, body: Body) -> Publish<'_> {
        Publish {
            producer: self,
            body,
            target: Target::Default,
            persistent: None,
            mandatory: None,
        }
    }

    pub(crate) fn encode_parts(&self, parts: &MessageParts<'_>) -> Result<Vec<u8>> {
        Ok(self
            .inner
            .encoder
            .encode_parts(parts, &self.inner.wire_fingerprint)?)
    }

    pub(crate) fn content_type(&self) -> &str {
        self.inner.encoder.content_type()
    }

    async fn publish_all(
        &self,
        pairs: &[(Exchange, String)],
        body: &[u8],
        props: &OutgoingProperties<'_>,
    ) -> Result<()> {
        for (exchange, key) in pairs {
            self.inner
                .channel
                .publish(exchange.name(), key, body, props)
                .await?;
        }
        Ok(())
    }
}

enum Body {
    /// Encoded when sent, with the producer's fingerprint.
    Message(Box<Message>),
    /// Encoded already (a command from its parts), or forwarded as is.
    Encoded(Result<Vec<u8>>),
}

/// A send being prepared; `.await` it to send. Options:
/// [`key`](Publish::key), [`eks`](Publish::eks), [`persistent`](Publish::persistent),
/// [`mandatory`](Publish::mandatory).
#[must_use = "a send does nothing until it is awaited"]
pub struct Publish<'a> {
    producer: &'a Producer,
    body: Body,
    target: Target,
    persistent: Option<bool>,
    mandatory: Option<bool>,
}

impl std::fmt::Debug for Publish<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publish")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl<'a> Publish<'a> {
    /// Sends to the producer's first exchange with this key instead
    /// (Python's `_key`). Ignored when [`eks`](Publish::eks) is set.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.target = self.target.with_key(key.into());
        self
    }

    /// Sends to these (exchange, key) pairs instead of the defaults
    /// (Python's `_eks`).
    pub fn eks<K: Into<String>>(mut self, eks: impl IntoIterator<Item = (Exchange, K)>) -> Self {
        self.target = Target::eks(eks);
        self
    }

    /// Persistent (`true`) or transient delivery for this send.
    pub fn persistent(mut self, persistent: bool) -> Self {
        self.persistent = Some(persistent);
        self
    }

    /// Mandatory publishing for this send (see
    /// [`ProducerBuilder::mandatory`]).
    pub fn mandatory(mut self, mandatory: bool) -> Self {
        self.mandatory = Some(mandatory);
        self
    }

    async fn run(self) -> Result<()> {
        let producer = self.producer;
        let body = match self.body {
            Body::Message(message) => producer.encode(*message)?,
            Body::Encoded(body) => body?,
        };
        let pairs = producer.resolve(self.target).await?;
        let props = OutgoingProperties {
            content_type: Some(producer.content_type()),
            persistent: self.persistent.unwrap_or(producer.inner.persistent),
            mandatory: self.mandatory.unwrap_or(producer.inner.mandatory),
            ..OutgoingProperties::default()
        };
        producer.publish_all(&pairs, &body, &props).await
    }
}

impl<'a> IntoFuture for Publish<'a> {
    type Output = Result<()>;
    type IntoFuture = BoxFuture<'a, Result<()>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}

//! [`ProducerBuilder`]: default pairs, fingerprint, encoder, delivery and
//! RPC defaults.

use std::sync::Arc;
use std::time::Duration;

use super::Producer;
use super::delay::{DEFAULT_PREFIX, Delays};
use super::sender::Inner;
use crate::encoding::{Encoder, JsonEncoder};
use crate::error::Result;
use crate::fingerprint::Fingerprint;
use crate::message::WireFingerprint;
use crate::middleware::{BoxError, Layer, Outgoing, SendLayers, SendService, Service};
use crate::rpc::{ReplyStrategy, RpcSettings, RpcState};
use crate::topology::Exchange;
use crate::transport::{Connection, Role};

/// Builds a [`Producer`].
#[derive(Debug, Clone)]
pub struct ProducerBuilder {
    eks: Vec<(Exchange, String)>,
    fingerprint: Option<Fingerprint>,
    encoder: Arc<dyn Encoder>,
    /// The encoder is [`JsonEncoder`]: commands are written straight from
    /// their parameters.
    json: bool,
    confirms: bool,
    persistent: bool,
    mandatory: bool,
    user_id: bool,
    rpc: RpcSettings,
    layers: SendLayers,
    delay_prefix: String,
}

impl Default for ProducerBuilder {
    fn default() -> Self {
        ProducerBuilder {
            eks: Vec::new(),
            fingerprint: None,
            encoder: Arc::new(JsonEncoder),
            json: true,
            confirms: true,
            persistent: false,
            mandatory: false,
            user_id: false,
            rpc: RpcSettings::default(),
            layers: SendLayers::default(),
            delay_prefix: DEFAULT_PREFIX.to_owned(),
        }
    }
}

impl ProducerBuilder {
    /// The prefix of the names of the delay levels that delayed sends
    /// ([`Publish::send_after`](crate::producer::Publish::send_after)) go through:
    /// `postage.delay` unless set (exchanges and queues
    /// `postage.delay.L00` to `.L21`, `.gate`, `.deliver`,
    /// `.to-default`, `.cancelled.<id>`). Components that share delayed
    /// sends and cancellations use the same prefix.
    #[must_use]
    pub fn delay_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.delay_prefix = prefix.into();
        self
    }

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
        self.json = (&encoder as &dyn std::any::Any).is::<JsonEncoder>();
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
    /// [`Error::Unroutable`](crate::Error::Unroutable); without confirms the flag is not sent, since
    /// nothing would report the returned message. RPC requests are always
    /// mandatory, so with [`rpc_confirms`](Self::rpc_confirms) an
    /// unroutable request fails at once.
    ///
    /// The broker does not say which publish a returned message was, and
    /// may confirm several with one acknowledgement. So that each send is
    /// told of its own returned message, a mandatory send with confirms
    /// goes out when no other send of its channel awaits a confirmation,
    /// and the next ones wait for its own: mandatory sends from many tasks
    /// at once take a round trip each.
    #[must_use]
    pub fn mandatory(mut self, mandatory: bool) -> Self {
        self.mandatory = mandatory;
        self
    }

    /// Every send and RPC request carries the connection's user as its
    /// AMQP `user_id` (off by default). RabbitMQ refuses a publish whose
    /// `user_id` is not the connection's user, so a receiver can trust it:
    /// a processor with [`control_users`](crate::processor::ProcessorBuilder::control_users)
    /// accepts `quit` and `restart` commands only from those users.
    /// [`Remote`](crate::remote::Remote) control commands always carry it.
    #[must_use]
    pub fn user_id(mut self, user_id: bool) -> Self {
        self.user_id = user_id;
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
    /// queue takes fails at once with [`Error::Unroutable`](crate::Error::Unroutable) instead of
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

    /// Adds a [`tower`] layer around each publish: it sees every send and
    /// RPC request as an [`Outgoing`] (its encoded body, targets, headers
    /// and properties) and the publish's outcome. The first layer added
    /// is the outermost. Without layers a send publishes directly; with
    /// some, the stack is boxed. See `postage::middleware`.
    ///
    /// ```no_run
    /// use postage::middleware::{Next, Outgoing, from_fn};
    /// use postage::prelude::*;
    ///
    /// /// Every message says which tenant it is for.
    /// async fn tenant(mut outgoing: Outgoing, next: Next<Outgoing>) -> postage::Result<()> {
    ///     outgoing.headers_mut().insert("tenant".into(), "acme".into());
    ///     Ok(next.run(outgoing).await?)
    /// }
    ///
    /// # async fn run(connection: Connection) -> postage::Result<()> {
    /// let producer = Producer::builder()
    ///     .ek(Exchange::direct("billing"), "charge")
    ///     .layer(from_fn(tenant))
    ///     .connect(&connection)
    ///     .await?;
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn layer<L>(mut self, layer: L) -> Self
    where
        L: Layer<SendService> + Send + Sync + 'static,
        L::Service: Service<Outgoing, Response = ()> + Clone + Send + Sync + 'static,
        <L::Service as Service<Outgoing>>::Error: Into<BoxError>,
        <L::Service as Service<Outgoing>>::Future: Send + 'static,
    {
        self.layers.push(layer);
        self
    }

    /// Opens the producer's channel and declares its exchanges.
    pub async fn connect(self, connection: &Connection) -> Result<Producer> {
        let channel = connection
            .open_channel(Role::Publish, self.confirms)
            .await?;
        let mut declared = Vec::new();
        for (exchange, _) in &self.eks {
            if !declared.contains(&exchange.name()) {
                declared.push(exchange.name());
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
                layers: self.layers.service(&channel),
                channel,
                eks: self.eks,
                encoder: self.encoder,
                json: self.json,
                confirms: self.confirms,
                persistent: self.persistent,
                mandatory: self.mandatory,
                user_id: self.user_id.then(|| connection.config().user().to_owned()),
                rpc: RpcState::new(self.rpc),
                delays: Delays::new(self.delay_prefix),
            }),
        })
    }
}

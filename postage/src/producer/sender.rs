//! [`Producer`]: sends messages to its default (exchange, key) pairs, or
//! elsewhere on request, and makes RPC calls.

use std::sync::Arc;

use serde::Serialize;

use super::delay::Delays;
use super::publish::Body;
use super::{ProducerBuilder, Publish};
use crate::encoding::{EncodeError, Encoder, encode_command};
use crate::error::Result;
use crate::fingerprint::Fingerprint;
use crate::message::{Category, IntoMessage, Message, MessageParts, WireFingerprint};
use crate::middleware::{Outgoing, SendService, publish_outgoing, send};
use crate::rpc::{Origin, RpcCall, RpcState};
use crate::telemetry::About;
use crate::topology::{Exchange, Target};
use crate::transport::{Channel, Connection, OutgoingProperties};

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
    pub(super) inner: Arc<Inner>,
}

/// What clones of a producer share.
pub(super) struct Inner {
    pub(super) connection: Connection,
    pub(super) fingerprint: Fingerprint,
    /// The fingerprint as written into messages, encoded once.
    pub(super) wire_fingerprint: WireFingerprint,
    pub(super) channel: Channel,
    pub(super) eks: Vec<(Exchange, String)>,
    pub(super) encoder: Arc<dyn Encoder>,
    /// The encoder is [`JsonEncoder`](crate::JsonEncoder).
    pub(super) json: bool,
    pub(super) confirms: bool,
    pub(super) persistent: bool,
    pub(super) mandatory: bool,
    /// The `user_id` of its sends: the connection's user, when asked.
    pub(super) user_id: Option<String>,
    pub(super) rpc: RpcState,
    /// The layers around each publish, if any.
    pub(super) layers: Option<SendService>,
    /// The delay levels of delayed sends, and what of them was declared.
    pub(super) delays: Delays,
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
    /// from its parts (no [`Message`] is built for it). The parameters are
    /// anything serde serializes: a struct of the caller's is written
    /// straight into the body, where a `json!` value is built as a map
    /// first.
    pub fn command<'a>(&'a self, name: &'a str, parameters: impl Serialize) -> Publish<'a> {
        let body = self.encode_command(name, Category::Message, &parameters);
        let about = About {
            kind: "command",
            name,
            category: "message",
        };
        self.publish(Body::Encoded(body, about))
    }

    /// Forwards a raw body unchanged (no fingerprint, no re-encoding), with
    /// the encoder's content type.
    pub fn forward(&self, body: impl Into<Vec<u8>>) -> Publish<'_> {
        self.publish(Body::Encoded(Ok(body.into()), About::UNKNOWN))
    }

    /// Calls an RPC command and waits for its reply (Python's
    /// `rpc_<name>(parameters)`). The parameters are anything serde
    /// serializes, as for [`command`](Producer::command). See [`RpcCall`]
    /// for options.
    pub fn rpc(&self, name: &str, parameters: impl Serialize) -> RpcCall<'_> {
        let body = self.encode_command(name, Category::Rpc, &parameters);
        RpcCall::command(self.origin(), name, body)
    }

    /// Calls with a prepared message (its category becomes `rpc`).
    pub fn rpc_message(&self, message: impl IntoMessage) -> RpcCall<'_> {
        RpcCall::new(self.origin(), message.into_message())
    }

    /// Closes the producer's channel. Other clones stop working too.
    pub async fn close(&self) {
        self.inner.channel.close().await;
    }

    /// What an RPC call needs of the producer, borrowed.
    fn origin(&self) -> Origin<'_> {
        let inner = &*self.inner;
        Origin {
            connection: &inner.connection,
            channel: &inner.channel,
            defaults: &inner.eks,
            encoder: &inner.encoder,
            fingerprint: &inner.wire_fingerprint,
            persistent: inner.persistent,
            state: &inner.rpc,
            layers: inner.layers.as_ref(),
            user_id: inner.user_id.as_deref(),
        }
    }

    /// Encodes a message with the producer's fingerprint.
    pub(super) fn encode(&self, message: &Message) -> Result<Vec<u8>> {
        Ok(self
            .inner
            .encoder
            .encode_with_fingerprint(message, &self.inner.wire_fingerprint)?)
    }

    /// A send of `body` to the default pairs, with the producer's options.
    fn publish<'a>(&'a self, body: Body<'a>) -> Publish<'a> {
        Publish {
            producer: self,
            body,
            target: Target::Default,
            persistent: None,
            mandatory: None,
            headers: None,
            expiration: None,
        }
    }

    /// The body of the command `name` with these parameters: written
    /// straight from them by the JSON encoder, or handed to another
    /// encoder as their JSON text.
    fn encode_command(
        &self,
        name: &str,
        category: Category,
        parameters: &impl Serialize,
    ) -> Result<Vec<u8>> {
        let inner = &self.inner;
        if inner.json {
            return Ok(encode_command(
                name,
                category,
                parameters,
                &inner.wire_fingerprint,
            )?);
        }
        let parameters = serde_json::value::to_raw_value(parameters).map_err(EncodeError::new)?;
        self.encode_parts(&MessageParts::command_json(name, category, &parameters))
    }

    fn encode_parts(&self, parts: &MessageParts<'_>) -> Result<Vec<u8>> {
        Ok(self
            .inner
            .encoder
            .encode_parts(parts, &self.inner.wire_fingerprint)?)
    }

    pub(super) fn content_type(&self) -> &str {
        self.inner.encoder.content_type()
    }

    /// Sends a message prepared before ([`Publish::into_outgoing`]), kept
    /// meanwhile (an outbox relay's): through the producer's layers, with
    /// its own message id and properties; exchanges its targets name that
    /// this producer did not declare are declared first.
    ///
    /// # Errors
    ///
    /// As a send's: refused by a layer, nacked, unroutable when mandatory,
    /// or the connection lost past its time limit.
    pub async fn send_outgoing(&self, mut outgoing: Outgoing) -> Result<()> {
        let inner = &*self.inner;
        if let Some(user) = &inner.user_id {
            outgoing.set_user_id(user);
        }
        for (exchange, _) in outgoing.targets() {
            inner.channel.ensure_exchange(exchange).await?;
        }
        match &inner.layers {
            Some(layers) => send(layers, outgoing).await,
            None => publish_outgoing(&inner.channel, &outgoing).await,
        }
    }

    pub(super) async fn publish_all(
        &self,
        pairs: &[(Exchange, String)],
        body: &[u8],
        props: &OutgoingProperties<'_>,
        about: &About<'_>,
    ) -> Result<()> {
        if let Some(layers) = &self.inner.layers {
            let outgoing = Outgoing::new(about, body.to_vec(), pairs.to_vec(), props);
            return send(layers, outgoing).await;
        }
        for (exchange, key) in pairs {
            self.inner
                .channel
                .publish(exchange.name(), key, body, props, about)
                .await?;
        }
        Ok(())
    }
}

//! [`Outgoing`]: what a producer's middleware sees of a send, and the
//! service at the heart of those layers, which publishes it.

use std::fmt;
use std::task::{Context, Poll};

use tower::util::{BoxCloneSyncService, ServiceExt};
use tower::{BoxError, Layer, Service};

use crate::BoxFuture;
use crate::error::{Error, Result};
use crate::message::Category;
use crate::telemetry::About;
use crate::topology::Exchange;
use crate::transport::{Channel, Headers, OutgoingProperties, new_message_id};

/// An encoded message on its way to the broker: the request a producer's
/// layers see, once per send (or RPC request).
///
/// A layer can change its body and headers, refuse it (return an error
/// without calling the service it wraps: the send fails with it), or time
/// it; its outcome is the publish's (confirmed, with confirms on).
pub struct Outgoing {
    parts: OutgoingParts,
}

impl Outgoing {
    /// A send of `body` to `targets` with `props`.
    pub(crate) fn new(
        about: &About<'_>,
        body: Vec<u8>,
        targets: Vec<(Exchange, String)>,
        props: &OutgoingProperties<'_>,
    ) -> Self {
        Outgoing {
            parts: OutgoingParts {
                message_id: props.message_id.map_or_else(new_message_id, str::to_owned),
                kind: about.kind.to_owned(),
                name: about.name.to_owned(),
                category: if about.category == Category::Rpc.as_str() {
                    Category::Rpc
                } else {
                    Category::Message
                },
                body,
                targets,
                content_type: props.content_type.unwrap_or_default().to_owned(),
                persistent: props.persistent,
                mandatory: props.mandatory,
                reply_to: props.reply_to.map(str::to_owned),
                correlation_id: props.correlation_id.map(str::to_owned),
                user_id: props.user_id.map(str::to_owned),
                expiration_ms: props.expiration_ms,
                headers: props.headers.cloned().unwrap_or_default(),
                deadline_ms: props.deadline_ms,
            },
        }
    }

    /// A message prepared elsewhere: read back from where it was kept
    /// (an outbox), to publish with [`Producer::send_outgoing`](crate::Producer::send_outgoing).
    pub fn from_parts(parts: OutgoingParts) -> Self {
        Outgoing { parts }
    }

    /// Everything it holds, to keep it (in an outbox) and publish it
    /// later with [`from_parts`](Self::from_parts).
    pub fn into_parts(self) -> OutgoingParts {
        self.parts
    }

    /// Its AMQP `message_id`, unique per send: a message published
    /// again (by an outbox relay after a crash) keeps it, so that a
    /// consumer's inbox recognises it.
    pub fn message_id(&self) -> &str {
        &self.parts.message_id
    }

    /// Sets the AMQP `user_id` (a producer with
    /// [`user_id`](crate::ProducerBuilder::user_id) on sets its
    /// connection's).
    pub(crate) fn set_user_id(&mut self, user: &str) {
        self.parts.user_id = Some(user.to_owned());
    }

    /// The AMQP `user_id` it carries, if any.
    pub fn user_id(&self) -> Option<&str> {
        self.parts.user_id.as_deref()
    }

    /// The message's type (`command`, `status`, `result`).
    pub fn kind(&self) -> &str {
        &self.parts.kind
    }

    /// The message's name.
    pub fn name(&self) -> &str {
        &self.parts.name
    }

    /// An RPC request, or a message.
    pub fn category(&self) -> Category {
        self.parts.category
    }

    /// The encoded body.
    pub fn body(&self) -> &[u8] {
        &self.parts.body
    }

    /// The encoded body, to change.
    pub fn body_mut(&mut self) -> &mut Vec<u8> {
        &mut self.parts.body
    }

    /// The (exchange, routing key) pairs it goes to.
    pub fn targets(&self) -> &[(Exchange, String)] {
        &self.parts.targets
    }

    /// The (exchange, routing key) pairs, to change: a layer that routes
    /// by content (`flow::Partitions::layer`).
    pub fn targets_mut(&mut self) -> &mut Vec<(Exchange, String)> {
        &mut self.parts.targets
    }

    /// Published mandatory?
    pub fn mandatory(&self) -> bool {
        self.parts.mandatory
    }

    /// How long it may wait in a queue (the AMQP `expiration`), in
    /// milliseconds.
    pub fn expiration_ms(&self) -> Option<u128> {
        self.parts.expiration_ms
    }

    /// The AMQP headers it carries.
    pub fn headers(&self) -> &Headers {
        &self.parts.headers
    }

    /// The AMQP headers, to add to: a tenant id, a signature.
    pub fn headers_mut(&mut self) -> &mut Headers {
        &mut self.parts.headers
    }

    /// Published persistent?
    pub fn persistent(&self) -> bool {
        self.parts.persistent
    }

    /// Its content type.
    pub fn content_type(&self) -> &str {
        &self.parts.content_type
    }

    /// Its correlation id (an RPC request's).
    pub fn correlation_id(&self) -> Option<&str> {
        self.parts.correlation_id.as_deref()
    }

    /// Where its reply goes (an RPC request's).
    pub fn reply_to(&self) -> Option<&str> {
        self.parts.reply_to.as_deref()
    }
}

impl fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outgoing")
            .field("kind", &self.parts.kind)
            .field("name", &self.parts.name)
            .field("category", &self.parts.category)
            .field("targets", &self.parts.targets)
            .field("body_size", &self.parts.body.len())
            .finish_non_exhaustive()
    }
}

/// The parts of an [`Outgoing`], each public: what an outbox keeps of a
/// send to publish it later.
#[derive(Debug, Clone, PartialEq)]
pub struct OutgoingParts {
    /// The AMQP `message_id`.
    pub message_id: String,
    /// The message's type (`command`, `status`, `result`).
    pub kind: String,
    /// The message's name.
    pub name: String,
    /// An RPC request, or a message.
    pub category: Category,
    /// The encoded body.
    pub body: Vec<u8>,
    /// The (exchange, routing key) pairs it goes to.
    pub targets: Vec<(Exchange, String)>,
    /// The content type.
    pub content_type: String,
    /// Published persistent.
    pub persistent: bool,
    /// Published mandatory (an unroutable message is an error).
    pub mandatory: bool,
    /// Where a reply goes.
    pub reply_to: Option<String>,
    /// The correlation id.
    pub correlation_id: Option<String>,
    /// The AMQP `user_id`: the publishing connection's user, or none. A
    /// relay's producer sets its own.
    pub user_id: Option<String>,
    /// The AMQP `expiration`, in milliseconds.
    pub expiration_ms: Option<u128>,
    /// The AMQP headers.
    pub headers: Headers,
    /// The RPC deadline header, in milliseconds since the Unix epoch.
    pub deadline_ms: Option<u64>,
}

/// A producer's layers around the service that publishes.
pub type SendService = BoxCloneSyncService<Outgoing, (), BoxError>;

/// Adds a layer to a producer's [`SendService`].
type SendLayer = std::sync::Arc<dyn Fn(SendService) -> SendService + Send + Sync>;

/// The layers of a producer's builder, by name, the first added
/// outermost.
#[derive(Clone, Default)]
pub(crate) struct SendLayers(Vec<(String, SendLayer)>);

impl fmt::Debug for SendLayers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl SendLayers {
    /// Adds `layer`, inside those added before.
    pub(crate) fn push<L>(&mut self, layer: L)
    where
        L: Layer<SendService> + Send + Sync + 'static,
        L::Service: Service<Outgoing, Response = ()> + Clone + Send + Sync + 'static,
        <L::Service as Service<Outgoing>>::Error: Into<BoxError>,
        <L::Service as Service<Outgoing>>::Future: Send + 'static,
    {
        let name = crate::processor::short_type_name::<L>();
        let layer: SendLayer = std::sync::Arc::new(move |inner| {
            BoxCloneSyncService::new(layer.layer(inner).map_err(Into::<BoxError>::into))
        });
        self.0.push((name, layer));
    }

    /// Their names, outermost first.
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(name, _)| name.as_str())
    }

    /// The layers around the service that publishes on `channel`; `None`
    /// without layers.
    pub(crate) fn service(&self, channel: &Channel) -> Option<SendService> {
        if self.0.is_empty() {
            return None;
        }
        let mut service = BoxCloneSyncService::new(
            Publishing {
                channel: channel.clone(),
            }
            .map_err(BoxError::from),
        );
        for (_, layer) in self.0.iter().rev() {
            service = layer(service);
        }
        Some(service)
    }
}

/// Sends `outgoing` through a producer's layers.
pub(crate) async fn send(service: &SendService, outgoing: Outgoing) -> Result<()> {
    service.clone().oneshot(outgoing).await.map_err(Error::from)
}

/// The innermost service of a producer's layers: publishes.
#[derive(Clone)]
struct Publishing {
    channel: Channel,
}

impl Service<Outgoing> for Publishing {
    type Response = ();
    type Error = Error;
    type Future = BoxFuture<'static, Result<()>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, outgoing: Outgoing) -> Self::Future {
        let channel = self.channel.clone();
        Box::pin(async move { publish_outgoing(&channel, &outgoing).await })
    }
}

/// Publishes `outgoing` on `channel`, to each of its targets.
pub(crate) async fn publish_outgoing(channel: &Channel, outgoing: &Outgoing) -> Result<()> {
    let props = OutgoingProperties {
        content_type: Some(&outgoing.parts.content_type),
        persistent: outgoing.parts.persistent,
        mandatory: outgoing.parts.mandatory,
        reply_to: outgoing.parts.reply_to.as_deref(),
        correlation_id: outgoing.parts.correlation_id.as_deref(),
        message_id: Some(&outgoing.parts.message_id),
        user_id: outgoing.parts.user_id.as_deref(),
        expiration_ms: outgoing.parts.expiration_ms,
        headers: (!outgoing.parts.headers.is_empty()).then_some(&outgoing.parts.headers),
        deadline_ms: outgoing.parts.deadline_ms,
    };
    let about = About {
        kind: &outgoing.parts.kind,
        name: &outgoing.parts.name,
        category: outgoing.parts.category.as_str(),
    };
    for (exchange, key) in &outgoing.parts.targets {
        channel
            .publish(exchange.name(), key, &outgoing.parts.body, &props, &about)
            .await?;
    }
    Ok(())
}

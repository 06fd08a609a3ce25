//! [`Publish`]: a send being prepared, awaited to send.

use std::borrow::Cow;
use std::future::IntoFuture;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use super::Producer;
use super::delay::{DelayedPublish, Due};
use crate::BoxFuture;
use crate::error::{Error, Result};
use crate::message::Message;
use crate::middleware::Outgoing;
use crate::telemetry::About;
use crate::topology::{Exchange, Target};
use crate::transport::{Headers, OutgoingProperties};

pub(super) enum Body<'a> {
    /// Encoded when sent, with the producer's fingerprint.
    Message(Box<Message>),
    /// Encoded already (a command from its parts), or forwarded as is.
    Encoded(Result<Vec<u8>>, About<'a>),
}

/// A send being prepared; `.await` it to send. Options:
/// [`key`](Publish::key), [`eks`](Publish::eks), [`persistent`](Publish::persistent),
/// [`mandatory`](Publish::mandatory), [`header`](Publish::header),
/// [`expiration`](Publish::expiration); and, to send later instead of at
/// once, [`send_after`](Publish::send_after) or [`send_at`](Publish::send_at).
#[must_use = "a send does nothing until it is awaited"]
pub struct Publish<'a> {
    pub(super) producer: &'a Producer,
    pub(super) body: Body<'a>,
    pub(super) target: Target,
    pub(super) persistent: Option<bool>,
    pub(super) mandatory: Option<bool>,
    pub(super) headers: Option<Headers>,
    pub(super) expiration: Option<Duration>,
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
    /// [`ProducerBuilder::mandatory`](crate::ProducerBuilder::mandatory)).
    pub fn mandatory(mut self, mandatory: bool) -> Self {
        self.mandatory = Some(mandatory);
        self
    }

    /// Adds a header (the AMQP `headers` property: what headers
    /// exchanges route on).
    pub fn header(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.headers
            .get_or_insert_with(Headers::new)
            .insert(key.into(), value.into());
        self
    }

    /// The message expires after this long in a queue (the AMQP
    /// `expiration` property): dropped, or dead-lettered with reason
    /// `expired`.
    pub fn expiration(mut self, ttl: Duration) -> Self {
        self.expiration = Some(ttl);
        self
    }

    /// Sends the message `delay` from now instead of at once, through
    /// the broker's delay levels (see [`DelayedPublish`]); `.await` gives
    /// a [`Scheduled`](crate::producer::Scheduled) that can cancel it.
    /// Set the other options first.
    pub fn send_after(self, delay: Duration) -> DelayedPublish<'a> {
        DelayedPublish::new(self, Due::After(delay))
    }

    /// Sends the message at `time` instead of at once (at once when
    /// `time` is past); see [`send_after`](Publish::send_after).
    pub fn send_at(self, time: SystemTime) -> DelayedPublish<'a> {
        DelayedPublish::new(self, Due::At(time))
    }

    /// The send as an [`Outgoing`] message: encoded, addressed and given
    /// its message id, but not sent, and without a word to the broker
    /// (exchanges named by [`eks`](Publish::eks) are declared when it is
    /// sent). What an outbox keeps, to publish later with
    /// [`Producer::send_outgoing`]. The producer's layers run when it is
    /// sent, not here.
    ///
    /// # Errors
    ///
    /// [`Error::NoDestination`](crate::Error::NoDestination) without a
    /// target; an encoding error.
    pub fn into_outgoing(mut self) -> Result<Outgoing> {
        let target = std::mem::replace(&mut self.target, Target::Default);
        let (pairs, _) = target.pairs(&self.producer.inner.eks);
        if pairs.is_empty() {
            return Err(Error::NoDestination);
        }
        let mut prepared = self.prepared(pairs)?;
        let body = std::mem::take(&mut prepared.body);
        let pairs = std::mem::take(&mut prepared.pairs).into_owned();
        // No user_id: the producer that sends it sets its own.
        let props = OutgoingProperties {
            user_id: None,
            ..prepared.properties(prepared.headers.as_ref())
        };
        Ok(Outgoing::new(&prepared.about(), body, pairs, &props))
    }

    /// Encodes the body and resolves the destinations, declaring the
    /// exchanges only the send names.
    pub(super) async fn prepare(mut self) -> Result<Prepared<'a>> {
        let target = std::mem::replace(&mut self.target, Target::Default);
        let inner = &*self.producer.inner;
        let pairs = inner.channel.destinations(target, &inner.eks).await?;
        self.prepared(pairs)
    }

    /// The send encoded, to `pairs`.
    fn prepared(self, pairs: Cow<'a, [(Exchange, String)]>) -> Result<Prepared<'a>> {
        let producer = self.producer;
        let (message, body, about) = match self.body {
            Body::Message(message) => {
                let body = producer.encode(&message)?;
                (Some(message), body, About::UNKNOWN)
            }
            Body::Encoded(body, about) => (None, body?, about),
        };
        let inner = &*producer.inner;
        Ok(Prepared {
            producer,
            message,
            about,
            body,
            pairs,
            persistent: self.persistent.unwrap_or(inner.persistent),
            mandatory: self.mandatory.unwrap_or(inner.mandatory),
            headers: self.headers,
            expiration: self.expiration,
        })
    }

    async fn run(self) -> Result<()> {
        let prepared = self.prepare().await?;
        let props = prepared.properties(prepared.headers.as_ref());
        prepared
            .producer
            .publish_all(&prepared.pairs, &prepared.body, &props, &prepared.about())
            .await
    }
}

/// A send encoded and resolved, ready to publish.
pub(super) struct Prepared<'a> {
    pub(super) producer: &'a Producer,
    /// Kept until sent: the span and the metrics borrow its names.
    message: Option<Box<Message>>,
    about: About<'a>,
    pub(super) body: Vec<u8>,
    pub(super) pairs: Cow<'a, [(Exchange, String)]>,
    persistent: bool,
    mandatory: bool,
    pub(super) headers: Option<Headers>,
    pub(super) expiration: Option<Duration>,
}

impl Prepared<'_> {
    /// What the telemetry says of the message.
    pub(super) fn about(&self) -> About<'_> {
        match &self.message {
            Some(message) => About {
                kind: &message.kind,
                name: &message.name,
                category: message.category.as_str(),
            },
            None => self.about,
        }
    }

    /// The properties of its publishes, with `headers`.
    pub(super) fn properties<'h>(&'h self, headers: Option<&'h Headers>) -> OutgoingProperties<'h> {
        OutgoingProperties {
            content_type: Some(self.producer.content_type()),
            persistent: self.persistent,
            mandatory: self.mandatory,
            expiration_ms: self.expiration.map(|ttl| ttl.as_millis()),
            headers,
            user_id: self.producer.inner.user_id.as_deref(),
            ..OutgoingProperties::default()
        }
    }
}

impl<'a> IntoFuture for Publish<'a> {
    type Output = Result<()>;
    type IntoFuture = BoxFuture<'a, Result<()>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}

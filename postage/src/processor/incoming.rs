//! [`Incoming`]: what a processor's middleware sees of a message on its
//! way to its handlers.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use super::Reply;
use crate::consumer::Delivery;
use crate::fingerprint::Fingerprint;
use crate::message::{Category, Message};
use crate::transport::Headers;

/// A decoded message on its way to its handlers: the request a
/// processor's middleware layers see (`postage::middleware`).
///
/// A layer can read and change the message (its content, parameters,
/// headers of the envelope stay as delivered), refuse it by returning an
/// error instead of calling the service it wraps, or time and observe the
/// handlers' outcome. The handlers were chosen by the message's type and
/// name before the layers ran.
pub struct Incoming {
    pub(super) message: Message,
    /// The delivery, shared with the processor until it is settled.
    pub(super) delivery: Arc<Delivery>,
    /// When the caller of an RPC request stops waiting.
    pub(super) deadline: Option<Instant>,
    pub(super) reply: Option<Reply>,
    pub(super) route: Route,
    pub(super) labels: Arc<[&'static str]>,
}

/// Which handlers of the table an incoming message goes to.
#[derive(Debug, Clone)]
pub(super) enum Route {
    /// Every `message` category handler of its (type, name), in order.
    Message(Arc<[usize]>),
    /// One handler: an RPC handler, or one handler of a `message`
    /// (under that handler's own layers).
    One(usize),
}

impl Route {
    pub(super) fn indices(&self) -> &[usize] {
        match self {
            Route::Message(indices) => indices,
            Route::One(index) => std::slice::from_ref(index),
        }
    }
}

impl Incoming {
    /// The message.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// The message, to change before the handlers get it.
    pub fn message_mut(&mut self) -> &mut Message {
        &mut self.message
    }

    /// Its category: an RPC request (whose handler replies) or a message.
    pub fn category(&self) -> Category {
        self.message.category
    }

    /// The sender, from the message's fingerprint.
    pub fn sender(&self) -> Fingerprint {
        self.message.sender()
    }

    /// The queue it came from.
    pub fn queue(&self) -> &str {
        self.delivery.queue()
    }

    /// The routing key it was published with.
    pub fn routing_key(&self) -> &str {
        self.delivery.routing_key()
    }

    /// Its AMQP `message_id`: unique per send from Postage senders (a
    /// message sent again after a failure keeps its id); Python Postage
    /// sets none.
    pub fn message_id(&self) -> Option<&str> {
        self.delivery.message_id()
    }

    /// Its AMQP `user_id`: the broker user that published it, checked by
    /// RabbitMQ, when the sender set one.
    pub fn user_id(&self) -> Option<&str> {
        self.delivery.user_id()
    }

    /// Whether the broker delivered it before.
    pub fn redelivered(&self) -> bool {
        self.delivery.redelivered()
    }

    /// Its AMQP headers: the sender's, and those the broker adds
    /// (converted at each call; [`header_text`](Self::header_text) reads
    /// one string header without converting the others).
    pub fn headers(&self) -> Headers {
        self.delivery.headers()
    }

    /// A header's value when it is a string (a tenant id, a token),
    /// without converting the other headers.
    pub fn header_text(&self, key: &str) -> Option<&str> {
        self.delivery.header_text(key)
    }

    /// When the caller of an RPC request stops waiting for its reply, if
    /// it said.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// The handlers that will run, by name (their methods' names), in
    /// order.
    pub fn handlers(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.route
            .indices()
            .iter()
            .filter_map(|&index| self.labels.get(index).copied())
    }
}

impl fmt::Debug for Incoming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Incoming")
            .field("message", &self.message)
            .field("queue", &self.queue())
            .field("routing_key", &self.routing_key())
            .field("handlers", &self.handlers().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

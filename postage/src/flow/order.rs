//! [`OrderKey`]: what keeps the messages of one key in order.

use std::hash::{DefaultHasher, Hash, Hasher};

use serde_json::Value;

use crate::consumer::Delivery;

/// What keeps the order of a processor's messages when it handles
/// several at once (`ProcessorBuilder::ordered_by`): messages with the
/// same key never overlap and are handled in the order the queue
/// delivered them.
///
/// A message without the key (a header or a parameter it lacks) has the
/// empty key: such messages keep their order among themselves.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OrderKey {
    /// The routing key it was published with.
    RoutingKey,
    /// A header's value (a string header's text, any other value as
    /// JSON).
    Header(String),
    /// A field of the message's `parameters` (a string's text, any other
    /// value as JSON): `OrderKey::parameter("account")`.
    Parameter(String),
}

impl OrderKey {
    /// The value of header `name`.
    pub fn header(name: impl Into<String>) -> Self {
        OrderKey::Header(name.into())
    }

    /// The value of field `name` of the message's parameters.
    pub fn parameter(name: impl Into<String>) -> Self {
        OrderKey::Parameter(name.into())
    }

    /// The lane of `delivery` among `lanes`.
    pub(crate) fn lane(&self, delivery: &Delivery, lanes: usize) -> usize {
        let mut hasher = DefaultHasher::new();
        match self {
            OrderKey::RoutingKey => delivery.routing_key().hash(&mut hasher),
            OrderKey::Header(name) => match delivery.header_text(name) {
                Some(text) => text.hash(&mut hasher),
                None => delivery
                    .headers()
                    .get(name)
                    .map(Value::to_string)
                    .unwrap_or_default()
                    .hash(&mut hasher),
            },
            OrderKey::Parameter(name) => {
                let field = delivery
                    .message()
                    .ok()
                    .and_then(|message| message.content.parameters())
                    .and_then(|parameters| parameters.get(name));
                match field {
                    Some(Value::String(text)) => text.hash(&mut hasher),
                    Some(other) => other.to_string().hash(&mut hasher),
                    None => "".hash(&mut hasher),
                }
            }
        }
        // Lanes are few: the remainder fits.
        usize::try_from(hasher.finish() % lanes as u64).unwrap_or(0)
    }
}

//! The properties of a published message.

use std::collections::BTreeMap;

use serde_json::Value;

/// Message headers (the AMQP `headers` property) as JSON values: what a
/// send carries with `Publish::header`,
/// what headers exchanges route on, and what the broker adds (`x-death`,
/// `x-delivery-count`). Strings, numbers, booleans, arrays and tables;
/// AMQP timestamps read as seconds.
pub type Headers = BTreeMap<String, Value>;

/// The header that carries an RPC request's deadline: the time after
/// which its caller no longer waits for the reply, in milliseconds since
/// the Unix epoch (an integer). Python Postage sends none.
pub const DEADLINE_HEADER: &str = "postage-deadline";

/// Properties of a published message, borrowed for the publish.
#[derive(Debug, Clone, Default)]
pub(crate) struct OutgoingProperties<'a> {
    pub(crate) content_type: Option<&'a str>,
    pub(crate) persistent: bool,
    pub(crate) mandatory: bool,
    pub(crate) reply_to: Option<&'a str>,
    pub(crate) correlation_id: Option<&'a str>,
    pub(crate) expiration_ms: Option<u128>,
    pub(crate) headers: Option<&'a Headers>,
    /// The [`DEADLINE_HEADER`], added to the headers.
    pub(crate) deadline_ms: Option<u64>,
}

/// A queue as a declaration found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Declared {
    /// Its name (the broker's, for a server-named queue).
    pub(crate) name: String,
    /// Messages ready in it.
    pub(crate) messages: u32,
    /// Its consumers.
    pub(crate) consumers: u32,
}

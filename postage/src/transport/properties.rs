//! The properties of a published message.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

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
    /// The AMQP `message_id`; a fresh one ([`new_message_id`], made by
    /// the backend, which owns it without a copy) when `None`.
    pub(crate) message_id: Option<&'a str>,
    /// The AMQP `user_id`: RabbitMQ refuses a publish whose `user_id` is
    /// not the connection's user, so a consumer can trust it.
    pub(crate) user_id: Option<&'a str>,
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

/// The random half of this process's message ids, in hexadecimal.
static PROCESS_ID: LazyLock<[u8; 16]> = LazyLock::new(|| {
    let seed = (std::process::id(), std::time::SystemTime::now());
    hex(RandomState::new().hash_one(seed))
});

/// `value` in 16 hexadecimal digits.
fn hex(value: u64) -> [u8; 16] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0; 16];
    for (i, digit) in digits.iter_mut().enumerate() {
        *digit = DIGITS[((value >> ((15 - i) * 4)) & 0xf) as usize];
    }
    digits
}

/// How many message ids this process made.
static MESSAGE_IDS: AtomicU64 = AtomicU64::new(0);

/// A message id unique across processes: 32 hexadecimal digits, 64 random
/// bits fixed per process then a 64-bit count. Every Postage send carries
/// one as its AMQP `message_id`, which a consumer's inbox deduplicates on.
pub(crate) fn new_message_id() -> String {
    // By hand: `format!` costs ten times as many instructions, on every
    // send.
    let mut id = Vec::with_capacity(32);
    id.extend_from_slice(&*PROCESS_ID);
    id.extend_from_slice(&hex(MESSAGE_IDS.fetch_add(1, Ordering::Relaxed)));
    String::from_utf8(id).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_unique_32_hex_digits() {
        let ids: std::collections::HashSet<String> = (0..1000).map(|_| new_message_id()).collect();
        assert_eq!(ids.len(), 1000);
        assert!(
            ids.iter()
                .all(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        );
    }
}

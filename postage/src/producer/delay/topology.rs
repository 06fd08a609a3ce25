//! The broker side of delayed sends: the names of the level exchanges
//! and queues, the gate, the delivery exchange, and their declarations
//! (made once per producer, level by level as longer delays need them).
//!
//! ```text
//! publish ─▶ L{top} ─bit set─▶ queue L{top} (TTL 2^top s) ─expired─▶ L{top-1} ─▶ … ─▶ L00
//!              └─bit clear──────────────────────────────────────────▶ L{top-1}
//! L00 ─▶ queue L00 (1 s) or straight on ─▶ gate ─(a cancellation binding)─▶ cancelled.<id>: dropped
//!                                           └─(alternate exchange)─▶ deliver ─▶ the target exchange
//!                                                                          └─▶ to-default ─▶ "" (a queue by name)
//! ```

use std::collections::{BTreeMap, HashSet};
use std::sync::{Mutex, PoisonError};

use serde_json::Value;

use super::plan::level_ttl_ms;
use crate::error::Result;
use crate::topology::{Exchange, ExchangeKind, Queue};
use crate::transport::Channel;

/// The header of a level's bit: `"1"`, the message waits in the level;
/// `"0"`, it skips it.
pub(super) fn bit_header(level: u32) -> String {
    format!("postage-delay-bit-{level:02}")
}

/// The header that names a delayed send (what a cancellation matches).
pub const DELAY_ID_HEADER: &str = "postage-delay-id";

/// The header that names the exchange a delayed message is delivered to
/// (`""` for the default exchange).
pub const DELAY_EXCHANGE_HEADER: &str = "postage-delay-exchange";

/// The header that says when a delayed message is due, in milliseconds
/// since the Unix epoch.
pub const DELAY_DUE_HEADER: &str = "postage-delay-due";

/// The default prefix of the delay topology's names.
pub(crate) const DEFAULT_PREFIX: &str = "postage.delay";

/// The delay topology of one prefix, and what of it a producer declared.
#[derive(Debug)]
pub(crate) struct Delays {
    prefix: String,
    declared: Mutex<Declared>,
}

/// What was declared already through the producer's channel.
#[derive(Debug, Default)]
struct Declared {
    /// The gate and the delivery exchange.
    base: bool,
    /// Levels 0 up to this one.
    levels: Option<u32>,
    /// The exchanges bound to the delivery exchange.
    targets: HashSet<String>,
}

/// Binding arguments matching every header of `headers`.
fn matching(headers: &[(&str, &str)]) -> BTreeMap<String, Value> {
    let mut arguments = BTreeMap::from([("x-match".to_owned(), Value::from("all"))]);
    for (key, value) in headers {
        arguments.insert((*key).to_owned(), Value::from(*value));
    }
    arguments
}

impl Delays {
    /// The topology named after `prefix`.
    pub(crate) fn new(prefix: impl Into<String>) -> Self {
        Delays {
            prefix: prefix.into(),
            declared: Mutex::default(),
        }
    }

    /// The exchange (and queue) of level `level`.
    pub(super) fn level(&self, level: u32) -> String {
        format!("{}.L{level:02}", self.prefix)
    }

    /// The exchange every delayed message passes last, where
    /// cancellations are bound.
    pub(super) fn gate(&self) -> String {
        format!("{}.gate", self.prefix)
    }

    /// The gate's alternate exchange: where an uncancelled message goes.
    fn deliver(&self) -> String {
        format!("{}.deliver", self.prefix)
    }

    /// The queue that hands messages to the default exchange.
    fn to_default(&self) -> String {
        format!("{}.to-default", self.prefix)
    }

    /// The queue that drops the messages of cancelled send `id`.
    pub(super) fn cancelled(&self, id: &str) -> String {
        format!("{}.cancelled.{id}", self.prefix)
    }

    /// Where level `level` sends what it is done with: the level below,
    /// or the gate after level 0.
    fn next(&self, level: u32) -> String {
        match level.checked_sub(1) {
            Some(below) => self.level(below),
            None => self.gate(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Declared> {
        self.declared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Declares the gate and the delivery exchange.
    pub(super) async fn ensure_base(&self, channel: &Channel) -> Result<()> {
        if self.lock().base {
            return Ok(());
        }
        let deliver = self.deliver();
        channel
            .declare_exchange(&Exchange::new(&deliver, ExchangeKind::Headers))
            .await?;
        channel
            .declare_exchange(
                &Exchange::new(self.gate(), ExchangeKind::Headers)
                    .argument("alternate-exchange", deliver),
            )
            .await?;
        self.lock().base = true;
        Ok(())
    }

    /// Declares levels 0 up to `top`, each with its two bindings.
    pub(super) async fn ensure_levels(&self, channel: &Channel, top: u32) -> Result<()> {
        let from = match self.lock().levels {
            Some(declared) if declared >= top => return Ok(()),
            Some(declared) => declared + 1,
            None => 0,
        };
        for level in from..=top {
            let name = self.level(level);
            let next = self.next(level);
            let bit = bit_header(level);
            channel
                .declare_exchange(&Exchange::new(&name, ExchangeKind::Headers))
                .await?;
            let queue = Queue::new(&name)
                .durable(true)
                .argument("x-message-ttl", level_ttl_ms(level))
                .dead_letter_exchange(&next);
            channel.declare_queue(&queue).await?;
            channel
                .bind(&name, false, &name, "", &matching(&[(&bit, "1")]))
                .await?;
            channel
                .bind(&next, true, &name, "", &matching(&[(&bit, "0")]))
                .await?;
            self.lock().levels = Some(level);
        }
        Ok(())
    }

    /// Binds the exchange `target` (a queue by name for the default
    /// exchange `""`) to the delivery exchange.
    pub(super) async fn ensure_target(&self, channel: &Channel, target: &str) -> Result<()> {
        if self.lock().targets.contains(target) {
            return Ok(());
        }
        let deliver = self.deliver();
        let arguments = matching(&[(DELAY_EXCHANGE_HEADER, target)]);
        if target.is_empty() {
            // RabbitMQ binds nothing to the default exchange: a queue
            // whose messages expire at once dead-letters them to it, with
            // their routing key (the target queue's name).
            let to_default = self.to_default();
            let queue = Queue::new(&to_default)
                .durable(true)
                .argument("x-message-ttl", 0)
                .dead_letter_exchange("");
            channel.declare_queue(&queue).await?;
            channel
                .bind(&to_default, false, &deliver, "", &arguments)
                .await?;
        } else {
            channel.bind(target, true, &deliver, "", &arguments).await?;
        }
        self.lock().targets.insert(target.to_owned());
        Ok(())
    }

    /// Declares the queue that drops the messages of send `id` and binds
    /// it to the gate; the broker deletes it `expires_ms` after (`x-expires`).
    pub(super) async fn cancel(&self, channel: &Channel, id: &str, expires_ms: u64) -> Result<()> {
        self.ensure_base(channel).await?;
        let name = self.cancelled(id);
        let queue = Queue::new(&name)
            .durable(true)
            .argument("x-message-ttl", 0)
            .argument("x-expires", expires_ms);
        channel.declare_queue(&queue).await?;
        channel
            .bind(
                &name,
                false,
                &self.gate(),
                "",
                &matching(&[(DELAY_ID_HEADER, id)]),
            )
            .await
    }
}

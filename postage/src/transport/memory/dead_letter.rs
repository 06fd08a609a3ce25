//! Dead-lettering in the in-memory broker: a message leaving a queue
//! (rejected, expired, over its length limit or delivery limit) goes to
//! the queue's dead-letter exchange with an `x-death` entry, as RabbitMQ
//! does.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{Value, json};

use super::flow::now_seconds;
use super::state::{DeadLetter, Message, State, Stored};

impl State {
    /// A message leaves `queue` for `reason`: recorded, and routed to the
    /// queue's dead-letter exchange if it has one, with an `x-death` entry.
    pub(super) fn dead_letter(&mut self, queue: &str, stored: Stored, reason: &str) {
        let message = &stored.message;
        self.dead_letters.push(DeadLetter {
            queue: queue.to_owned(),
            reason: reason.to_owned(),
            exchange: message.exchange.clone(),
            routing_key: message.routing_key.clone(),
            body: message.body.to_vec(),
        });
        let Some(state) = self.queues.get(queue) else {
            return;
        };
        let Some(exchange) = state.dead_letter_exchange.clone() else {
            return;
        };
        let key = state
            .dead_letter_key
            .clone()
            .unwrap_or_else(|| message.routing_key.clone());
        let mut headers = message.headers.clone();
        let mut entry = json!({
            "count": 1,
            "reason": reason,
            "queue": queue,
            "time": now_seconds(),
            "exchange": message.exchange,
            "routing-keys": [message.routing_key],
        });
        if let (Some(expiration), Some(entry)) = (&message.expiration, entry.as_object_mut()) {
            entry.insert(
                "original-expiration".into(),
                Value::from(expiration.as_str()),
            );
        }
        let mut deaths = match headers.remove("x-death") {
            Some(Value::Array(deaths)) => deaths,
            _ => Vec::new(),
        };
        if let Some(index) = deaths.iter().position(|d| {
            d.get("queue").and_then(Value::as_str) == Some(queue)
                && d.get("reason").and_then(Value::as_str) == Some(reason)
        }) {
            let mut known = deaths.remove(index);
            let count = known.get("count").and_then(Value::as_u64).unwrap_or(0) + 1;
            known["count"] = Value::from(count);
            known["time"] = Value::from(now_seconds());
            entry = known;
        }
        // A message going round a cycle of queues by expiry alone is
        // dropped where it was dead-lettered before (RabbitMQ's rule).
        let rejected = reason == "rejected"
            || deaths
                .iter()
                .any(|d| d.get("reason").and_then(Value::as_str) == Some("rejected"));
        let seen: BTreeSet<String> = deaths
            .iter()
            .chain(std::iter::once(&entry))
            .filter_map(|d| d.get("queue").and_then(Value::as_str).map(str::to_owned))
            .collect();
        deaths.insert(0, entry);
        for (header, field) in [
            ("x-first-death-reason", reason),
            ("x-first-death-queue", queue),
            ("x-first-death-exchange", message.exchange.as_str()),
        ] {
            headers
                .entry(header.to_owned())
                .or_insert_with(|| Value::from(field));
        }
        headers.insert("x-death".into(), Value::Array(deaths));
        let copy = Arc::new(Message {
            exchange: exchange.clone(),
            routing_key: key.clone(),
            body: message.body.clone(),
            content_type: message.content_type.clone(),
            persistent: message.persistent,
            reply_to: message.reply_to.clone(),
            correlation_id: message.correlation_id.clone(),
            message_id: message.message_id.clone(),
            user_id: message.user_id.clone(),
            expiration: None,
            headers,
        });
        for target in self.route(&exchange, &key, &copy.headers) {
            if !rejected && seen.contains(&target) {
                continue;
            }
            self.enqueue(&target, &copy, None);
            self.dispatch(&target);
        }
    }
}

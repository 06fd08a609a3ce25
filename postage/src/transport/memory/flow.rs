//! How messages move through the in-memory broker: routing, queueing with
//! length limits and expiry, round-robin delivery within prefetch,
//! settlement, and what a closing channel or connection gives back
//! (dead-lettering is in `dead_letter`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::delivery::{Delivered, Event};
use super::state::{
    ChannelState, ConsumerState, Destination, Message, Overflow, QueueState, REPLY_TO, Refusal,
    Refused, State, Stored, Unacked,
};

/// What became of a publish.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Published {
    /// Routed to at least one queue (or a direct reply-to consumer).
    Routed,
    /// Routed nowhere.
    Unroutable,
    /// A full queue refused it (`x-overflow: reject-publish`).
    Refused,
}

pub(super) fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl State {
    pub(super) fn open_connection(&mut self) -> Option<u64> {
        if !self.up {
            return None;
        }
        let id = self.next_id();
        self.connections.insert(id, Vec::new());
        Some(id)
    }

    pub(super) fn open_channel(&mut self, connection: u64) -> Option<u64> {
        let id = self.next_id();
        let channels = self.connections.get_mut(&connection)?;
        channels.push(id);
        self.channels.insert(
            id,
            ChannelState {
                connection,
                prefetch: 0,
                consumers: Default::default(),
                unacked: BTreeMap::new(),
                next_tag: 0,
                next_consumer: 0,
                reply_to: None,
                reply_address: format!("{REPLY_TO}.g{connection}.{id}"),
            },
        );
        Some(id)
    }

    /// Closes a channel: its consumers end (`refusal` says why, when the
    /// broker closed it), its unacknowledged deliveries are requeued.
    pub(super) fn close_channel(&mut self, channel: u64, refusal: Option<&Refusal>) {
        let Some(state) = self.channels.remove(&channel) else {
            return;
        };
        if let Some(refusal) = refusal {
            self.refusals.insert(channel, refusal.clone());
        }
        if let Some(channels) = self.connections.get_mut(&state.connection) {
            channels.retain(|c| *c != channel);
        }
        let mut queues = BTreeSet::new();
        for (tag, consumer) in state.consumers {
            if let Some(refusal) = refusal {
                let _ = consumer.events.send(Event::Closed(refusal.clone()));
            }
            self.forget_consumer(&consumer.queue, channel, &tag);
            queues.insert(consumer.queue);
        }
        if let (Some(refusal), Some((_, events))) = (refusal, &state.reply_to) {
            let _ = events.send(Event::Closed(refusal.clone()));
        }
        // Requeued in their order, at the head of their queues.
        for (_, unacked) in state.unacked.into_iter().rev() {
            self.give_back(&unacked.queue, unacked.stored);
            queues.insert(unacked.queue);
        }
        for queue in &queues {
            self.auto_delete_queue(queue);
            self.dispatch(queue);
        }
    }

    /// Closes a connection and its channels; its exclusive queues go.
    pub(super) fn close_connection(&mut self, connection: u64) {
        let Some(channels) = self.connections.remove(&connection) else {
            return;
        };
        for channel in channels {
            self.close_channel(channel, None);
        }
        let exclusive: Vec<String> = self
            .queues
            .iter()
            .filter(|(_, q)| q.owner == Some(connection))
            .map(|(name, _)| name.clone())
            .collect();
        for queue in exclusive {
            self.remove_queue(&queue);
        }
    }

    /// Closes every connection: what a broker going down does to clients.
    pub(super) fn close_all(&mut self) {
        let connections: Vec<u64> = self.connections.keys().copied().collect();
        for connection in connections {
            self.close_connection(connection);
        }
    }

    /// A restart: non-durable exchanges and queues go, durable queues keep
    /// their persistent messages only.
    pub(super) fn restart(&mut self) {
        self.close_all();
        self.exchanges.retain(|_, e| e.durable);
        let transient: Vec<String> = self
            .queues
            .iter()
            .filter(|(_, q)| !q.durable)
            .map(|(name, _)| name.clone())
            .collect();
        for queue in transient {
            self.remove_queue(&queue);
        }
        for queue in self.queues.values_mut() {
            queue.ready.retain(|s| s.message.persistent);
            queue.timer = None;
        }
        // Bindings to what is gone went with it; bindings of transient
        // exchanges went with them.
        self.predeclare();
    }

    fn forget_consumer(&mut self, queue: &str, channel: u64, tag: &str) {
        if let Some(state) = self.queues.get_mut(queue) {
            state
                .consumers
                .retain(|(c, t)| !(*c == channel && t == tag));
            if state.consumers.is_empty()
                && let Some(ms) = state.expires
            {
                // Unused from now on: its expiry starts.
                state.used = Instant::now();
                self.timers
                    .push((queue.to_owned(), state.used + Duration::from_millis(ms)));
            }
        }
    }

    /// An auto-delete queue goes once it had a consumer and has none.
    fn auto_delete_queue(&mut self, queue: &str) {
        if self
            .queues
            .get(queue)
            .is_some_and(|q| q.auto_delete && q.had_consumer && q.consumers.is_empty())
        {
            self.remove_queue(queue);
        }
    }

    pub(super) fn qos(&mut self, channel: u64, prefetch: u16) -> Refused<()> {
        self.channel(channel)?.prefetch = prefetch;
        Ok(())
    }

    /// Starts a consumer; gives its tag.
    pub(super) fn consume(
        &mut self,
        channel: u64,
        queue: &str,
        no_ack: bool,
        events: mpsc::UnboundedSender<Event>,
    ) -> Refused<String> {
        let state = self.channel(channel)?;
        state.next_consumer += 1;
        let tag = format!("amq.ctag-{channel}.{}", state.next_consumer);
        if queue == REPLY_TO {
            if !no_ack {
                return Err(Refusal::precondition("reply consumer cannot acknowledge"));
            }
            if state.reply_to.is_some() {
                return Err(Refusal::precondition("reply consumer already set"));
            }
            state.reply_to = Some((tag.clone(), events));
            return Ok(tag);
        }
        let connection = state.connection;
        let prefetch = state.prefetch;
        self.usable(connection, queue)?;
        let state = self.channel(channel)?;
        state.consumers.insert(
            tag.clone(),
            ConsumerState {
                queue: queue.to_owned(),
                no_ack,
                prefetch,
                unacked: 0,
                events,
            },
        );
        if let Some(q) = self.queues.get_mut(queue) {
            q.consumers.push((channel, tag.clone()));
            q.had_consumer = true;
        }
        self.dispatch(queue);
        Ok(tag)
    }

    pub(super) fn cancel(&mut self, channel: u64, tag: &str) -> Refused<()> {
        let state = self.channel(channel)?;
        if state.reply_to.as_ref().is_some_and(|(t, _)| t == tag) {
            state.reply_to = None;
            return Ok(());
        }
        let Some(consumer) = state.consumers.remove(tag) else {
            return Ok(());
        };
        if let Some(queue) = self.queues.get_mut(&consumer.queue)
            && is_single_active(queue)
            && queue
                .consumers
                .first()
                .is_some_and(|(c, t)| *c == channel && t == tag)
        {
            queue.handing_over = Some(channel);
        }
        self.forget_consumer(&consumer.queue, channel, tag);
        self.auto_delete_queue(&consumer.queue);
        Ok(())
    }

    /// The queues a message published to `exchange` with `key` and
    /// `headers` goes to, following exchange-to-exchange bindings.
    pub(super) fn route(
        &self,
        exchange: &str,
        key: &str,
        headers: &BTreeMap<String, Value>,
    ) -> Vec<String> {
        let mut queues = BTreeSet::new();
        if exchange.is_empty() {
            if self.queues.contains_key(key) {
                queues.insert(key.to_owned());
            }
            return queues.into_iter().collect();
        }
        let mut visited = BTreeSet::new();
        let mut pending = vec![exchange.to_owned()];
        while let Some(name) = pending.pop() {
            if !visited.insert(name.clone()) {
                continue;
            }
            let Some(state) = self.exchanges.get(&name) else {
                continue;
            };
            let mut matched = false;
            for bound in state.bindings.matching(key, headers) {
                matched = true;
                match &bound.destination {
                    Destination::Queue(queue) => {
                        queues.insert(queue.clone());
                    }
                    Destination::Exchange(next) => pending.push(next.clone()),
                }
            }
            // What no binding takes goes to the alternate exchange.
            if !matched && let Some(alternate) = &state.alternate {
                pending.push(alternate.clone());
            }
        }
        queues.into_iter().collect()
    }

    /// Publishes `message` on `channel`.
    pub(super) fn publish(&mut self, channel: u64, mut message: Message) -> Refused<Published> {
        let state = self.channel(channel)?;
        if message.reply_to.as_deref() == Some(REPLY_TO) {
            if state.reply_to.is_none() {
                return Err(Refusal::precondition("fast reply consumer does not exist"));
            }
            message.reply_to = Some(state.reply_address.clone());
        }
        let exchange = message.exchange.as_str();
        if !exchange.is_empty() && !self.exchanges.contains_key(exchange) {
            return Err(Refusal::not_found("exchange", exchange));
        }
        let expiration = match message.expiration.as_deref() {
            None => None,
            Some(ms) => Some(
                ms.parse::<u64>()
                    .map_err(|_| Refusal::precondition(format!("invalid expiration '{ms}'")))?,
            ),
        };
        if exchange.is_empty() && message.routing_key.starts_with(REPLY_TO) {
            return Ok(self.reply(message));
        }
        let queues = self.route(exchange, &message.routing_key, &message.headers);
        if queues.is_empty() {
            return Ok(Published::Unroutable);
        }
        let message = Arc::new(message);
        let mut outcome = Published::Routed;
        for queue in &queues {
            if !self.enqueue(queue, &message, expiration) {
                outcome = Published::Refused;
            }
            self.dispatch(queue);
        }
        Ok(outcome)
    }

    /// A reply to a direct reply-to address: straight to its consumer.
    fn reply(&mut self, message: Message) -> Published {
        let Some(channel) = self
            .channels
            .iter_mut()
            .find(|(_, c)| c.reply_address == message.routing_key)
            .map(|(_, c)| c)
        else {
            return Published::Unroutable;
        };
        let Some((_, events)) = &channel.reply_to else {
            return Published::Unroutable;
        };
        channel.next_tag += 1;
        let delivered = Delivered {
            message: Arc::new(message),
            tag: channel.next_tag,
            redelivered: false,
            returns: None,
        };
        match events.send(Event::Deliver(delivered)) {
            Ok(()) => Published::Routed,
            Err(_) => Published::Unroutable,
        }
    }

    /// Puts a message in a queue, within its length limit; false when the
    /// queue refused it.
    pub(super) fn enqueue(
        &mut self,
        queue: &str,
        message: &Arc<Message>,
        expiration: Option<u64>,
    ) -> bool {
        let Some(state) = self.queues.get_mut(queue) else {
            return true;
        };
        let ttl = match (state.ttl, expiration) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if state.overflow == Overflow::RejectPublish
            && state.max_length.is_some_and(|max| state.ready.len() >= max)
        {
            return false;
        }
        state.ready.push_back(Stored {
            message: message.clone(),
            redelivered: false,
            expires: ttl.map(|ms| Instant::now() + Duration::from_millis(ms)),
            returns: 0,
        });
        let mut dropped = Vec::new();
        if let Some(max) = state.max_length {
            while state.ready.len() > max {
                if let Some(head) = state.ready.pop_front() {
                    dropped.push(head);
                }
            }
        }
        for stored in dropped {
            self.dead_letter(queue, stored, "maxlen");
        }
        true
    }

    /// Returns an unsettled message to the head of its queue (redelivered;
    /// a quorum queue counts the return and may dead-letter it).
    fn give_back(&mut self, queue: &str, mut stored: Stored) {
        let Some(state) = self.queues.get_mut(queue) else {
            return;
        };
        stored.redelivered = true;
        if state.quorum {
            stored.returns += 1;
            if state
                .delivery_limit
                .is_some_and(|limit| stored.returns > limit)
            {
                self.dead_letter(queue, stored, "delivery_limit");
                return;
            }
        }
        state.ready.push_front(stored);
    }

    /// Delivers what `queue` holds to its consumers, in turn, within their
    /// prefetch; drops (or dead-letters) expired messages at its head.
    pub(super) fn dispatch(&mut self, queue: &str) {
        let mut expired = Vec::new();
        let State {
            queues,
            channels,
            timers,
            ..
        } = self;
        let Some(state) = queues.get_mut(queue) else {
            return;
        };
        let now = Instant::now();
        loop {
            while state
                .ready
                .front()
                .is_some_and(|s| s.expires.is_some_and(|e| e <= now))
            {
                expired.extend(state.ready.pop_front());
            }
            if state.ready.is_empty() || state.consumers.is_empty() {
                break;
            }
            // A single active consumer queue delivers to its first
            // consumer alone; the next one takes over when it goes, and
            // once what the one before still holds is settled.
            let single_active = is_single_active(state);
            if let Some(outgoing) = state.handing_over {
                let holds = channels
                    .get(&outgoing)
                    .is_some_and(|c| c.unacked.values().any(|u| u.queue == queue));
                if holds {
                    break;
                }
                state.handing_over = None;
            }
            let count = state.consumers.len();
            let mut chosen = None;
            for i in 0..if single_active { 1 } else { count } {
                let index = if single_active {
                    0
                } else {
                    (state.turn + i) % count
                };
                let (channel, tag) = &state.consumers[index];
                let has_room = channels
                    .get(channel)
                    .and_then(|c| c.consumers.get(tag))
                    .is_some_and(|c| {
                        c.no_ack || c.prefetch == 0 || c.unacked < usize::from(c.prefetch)
                    });
                if has_room {
                    chosen = Some(index);
                    break;
                }
            }
            let Some(index) = chosen else { break };
            state.turn = index + 1;
            let (channel_id, tag) = state.consumers[index].clone();
            // The consumer was found with room just above.
            let Some(channel) = channels.get_mut(&channel_id) else {
                break;
            };
            let Some(consumer) = channel.consumers.get_mut(&tag) else {
                break;
            };
            let Some(stored) = state.ready.pop_front() else {
                break;
            };
            channel.next_tag += 1;
            let delivery_tag = channel.next_tag;
            let delivered = Delivered {
                message: stored.message.clone(),
                tag: delivery_tag,
                redelivered: stored.redelivered,
                returns: (state.quorum && stored.returns > 0).then_some(stored.returns),
            };
            if !consumer.no_ack {
                consumer.unacked += 1;
                channel.unacked.insert(
                    delivery_tag,
                    Unacked {
                        queue: queue.to_owned(),
                        consumer: tag,
                        stored,
                    },
                );
            }
            // A consumer whose stream was dropped keeps its deliveries
            // unacknowledged until its channel closes, as with a client
            // that stopped reading.
            let _ = consumer.events.send(Event::Deliver(delivered));
        }
        if let Some(expires) = state.ready.front().and_then(|s| s.expires)
            && state.timer.is_none_or(|armed| armed > expires)
        {
            state.timer = Some(expires);
            timers.push((queue.to_owned(), expires));
        }
        for stored in expired {
            self.dead_letter(queue, stored, "expired");
        }
    }

    /// A queue's timer fired: expire what is due, and delete the queue if
    /// it was unused for its `x-expires` (no consumer, not declared again).
    pub(super) fn expire(&mut self, queue: &str) {
        let Some(state) = self.queues.get_mut(queue) else {
            return;
        };
        state.timer = None;
        if let Some(ms) = state.expires {
            let at = state.used + Duration::from_millis(ms);
            if !state.consumers.is_empty() {
                // In use; its expiry starts when its last consumer goes.
            } else if at <= Instant::now() {
                tracing::debug!(queue, "queue expired (x-expires)");
                self.remove_queue(queue);
                return;
            } else {
                self.timers.push((queue.to_owned(), at));
            }
        }
        self.dispatch(queue);
    }

    /// Arms the `x-expires` timer of a queue just declared.
    pub(super) fn arm_expiry(&mut self, queue: &str, state: &QueueState) {
        if let Some(ms) = state.expires {
            self.timers
                .push((queue.to_owned(), state.used + Duration::from_millis(ms)));
        }
    }

    /// Settles delivery `tag` on `channel`: acknowledged, or rejected and
    /// requeued or dead-lettered. An unknown tag closes the channel.
    pub(super) fn settle(&mut self, channel: u64, tag: u64, outcome: Settle) -> Refused<()> {
        let state = self.channel(channel)?;
        if !state.unacked.contains_key(&tag) {
            return Err(Refusal::precondition(format!("unknown delivery tag {tag}")));
        }
        if let Settle::AckUpTo = outcome {
            // Every outstanding delivery up to `tag`, as `basic.ack`
            // with `multiple`.
            let tags: Vec<u64> = state.unacked.range(..=tag).map(|(t, _)| *t).collect();
            return tags
                .into_iter()
                .try_for_each(|t| self.settle(channel, t, Settle::Ack));
        }
        let Some(unacked) = state.unacked.remove(&tag) else {
            return Err(Refusal::precondition(format!("unknown delivery tag {tag}")));
        };
        if let Some(consumer) = state.consumers.get_mut(&unacked.consumer) {
            consumer.unacked = consumer.unacked.saturating_sub(1);
        }
        let queue = unacked.queue;
        match outcome {
            Settle::Ack | Settle::AckUpTo => {}
            Settle::Requeue => self.give_back(&queue, unacked.stored),
            Settle::Discard => self.dead_letter(&queue, unacked.stored, "rejected"),
        }
        self.dispatch(&queue);
        Ok(())
    }
}

/// Whether `queue` delivers to a single active consumer.
fn is_single_active(queue: &QueueState) -> bool {
    queue
        .arguments
        .get("x-single-active-consumer")
        .and_then(Value::as_bool)
        == Some(true)
}

/// How a delivery is settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Settle {
    Ack,
    AckUpTo,
    Requeue,
    Discard,
}

//! The in-memory broker's state: exchanges, queues, connections and
//! channels, and the declarations that change them, with RabbitMQ's rules
//! and refusals.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::delivery::Event;
pub(super) use super::refusal::{Refusal, Refused};
pub(super) use super::routing::{Bindings, Bound, Destination};
use crate::topology::{Exchange, ExchangeKind, Queue};
use crate::transport::Headers;

/// The pseudo-queue of direct reply-to.
pub(super) const REPLY_TO: &str = "amq.rabbitmq.reply-to";

/// A message as published: shared by every queue it was routed to.
#[derive(Debug)]
pub(super) struct Message {
    pub(super) exchange: String,
    pub(super) routing_key: String,
    pub(super) body: Arc<[u8]>,
    pub(super) content_type: Option<String>,
    pub(super) persistent: bool,
    pub(super) reply_to: Option<String>,
    pub(super) correlation_id: Option<String>,
    pub(super) message_id: Option<String>,
    pub(super) user_id: Option<String>,
    pub(super) expiration: Option<String>,
    pub(super) headers: Headers,
}

/// A message in a queue.
#[derive(Debug, Clone)]
pub(super) struct Stored {
    pub(super) message: Arc<Message>,
    pub(super) redelivered: bool,
    /// When it expires (queue or message TTL).
    pub(super) expires: Option<Instant>,
    /// How many times it was returned to a quorum queue.
    pub(super) returns: u64,
}

/// What a queue does when it is full (`x-overflow`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Overflow {
    DropHead,
    RejectPublish,
}

/// A queue's declaration as it matters for equivalence and behaviour.
#[derive(Debug)]
pub(super) struct QueueState {
    pub(super) durable: bool,
    pub(super) auto_delete: bool,
    pub(super) arguments: BTreeMap<String, Value>,
    /// The connection that owns it, when it is exclusive.
    pub(super) owner: Option<u64>,
    pub(super) ttl: Option<u64>,
    pub(super) max_length: Option<usize>,
    pub(super) overflow: Overflow,
    pub(super) dead_letter_exchange: Option<String>,
    pub(super) dead_letter_key: Option<String>,
    pub(super) quorum: bool,
    pub(super) delivery_limit: Option<u64>,
    pub(super) ready: VecDeque<Stored>,
    /// Consumers by (channel, tag), in the order they started.
    pub(super) consumers: Vec<(u64, String)>,
    /// Where the next round-robin turn starts.
    pub(super) turn: usize,
    /// Did it ever have a consumer (auto-delete needs one gone)?
    pub(super) had_consumer: bool,
    /// The expiry the timer is armed for.
    pub(super) timer: Option<Instant>,
    /// Deleted after this long unused (`x-expires`, milliseconds).
    pub(super) expires: Option<u64>,
    /// When it was last used: declared, or left by a consumer.
    pub(super) used: Instant,
    /// A single active consumer queue whose active consumer was
    /// cancelled: the channel that still holds its unacknowledged
    /// deliveries. The next consumer gets nothing until they are settled
    /// (as RabbitMQ does), so the queue's order holds across the handover.
    pub(super) handing_over: Option<u64>,
}

#[derive(Debug)]
pub(super) struct ExchangeState {
    pub(super) kind: ExchangeKind,
    pub(super) durable: bool,
    pub(super) auto_delete: bool,
    /// Where what no binding takes goes (`alternate-exchange`).
    pub(super) alternate: Option<String>,
    pub(super) bindings: Bindings,
}

/// A consumer, as its channel knows it.
#[derive(Debug)]
pub(super) struct ConsumerState {
    pub(super) queue: String,
    pub(super) no_ack: bool,
    pub(super) prefetch: u16,
    pub(super) unacked: usize,
    pub(super) events: mpsc::UnboundedSender<Event>,
}

/// A delivery not settled yet.
#[derive(Debug)]
pub(super) struct Unacked {
    pub(super) queue: String,
    pub(super) consumer: String,
    pub(super) stored: Stored,
}

#[derive(Debug)]
pub(super) struct ChannelState {
    pub(super) connection: u64,
    pub(super) prefetch: u16,
    pub(super) consumers: HashMap<String, ConsumerState>,
    pub(super) unacked: BTreeMap<u64, Unacked>,
    pub(super) next_tag: u64,
    pub(super) next_consumer: u64,
    /// The direct reply-to consumer's tag and events, and the name
    /// replies are addressed to.
    pub(super) reply_to: Option<(String, mpsc::UnboundedSender<Event>)>,
    pub(super) reply_address: String,
}

/// The whole broker.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(super) up: bool,
    pub(super) exchanges: HashMap<String, ExchangeState>,
    pub(super) queues: HashMap<String, QueueState>,
    pub(super) channels: HashMap<u64, ChannelState>,
    pub(super) connections: HashMap<u64, Vec<u64>>,
    pub(super) next_id: u64,
    /// Every message dead-lettered, oldest first.
    pub(super) dead_letters: Vec<DeadLetter>,
    /// Queues whose timer must be armed (by the broker, which can spawn).
    pub(super) timers: Vec<(String, Instant)>,
    /// Why the broker closed the channels it closed.
    pub(super) refusals: HashMap<u64, Refusal>,
}

/// A message the broker dead-lettered.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// The queue it left.
    pub queue: String,
    /// Why: `rejected`, `expired`, `maxlen` or `delivery_limit`.
    pub reason: String,
    /// The exchange it was published to.
    pub exchange: String,
    /// The routing key it was published with.
    pub routing_key: String,
    /// Its body.
    pub body: Vec<u8>,
}

fn integer(arguments: &BTreeMap<String, Value>, key: &str) -> Refused<Option<u64>> {
    match arguments.get(key) {
        None => Ok(None),
        Some(value) => value.as_u64().map(Some).ok_or_else(|| {
            Refusal::precondition(format!("invalid arg '{key}' for queue: {value}"))
        }),
    }
}

fn text(arguments: &BTreeMap<String, Value>, key: &str) -> Option<String> {
    arguments
        .get(key)
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn reserved(name: &str, what: &str) -> Refused<()> {
    if name.starts_with("amq.") {
        return Err(Refusal::access(format!(
            "{what} name '{name}' contains reserved prefix 'amq.*'"
        )));
    }
    Ok(())
}

/// `true`/`false` as RabbitMQ prints flags in its refusals.
fn flag(value: bool) -> &'static str {
    if value { "true" } else { "false" }
}

impl State {
    pub(super) fn new() -> Self {
        let mut state = State {
            up: true,
            ..State::default()
        };
        state.predeclare();
        state
    }

    /// The exchanges every RabbitMQ vhost has.
    pub(super) fn predeclare(&mut self) {
        for (name, kind) in [
            ("amq.direct", ExchangeKind::Direct),
            ("amq.fanout", ExchangeKind::Fanout),
            ("amq.topic", ExchangeKind::Topic),
            ("amq.headers", ExchangeKind::Headers),
            ("amq.match", ExchangeKind::Headers),
        ] {
            self.exchanges
                .entry(name.to_owned())
                .or_insert_with(|| ExchangeState {
                    kind,
                    durable: true,
                    auto_delete: false,
                    alternate: None,
                    bindings: Bindings::new(kind),
                });
        }
    }

    pub(super) fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// A channel that is open, or the refusal of using a closed one.
    pub(super) fn channel(&mut self, channel: u64) -> Refused<&mut ChannelState> {
        self.channels
            .get_mut(&channel)
            .ok_or_else(|| Refusal::new(504, "CHANNEL_ERROR - the channel is closed"))
    }

    pub(super) fn declare_exchange(&mut self, channel: u64, exchange: &Exchange) -> Refused<()> {
        self.channel(channel)?;
        let name = exchange.name();
        if let Some(known) = self.exchanges.get(name) {
            if exchange.is_passive() {
                return Ok(());
            }
            if known.kind != exchange.kind() {
                return Err(Refusal::precondition(format!(
                    "inequivalent arg 'type' for exchange '{name}' in vhost '/': received '{}' but current is '{}'",
                    exchange.kind().as_str(),
                    known.kind.as_str()
                )));
            }
            if known.durable != exchange.is_durable() {
                return Err(Refusal::precondition(format!(
                    "inequivalent arg 'durable' for exchange '{name}' in vhost '/': received '{}' but current is '{}'",
                    flag(exchange.is_durable()),
                    flag(known.durable)
                )));
            }
            if known.auto_delete != exchange.is_auto_delete() {
                return Err(Refusal::precondition(format!(
                    "inequivalent arg 'auto_delete' for exchange '{name}' in vhost '/': received '{}' but current is '{}'",
                    flag(exchange.is_auto_delete()),
                    flag(known.auto_delete)
                )));
            }
            return Ok(());
        }
        if exchange.is_passive() {
            return Err(Refusal::not_found("exchange", name));
        }
        reserved(name, "exchange")?;
        self.exchanges.insert(
            name.to_owned(),
            ExchangeState {
                kind: exchange.kind(),
                durable: exchange.is_durable(),
                auto_delete: exchange.is_auto_delete(),
                alternate: text(exchange.arguments(), "alternate-exchange"),
                bindings: Bindings::new(exchange.kind()),
            },
        );
        Ok(())
    }

    /// Checks that `connection` may use `queue` (an exclusive queue is its
    /// owner's alone).
    pub(super) fn usable(&self, connection: u64, queue: &str) -> Refused<&QueueState> {
        let state = self
            .queues
            .get(queue)
            .ok_or_else(|| Refusal::not_found("queue", queue))?;
        match state.owner {
            Some(owner) if owner != connection => Err(Refusal::locked(queue)),
            _ => Ok(state),
        }
    }

    /// Declares (or, `passive`, checks) a queue; gives its name, ready
    /// messages and consumers.
    pub(super) fn declare_queue(
        &mut self,
        channel: u64,
        queue: &Queue,
        passive: bool,
    ) -> Refused<(String, u32, u32)> {
        let connection = self.channel(channel)?.connection;
        let name = if queue.name().is_empty() {
            if passive {
                return Err(Refusal::not_found("queue", ""));
            }
            let id = self.next_id();
            server_name(id)
        } else {
            queue.name().to_owned()
        };
        if let Some(known) = self.queues.get(&name) {
            if let Some(owner) = known.owner
                && owner != connection
            {
                return Err(Refusal::locked(&name));
            }
            if !passive {
                equivalent(&name, known, queue)?;
            }
            let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
            let declared = (count(known.ready.len()), count(known.consumers.len()));
            // A declaration is a use: the queue's expiry starts again.
            if let Some(known) = self.queues.get_mut(&name) {
                known.used = Instant::now();
                if let Some(ms) = known.expires {
                    self.timers
                        .push((name.clone(), known.used + Duration::from_millis(ms)));
                }
            }
            return Ok((name, declared.0, declared.1));
        }
        if passive {
            return Err(Refusal::not_found("queue", &name));
        }
        if !queue.name().is_empty() {
            reserved(&name, "queue")?;
        }
        let arguments = queue.arguments();
        let quorum = text(arguments, "x-queue-type").as_deref() == Some("quorum");
        if quorum && (queue.is_exclusive() || queue.is_auto_delete() || !queue.is_durable()) {
            let what = if !queue.is_durable() {
                "non-durable"
            } else if queue.is_exclusive() {
                "exclusive"
            } else {
                "auto-delete"
            };
            return Err(Refusal::precondition(format!(
                "invalid property '{what}' for queue '{name}' in vhost '/'"
            )));
        }
        let overflow = match text(arguments, "x-overflow").as_deref() {
            None | Some("drop-head") => Overflow::DropHead,
            Some("reject-publish" | "reject-publish-dlx") => Overflow::RejectPublish,
            Some(other) => {
                return Err(Refusal::precondition(format!(
                    "invalid arg 'x-overflow' for queue '{name}' in vhost '/': {other}"
                )));
            }
        };
        let state = QueueState {
            durable: queue.is_durable(),
            auto_delete: queue.is_auto_delete(),
            arguments: arguments.clone(),
            owner: queue.is_exclusive().then_some(connection),
            ttl: integer(arguments, "x-message-ttl")?,
            max_length: integer(arguments, "x-max-length")?
                .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
            overflow,
            dead_letter_exchange: text(arguments, "x-dead-letter-exchange"),
            dead_letter_key: text(arguments, "x-dead-letter-routing-key"),
            quorum,
            delivery_limit: integer(arguments, "x-delivery-limit")?,
            ready: VecDeque::new(),
            consumers: Vec::new(),
            turn: 0,
            had_consumer: false,
            timer: None,
            expires: integer(arguments, "x-expires")?,
            used: Instant::now(),
            handing_over: None,
        };
        if state.expires == Some(0) {
            return Err(Refusal::precondition(format!(
                "invalid arg 'x-expires' for queue '{name}' in vhost '/': 0"
            )));
        }
        self.arm_expiry(&name, &state);
        self.queues.insert(name.clone(), state);
        Ok((name, 0, 0))
    }

    /// Binds `destination` to `exchange`.
    pub(super) fn bind(
        &mut self,
        channel: u64,
        destination: Destination,
        exchange: &str,
        key: &str,
        arguments: &BTreeMap<String, Value>,
    ) -> Refused<()> {
        let connection = self.channel(channel)?.connection;
        match &destination {
            Destination::Queue(queue) => {
                self.usable(connection, queue)?;
            }
            Destination::Exchange(name) => {
                if !self.exchanges.contains_key(name) {
                    return Err(Refusal::not_found("exchange", name));
                }
            }
        }
        if exchange.is_empty() {
            return Err(Refusal::access(
                "operation not permitted on the default exchange",
            ));
        }
        let source = self
            .exchanges
            .get_mut(exchange)
            .ok_or_else(|| Refusal::not_found("exchange", exchange))?;
        let bound = Bound {
            destination,
            key: key.to_owned(),
            arguments: arguments.clone(),
        };
        source.bindings.add(bound);
        Ok(())
    }

    /// Removes a binding (none is no error, as in RabbitMQ).
    pub(super) fn unbind(
        &mut self,
        channel: u64,
        destination: &Destination,
        exchange: &str,
        key: &str,
    ) -> Refused<()> {
        self.channel(channel)?;
        if exchange.is_empty() {
            return Err(Refusal::access(
                "operation not permitted on the default exchange",
            ));
        }
        if let Some(source) = self.exchanges.get_mut(exchange) {
            source.bindings.remove(destination, key);
        }
        self.auto_delete_exchange(exchange);
        Ok(())
    }

    /// An auto-delete exchange goes with its last binding.
    fn auto_delete_exchange(&mut self, exchange: &str) {
        if self
            .exchanges
            .get(exchange)
            .is_some_and(|e| e.auto_delete && e.bindings.is_empty())
        {
            self.remove_exchange(exchange);
        }
    }

    /// Deletes an exchange and the bindings to and from it.
    pub(super) fn remove_exchange(&mut self, name: &str) {
        self.exchanges.remove(name);
        let destination = Destination::Exchange(name.to_owned());
        self.drop_bindings_to(&destination);
    }

    fn drop_bindings_to(&mut self, destination: &Destination) {
        let mut emptied = Vec::new();
        for (name, exchange) in &mut self.exchanges {
            if exchange.bindings.remove_all_to(destination) && exchange.bindings.is_empty() {
                emptied.push(name.clone());
            }
        }
        for name in emptied {
            self.auto_delete_exchange(&name);
        }
    }

    /// Deletes a queue: its consumers are cancelled, its bindings go, and
    /// its messages with it; gives how many messages it held.
    pub(super) fn remove_queue(&mut self, name: &str) -> u32 {
        let Some(queue) = self.queues.remove(name) else {
            return 0;
        };
        for (channel, tag) in &queue.consumers {
            if let Some(channel) = self.channels.get_mut(channel)
                && let Some(consumer) = channel.consumers.remove(tag)
            {
                let _ = consumer.events.send(Event::Cancelled);
            }
        }
        self.drop_bindings_to(&Destination::Queue(name.to_owned()));
        u32::try_from(queue.ready.len()).unwrap_or(u32::MAX)
    }

    pub(super) fn delete_queue(&mut self, channel: u64, name: &str) -> Refused<u32> {
        let connection = self.channel(channel)?.connection;
        if !self.queues.contains_key(name) {
            // Deleting a missing queue is no error (RabbitMQ 3.x).
            return Ok(0);
        }
        self.usable(connection, name)?;
        Ok(self.remove_queue(name))
    }

    pub(super) fn delete_exchange(&mut self, channel: u64, name: &str) -> Refused<()> {
        self.channel(channel)?;
        if name.is_empty() || name.starts_with("amq.") {
            return Err(Refusal::access(format!(
                "operation not permitted on the default exchange or 'amq.*' exchange '{name}'"
            )));
        }
        self.remove_exchange(name);
        Ok(())
    }
}

/// A server-named queue's name: `amq.gen-` and 22 characters.
fn server_name(id: u64) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut seed = id
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(u64::from(std::process::id()));
    let mut name = String::from("amq.gen-");
    for _ in 0..22 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let index = usize::try_from(seed % 64).unwrap_or(0);
        name.push(char::from(ALPHABET[index]));
    }
    name
}

/// Is a redeclaration of `name` as `queue` equivalent to `known`?
fn equivalent(name: &str, known: &QueueState, queue: &Queue) -> Refused<()> {
    for (what, received, current) in [
        ("durable", queue.is_durable(), known.durable),
        ("exclusive", queue.is_exclusive(), known.owner.is_some()),
        ("auto_delete", queue.is_auto_delete(), known.auto_delete),
    ] {
        if received != current {
            return Err(Refusal::precondition(format!(
                "inequivalent arg '{what}' for queue '{name}' in vhost '/': received '{}' but current is '{}'",
                flag(received),
                flag(current)
            )));
        }
    }
    // Only the arguments RabbitMQ checks on redeclaration.
    for key in [
        "x-message-ttl",
        "x-max-length",
        "x-dead-letter-exchange",
        "x-dead-letter-routing-key",
        "x-queue-type",
        "x-overflow",
        "x-delivery-limit",
        "x-expires",
    ] {
        let received = queue.arguments().get(key);
        let current = known.arguments.get(key);
        // A classic queue declared without a type is one declared as classic.
        let defaulted = key == "x-queue-type"
            && received.or(current).and_then(Value::as_str) == Some("classic")
            && (received.is_none() || current.is_none());
        if received != current && !defaulted {
            let show = |v: Option<&Value>| v.map_or("none".to_owned(), |v| format!("'{v}'"));
            return Err(Refusal::precondition(format!(
                "inequivalent arg '{key}' for queue '{name}' in vhost '/': received {} but current is {}",
                show(received),
                show(current)
            )));
        }
    }
    Ok(())
}

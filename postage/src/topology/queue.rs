//! Queue declarations as values.

use std::collections::BTreeMap;

use serde_json::Value;

/// A queue declaration. Defaults match Python Postage: not durable, not
/// exclusive, not auto-delete, no arguments.
///
/// ```
/// use postage::Queue;
///
/// let jobs = Queue::new("jobs")
///     .durable(true)
///     .argument("x-queue-type", "quorum")
///     .argument("x-dead-letter-exchange", "jobs-dlx");
/// let private = Queue::new(format!("echo-queue-{}", std::process::id())).exclusive(true);
/// let named_by_broker = Queue::server_named();
/// # let _ = (jobs, private, named_by_broker);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Queue {
    name: String,
    passive: bool,
    durable: bool,
    exclusive: bool,
    auto_delete: bool,
    arguments: BTreeMap<String, Value>,
}

impl Queue {
    /// A queue called `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Queue {
            name: name.into(),
            passive: false,
            durable: false,
            exclusive: false,
            auto_delete: false,
            arguments: BTreeMap::new(),
        }
    }

    /// A quorum queue: durable, replicated over the nodes of a RabbitMQ
    /// cluster (`x-queue-type: quorum`), and it counts deliveries
    /// (`x-delivery-count`). The choice for a work queue that several
    /// components share in a cluster: it survives the loss of a minority
    /// of the nodes with no confirmed message lost. Not exclusive, not
    /// auto-delete (quorum queues can be neither).
    ///
    /// ```
    /// use postage::Queue;
    ///
    /// let jobs = Queue::quorum("jobs")
    ///     .delivery_limit(5)
    ///     .dead_letter_exchange("jobs-dlx");
    /// assert!(jobs.is_durable());
    /// assert_eq!(jobs.arguments()["x-queue-type"], "quorum");
    /// assert_eq!(jobs.arguments()["x-delivery-limit"], 5);
    /// assert_eq!(jobs.arguments()["x-dead-letter-exchange"], "jobs-dlx");
    /// ```
    pub fn quorum(name: impl Into<String>) -> Self {
        Queue::new(name)
            .durable(true)
            .argument("x-queue-type", "quorum")
    }

    /// How many times a message may be delivered before the broker drops
    /// or dead-letters it (`x-delivery-limit`, quorum queues).
    #[must_use]
    pub fn delivery_limit(self, deliveries: u32) -> Self {
        self.argument("x-delivery-limit", deliveries)
    }

    /// One consumer at a time (`x-single-active-consumer`, classic and
    /// quorum queues): the broker delivers to the first consumer only;
    /// the others stand by and one of them takes over, with what was not
    /// acknowledged, when the active one goes (its connection closed or
    /// lost: at once for a killed process, whose socket its system closes;
    /// within the heartbeat timeout for a host that vanished).
    /// The order of the queue holds across all processes that consume
    /// it. A processor standing by says
    /// `Health::StandingBy` while
    /// messages wait for the active one (`standing_by` in `postage ps`
    /// and its metrics).
    ///
    /// ```
    /// use postage::Queue;
    ///
    /// let ledger = Queue::quorum("ledger").single_active_consumer();
    /// assert_eq!(ledger.arguments()["x-single-active-consumer"], true);
    /// ```
    #[must_use]
    pub fn single_active_consumer(self) -> Self {
        self.argument("x-single-active-consumer", true)
    }

    /// Whether it has a single active consumer
    /// ([`single_active_consumer`](Self::single_active_consumer)).
    pub fn is_single_active_consumer(&self) -> bool {
        self.arguments().get("x-single-active-consumer") == Some(&Value::Bool(true))
    }

    /// Where rejected, expired or over-delivered messages go
    /// (`x-dead-letter-exchange`).
    #[must_use]
    pub fn dead_letter_exchange(self, exchange: impl Into<String>) -> Self {
        self.argument("x-dead-letter-exchange", exchange.into())
    }

    /// The routing key dead-lettered messages get
    /// (`x-dead-letter-routing-key`; default: their own).
    #[must_use]
    pub fn dead_letter_routing_key(self, key: impl Into<String>) -> Self {
        self.argument("x-dead-letter-routing-key", key.into())
    }

    /// A queue the broker names (`amq.gen-...`): exclusive and auto-delete.
    pub fn server_named() -> Self {
        Queue::new("").exclusive(true).auto_delete(true)
    }

    /// Passive: only checks that the queue exists (a missing one is a
    /// 404 `NOT_FOUND` refusal), declaring nothing.
    #[must_use]
    pub fn passive(mut self, passive: bool) -> Self {
        self.passive = passive;
        self
    }

    /// Is it only checked?
    pub fn is_passive(&self) -> bool {
        self.passive
    }

    /// Durable: survives a broker restart.
    #[must_use]
    pub fn durable(mut self, durable: bool) -> Self {
        self.durable = durable;
        self
    }

    /// Exclusive: private to this connection, deleted with it.
    #[must_use]
    pub fn exclusive(mut self, exclusive: bool) -> Self {
        self.exclusive = exclusive;
        self
    }

    /// Auto-delete: deleted when its last consumer goes.
    #[must_use]
    pub fn auto_delete(mut self, auto_delete: bool) -> Self {
        self.auto_delete = auto_delete;
        self
    }

    /// Adds a declaration argument (`x-dead-letter-exchange`,
    /// `x-queue-type`, `x-message-ttl`, ...).
    #[must_use]
    pub fn argument(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.arguments.insert(key.into(), value.into());
        self
    }

    /// The queue's name (empty for a server-named queue).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Is it durable?
    pub fn is_durable(&self) -> bool {
        self.durable
    }

    /// Is it exclusive?
    pub fn is_exclusive(&self) -> bool {
        self.exclusive
    }

    /// Is it auto-delete?
    pub fn is_auto_delete(&self) -> bool {
        self.auto_delete
    }

    /// Its declaration arguments.
    pub fn arguments(&self) -> &BTreeMap<String, Value> {
        &self.arguments
    }
}

impl From<&str> for Queue {
    fn from(name: &str) -> Self {
        Queue::new(name)
    }
}

impl From<String> for Queue {
    fn from(name: String) -> Self {
        Queue::new(name)
    }
}

impl From<&String> for Queue {
    fn from(name: &String) -> Self {
        Queue::new(name.as_str())
    }
}

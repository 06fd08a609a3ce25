//! [`ConsumerBuilder`]: bindings, prefetch, encoder and body limit, then
//! the broker consumers.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::handle::{Queues, Shared, State};
use super::watch::{DEFAULT_WATCHDOG_PERIOD, Flag, watchdog};
use super::{Consumer, ConsumerHandle, Health};
use crate::encoding::{Encoder, JsonEncoder};
use crate::error::Result;
use crate::telemetry::HealthGauge;
use crate::topology::{Binding, Exchange, Queue};
use crate::transport::{Connection, Role};

/// How many unacknowledged messages the broker sends a consumer ahead of
/// time, per queue, unless [`ConsumerBuilder::prefetch`] says otherwise.
///
/// 128 lets a processor acknowledge runs of 64 messages in one frame
/// (coalesced acknowledgements flush at half the prefetch): it consumes
/// 1.3× as fast as at 16 (BENCHMARKS.md, "Prefetch"). Where several
/// workers share a queue and each message takes long to handle, a low
/// prefetch (1 to 4) spreads the work more evenly, since a worker holds
/// what it was sent until it gets to it. (Python Postage uses 1.)
pub const DEFAULT_PREFETCH: u16 = 128;

/// The largest body a consumer decodes unless
/// [`ConsumerBuilder::max_body_size`] says otherwise: 16 MiB. A larger one
/// is a [`DecodeError::TooLarge`](crate::DecodeError::TooLarge).
pub const DEFAULT_MAX_BODY_SIZE: usize = 16 * 1024 * 1024;

/// Builds a [`Consumer`].
#[derive(Debug, Clone)]
pub struct ConsumerBuilder {
    bindings: Vec<Binding>,
    prefetch: u16,
    encoder: Arc<dyn Encoder>,
    max_body_size: usize,
    name: String,
    redeclare: bool,
    /// `None`: [`DEFAULT_WATCHDOG_PERIOD`], unless a default of the
    /// crate's says otherwise.
    watchdog: Option<Duration>,
}

impl Default for ConsumerBuilder {
    fn default() -> Self {
        ConsumerBuilder {
            bindings: Vec::new(),
            prefetch: DEFAULT_PREFETCH,
            encoder: Arc::new(JsonEncoder),
            max_body_size: DEFAULT_MAX_BODY_SIZE,
            name: "consumer".into(),
            redeclare: true,
            watchdog: None,
        }
    }
}

impl ConsumerBuilder {
    /// Binds these (queue, key) pairs to `exchange` (Python's `eqk` entry).
    /// A queue bound with several keys still gets one broker consumer.
    #[must_use]
    pub fn bind<Q: Into<Queue>, K: Into<String>>(
        mut self,
        exchange: Exchange,
        queues: impl IntoIterator<Item = (Q, K)>,
    ) -> Self {
        self.bindings.push(Binding::new(exchange, queues));
        self
    }

    /// Adds a prepared [`Binding`].
    #[must_use]
    pub fn binding(mut self, binding: Binding) -> Self {
        self.bindings.push(binding);
        self
    }

    /// Messages the broker may send ahead of acknowledgements, per queue
    /// (default [`DEFAULT_PREFETCH`]; 0 means unlimited).
    #[must_use]
    pub fn prefetch(mut self, prefetch: u16) -> Self {
        self.prefetch = prefetch;
        self
    }

    /// Replaces the encoder (default [`JsonEncoder`]).
    #[must_use]
    pub fn encoder(mut self, encoder: impl Encoder) -> Self {
        self.encoder = Arc::new(encoder);
        self
    }

    /// The largest body decoded (default [`DEFAULT_MAX_BODY_SIZE`]); a
    /// larger one is delivered as [`DecodeError::TooLarge`](crate::DecodeError::TooLarge) without being
    /// parsed.
    #[must_use]
    pub fn max_body_size(mut self, bytes: usize) -> Self {
        self.max_body_size = bytes;
        self
    }

    /// The consumer's name in metrics: the `consumer` label of its
    /// health gauge (default `consumer`; a processor gives its
    /// fingerprint's name). Keep it the same across restarts.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// What to do when the broker cancels the consumer of a queue because
    /// the queue was deleted (`rabbitmqctl delete_queue`, the management
    /// UI, another client): with `true` (the default) the queue is
    /// declared again as it was declared here, with its bindings, and
    /// consumed again, within the connection's recovery timeout; with
    /// `false` the consumer's health turns
    /// [`Health::Failed`](crate::Health::Failed) (a processor then ends
    /// with [`Error::ConsumerLost`](crate::Error::ConsumerLost)) and
    /// nothing more arrives from that queue. A queue this consumer did not
    /// declare (declared elsewhere, or passive) cannot be declared again:
    /// its consumer fails either way.
    #[must_use]
    pub fn redeclare_deleted_queues(mut self, redeclare: bool) -> Self {
        self.redeclare = redeclare;
        self
    }

    /// How often the consumer's watchdog looks at its progress (default
    /// [`DEFAULT_WATCHDOG_PERIOD`]; `Duration::ZERO` turns it off). A queue
    /// that holds ready messages yet delivered nothing for two periods,
    /// while the consumer had room for more (fewer unsettled deliveries
    /// than the prefetch), makes the health [`Health::Stalled`] and gets
    /// the consumer a new channel; on a queue with a single active
    /// consumer and other consumers, it is [`Health::StandingBy`]. Each
    /// look at an idle queue is one passive declaration on a channel the
    /// connection keeps for it.
    #[must_use]
    pub fn watchdog(mut self, period: Duration) -> Self {
        self.watchdog = Some(period);
        self
    }

    /// The watchdog's period when none was set.
    pub(crate) fn default_watchdog(mut self, period: Duration) -> Self {
        self.watchdog.get_or_insert(period);
        self
    }

    /// The prefetch it asks for (0: unlimited).
    pub(crate) fn prefetch_count(&self) -> u16 {
        self.prefetch
    }

    pub(crate) fn encoder_arc(&self) -> Arc<dyn Encoder> {
        self.encoder.clone()
    }

    /// The bindings so far.
    pub fn bindings(&self) -> &[Binding] {
        &self.bindings
    }

    /// Opens a channel, declares the exchanges and queues, binds them, and
    /// starts consuming.
    pub async fn connect(self, connection: &Connection) -> Result<Consumer> {
        let channel = connection.open_channel(Role::Consume, false).await?;
        channel.qos(self.prefetch).await?;
        let (tx, added) = mpsc::unbounded_channel();
        let (health, _) = watch::channel(Health::Consuming);
        let health_gauge = HealthGauge::new(&self.name);
        health_gauge.set(Health::Consuming.name());
        let shared = Arc::new(Shared {
            channel,
            encoder: self.encoder,
            max_body_size: self.max_body_size,
            state: Mutex::new(State {
                tx: Some(tx),
                queues: HashMap::new(),
                consumers: Vec::new(),
                paused: false,
                tripped: None,
                session: 0,
            }),
            health,
            health_gauge,
            link: connection.link(),
            connection: connection.clone(),
            redeclare: self.redeclare,
            flag: Flag::default(),
            stalls: AtomicU64::new(0),
        });
        let period = self.watchdog.unwrap_or(DEFAULT_WATCHDOG_PERIOD);
        if !period.is_zero() {
            tokio::spawn(watchdog(
                Arc::downgrade(&shared),
                connection.clone(),
                period,
                self.prefetch,
            ));
        }
        let consumer = Consumer {
            handle: ConsumerHandle { shared },
            added,
            added_closed: false,
            queues: Mutex::new(Queues::new()),
        };
        for binding in &self.bindings {
            for (queue, key) in &binding.queues {
                consumer
                    .handle
                    .queue_bind(&binding.exchange, queue.clone(), key)
                    .await?;
            }
        }
        Ok(consumer)
    }
}

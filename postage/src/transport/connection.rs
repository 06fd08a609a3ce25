//! [`Connection`]: one broker connection shared by a component's producers
//! and processors.

use std::sync::Arc;

use super::{Channel, Link, amqp};

/// What a channel is for: on RabbitMQ each role has an AMQP connection of
/// its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Consumers, and what they declare and acknowledge.
    Consume,
    /// Producers, RPC calls and replies: anything that publishes.
    Publish,
}
use crate::config::Config;
use crate::error::Result;
use crate::topology::Queue;

/// A connection to RabbitMQ (or, in tests, to the in-memory broker of
/// the `testing` feature), shared by the producers and processors of a
/// component. Cheap to clone: clones share one AMQP connection.
///
/// Postage recovers it: a lost connection is replaced by a new one to the
/// first of the configured addresses that answers (see
/// [`Config::with_addresses`]), what was declared through it (exchanges,
/// queues, bindings) is declared again, every channel is opened again
/// with its prefetch and consumers, and a send whose confirmation was lost
/// is sent again.
///
/// ```no_run
/// # async fn run() -> postage::Result<()> {
/// let connection = postage::Connection::from_env().await?;
/// // ... producers and processors ...
/// connection.close().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Connection {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Backend,
    config: Config,
    /// The state of the consuming session.
    consume: Arc<Link>,
    /// The state of the publishing session (the same as `consume` when
    /// the backend has one).
    publish: Arc<Link>,
    /// The channel processors reply on, opened when first needed.
    replies: tokio::sync::OnceCell<Channel>,
    /// The channel consumers' watchdogs count queues on, opened when
    /// first needed.
    counts: tokio::sync::OnceCell<Channel>,
}

/// The broker behind a connection.
enum Backend {
    Amqp(amqp::Connection),
    #[cfg(feature = "testing")]
    Memory(super::memory::Connection),
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("endpoint", &self.inner.config.to_string())
            .field("connected", &self.is_connected())
            .finish()
    }
}

impl Connection {
    /// Connects with settings read from the `POSTAGE_*` variables.
    pub async fn from_env() -> Result<Self> {
        Self::connect(Config::from_env()?).await
    }

    /// Connects with these settings.
    pub async fn connect(config: Config) -> Result<Self> {
        let (consume, publish) = (Arc::new(Link::default()), Arc::new(Link::default()));
        let backend = Backend::Amqp(amqp::Connection::open(&config, &consume, &publish).await?);
        Ok(Connection {
            inner: Arc::new(Inner {
                backend,
                config,
                consume,
                publish,
                replies: tokio::sync::OnceCell::new(),
                counts: tokio::sync::OnceCell::new(),
            }),
        })
    }

    /// A connection to an in-memory broker (what
    /// `testing::MemoryBroker::connect` gives).
    #[cfg(feature = "testing")]
    pub(crate) fn in_memory(broker: &Arc<super::memory::Broker>, config: Config) -> Result<Self> {
        let link = Arc::new(Link::default());
        let backend = Backend::Memory(super::memory::Connection::open(broker, &config, &link)?);
        Ok(Connection {
            inner: Arc::new(Inner {
                backend,
                config,
                consume: link.clone(),
                publish: link,
                replies: tokio::sync::OnceCell::new(),
                counts: tokio::sync::OnceCell::new(),
            }),
        })
    }

    /// The settings this connection was made with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// How many times the connection was lost and recovered. On RabbitMQ
    /// a connection is two AMQP connections, one for consumers and one
    /// for publishers (so that a broker that blocks publishers never stops
    /// consumers); this is the count of the one recovered most often.
    pub fn recoveries(&self) -> u64 {
        let inner = &self.inner;
        inner.consume.recoveries().max(inner.publish.recoveries())
    }

    /// Did the recovery of a lost connection stall (see
    /// [`Config::with_recovery_timeout`])? The component should then be
    /// restarted.
    pub fn recovery_stalled(&self) -> bool {
        self.inner.consume.stalled() || self.inner.publish.stalled()
    }

    /// Why the broker blocks the connection's publishers, while it does:
    /// a memory or disk alarm (`low on memory`, `low on disk`). Sends wait
    /// meanwhile, within the publish time limit
    /// ([`Config::with_publish_timeout`]); consumers go on.
    pub fn blocked(&self) -> Option<String> {
        self.inner.publish.blocked()
    }

    /// The state of the consuming session.
    pub(crate) fn link(&self) -> Arc<Link> {
        self.inner.consume.clone()
    }

    /// The broker address the connection is on now (`host:port`): after a
    /// recovery, possibly another node of the cluster.
    pub fn endpoint(&self) -> String {
        match &self.inner.backend {
            Backend::Amqp(connection) => connection.endpoint(),
            #[cfg(feature = "testing")]
            Backend::Memory(_) => super::memory::ENDPOINT.to_owned(),
        }
    }

    /// Is the connection up (not closed, not recovering)?
    pub fn is_connected(&self) -> bool {
        match &self.inner.backend {
            Backend::Amqp(connection) => connection.is_connected(),
            #[cfg(feature = "testing")]
            Backend::Memory(connection) => connection.is_connected(),
        }
    }

    /// Closes the connection (all its channels with it). Unacknowledged
    /// deliveries go back to their queues.
    pub async fn close(&self) -> Result<()> {
        match &self.inner.backend {
            Backend::Amqp(connection) => connection.close().await,
            #[cfg(feature = "testing")]
            Backend::Memory(connection) => connection.close().await,
        }
    }

    pub(crate) fn same_as(&self, other: &Connection) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// The channel without confirms that processors reply on, shared by
    /// every processor of the connection; opened when first asked for.
    pub(crate) async fn reply_channel(&self) -> Result<Channel> {
        self.inner
            .replies
            .get_or_try_init(|| self.open_channel(Role::Publish, false))
            .await
            .cloned()
    }

    /// The ready messages and the consumers of `queue` (a passive
    /// declaration, on a channel kept for it: a queue that is gone makes
    /// the broker close that channel, which opens again for the next).
    pub(crate) async fn queue_counts(&self, queue: &str) -> Result<(u32, u32)> {
        let channel = self
            .inner
            .counts
            .get_or_try_init(|| self.open_channel(Role::Consume, false))
            .await?;
        let declared = channel
            .declare_queue_counted(&Queue::new(queue).passive(true))
            .await?;
        Ok((declared.messages, declared.consumers))
    }

    /// Opens a channel for `role`; `confirms` switches publisher confirms
    /// on. While the connection is being recovered, waits for it (within
    /// the recovery timeout) instead of failing.
    pub(crate) async fn open_channel(&self, role: Role, confirms: bool) -> Result<Channel> {
        let inner = &*self.inner;
        let backend = match &inner.backend {
            Backend::Amqp(connection) => {
                super::channel::Backend::Amqp(connection.open_channel(role, confirms).await?)
            }
            #[cfg(feature = "testing")]
            Backend::Memory(connection) => {
                super::channel::Backend::Memory(connection.open_channel(confirms).await?)
            }
        };
        Ok(Channel::new(backend, inner.config.debug(), confirms))
    }
}

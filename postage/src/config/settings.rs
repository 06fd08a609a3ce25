//! [`Config`]: where and how to connect, with secrets redacted.
use std::fmt;
use std::path::PathBuf;

use super::address::{Address, AddressOrder, Endpoint};
use super::source::percent_encode;

/// A password that does not show itself.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct Secret(pub(super) String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

/// Where and how to connect to RabbitMQ.
///
/// ```
/// use postage::Config;
///
/// let config = Config::default()
///     .with_host("rabbit.internal")
///     .with_vhost("development")
///     .with_credentials("svc", "s3cret");
/// assert_eq!(config.to_string(), "amqp://svc@rabbit.internal:5672/development");
/// assert!(!format!("{config:?}").contains("s3cret"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    pub(super) tls: bool,
    /// Never empty.
    pub(super) addresses: Vec<Address>,
    pub(super) order: AddressOrder,
    pub(super) vhost: String,
    pub(super) user: String,
    pub(super) password: Secret,
    pub(super) debug: bool,
    pub(super) tls_ca_file: Option<PathBuf>,
    pub(super) heartbeat: u16,
    pub(super) connection_name: Option<String>,
    pub(super) connect_timeout: std::time::Duration,
    pub(super) recovery_timeout: std::time::Duration,
    pub(super) publish_timeout: std::time::Duration,
}

/// How long [`Config::connect_timeout`] is unless set.
pub const DEFAULT_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// How long [`Config::recovery_timeout`] is unless set.
pub const DEFAULT_RECOVERY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// How long [`Config::publish_timeout`] is unless set.
pub const DEFAULT_PUBLISH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// The AMQP heartbeat, in seconds, unless set: a peer that stops
/// answering (a frozen broker, a link that silently drops traffic) is
/// found within two heartbeats, 20 s.
pub const DEFAULT_HEARTBEAT: u16 = 10;

impl Default for Config {
    /// `amqp://guest:guest@localhost:5672/`, as Python Postage.
    fn default() -> Self {
        Config {
            tls: false,
            addresses: vec![Address {
                host: "localhost".into(),
                port: None,
            }],
            order: AddressOrder::default(),
            vhost: "/".into(),
            user: "guest".into(),
            password: Secret("guest".into()),
            debug: false,
            tls_ca_file: None,
            heartbeat: DEFAULT_HEARTBEAT,
            connection_name: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            recovery_timeout: DEFAULT_RECOVERY_TIMEOUT,
            publish_timeout: DEFAULT_PUBLISH_TIMEOUT,
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("tls", &self.tls)
            .field("addresses", &self.addresses().collect::<Vec<_>>())
            .field("order", &self.order)
            .field("vhost", &self.vhost)
            .field("user", &self.user)
            .field("password", &self.password)
            .field("debug", &self.debug)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("heartbeat", &self.heartbeat)
            .field("connection_name", &self.connection_name)
            .field("connect_timeout", &self.connect_timeout)
            .field("recovery_timeout", &self.recovery_timeout)
            .field("publish_timeout", &self.publish_timeout)
            .finish()
    }
}

impl fmt::Display for Config {
    /// The URL without the password: `amqp://user@host:port/vhost`, or
    /// `amqp://user@h1:5672,h2:5673/vhost` with several addresses.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "amqps" } else { "amqp" };
        write!(f, "{scheme}://{}@", percent_encode(&self.user))?;
        for (i, (host, port)) in self.addresses().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}", Endpoint(host, port))?;
        }
        write!(f, "/{}", percent_encode(&self.vhost))
    }
}

impl Config {
    /// Sets the host (one address: any others are dropped).
    #[must_use]
    pub fn with_host(mut self, host: impl Into<String>) -> Self {
        self.addresses.truncate(1);
        self.addresses[0].host = host.into();
        self
    }

    /// Sets the port (default 5672, or 5671 with TLS) of every address.
    #[must_use]
    pub fn with_port(mut self, port: u16) -> Self {
        for address in &mut self.addresses {
            address.port = Some(port);
        }
        self
    }

    /// Sets the broker addresses: the nodes of a cluster, as (host, port)
    /// pairs. An empty list leaves the addresses as they were.
    ///
    /// ```
    /// use postage::{AddressOrder, Config};
    ///
    /// let config = Config::default()
    ///     .with_addresses([("rabbit-1", 5672), ("rabbit-2", 5672), ("rabbit-3", 5672)])
    ///     .with_address_order(AddressOrder::InOrder);
    /// assert_eq!(config.addresses().count(), 3);
    /// assert_eq!(config.host(), "rabbit-1");
    /// ```
    #[must_use]
    pub fn with_addresses<H: Into<String>>(
        mut self,
        addresses: impl IntoIterator<Item = (H, u16)>,
    ) -> Self {
        let addresses: Vec<Address> = addresses
            .into_iter()
            .map(|(host, port)| Address {
                host: host.into(),
                port: Some(port),
            })
            .collect();
        if !addresses.is_empty() {
            self.addresses = addresses;
        }
        self
    }

    /// In which order the addresses are tried (default
    /// [`AddressOrder::Shuffled`]).
    #[must_use]
    pub fn with_address_order(mut self, order: AddressOrder) -> Self {
        self.order = order;
        self
    }

    /// The broker addresses, as (host, port), in the order given.
    pub fn addresses(&self) -> impl Iterator<Item = (&str, u16)> + '_ {
        let default = self.default_port();
        self.addresses
            .iter()
            .map(move |a| (a.host.as_str(), a.port.unwrap_or(default)))
    }

    /// In which order the addresses are tried.
    pub fn address_order(&self) -> AddressOrder {
        self.order
    }

    pub(super) fn default_port(&self) -> u16 {
        if self.tls { 5671 } else { 5672 }
    }

    /// Sets the virtual host.
    #[must_use]
    pub fn with_vhost(mut self, vhost: impl Into<String>) -> Self {
        self.vhost = vhost.into();
        self
    }

    /// Sets user and password.
    #[must_use]
    pub fn with_credentials(
        mut self,
        user: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        self.user = user.into();
        self.password = Secret(password.into());
        self
    }

    /// Switches TLS (`amqps`) on or off.
    #[must_use]
    pub fn with_tls(mut self, tls: bool) -> Self {
        self.tls = tls;
        self
    }

    /// Trusts the certificate authorities in this PEM file (for `amqps`).
    #[must_use]
    pub fn with_tls_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.tls_ca_file = Some(path.into());
        self
    }

    /// Turns debug mode (verbose logging of message traffic) on or off.
    #[must_use]
    pub fn with_debug(mut self, debug: bool) -> Self {
        self.debug = debug;
        self
    }

    /// Sets the AMQP heartbeat in seconds (default [`DEFAULT_HEARTBEAT`],
    /// also `POSTAGE_HEARTBEAT` or `?heartbeat=` in the URL); 0 takes the
    /// broker's (RabbitMQ proposes 60 s). The broker and Postage each send one every half of
    /// it when nothing else went out, and a connection that hears nothing
    /// for two heartbeats is taken for lost and recovered: a frozen
    /// broker or a link that silently drops traffic is found within two
    /// heartbeats. The broker may ask for a shorter one.
    #[must_use]
    pub fn with_heartbeat(mut self, seconds: u16) -> Self {
        self.heartbeat = seconds;
        self
    }

    /// The AMQP heartbeat, in seconds (0: the broker's).
    pub fn heartbeat(&self) -> u16 {
        self.heartbeat
    }

    /// How long a send may take in all (default
    /// [`DEFAULT_PUBLISH_TIMEOUT`], also `POSTAGE_PUBLISH_TIMEOUT` in
    /// seconds): from the call to the broker's confirmation (or, without
    /// publisher confirms, to the frames handed to the connection),
    /// waiting for a lost connection to come back and for a broker that
    /// blocks publishers (a memory or disk alarm) included. Past it the
    /// send fails with [`Error::Blocked`](crate::Error::Blocked) when the
    /// broker blocked it, [`Error::Unconfirmed`](crate::Error::Unconfirmed)
    /// or [`Error::PublishTimeout`](crate::Error::PublishTimeout)
    /// otherwise.
    #[must_use]
    pub fn with_publish_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.publish_timeout = timeout;
        self
    }

    /// The publish time limit.
    pub fn publish_timeout(&self) -> std::time::Duration {
        self.publish_timeout
    }

    /// How long connecting to one address (TCP, TLS and AMQP handshakes)
    /// may take before the next address is tried (default
    /// [`DEFAULT_CONNECT_TIMEOUT`]), at first and at every attempt to
    /// recover a lost connection. [`Connection::connect`](crate::Connection::connect)
    /// fails once every address has been tried.
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long a lost connection may take to come back (default
    /// [`DEFAULT_RECOVERY_TIMEOUT`]). A declaration or a new channel
    /// waiting for it fails after that long (sends have their own limit,
    /// [`with_publish_timeout`](Config::with_publish_timeout); consumers
    /// wait as long as it takes; the recovery itself goes on), and when, past
    /// that time, a broker of the list has been accepting TCP connections
    /// for 10 s but the connection has still not recovered (a login
    /// refused, a handshake that never ends, a declaration refused), the
    /// recovery is declared stalled: consumers report
    /// [`Health::Failed`](crate::Health::Failed) and an error is logged, so
    /// a supervisor can restart the component.
    #[must_use]
    pub fn with_recovery_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.recovery_timeout = timeout;
        self
    }

    /// The recovery time limit.
    pub fn recovery_timeout(&self) -> std::time::Duration {
        self.recovery_timeout
    }

    /// The first connection's time limit.
    pub fn connect_timeout(&self) -> std::time::Duration {
        self.connect_timeout
    }

    /// Names the connection in the RabbitMQ management UI.
    #[must_use]
    pub fn with_connection_name(mut self, name: impl Into<String>) -> Self {
        self.connection_name = Some(name.into());
        self
    }

    /// Whether TLS (`amqps`) is used.
    pub fn tls(&self) -> bool {
        self.tls
    }

    /// The (first) broker host.
    pub fn host(&self) -> &str {
        &self.addresses[0].host
    }

    /// The (first) broker port.
    pub fn port(&self) -> u16 {
        self.addresses[0].port.unwrap_or(self.default_port())
    }

    /// The virtual host.
    pub fn vhost(&self) -> &str {
        &self.vhost
    }

    /// The user name.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// Whether debug mode is on.
    pub fn debug(&self) -> bool {
        self.debug
    }

    /// The extra CA file for TLS, if any.
    pub fn tls_ca_file(&self) -> Option<&std::path::Path> {
        self.tls_ca_file.as_deref()
    }

    pub(crate) fn password(&self) -> &str {
        &self.password.0
    }

    /// The name the broker shows for the connection: the one set, or the
    /// program's file name.
    pub(crate) fn client_name(&self) -> String {
        self.connection_name.clone().unwrap_or_else(|| {
            std::env::args()
                .next()
                .and_then(|a| a.rsplit('/').next().map(str::to_owned))
                .unwrap_or_else(|| "postage".into())
        })
    }
}

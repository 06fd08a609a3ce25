//! Connection settings, from `POSTAGE_*` variables, a URL, or code.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `POSTAGE_URL` | full `amqp://` or `amqps://` URL, with one host or several (`amqp://user:pass@h1:5672,h2:5673,h3/vhost`); what it states wins over the variables below | unset |
//! | `POSTAGE_HOST` | broker host, or several separated by commas (each may carry its `:port`) | `localhost` |
//! | `POSTAGE_PORT` | broker port | `5672` (`5671` for `amqps`) |
//! | `POSTAGE_VHOST` | virtual host | `/` |
//! | `POSTAGE_USER` | user name | `guest` |
//! | `POSTAGE_PASSWORD` | password | `guest` |
//! | `POSTAGE_RMQ_USER`, `POSTAGE_RMQ_PASSWORD` | deprecated names, read when the new ones are unset | |
//! | `POSTAGE_DEBUG_MODE` | `true` turns on verbose debug logging of message traffic | `false` |
//! | `POSTAGE_TLS_CA_FILE` | PEM file of extra certificate authorities trusted for `amqps` | system roots |
//!
//! The password is never shown: `Debug`, `Display`, logs and errors print
//! `***` in its place.

use std::fmt;
use std::path::PathBuf;

/// Why a configuration value was refused. Names the variable (or URL part)
/// at fault; never contains a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {source_name}: {reason}")]
pub struct ConfigError {
    source_name: String,
    reason: String,
}

impl ConfigError {
    fn new(source_name: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError {
            source_name: source_name.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn tls_ca(path: &std::path::Path, error: &std::io::Error) -> Self {
        ConfigError::new(
            "POSTAGE_TLS_CA_FILE",
            format!("cannot read {}: {error}", path.display()),
        )
    }

    /// The variable (or URL part) whose value was refused.
    pub fn variable(&self) -> &str {
        &self.source_name
    }
}

/// A password that does not show itself.
#[derive(Clone, PartialEq, Eq)]
struct Secret(String);

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
    tls: bool,
    /// Never empty.
    addresses: Vec<Address>,
    order: AddressOrder,
    vhost: String,
    user: String,
    password: Secret,
    debug: bool,
    tls_ca_file: Option<PathBuf>,
    heartbeat: Option<u16>,
    connection_name: Option<String>,
    connect_timeout: std::time::Duration,
    recovery_timeout: std::time::Duration,
}

/// One broker address; the port is the scheme's default when unset.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Address {
    host: String,
    port: Option<u16>,
}

/// In which order a connection tries the broker addresses, at first and
/// at every recovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AddressOrder {
    /// A fresh random order each time (the RabbitMQ Java client's
    /// choice): the components of a cluster spread over its nodes, and
    /// after a node is lost they do not all crowd the next one.
    #[default]
    Shuffled,
    /// The order given: the first address that answers is used, the others
    /// are fallbacks.
    InOrder,
}

/// How long [`Config::connect_timeout`] is unless set.
pub const DEFAULT_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// How long [`Config::recovery_timeout`] is unless set.
pub const DEFAULT_RECOVERY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

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
            heartbeat: None,
            connection_name: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            recovery_timeout: DEFAULT_RECOVERY_TIMEOUT,
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
    /// Reads the `POSTAGE_*` variables of this process (see the module docs).
    ///
    /// Deprecated names log a warning through `tracing`.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`Config::from_env`], with the variables read through `lookup`
    /// (handy in tests and for configuration kept elsewhere).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.is_empty());
        let mut config = Config::default();
        if let Some(hosts) = get("POSTAGE_HOST") {
            config.addresses = parse_addresses("POSTAGE_HOST", &hosts)?;
        }
        if let Some(port) = get("POSTAGE_PORT") {
            let port = parse_port("POSTAGE_PORT", &port)?;
            for address in &mut config.addresses {
                address.port.get_or_insert(port);
            }
        }
        if let Some(vhost) = get("POSTAGE_VHOST") {
            config.vhost = vhost;
        }
        match (get("POSTAGE_USER"), get("POSTAGE_RMQ_USER")) {
            (Some(user), _) => config.user = user,
            (None, Some(user)) => {
                tracing::warn!("POSTAGE_RMQ_USER is deprecated: set POSTAGE_USER instead");
                config.user = user;
            }
            (None, None) => {}
        }
        match (get("POSTAGE_PASSWORD"), get("POSTAGE_RMQ_PASSWORD")) {
            (Some(password), _) => config.password = Secret(password),
            (None, Some(password)) => {
                tracing::warn!("POSTAGE_RMQ_PASSWORD is deprecated: set POSTAGE_PASSWORD instead");
                config.password = Secret(password);
            }
            (None, None) => {}
        }
        if let Some(debug) = get("POSTAGE_DEBUG_MODE") {
            config.debug = parse_bool("POSTAGE_DEBUG_MODE", &debug)?;
        }
        if let Some(ca) = get("POSTAGE_TLS_CA_FILE") {
            config.tls_ca_file = Some(PathBuf::from(ca));
        }
        if let Some(url) = get("POSTAGE_URL") {
            config.apply_url(&url, "POSTAGE_URL")?;
        }
        Ok(config)
    }

    /// Parses an `amqp://` or `amqps://` URL:
    /// `amqp[s]://[user[:password]@]host[:port][,host[:port]...][/vhost]`,
    /// with `%`-escapes (`/%2f` is the vhost `/`). Parts the URL leaves out
    /// keep their defaults. Several hosts are the nodes of one cluster,
    /// tried in turn (see [`AddressOrder`]).
    ///
    /// ```
    /// let config = postage::Config::from_url("amqps://app:pw@mq.example.com/prod").unwrap();
    /// assert!(config.tls());
    /// assert_eq!(config.port(), 5671);
    /// assert_eq!(config.vhost(), "prod");
    ///
    /// let cluster = postage::Config::from_url("amqp://app:pw@h1,h2:5673,[::1]:5674/%2f").unwrap();
    /// let addresses: Vec<_> = cluster.addresses().collect();
    /// assert_eq!(addresses, [("h1", 5672), ("h2", 5673), ("::1", 5674)]);
    /// assert_eq!(cluster.to_string(), "amqp://app@h1:5672,h2:5673,[::1]:5674/%2F");
    /// ```
    pub fn from_url(url: &str) -> Result<Self, ConfigError> {
        let mut config = Config::default();
        config.apply_url(url, "URL")?;
        Ok(config)
    }

    fn apply_url(&mut self, url: &str, source_name: &str) -> Result<(), ConfigError> {
        let err = |reason: String| ConfigError::new(source_name, reason);
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| err("expected amqp://... or amqps://...".into()))?;
        self.tls = match scheme.to_ascii_lowercase().as_str() {
            "amqp" => false,
            "amqps" => true,
            other => {
                return Err(err(format!(
                    "unsupported scheme {other:?} (expected amqp or amqps)"
                )));
            }
        };
        // The user information ends at the last '@' (a password may hold
        // '/', '?' or '#'); the host, port and vhost follow it.
        let (userinfo, rest) = match rest.rsplit_once('@') {
            Some((userinfo, rest)) => (Some(userinfo), rest),
            None => (None, rest),
        };
        let rest = rest.split(['?', '#']).next().unwrap_or_default();
        let (hostport, path) = match rest.split_once('/') {
            Some((hostport, path)) => (hostport, Some(path)),
            None => (rest, None),
        };
        if let Some(userinfo) = userinfo {
            let (user, password) = match userinfo.split_once(':') {
                Some((user, password)) => (user, Some(password)),
                None => (userinfo, None),
            };
            if !user.is_empty() {
                self.user = percent_decode(user).map_err(|e| err(format!("user: {e}")))?;
            }
            if let Some(password) = password {
                self.password = Secret(
                    percent_decode(password)
                        .map_err(|_| err("password: invalid %-escape".into()))?,
                );
            }
        }
        if hostport.contains(',') {
            self.addresses = parse_addresses(source_name, hostport)?;
        } else {
            let address = parse_address(source_name, hostport)?;
            let host = if address.host.is_empty() {
                self.addresses[0].host.clone()
            } else {
                address.host
            };
            self.addresses = vec![Address {
                host,
                port: address.port,
            }];
        }
        if let Some(path) = path.filter(|p| !p.is_empty()) {
            self.vhost = percent_decode(path).map_err(|e| err(format!("vhost: {e}")))?;
        }
        Ok(())
    }

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

    fn default_port(&self) -> u16 {
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

    /// Sets the AMQP heartbeat in seconds (default: the broker's proposal).
    #[must_use]
    pub fn with_heartbeat(mut self, seconds: u16) -> Self {
        self.heartbeat = Some(seconds);
        self
    }

    /// How long the first connection (TCP, TLS and AMQP handshakes) may
    /// take before [`Connection::connect`](crate::Connection::connect)
    /// gives up (default [`DEFAULT_CONNECT_TIMEOUT`]). Recovery of an
    /// established connection is not bounded by it.
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long a lost connection may take to come back (default
    /// [`DEFAULT_RECOVERY_TIMEOUT`]). A send waiting for it fails after
    /// that long, and when, past that time, the broker has been accepting
    /// connections again for 10 s but the connection has still not
    /// recovered, the recovery is declared stalled: consumers
    /// report [`Health::Failed`](crate::Health::Failed) and an error is
    /// logged, so a supervisor can restart the component.
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

    pub(crate) fn heartbeat(&self) -> Option<u16> {
        self.heartbeat
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

/// `host:port` as a URL writes it (`[::1]:5672` for an IPv6 host).
pub(crate) struct Endpoint<'a>(pub(crate) &'a str, pub(crate) u16);

impl fmt::Display for Endpoint<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.contains(':') {
            write!(f, "[{}]:{}", self.0, self.1)
        } else {
            write!(f, "{}:{}", self.0, self.1)
        }
    }
}

/// One `host[:port]` (or `[v6]:port`); an empty host is left empty.
fn parse_address(name: &str, text: &str) -> Result<Address, ConfigError> {
    let text = text.trim();
    let (host, port) = if let Some(bracketed) = text.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| ConfigError::new(name, format!("unclosed '[' in host {text:?}")))?;
        if !after.is_empty() && !after.starts_with(':') {
            return Err(ConfigError::new(
                name,
                format!("{text:?}: expected ':port' after ']'"),
            ));
        }
        (host, after.strip_prefix(':'))
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    let port = match port.filter(|p| !p.is_empty()) {
        Some(port) => Some(parse_port(name, port).map_err(|_| {
            ConfigError::new(
                name,
                format!("the port of {text:?} is not a port number (1 to 65535)"),
            )
        })?),
        None => None,
    };
    Ok(Address {
        host: host.to_owned(),
        port,
    })
}

/// A comma-separated list of `host[:port]`; every entry must name a host.
fn parse_addresses(name: &str, text: &str) -> Result<Vec<Address>, ConfigError> {
    text.split(',')
        .enumerate()
        .map(|(i, entry)| {
            let address = parse_address(name, entry)?;
            if address.host.is_empty() {
                return Err(ConfigError::new(
                    name,
                    format!("address {} of {text:?} names no host", i + 1),
                ));
            }
            Ok(address)
        })
        .collect()
}

fn parse_port(name: &str, value: &str) -> Result<u16, ConfigError> {
    match value.trim().parse::<u16>() {
        Ok(port) if port != 0 => Ok(port),
        _ => Err(ConfigError::new(
            name,
            format!("{value:?} is not a port number (1 to 65535)"),
        )),
    }
}

fn parse_bool(name: &str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(ConfigError::new(
            name,
            format!("{value:?} is not a boolean (true or false)"),
        )),
    }
}

fn percent_decode(s: &str) -> Result<String, &'static str> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or("truncated %-escape")?;
            let hex = std::str::from_utf8(hex).map_err(|_| "invalid %-escape")?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| "invalid %-escape")?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "%-escapes do not form UTF-8")
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_round_trip() {
        assert_eq!(percent_decode("%2f").as_deref(), Ok("/"));
        assert_eq!(percent_encode("/"), "%2F");
        assert!(percent_decode("%zz").is_err());
        assert!(percent_decode("%2").is_err());
    }
}

//! Reading a [`Config`]: `POSTAGE_*` variables and `amqp://` URLs.

use std::path::PathBuf;
use std::time::Duration;

use super::address::{Address, parse_address, parse_addresses, parse_port};
use super::settings::Secret;
use super::{Config, ConfigError};

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
        if let Some(heartbeat) = get("POSTAGE_HEARTBEAT") {
            config.heartbeat = parse_number("POSTAGE_HEARTBEAT", "seconds", &heartbeat)?;
        }
        if let Some(timeout) = get("POSTAGE_PUBLISH_TIMEOUT") {
            let seconds: u32 = parse_number("POSTAGE_PUBLISH_TIMEOUT", "seconds", &timeout)?;
            config.publish_timeout = Duration::from_secs(seconds.into());
        }
        if let Some(url) = get("POSTAGE_URL") {
            config.apply_url(&url, "POSTAGE_URL")?;
        }
        Ok(config)
    }

    /// Parses an `amqp://` or `amqps://` URL:
    /// `amqp[s]://[user[:password]@]host[:port][,host[:port]...][/vhost][?query]`,
    /// with `%`-escapes (`/%2f` is the vhost `/`). Parts the URL leaves out
    /// keep their defaults. Several hosts are the nodes of one cluster,
    /// tried in turn (see [`AddressOrder`](crate::AddressOrder)). The
    /// query takes RabbitMQ's URI parameters `heartbeat` (seconds, see
    /// [`Config::with_heartbeat`]) and `connection_timeout` (milliseconds,
    /// see [`Config::with_connect_timeout`]); other parameters of that
    /// specification are ignored with a warning.
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
    ///
    /// let tuned = postage::Config::from_url("amqp://h1/%2f?heartbeat=5&connection_timeout=2500").unwrap();
    /// assert_eq!(tuned.heartbeat(), 5);
    /// assert_eq!(tuned.connect_timeout(), std::time::Duration::from_millis(2500));
    /// assert!(postage::Config::from_url("amqp://h1/?heartbeat=often").is_err());
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
        let (rest, query) = match rest.split('#').next().unwrap_or_default().split_once('?') {
            Some((rest, query)) => (rest, Some(query)),
            None => (rest.split('#').next().unwrap_or_default(), None),
        };
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
        for pair in query.into_iter().flat_map(|q| q.split('&')) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(value).map_err(|e| err(format!("{key}: {e}")))?;
            match key {
                "" => {}
                "heartbeat" => {
                    self.heartbeat = parse_number(source_name, "heartbeat seconds", &value)?;
                }
                "connection_timeout" => {
                    let ms: u64 =
                        parse_number(source_name, "connection_timeout milliseconds", &value)?;
                    self.connect_timeout = Duration::from_millis(ms);
                }
                other => tracing::warn!(
                    parameter = other,
                    source = source_name,
                    "URL query parameter ignored (Postage reads heartbeat and connection_timeout)"
                ),
            }
        }
        Ok(())
    }
}

fn parse_number<T: std::str::FromStr>(
    name: &str,
    what: &str,
    value: &str,
) -> Result<T, ConfigError> {
    value
        .trim()
        .parse()
        .map_err(|_| ConfigError::new(name, format!("{value:?} is not a number of {what}")))
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

pub(super) fn percent_encode(s: &str) -> String {
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

//! Reading a [`Config`]: `POSTAGE_*` variables and `amqp://` URLs.

use std::path::PathBuf;

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
        if let Some(url) = get("POSTAGE_URL") {
            config.apply_url(&url, "POSTAGE_URL")?;
        }
        Ok(config)
    }

    /// Parses an `amqp://` or `amqps://` URL:
    /// `amqp[s]://[user[:password]@]host[:port][,host[:port]...][/vhost]`,
    /// with `%`-escapes (`/%2f` is the vhost `/`). Parts the URL leaves out
    /// keep their defaults. Several hosts are the nodes of one cluster,
    /// tried in turn (see [`AddressOrder`](crate::AddressOrder)).
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

//! Broker addresses: `host[:port]` lists, the order they are tried in,
//! and how an address is written.

use std::fmt;

use super::ConfigError;

/// One broker address; the port is the scheme's default when unset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Address {
    pub(super) host: String,
    pub(super) port: Option<u16>,
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
pub(super) fn parse_address(name: &str, text: &str) -> Result<Address, ConfigError> {
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
pub(super) fn parse_addresses(name: &str, text: &str) -> Result<Vec<Address>, ConfigError> {
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

pub(super) fn parse_port(name: &str, value: &str) -> Result<u16, ConfigError> {
    match value.trim().parse::<u16>() {
        Ok(port) if port != 0 => Ok(port),
        _ => Err(ConfigError::new(
            name,
            format!("{value:?} is not a port number (1 to 65535)"),
        )),
    }
}

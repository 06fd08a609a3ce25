//! Opening one lapin connection (lapin's own recovery off: Postage
//! recovers), trying the configured addresses in turn.

use std::time::Duration;

use lapin::ConnectionProperties;
use lapin::uri::{AMQPAuthority, AMQPQueryString, AMQPScheme, AMQPUri, AMQPUserInfo};

use crate::config::{AddressOrder, Config, ConfigError, Endpoint};
use crate::error::{Error, Result};

/// How long a TCP probe of an address may take during recovery.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

fn uri(config: &Config, host: &str, port: u16) -> AMQPUri {
    AMQPUri {
        scheme: if config.tls() {
            AMQPScheme::AMQPS
        } else {
            AMQPScheme::AMQP
        },
        authority: AMQPAuthority {
            userinfo: AMQPUserInfo {
                username: config.user().to_owned(),
                password: config.password().to_owned(),
            },
            host: host.to_owned(),
            port,
        },
        vhost: config.vhost().to_owned(),
        query: AMQPQueryString {
            heartbeat: Some(config.heartbeat()),
            ..AMQPQueryString::default()
        },
    }
}

/// The URL of one address, without the password.
fn endpoint(config: &Config, host: &str, port: u16) -> String {
    let scheme = if config.tls() { "amqps" } else { "amqp" };
    format!("{scheme}://{}@{}", config.user(), Endpoint(host, port))
}

/// The addresses in the order to try them now.
pub(super) fn addresses(config: &Config) -> Vec<(String, u16)> {
    let mut addresses: Vec<(String, u16)> = config
        .addresses()
        .map(|(host, port)| (host.to_owned(), port))
        .collect();
    if config.address_order() == AddressOrder::Shuffled && addresses.len() > 1 {
        shuffle(&mut addresses);
    }
    addresses
}

/// A Fisher-Yates shuffle seeded from the clock and the process: the order
/// only has to differ between components and between attempts.
fn shuffle<T>(items: &mut [T]) {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let mut state = (nanos as u64) ^ (u64::from(std::process::id()) << 32) | 1;
    for i in (1..items.len()).rev() {
        // xorshift64
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let j = usize::try_from(state % (i as u64 + 1)).unwrap_or(0);
        items.swap(i, j);
    }
}

/// Does something accept TCP connections at one of the addresses?
pub(super) async fn any_answers(config: &Config) -> bool {
    for (host, port) in config.addresses() {
        let probe = tokio::net::TcpStream::connect((host, port));
        if matches!(tokio::time::timeout(PROBE_TIMEOUT, probe).await, Ok(Ok(_))) {
            return true;
        }
    }
    false
}

/// Opens a connection to `host:port`: a TCP probe first (nothing listening
/// fails at once), then the AMQP handshake, both within the connect
/// timeout.
async fn open_one(config: &Config, host: &str, port: u16) -> Result<lapin::Connection> {
    let endpoint = || endpoint(config, host, port);
    let timeout = config.connect_timeout();
    let timed_out = |what: &str| {
        std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("{what} within {timeout:?}"),
        )
    };
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect((host, port))).await {
        Ok(Ok(_)) => {}
        Ok(Err(source)) => {
            return Err(Error::Unreachable {
                endpoint: endpoint(),
                source,
            });
        }
        Err(_) => {
            return Err(Error::Unreachable {
                endpoint: endpoint(),
                source: timed_out("no answer"),
            });
        }
    }
    let properties =
        ConnectionProperties::default().with_connection_name(config.client_name().into());
    let mut tls = lapin::tcp::OwnedTLSConfig::default();
    if let Some(path) = config.tls_ca_file() {
        let pem = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(ConfigError::tls_ca(path, &e)))?;
        tls.cert_chain = Some(pem);
    }
    let connect_error = |source: lapin::Error| Error::Connect {
        endpoint: endpoint(),
        source: Box::new(source),
    };
    let runtime = lapin::runtime::default_runtime().map_err(connect_error)?;
    let connecting = lapin::Connection::connect_uri_with_config(
        uri(config, host, port),
        properties,
        tls,
        runtime,
    );
    match tokio::time::timeout(timeout, connecting).await {
        Ok(connected) => connected.map_err(connect_error),
        Err(_) => Err(Error::Unreachable {
            endpoint: endpoint(),
            source: timed_out("no AMQP session (the TLS handshake or the login did not finish)"),
        }),
    }
}

/// Where an address goes among the others.
#[derive(Debug, Clone, Copy)]
pub(super) enum Prefer<'a> {
    /// The configured order.
    None,
    /// This address first (where another connection of the component is).
    First(&'a str),
    /// This address last (the one a connection was just lost on: a node
    /// that froze or dropped off the network is tried after the others).
    Last(&'a str),
}

/// Opens a connection to the first address that takes it, in the
/// configured order as `prefer` changes it; the error of the last address
/// when none does (each failure is logged).
pub(super) async fn open(
    config: &Config,
    prefer: Prefer<'_>,
) -> Result<(lapin::Connection, String)> {
    let mut last = None;
    let mut addresses = addresses(config);
    let named = |endpoint: &str| {
        addresses
            .iter()
            .position(|(host, port)| Endpoint(host, *port).to_string() == endpoint)
    };
    match prefer {
        Prefer::First(endpoint) => {
            if let Some(at) = named(endpoint) {
                let address = addresses.remove(at);
                addresses.insert(0, address);
            }
        }
        Prefer::Last(endpoint) => {
            if let Some(at) = named(endpoint) {
                let address = addresses.remove(at);
                addresses.push(address);
            }
        }
        Prefer::None => {}
    }
    let several = addresses.len() > 1;
    for (host, port) in addresses {
        match open_one(config, &host, port).await {
            Ok(connection) => return Ok((connection, Endpoint(&host, port).to_string())),
            Err(error) => {
                if several {
                    tracing::warn!(error = %error.report(), "broker address skipped");
                }
                last = Some(error);
            }
        }
    }
    Err(last.unwrap_or_else(|| Error::Unreachable {
        endpoint: config.to_string(),
        source: std::io::Error::other("no broker address configured"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_tried_in_order_or_shuffled() {
        let config = Config::default()
            .with_addresses((1..=6).map(|i| (format!("h{i}"), 5672)))
            .with_address_order(AddressOrder::InOrder);
        let names = |a: Vec<(String, u16)>| a.into_iter().map(|(h, _)| h).collect::<Vec<_>>();
        let given: Vec<String> = (1..=6).map(|i| format!("h{i}")).collect();
        assert_eq!(names(addresses(&config)), given);
        let shuffled = config.with_address_order(AddressOrder::Shuffled);
        let mut orders = std::collections::HashSet::new();
        for _ in 0..50 {
            let mut order = names(addresses(&shuffled));
            orders.insert(order.clone());
            order.sort();
            assert_eq!(order, given, "every address, once");
            std::thread::sleep(Duration::from_micros(50));
        }
        assert!(orders.len() > 1, "the order changes between attempts");
    }

    #[test]
    fn an_endpoint_names_the_address_without_the_password() {
        let config = Config::from_url("amqp://app:secret@h1:5672,[::1]:5673/%2f").unwrap();
        assert_eq!(endpoint(&config, "::1", 5673), "amqp://app@[::1]:5673");
        assert!(!endpoint(&config, "h1", 5672).contains("secret"));
    }
}

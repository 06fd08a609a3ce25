//! Connection settings, from `POSTAGE_*` variables, a URL, or code.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `POSTAGE_URL` | full `amqp://` or `amqps://` URL, with one host or several (`amqp://user:pass@h1:5672,h2:5673,h3/vhost`), and RabbitMQ's URI parameters `?heartbeat=10&connection_timeout=5000`; what it states wins over the variables below | unset |
//! | `POSTAGE_HOST` | broker host, or several separated by commas (each may carry its `:port`) | `localhost` |
//! | `POSTAGE_PORT` | broker port | `5672` (`5671` for `amqps`) |
//! | `POSTAGE_VHOST` | virtual host | `/` |
//! | `POSTAGE_USER` | user name | `guest` |
//! | `POSTAGE_PASSWORD` | password | `guest` |
//! | `POSTAGE_RMQ_USER`, `POSTAGE_RMQ_PASSWORD` | deprecated names, read when the new ones are unset | |
//! | `POSTAGE_DEBUG_MODE` | `true` turns on verbose debug logging of message traffic | `false` |
//! | `POSTAGE_TLS_CA_FILE` | PEM file of extra certificate authorities trusted for `amqps` | system roots |
//! | `POSTAGE_HEARTBEAT` | AMQP heartbeat in seconds: a peer silent for two heartbeats is taken for lost | `10` |
//! | `POSTAGE_PUBLISH_TIMEOUT` | how long a send may take in all, in seconds ([`Config::with_publish_timeout`]) | `60` |
//!
//! The password is never shown: `Debug`, `Display`, logs and errors print
//! `***` in its place.

//!
//! | file | holds |
//! |---|---|
//! | `settings` | [`Config`] and its settings |
//! | `source` | reading it from variables and URLs |
//! | `address` | broker addresses and [`AddressOrder`] |
//! | `error` | [`ConfigError`] |

mod address;
mod error;
mod settings;
mod source;

pub use address::AddressOrder;
pub(crate) use address::Endpoint;
pub use error::ConfigError;
pub use settings::{
    Config, DEFAULT_CONNECT_TIMEOUT, DEFAULT_HEARTBEAT, DEFAULT_PUBLISH_TIMEOUT,
    DEFAULT_RECOVERY_TIMEOUT,
};

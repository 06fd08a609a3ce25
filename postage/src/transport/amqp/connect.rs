//! Opening a lapin connection with lapin's own recovery switched on, and
//! its channels.

use std::sync::Arc;
use std::time::Duration;

use lapin::ConnectionProperties;
use lapin::options::ConfirmSelectOptions;
use lapin::uri::{AMQPAuthority, AMQPQueryString, AMQPScheme, AMQPUri, AMQPUserInfo};

use super::channel::Channel;
use super::convert::amqp_error;
use super::watch::follow;
use crate::config::{Config, ConfigError};
use crate::error::{Error, Result};
use crate::transport::Link;

/// How many times a lost connection is retried (200 ms to 5 s apart: about
/// an hour in all) before recovery gives up.
const RECOVERY_ATTEMPTS: usize = 720;

/// A lapin connection.
pub(crate) struct Connection {
    lapin: lapin::Connection,
}

fn uri(config: &Config) -> AMQPUri {
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
            host: config.host().to_owned(),
            port: config.port(),
        },
        vhost: config.vhost().to_owned(),
        query: AMQPQueryString {
            heartbeat: config.heartbeat(),
            ..AMQPQueryString::default()
        },
    }
}

/// Fails fast when nothing listens: lapin's recovery backoff would
/// otherwise retry the first connection for a long time.
async fn probe(config: &Config) -> Result<()> {
    let probe = tokio::time::timeout(
        config.connect_timeout(),
        tokio::net::TcpStream::connect((config.host(), config.port())),
    )
    .await;
    let error = match probe {
        Ok(Ok(_)) => return Ok(()),
        Ok(Err(e)) => e,
        Err(_) => std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no answer within {:?}", config.connect_timeout()),
        ),
    };
    Err(Error::Unreachable {
        endpoint: config.to_string(),
        source: error,
    })
}

impl Connection {
    /// Connects, and follows the connection's state into `link`.
    pub(crate) async fn open(config: &Config, link: &Arc<Link>) -> Result<Self> {
        probe(config).await?;
        let properties = ConnectionProperties::default()
            .configure_backoff(|backoff| {
                backoff
                    .with_min_delay(Duration::from_millis(200))
                    .with_max_delay(Duration::from_secs(5))
                    .with_max_times(RECOVERY_ATTEMPTS)
                    .with_jitter()
            })
            .enable_auto_recover()
            .with_connection_name(config.client_name().into());
        let mut tls = lapin::tcp::OwnedTLSConfig::default();
        if let Some(path) = config.tls_ca_file() {
            let pem = std::fs::read_to_string(path)
                .map_err(|e| Error::Config(ConfigError::tls_ca(path, &e)))?;
            tls.cert_chain = Some(pem);
        }
        let connect_error = |source: lapin::Error| Error::Connect {
            endpoint: config.to_string(),
            source: Box::new(source),
        };
        let runtime = lapin::runtime::default_runtime().map_err(connect_error)?;
        // lapin retries a failing handshake (a certificate or login
        // refused) with the recovery backoff; give up on our own time.
        let connecting =
            lapin::Connection::connect_uri_with_config(uri(config), properties, tls, runtime);
        let lapin = match tokio::time::timeout(config.connect_timeout(), connecting).await {
            Ok(connected) => connected.map_err(connect_error)?,
            Err(_) => {
                return Err(Error::Unreachable {
                    endpoint: config.to_string(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!(
                            "no AMQP session within {:?}: the TLS handshake or the login keeps failing",
                            config.connect_timeout()
                        ),
                    ),
                });
            }
        };
        tracing::debug!(endpoint = %config, "connected to RabbitMQ");
        tokio::spawn(follow(
            lapin.events_listener(),
            lapin.status().clone(),
            Arc::downgrade(link),
            config.clone(),
        ));
        Ok(Connection { lapin })
    }

    /// Is the connection up (not closed, not recovering)?
    pub(crate) fn is_connected(&self) -> bool {
        self.lapin.status().connected()
    }

    /// Closes the connection (all its channels with it).
    pub(crate) async fn close(&self) -> Result<()> {
        if self.lapin.status().closed() {
            return Ok(());
        }
        match self.lapin.close(200, "OK".into()).await {
            Ok(()) => Ok(()),
            Err(_) if !self.is_connected() => Ok(()),
            Err(e) => Err(amqp_error("connection.close", e)),
        }
    }

    /// Opens a channel; `confirms` switches publisher confirms on. While
    /// the connection is being recovered, waits for it (within the
    /// recovery timeout) instead of failing.
    pub(crate) async fn open_channel(
        &self,
        confirms: bool,
        config: &Config,
        link: &Arc<Link>,
    ) -> Result<Channel> {
        let deadline = tokio::time::Instant::now() + config.recovery_timeout();
        let channel = loop {
            match self.lapin.create_channel().await {
                Ok(channel) => break channel,
                Err(e)
                    if matches!(
                        e.kind(),
                        lapin::ErrorKind::InvalidConnectionState(
                            lapin::ConnectionState::Reconnecting
                        )
                    ) && tokio::time::Instant::now() < deadline =>
                {
                    link.recovered_or_tick().await;
                }
                Err(e) => return Err(amqp_error("channel.open", e)),
            }
        };
        if confirms {
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await
                .map_err(|e| amqp_error("confirm.select", e))?;
        }
        Ok(Channel::new(channel, config, link.clone(), confirms))
    }
}

//! The one module that speaks lapin: connections, channels, declarations,
//! publishing with confirms, and consuming.
//!
//! Everything above this module works with [`Channel`] and
//! [`OutgoingProperties`]; an in-memory broker can later stand behind the
//! same narrow interface.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{
    BasicCancelOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldArray, FieldTable};
use lapin::uri::{AMQPAuthority, AMQPQueryString, AMQPScheme, AMQPUri, AMQPUserInfo};
use lapin::{BasicProperties, Confirmation, ConnectionProperties};
use serde_json::Value;

use crate::config::Config;
use crate::consumer::Queue;
use crate::error::{Error, Result};
use crate::exchange::{Exchange, ExchangeKind};

/// How many times a lost connection is retried (200 ms to 5 s apart: about
/// an hour in all) before recovery gives up.
const RECOVERY_ATTEMPTS: usize = 720;

/// How long the broker must keep accepting TCP connections, after the
/// recovery timeout, before a recovery that has not happened is declared
/// stalled: twice the longest pause between lapin's reconnection attempts.
const STALL_GRACE: Duration = Duration::from_secs(10);

/// How often a recovery past its timeout probes the broker.
const STALL_PROBE_EVERY: Duration = Duration::from_secs(1);

/// Does something accept TCP connections at the broker's address?
async fn broker_answers(config: &Config) -> bool {
    matches!(
        tokio::time::timeout(
            Duration::from_secs(2),
            tokio::net::TcpStream::connect((config.host(), config.port())),
        )
        .await,
        Ok(Ok(_))
    )
}

/// A connection to RabbitMQ, shared by the producers and processors of a
/// component. Cheap to clone: clones share one AMQP connection.
///
/// Automatic recovery is on: after a dropped connection lapin reconnects
/// and replays exchanges, queues, bindings and consumers.
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
    inner: Arc<ConnectionInner>,
}

struct ConnectionInner {
    lapin: lapin::Connection,
    config: Config,
    link: Arc<Link>,
}

/// What the connection's event stream said last.
#[derive(Debug, Default)]
pub(crate) struct Link {
    recovering: AtomicBool,
    stalled: AtomicBool,
    recoveries: AtomicU64,
    /// Wakes whoever waits for the end of a recovery.
    recovered: tokio::sync::Notify,
    /// Wakes whoever watches for a stalled recovery.
    stall: tokio::sync::Notify,
}

impl Link {
    pub(crate) fn recovering(&self) -> bool {
        self.recovering.load(Ordering::Relaxed)
    }

    pub(crate) fn recoveries(&self) -> u64 {
        self.recoveries.load(Ordering::Relaxed)
    }

    pub(crate) fn stalled(&self) -> bool {
        self.stalled.load(Ordering::Relaxed)
    }

    /// Resolves when a recovery is found stalled after this call.
    pub(crate) fn stall_notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.stall.notified()
    }

    /// Returns when a recovery ends, or after 50 ms at most (a recovery
    /// that ended just before the call is seen by the caller's next look at
    /// the connection's state).
    async fn recovered_or_tick(&self) {
        tokio::select! {
            () = self.recovered.notified() => {}
            () = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
}

/// Follows the connection's state: lapin recovers silently, so the state
/// is read at every connection event and every 100 ms. Ends with the
/// connection.
async fn follow(
    events: impl futures_util::Stream<Item = lapin::Event>,
    status: lapin::ConnectionStatus,
    link: std::sync::Weak<Link>,
    config: Config,
) {
    let endpoint = config.to_string();
    let mut down_since: Option<tokio::time::Instant> = None;
    // Past the recovery timeout: when the broker was last probed, and since
    // when it has answered without a break.
    let mut probed_at: Option<tokio::time::Instant> = None;
    let mut answering_since: Option<tokio::time::Instant> = None;
    let mut events = std::pin::pin!(events);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            event = events.next() => match event {
                Some(lapin::Event::ConnectionBlocked(reason)) => {
                    tracing::warn!(%endpoint, %reason, "the broker blocked the connection");
                }
                Some(lapin::Event::ConnectionUnblocked) => {
                    tracing::info!(%endpoint, "the broker unblocked the connection");
                }
                Some(_) => {}
                None => break,
            },
            _ = tick.tick() => {}
        }
        let Some(link) = link.upgrade() else { break };
        if status.closed() || status.errored() {
            break;
        }
        let up = status.connected();
        let was_recovering = link.recovering.swap(!up, Ordering::Relaxed);
        if !up && !was_recovering {
            tracing::warn!(%endpoint, "connection lost; recovering");
            down_since = Some(tokio::time::Instant::now());
        } else if up && was_recovering {
            link.recoveries.fetch_add(1, Ordering::Relaxed);
            link.stalled.store(false, Ordering::Relaxed);
            link.recovered.notify_waiters();
            down_since = None;
            probed_at = None;
            answering_since = None;
            tracing::info!(%endpoint, "connection recovered");
        }
        if let Some(since) = down_since
            && !link.stalled()
            && since.elapsed() > config.recovery_timeout()
            && probed_at.is_none_or(|at| at.elapsed() >= STALL_PROBE_EVERY)
        {
            let now = tokio::time::Instant::now();
            probed_at = Some(now);
            if !broker_answers(&config).await {
                answering_since = None;
            } else if now.duration_since(*answering_since.get_or_insert(now)) >= STALL_GRACE {
                link.stalled.store(true, Ordering::Relaxed);
                link.stall.notify_waiters();
                tracing::error!(
                    %endpoint,
                    down_for = ?since.elapsed(),
                    "connection recovery stalled: the broker answers but the connection has not come back; restart the component"
                );
            }
        }
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("endpoint", &self.inner.config.to_string())
            .field("connected", &self.inner.lapin.status().connected())
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
        let uri = AMQPUri {
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
        };
        // Fail fast when nothing listens: lapin's recovery backoff would
        // otherwise retry the first connection for a long time.
        let probe = tokio::time::timeout(
            config.connect_timeout(),
            tokio::net::TcpStream::connect((config.host(), config.port())),
        )
        .await;
        let unreachable = match probe {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(e),
            Err(_) => Some(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {:?}", config.connect_timeout()),
            )),
        };
        if let Some(error) = unreachable {
            return Err(Error::Unreachable {
                endpoint: config.to_string(),
                source: error,
            });
        }
        let mut properties = ConnectionProperties::default()
            .configure_backoff(|backoff| {
                backoff
                    .with_min_delay(Duration::from_millis(200))
                    .with_max_delay(Duration::from_secs(5))
                    .with_max_times(RECOVERY_ATTEMPTS)
                    .with_jitter()
            })
            .enable_auto_recover();
        let name = config.connection_name().map_or_else(
            || {
                std::env::args()
                    .next()
                    .and_then(|a| a.rsplit('/').next().map(str::to_owned))
                    .unwrap_or_else(|| "postage".into())
            },
            str::to_owned,
        );
        properties = properties.with_connection_name(name.into());
        let mut tls = lapin::tcp::OwnedTLSConfig::default();
        if let Some(path) = config.tls_ca_file() {
            let pem = std::fs::read_to_string(path)
                .map_err(|e| Error::Config(crate::config::ConfigError::tls_ca(path, &e)))?;
            tls.cert_chain = Some(pem);
        }
        let runtime = lapin::runtime::default_runtime().map_err(|source| Error::Connect {
            endpoint: config.to_string(),
            source,
        })?;
        // lapin retries a failing handshake (a certificate or login
        // refused) with the recovery backoff; give up on our own time.
        let connecting = lapin::Connection::connect_uri_with_config(uri, properties, tls, runtime);
        let lapin = match tokio::time::timeout(config.connect_timeout(), connecting).await {
            Ok(connected) => connected.map_err(|source| Error::Connect {
                endpoint: config.to_string(),
                source,
            })?,
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
        let link = Arc::new(Link::default());
        tokio::spawn(follow(
            lapin.events_listener(),
            lapin.status().clone(),
            Arc::downgrade(&link),
            config.clone(),
        ));
        Ok(Connection {
            inner: Arc::new(ConnectionInner {
                lapin,
                config,
                link,
            }),
        })
    }

    /// The settings this connection was made with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// How many times the connection was lost and recovered.
    pub fn recoveries(&self) -> u64 {
        self.inner.link.recoveries()
    }

    /// Did the recovery of a lost connection stall (see
    /// [`Config::with_recovery_timeout`])? The component should then be
    /// restarted.
    pub fn recovery_stalled(&self) -> bool {
        self.inner.link.stalled()
    }

    pub(crate) fn link(&self) -> Arc<Link> {
        self.inner.link.clone()
    }

    /// Is the connection up (not closed, not recovering)?
    pub fn is_connected(&self) -> bool {
        self.inner.lapin.status().connected()
    }

    /// Closes the connection (all its channels with it). Unacknowledged
    /// deliveries go back to their queues.
    pub async fn close(&self) -> Result<()> {
        if self.inner.lapin.status().closed() {
            return Ok(());
        }
        match self.inner.lapin.close(200, "OK".into()).await {
            Ok(()) => Ok(()),
            Err(_) if !self.is_connected() => Ok(()),
            Err(e) => Err(Error::amqp("connection.close", e)),
        }
    }

    pub(crate) fn same_as(&self, other: &Connection) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Opens a channel; `confirms` switches publisher confirms on. While
    /// the connection is being recovered, waits for it (within the
    /// recovery timeout) instead of failing.
    pub(crate) async fn open_channel(&self, confirms: bool) -> Result<Channel> {
        let deadline = tokio::time::Instant::now() + self.inner.config.recovery_timeout();
        let channel = loop {
            match self.inner.lapin.create_channel().await {
                Ok(channel) => break channel,
                Err(e)
                    if matches!(
                        e.kind(),
                        lapin::ErrorKind::InvalidConnectionState(
                            lapin::ConnectionState::Reconnecting
                        )
                    ) && tokio::time::Instant::now() < deadline =>
                {
                    self.inner.link.recovered_or_tick().await;
                }
                Err(e) => return Err(Error::amqp("channel.open", e)),
            }
        };
        if confirms {
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await
                .map_err(|e| Error::amqp("confirm.select", e))?;
        }
        Ok(Channel {
            inner: channel,
            debug: self.inner.config.debug(),
            recovery_timeout: self.inner.config.recovery_timeout(),
            link: self.inner.link.clone(),
            confirms,
        })
    }
}

/// Properties of a published message.
#[derive(Debug, Clone, Default)]
pub(crate) struct OutgoingProperties<'a> {
    pub(crate) content_type: Option<&'a str>,
    pub(crate) persistent: bool,
    pub(crate) mandatory: bool,
    pub(crate) reply_to: Option<&'a str>,
    pub(crate) correlation_id: Option<&'a str>,
    pub(crate) expiration_ms: Option<u128>,
}

impl OutgoingProperties<'_> {
    fn basic_properties(&self) -> BasicProperties {
        let mut properties = BasicProperties::default();
        if let Some(content_type) = self.content_type {
            properties = properties.with_content_type(content_type.into());
        }
        if self.persistent {
            properties = properties.with_delivery_mode(2);
        }
        if let Some(reply_to) = self.reply_to {
            properties = properties.with_reply_to(reply_to.into());
        }
        if let Some(correlation_id) = self.correlation_id {
            properties = properties.with_correlation_id(correlation_id.into());
        }
        if let Some(ms) = self.expiration_ms {
            properties = properties.with_expiration(ms.to_string().into());
        }
        properties
    }
}

/// A channel. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Channel {
    inner: lapin::Channel,
    debug: bool,
    recovery_timeout: Duration,
    link: Arc<Link>,
    /// Publisher confirms on?
    confirms: bool,
}

/// How many times a publish interrupted by a lost connection is retried
/// after recovery.
const PUBLISH_RETRIES: u32 = 5;

/// A delivery as received, before decoding.
pub(crate) type RawDelivery = lapin::message::Delivery;

/// A broker consumer's stream of deliveries.
pub(crate) type RawConsumer = lapin::Consumer;

impl Channel {
    pub(crate) async fn declare_exchange(&self, exchange: &Exchange) -> Result<()> {
        if exchange.is_default() {
            return Ok(());
        }
        let kind = match exchange.kind() {
            ExchangeKind::Direct => lapin::ExchangeKind::Direct,
            ExchangeKind::Fanout => lapin::ExchangeKind::Fanout,
            ExchangeKind::Topic => lapin::ExchangeKind::Topic,
            ExchangeKind::Headers => lapin::ExchangeKind::Headers,
        };
        let options = ExchangeDeclareOptions {
            passive: exchange.is_passive(),
            durable: exchange.is_durable(),
            auto_delete: exchange.is_auto_delete(),
            internal: false,
            nowait: false,
        };
        self.inner
            .exchange_declare(
                exchange.name().into(),
                kind,
                options,
                field_table(exchange.arguments()),
            )
            .await
            .map_err(|e| Error::amqp(format!("exchange.declare {:?}", exchange.name()), e))
    }

    /// Declares a queue and returns its name (the broker's for a
    /// server-named queue).
    pub(crate) async fn declare_queue(&self, queue: &Queue) -> Result<String> {
        let options = QueueDeclareOptions {
            passive: false,
            durable: queue.is_durable(),
            exclusive: queue.is_exclusive(),
            auto_delete: queue.is_auto_delete(),
            nowait: false,
        };
        let declared = self
            .inner
            .queue_declare(queue.name().into(), options, field_table(queue.arguments()))
            .await
            .map_err(|e| Error::amqp(format!("queue.declare {:?}", queue.name()), e))?;
        Ok(declared.name().to_string())
    }

    pub(crate) async fn bind(&self, queue: &str, exchange: &str, key: &str) -> Result<()> {
        self.inner
            .queue_bind(
                queue.into(),
                exchange.into(),
                key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| {
                Error::amqp(
                    format!("queue.bind {queue:?} to {exchange:?} with key {key:?}"),
                    e,
                )
            })
    }

    pub(crate) async fn qos(&self, prefetch: u16) -> Result<()> {
        self.inner
            .basic_qos(prefetch, BasicQosOptions::default())
            .await
            .map_err(|e| Error::amqp("basic.qos", e))
    }

    pub(crate) async fn consume(&self, queue: &str, no_ack: bool) -> Result<RawConsumer> {
        self.inner
            .basic_consume(
                queue.into(),
                "".into(),
                BasicConsumeOptions {
                    no_ack,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|e| Error::amqp(format!("basic.consume {queue:?}"), e))
    }

    pub(crate) async fn cancel(&self, consumer: &RawConsumer) -> Result<()> {
        self.inner
            .basic_cancel(consumer.tag(), BasicCancelOptions::default())
            .await
            .map_err(|e| Error::amqp("basic.cancel", e))
    }

    /// Publishes a body and, on a channel with confirms, waits for the
    /// broker's confirmation: a nack or a returned (unroutable) mandatory
    /// message is an error. A publish interrupted by a lost connection, or
    /// whose confirmation was still awaited when the connection came back,
    /// is sent again once lapin has recovered the connection (at least
    /// once: the broker may then hold it twice).
    pub(crate) async fn publish(
        &self,
        exchange: &str,
        key: &str,
        body: &[u8],
        props: &OutgoingProperties<'_>,
    ) -> Result<()> {
        if self.debug {
            tracing::debug!(
                exchange,
                key,
                body = %String::from_utf8_lossy(body),
                "publish"
            );
        }
        let options = BasicPublishOptions {
            // Without confirms lapin keeps a returned message to itself,
            // never reported: mandatory is only asked for with confirms.
            mandatory: props.mandatory && self.confirms,
            immediate: false,
        };
        let mut retries = 0;
        loop {
            let attempt = async {
                self.inner
                    .basic_publish(
                        exchange.into(),
                        key.into(),
                        options,
                        body,
                        props.basic_properties(),
                    )
                    .await?
                    .await
            };
            let outcome = if self.confirms {
                // A confirmation lost with the connection never resolves: the
                // attempt ends when the connection comes back, or at the
                // recovery timeout when it does not. Created before the
                // attempt starts, so that no recovery is missed; an attempt
                // made while the connection still counts as recovering (just
                // after `wait_for_recovery`) does not race the end of that
                // same recovery.
                let recovered = self.link.recovered.notified();
                let race_recovery = !self.link.recovering();
                tokio::select! {
                    outcome = tokio::time::timeout(self.recovery_timeout, attempt) => match outcome {
                        Ok(outcome) => outcome,
                        Err(_) => return Err(Error::Closed(
                            "connection: no publisher confirmation within the recovery timeout",
                        )),
                    },
                    () = recovered, if race_recovery => {
                        if retries == PUBLISH_RETRIES {
                            return Err(Error::Closed("connection: recovered too often while publishing"));
                        }
                        retries += 1;
                        tracing::warn!(exchange, key, "the connection recovered before the publisher confirmation came; publishing again");
                        continue;
                    }
                }
            } else {
                // Without confirms the attempt ends once the frames are
                // written or rejected: nothing to lose, no time limit to arm.
                attempt.await
            };
            let error = match outcome {
                Ok(confirmation) => return confirmed(confirmation, exchange, key),
                Err(error) if retries < PUBLISH_RETRIES => error,
                Err(error) => {
                    return Err(Error::amqp(format!("basic.publish to {exchange:?}"), error));
                }
            };
            retries += 1;
            tracing::warn!(exchange, key, %error, "publish interrupted; waiting for the connection to recover");
            self.wait_for_recovery(error)
                .await
                .map_err(|e| Error::amqp(format!("basic.publish to {exchange:?}"), e))?;
        }
    }

    /// Waits until lapin has recovered the channel of `consumer` after
    /// `error`, logging the interruption and the recovery; gives the error
    /// back when recovery is impossible.
    pub(crate) async fn resume_consumer(
        &self,
        consumer: &str,
        error: lapin::Error,
    ) -> Result<(), lapin::Error> {
        tracing::warn!(consumer, %error, "consumer interrupted; waiting for recovery");
        self.wait_for_recovery(error).await?;
        tracing::info!(consumer, "consumer recovered");
        Ok(())
    }

    /// Waits until lapin has recovered the channel after `error`; gives
    /// the error back when recovery is impossible.
    /// Waits at most the recovery timeout.
    pub(crate) async fn wait_for_recovery(&self, error: lapin::Error) -> Result<(), lapin::Error> {
        let wait = async {
            match self.inner.wait_for_recovery(error.clone()).await {
                // Frames that were still waiting to be written when the
                // socket died are rejected with the bare I/O error, without
                // the notifier lapin gives errors of a channel it is
                // recovering: the connection is lost all the same, and
                // comes back by itself.
                Err(lost)
                    if matches!(
                        lost.kind(),
                        lapin::ErrorKind::IOError(_) | lapin::ErrorKind::MissingHeartbeatError
                    ) =>
                {
                    self.back_after_loss().await;
                    Ok(())
                }
                other => other,
            }
        };
        match tokio::time::timeout(self.recovery_timeout, wait).await {
            Ok(result) => result,
            Err(_) => Err(error),
        }
    }

    /// Returns once the connection has recovered, or this channel has been
    /// seen down and up again (whichever is noticed first).
    async fn back_after_loss(&self) {
        let mut seen_down = false;
        loop {
            let recovered = self.link.recovered.notified();
            if !self.inner.status().connected() {
                seen_down = true;
            } else if seen_down {
                return;
            }
            tokio::select! {
                () = recovered => return,
                () = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        }
    }

    /// Is the channel open (not closing, closed or recovering)?
    pub(crate) fn is_open(&self) -> bool {
        self.inner.status().connected()
    }

    pub(crate) fn debug(&self) -> bool {
        self.debug
    }

    pub(crate) async fn close(&self) {
        if self.inner.status().connected()
            && let Err(e) = self.inner.close(200, "OK".into()).await
        {
            tracing::debug!(error = %e, "channel close");
        }
    }
}

/// A confirmation as a result: a nack or a returned (unroutable) mandatory
/// message is an error.
fn confirmed(confirmation: Confirmation, exchange: &str, key: &str) -> Result<()> {
    match confirmation {
        Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
        Confirmation::Ack(Some(returned)) | Confirmation::Nack(Some(returned)) => {
            Err(Error::Unroutable {
                exchange: exchange.to_owned(),
                key: key.to_owned(),
                reply: returned.reply_text.to_string(),
            })
        }
        Confirmation::Nack(None) => Err(Error::Nacked {
            exchange: exchange.to_owned(),
            key: key.to_owned(),
        }),
    }
}

/// Converts JSON declaration arguments to an AMQP field table.
fn field_table(arguments: &BTreeMap<String, Value>) -> FieldTable {
    let mut table = FieldTable::default();
    for (key, value) in arguments {
        table.insert(key.as_str().into(), amqp_value(value));
    }
    table
}

fn amqp_value(value: &Value) -> AMQPValue {
    match value {
        Value::Null => AMQPValue::Void,
        Value::Bool(b) => AMQPValue::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => AMQPValue::LongLongInt(i),
            None => AMQPValue::Double(n.as_f64().unwrap_or_default()),
        },
        Value::String(s) => AMQPValue::LongString(s.as_str().into()),
        Value::Array(items) => {
            let mut array = FieldArray::default();
            for item in items {
                array.push(amqp_value(item));
            }
            AMQPValue::FieldArray(array)
        }
        Value::Object(map) => {
            let mut table = FieldTable::default();
            for (key, value) in map {
                table.insert(key.as_str().into(), amqp_value(value));
            }
            AMQPValue::FieldTable(table)
        }
    }
}

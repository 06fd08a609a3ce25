//! A producer's RPC state: settings, the direct reply-to channel and its
//! reader, and the calls waiting for a reply.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

use super::reader::Reader;
use crate::encoding::Encoder;
use crate::error::Result;
use crate::message::Message;
use crate::telemetry::RpcInstruments;
use crate::transport::{Channel, Connection, Role};

/// RabbitMQ's direct reply-to pseudo-queue.
pub const DIRECT_REPLY_TO: &str = "amq.rabbitmq.reply-to";

/// Default time an RPC attempt waits for its reply.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Default number of retries after the first attempt.
pub const DEFAULT_RETRIES: u32 = 4;

/// How replies come back to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReplyStrategy {
    /// RabbitMQ direct reply-to, matched by correlation id: no queue per
    /// call, hundreds of calls in flight on one producer. A reply without a
    /// correlation id (as Python Postage sends) is accepted when exactly one
    /// call is waiting.
    #[default]
    DirectReplyTo,
    /// A server-named, exclusive, auto-delete queue per call; the first
    /// message in it is the reply. Works with any peer, Python Postage
    /// processors with concurrent calls included, at the cost of a queue
    /// declaration per call.
    QueuePerCall,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct RpcSettings {
    pub(crate) timeout: Duration,
    pub(crate) retries: u32,
    pub(crate) strategy: ReplyStrategy,
    /// Do direct reply-to requests wait for their publisher confirmation?
    pub(crate) confirms: bool,
}

impl Default for RpcSettings {
    fn default() -> Self {
        RpcSettings {
            timeout: DEFAULT_TIMEOUT,
            retries: DEFAULT_RETRIES,
            strategy: ReplyStrategy::default(),
            confirms: false,
        }
    }
}

/// The calls waiting for a direct reply-to reply, by call number (the
/// last part of their correlation id).
pub(super) type Waiters = Arc<Mutex<BTreeMap<u64, oneshot::Sender<Message>>>>;

/// A producer's RPC state: settings, the direct reply-to channel and its
/// reply reader, and the calls waiting for a reply.
pub(crate) struct RpcState {
    pub(super) settings: RpcSettings,
    /// The channel that consumes direct reply-to and publishes the requests
    /// waiting for it, with the connection's recovery count when it was
    /// opened.
    pub(super) direct: tokio::sync::Mutex<Option<Direct>>,
    pub(super) waiters: Waiters,
    /// Correlation ids are `{prefix}.{call number}`.
    pub(super) prefix: Arc<str>,
    pub(super) counter: AtomicU64,
    /// What the metrics count of the calls.
    pub(super) instruments: RpcInstruments,
}

impl RpcState {
    pub(crate) fn new(settings: RpcSettings) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        RpcState {
            settings,
            direct: tokio::sync::Mutex::new(None),
            waiters: Arc::default(),
            prefix: format!("{:x}.{nanos:x}", std::process::id()).into(),
            counter: AtomicU64::new(0),
            instruments: RpcInstruments::default(),
        }
    }

    /// A fresh call number and its correlation id.
    pub(super) fn next_id(&self) -> (u64, String) {
        let number = self.counter.fetch_add(1, Ordering::Relaxed);
        (number, format!("{}.{number}", self.prefix))
    }

    /// The direct reply-to channel and its reply reader: opened, with its
    /// consumer, before the first request that needs it, and opened anew
    /// when it was closed or the connection was recovered (the AMQP client
    /// restores the old channel's consumer only after the channel accepts
    /// publishes again, and a request published in between makes the
    /// broker close the channel).
    pub(super) async fn direct_channel(
        &self,
        connection: &Connection,
        encoder: &Arc<dyn Encoder>,
    ) -> Result<(Channel, Arc<tokio::sync::Mutex<Reader>>)> {
        let mut direct = self.direct.lock().await;
        let generation = connection.recoveries();
        if let Some(current) = &*direct
            && current.channel.is_open()
            && current.generation == generation
            && !current.ended.load(Ordering::Relaxed)
        {
            return Ok((current.channel.clone(), current.reader.clone()));
        }
        let channel = connection
            .open_channel(Role::Publish, self.settings.confirms)
            .await?;
        let consumer = channel.consume(DIRECT_REPLY_TO, true).await?;
        let ended = Arc::new(AtomicBool::new(false));
        let reader = Arc::new(tokio::sync::Mutex::new(Reader {
            consumer,
            channel: channel.clone(),
            encoder: encoder.clone(),
            waiters: self.waiters.clone(),
            prefix: self.prefix.clone(),
            ended: ended.clone(),
        }));
        let fresh = Direct {
            channel: channel.clone(),
            generation,
            reader: reader.clone(),
            ended,
        };
        if let Some(old) = direct.replace(fresh) {
            tokio::spawn(async move { old.channel.close().await });
        }
        Ok((channel, reader))
    }
}

/// The channel that consumes direct reply-to, with the connection's
/// recovery count when it was opened.
pub(super) struct Direct {
    pub(super) channel: Channel,
    pub(super) generation: u64,
    pub(super) reader: Arc<tokio::sync::Mutex<Reader>>,
    /// Set when the reply consumer has ended: the next call opens anew.
    pub(super) ended: Arc<AtomicBool>,
}

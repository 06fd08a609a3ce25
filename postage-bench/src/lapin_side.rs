//! The hand-written lapin baseline: connecting and closing, publisher
//! confirms, the wire model a lapin component writes and reads, and the
//! consumer loop of the lapin consume and pipe runs.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures_util::stream::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions, BasicRejectOptions};
use lapin::types::FieldTable;
use lapin::{Confirmation, ConnectionProperties};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::common::{COMMAND, CONTENT_TYPE, Counter, Params, Res, TEXT, fingerprint, handle};

/// The lapin side connects with lapin's defaults, or with `BENCH_LAPIN_RECOVER=1`
/// with automatic recovery switched on as Postage does.
pub(crate) async fn lapin_connect(url: &str) -> Res<lapin::Connection> {
    let mut properties = ConnectionProperties::default();
    if std::env::var("BENCH_LAPIN_RECOVER").is_ok_and(|v| v == "1") {
        properties = properties.enable_auto_recover();
    }
    Ok(lapin::Connection::connect(url, properties).await?)
}

/// Closes a lapin side's connection once its work is measured. lapin may
/// still be closing a channel whose consumer was just dropped, and then
/// fails the close with `InvalidChannelState(Closing)`, or (rarely, seen
/// after a run's last consumer was dropped) never completes it although
/// the broker has closed the connection: neither says anything about the
/// run, so both are reported, not fatal.
pub(crate) async fn lapin_close(connection: &lapin::Connection) {
    let close = connection.close(200, "OK".into());
    match tokio::time::timeout(std::time::Duration::from_secs(5), close).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => eprintln!("postage-bench: closing the lapin connection: {error}"),
        Err(_) => eprintln!("postage-bench: closing the lapin connection: no answer in 5 s"),
    }
}

pub(crate) fn check_confirm(next: Option<lapin::Result<Confirmation>>) -> Res<()> {
    match next {
        Some(Ok(Confirmation::Ack(None) | Confirmation::NotRequested)) | None => Ok(()),
        Some(Ok(other)) => Err(format!("publish not confirmed: {other:?}").into()),
        Some(Err(e)) => Err(e.into()),
    }
}

/// Command parameters: what both sides put in `content.parameters`.
#[derive(Debug, Serialize)]
struct ParamsOut<'a> {
    text: &'a str,
    seq: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub(crate) struct WireFingerprint {
    name: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    pid: Option<String>,
    host: Option<String>,
    user: Option<String>,
    vhost: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, Default)]
pub(crate) struct Empty {}

#[derive(Debug, Serialize)]
struct CommandContent<P> {
    parameters: P,
}

/// A Postage message as a hand-written lapin component would write it.
#[derive(Debug, Serialize)]
pub(crate) struct WireOut<'a, C> {
    #[serde(rename = "type")]
    pub(crate) kind: &'a str,
    pub(crate) name: &'a str,
    pub(crate) category: &'a str,
    pub(crate) version: &'a str,
    pub(crate) fingerprint: &'a WireFingerprint,
    pub(crate) content: C,
    #[serde(rename = "_reserved")]
    pub(crate) reserved: Empty,
}

/// And as it would read it.
#[derive(Debug, Deserialize)]
pub(crate) struct WireIn<C> {
    #[serde(rename = "type")]
    pub(crate) kind: String,
    pub(crate) name: String,
    pub(crate) category: String,
    #[allow(dead_code)]
    version: Value,
    #[serde(default)]
    #[allow(dead_code)]
    fingerprint: WireFingerprint,
    pub(crate) content: C,
    #[serde(rename = "_reserved", default)]
    #[allow(dead_code)]
    reserved: Empty,
}

#[derive(Debug, Deserialize)]
pub(crate) struct CommandIn {
    pub(crate) parameters: Params,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ResultContent<V> {
    #[serde(rename = "type")]
    pub(crate) kind: String,
    pub(crate) value: V,
    pub(crate) message: String,
}

pub(crate) fn wire_fingerprint() -> WireFingerprint {
    let map = fingerprint().as_map();
    let get = |k: &str| map.get(k).and_then(Value::as_str).map(str::to_owned);
    WireFingerprint {
        name: get("name"),
        kind: get("type"),
        pid: get("pid"),
        host: get("host"),
        user: get("user"),
        vhost: get("vhost"),
    }
}

/// The lapin side's command body.
pub(crate) fn lapin_command(fp: &WireFingerprint, category: &str, seq: u64) -> Res<Vec<u8>> {
    Ok(serde_json::to_vec(&WireOut {
        kind: "command",
        name: COMMAND,
        category,
        version: "2",
        fingerprint: fp,
        content: CommandContent {
            parameters: ParamsOut { text: TEXT, seq },
        },
        reserved: Empty {},
    })?)
}

/// How a hand-written consumer acknowledges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Acks {
    /// One `basic.ack` per message, as most hand-written consumers do.
    PerMessage,
    /// One `basic.ack(multiple)` per this many messages, and one for the
    /// rest when the run ends.
    Every(u64),
}

/// The batching lapin baseline: an ack per 100 messages, prefetch 100.
pub(crate) const BATCH: u64 = 100;

impl Acks {
    /// The prefetch a consumer acknowledging this way runs with: the
    /// run's own, or at least the batch (a smaller prefetch would stall
    /// before an ack is due).
    pub(crate) fn prefetch(self, prefetch: u16) -> u16 {
        match self {
            Acks::PerMessage => prefetch,
            Acks::Every(n) => u16::try_from(n).unwrap_or(u16::MAX),
        }
    }
}

/// A hand-written consumer: decode, dispatch on (type, name), handle, ack
/// each message (or, with [`Acks::Every`], each run of messages). Returns
/// when `counter` reaches its target.
pub(crate) async fn lapin_consumer_loop(
    channel: lapin::Channel,
    queue: String,
    prefetch: u16,
    acks: Acks,
    counter: Arc<Counter>,
) -> Res<()> {
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await?;
    let mut unacked = 0u64;
    let mut last_tag = 0u64;
    let mut consumer = channel
        .basic_consume(
            queue.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    while let Some(delivery) = consumer.next().await {
        let delivery = delivery?;
        let typed = delivery
            .properties
            .content_type()
            .as_ref()
            .is_none_or(|ct| ct.as_str() == CONTENT_TYPE);
        let message = match serde_json::from_slice::<WireIn<CommandIn>>(&delivery.data) {
            Ok(message) if typed => message,
            _ => {
                if unacked > 0 {
                    ack_up_to(&channel, last_tag).await?;
                    unacked = 0;
                }
                delivery
                    .reject(BasicRejectOptions { requeue: false })
                    .await?;
                continue;
            }
        };
        let handled = match (
            message.kind.as_str(),
            message.name.as_str(),
            message.category.as_str(),
        ) {
            ("command", COMMAND, "message") => {
                handle(&message.content.parameters);
                true
            }
            _ => false,
        };
        let done = handled && {
            counter.tick();
            counter.handled.load(Ordering::Relaxed) >= counter.target
        };
        match acks {
            Acks::PerMessage => {
                delivery.ack(BasicAckOptions::default()).await?;
            }
            Acks::Every(n) => {
                unacked += 1;
                last_tag = delivery.delivery_tag;
                if unacked >= n || done {
                    ack_up_to(&channel, last_tag).await?;
                    unacked = 0;
                }
            }
        }
        if done {
            break;
        }
    }
    Ok(())
}

async fn ack_up_to(channel: &lapin::Channel, tag: u64) -> Res<()> {
    channel
        .basic_ack(tag, BasicAckOptions { multiple: true })
        .await?;
    Ok(())
}

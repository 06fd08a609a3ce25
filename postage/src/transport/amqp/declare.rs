//! Declarations on a lapin channel: what a channel does for its user, and
//! what recovery replays on a new connection.

use std::collections::BTreeMap;

use lapin::options::{
    ExchangeBindOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, ExchangeUnbindOptions,
    QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use serde_json::Value;

use super::convert::field_table;
use crate::topology::{Exchange, ExchangeKind, Queue};
use crate::transport::Declared;

pub(super) async fn exchange(channel: &lapin::Channel, exchange: &Exchange) -> lapin::Result<()> {
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
    channel
        .exchange_declare(
            exchange.name().into(),
            kind,
            options,
            field_table(exchange.arguments()),
        )
        .await
}

/// Declares `queue` (under `name`: its own, or empty for the broker to
/// name it) and gives the name it got, with its messages and consumers.
pub(super) async fn queue(
    channel: &lapin::Channel,
    queue: &Queue,
    name: &str,
) -> lapin::Result<Declared> {
    let options = QueueDeclareOptions {
        passive: queue.is_passive(),
        durable: queue.is_durable(),
        exclusive: queue.is_exclusive(),
        auto_delete: queue.is_auto_delete(),
        nowait: false,
    };
    let declared = channel
        .queue_declare(name.into(), options, field_table(queue.arguments()))
        .await?;
    Ok(Declared {
        name: declared.name().to_string(),
        messages: declared.message_count(),
        consumers: declared.consumer_count(),
    })
}

/// Binds a queue (or, `to_exchange`, an exchange) to `exchange`.
pub(super) async fn bind(
    channel: &lapin::Channel,
    destination: &str,
    to_exchange: bool,
    exchange: &str,
    key: &str,
    arguments: &BTreeMap<String, Value>,
) -> lapin::Result<()> {
    let arguments = field_table(arguments);
    if to_exchange {
        channel
            .exchange_bind(
                destination.into(),
                exchange.into(),
                key.into(),
                ExchangeBindOptions::default(),
                arguments,
            )
            .await
    } else {
        channel
            .queue_bind(
                destination.into(),
                exchange.into(),
                key.into(),
                QueueBindOptions::default(),
                arguments,
            )
            .await
    }
}

/// Removes a binding made by [`bind`].
#[cfg_attr(not(feature = "testing"), allow(dead_code))]
pub(super) async fn unbind(
    channel: &lapin::Channel,
    destination: &str,
    to_exchange: bool,
    exchange: &str,
    key: &str,
) -> lapin::Result<()> {
    if to_exchange {
        channel
            .exchange_unbind(
                destination.into(),
                exchange.into(),
                key.into(),
                ExchangeUnbindOptions::default(),
                FieldTable::default(),
            )
            .await
    } else {
        channel
            .queue_unbind(
                destination.into(),
                exchange.into(),
                key.into(),
                FieldTable::default(),
            )
            .await
    }
}

#[cfg_attr(not(feature = "testing"), allow(dead_code))]
pub(super) async fn delete_queue(channel: &lapin::Channel, queue: &str) -> lapin::Result<u32> {
    channel
        .queue_delete(queue.into(), QueueDeleteOptions::default())
        .await
}

#[cfg_attr(not(feature = "testing"), allow(dead_code))]
pub(super) async fn delete_exchange(channel: &lapin::Channel, exchange: &str) -> lapin::Result<()> {
    channel
        .exchange_delete(exchange.into(), ExchangeDeleteOptions::default())
        .await
}

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
use super::session::Shared;
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

/// Declares `queue` again on `channel` as the connection's record has it:
/// the exchanges its bindings name, the queue, its bindings. Nothing when
/// the connection did not declare it. A server-named queue gets a new
/// name: the record follows it, and the (old, new) names are given.
pub(super) async fn recorded_queue(
    connection: &Shared,
    channel: &lapin::Channel,
    queue: &str,
) -> lapin::Result<Option<(String, String)>> {
    let Some((record, exchanges, bindings)) = connection.state().record.queue_topology(queue)
    else {
        return Ok(None);
    };
    for recorded in &exchanges {
        exchange(channel, recorded).await?;
    }
    let name = if record.declaration.name().is_empty() {
        ""
    } else {
        queue
    };
    let got = self::queue(channel, &record.declaration, name).await?.name;
    for binding in &bindings {
        bind(
            channel,
            &got,
            false,
            &binding.exchange,
            &binding.key,
            &binding.arguments,
        )
        .await?;
    }
    if got == queue {
        return Ok(None);
    }
    connection.state().record.renamed(queue, &got);
    Ok(Some((queue.to_owned(), got)))
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

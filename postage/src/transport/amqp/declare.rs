//! Declarations on a lapin channel: what a channel does for its user, and
//! what recovery replays on a new connection.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;

use super::convert::field_table;
use crate::topology::{Exchange, ExchangeKind, Queue};

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
/// name it) and gives the name it got.
pub(super) async fn queue(
    channel: &lapin::Channel,
    queue: &Queue,
    name: &str,
) -> lapin::Result<String> {
    let options = QueueDeclareOptions {
        passive: false,
        durable: queue.is_durable(),
        exclusive: queue.is_exclusive(),
        auto_delete: queue.is_auto_delete(),
        nowait: false,
    };
    let declared = channel
        .queue_declare(name.into(), options, field_table(queue.arguments()))
        .await?;
    Ok(declared.name().to_string())
}

pub(super) async fn bind(
    channel: &lapin::Channel,
    queue: &str,
    exchange: &str,
    key: &str,
) -> lapin::Result<()> {
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
}

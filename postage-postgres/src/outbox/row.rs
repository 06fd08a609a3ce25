//! A message as an outbox row: written from an [`Outgoing`], read back
//! into one.

use postage::middleware::{Outgoing, OutgoingParts};
use postage::{Category, Exchange, ExchangeKind};
use serde_json::{Map, Value, json};
use tokio_postgres::Row;
use tokio_postgres::types::{ToSql, Type};

use crate::error::{Error, Result};

/// Writes a message (the parameters of [`Columns::params`]).
pub(super) const INSERT: &str = "INSERT INTO postage_outbox (message_id, aggregate, targets, \
     kind, name, category, content_type, persistent, mandatory, reply_to, correlation_id, \
     expiration_ms, headers, deadline_ms, body) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)";

/// Writes a message of an aggregate: the aggregate's lock is taken
/// before the row gets its id, so that ids follow the order of commits
/// within an aggregate.
pub(super) const INSERT_IN_TURN: &str = "INSERT INTO postage_outbox (message_id, aggregate, \
     targets, kind, name, category, content_type, persistent, mandatory, reply_to, \
     correlation_id, expiration_ms, headers, deadline_ms, body) \
     SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15 \
     FROM (SELECT pg_advisory_xact_lock(hashtextextended($2, 0))) AS turn";

/// The parameters of one row's insert.
pub(super) struct Columns {
    parts: OutgoingParts,
    aggregate: Option<String>,
    targets: Value,
    category: &'static str,
    expiration_ms: Option<i64>,
    headers: Value,
    deadline_ms: Option<i64>,
}

impl Columns {
    pub(super) fn new(outgoing: Outgoing, aggregate: Option<String>) -> Self {
        let parts = outgoing.into_parts();
        let targets = parts
            .targets
            .iter()
            .map(|(exchange, key)| {
                json!({
                    "exchange": exchange.name(),
                    "kind": exchange.kind().as_str(),
                    "durable": exchange.is_durable(),
                    "auto_delete": exchange.is_auto_delete(),
                    "arguments": exchange.arguments(),
                    "key": key,
                })
            })
            .collect();
        let headers = Value::Object(parts.headers.clone().into_iter().collect());
        Columns {
            aggregate,
            targets,
            category: parts.category.as_str(),
            expiration_ms: parts.expiration_ms.map(saturate),
            headers,
            deadline_ms: parts.deadline_ms.map(saturate),
            parts,
        }
    }

    pub(super) fn message_id(&self) -> &str {
        &self.parts.message_id
    }

    pub(super) fn aggregate(&self) -> Option<&str> {
        self.aggregate.as_deref()
    }

    /// The parameters with their types, in the order of [`COLUMNS`]:
    /// typed, the insert takes one round trip (no statement to prepare).
    pub(super) fn params(&self) -> [(&(dyn ToSql + Sync), Type); 15] {
        let p = &self.parts;
        [
            (&p.message_id, Type::TEXT),
            (&self.aggregate, Type::TEXT),
            (&self.targets, Type::JSONB),
            (&p.kind, Type::TEXT),
            (&p.name, Type::TEXT),
            (&self.category, Type::TEXT),
            (&p.content_type, Type::TEXT),
            (&p.persistent, Type::BOOL),
            (&p.mandatory, Type::BOOL),
            (&p.reply_to, Type::TEXT),
            (&p.correlation_id, Type::TEXT),
            (&self.expiration_ms, Type::INT8),
            (&self.headers, Type::JSONB),
            (&self.deadline_ms, Type::INT8),
            (&p.body, Type::BYTEA),
        ]
    }
}

fn saturate(value: impl TryInto<i64>) -> i64 {
    value.try_into().unwrap_or(i64::MAX)
}

/// One unsent message read back from the outbox.
pub(super) struct Stored {
    pub(super) id: i64,
    pub(super) aggregate: Option<String>,
    pub(super) outgoing: Outgoing,
}

/// The columns [`Stored::read`] reads, in its order.
pub(super) const READ: &str = "id, aggregate, message_id, targets, kind, name, category, \
     content_type, persistent, mandatory, reply_to, correlation_id, expiration_ms, headers, \
     deadline_ms, body";

impl Stored {
    /// Reads a row selected with the columns of [`READ`].
    pub(super) fn read(row: &Row) -> Result<Self> {
        let id: i64 = row.try_get("id")?;
        let invalid = |reason: String| Error::InvalidRow { id, reason };
        let category = match row.try_get::<_, &str>("category")? {
            "rpc" => Category::Rpc,
            "message" => Category::Message,
            other => return Err(invalid(format!("unknown category {other:?}"))),
        };
        let targets: Value = row.try_get("targets")?;
        let targets = targets
            .as_array()
            .ok_or_else(|| invalid("targets is not an array".into()))?
            .iter()
            .map(|target| {
                read_target(target).ok_or_else(|| invalid(format!("bad target {target}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let headers = match row.try_get::<_, Value>("headers")? {
            Value::Object(map) => map.into_iter().collect(),
            _ => return Err(invalid("headers is not an object".into())),
        };
        let expiration_ms: Option<i64> = row.try_get("expiration_ms")?;
        let deadline_ms: Option<i64> = row.try_get("deadline_ms")?;
        let parts = OutgoingParts {
            message_id: row.try_get("message_id")?,
            kind: row.try_get("kind")?,
            name: row.try_get("name")?,
            category,
            body: row.try_get("body")?,
            targets,
            content_type: row.try_get("content_type")?,
            persistent: row.try_get("persistent")?,
            mandatory: row.try_get("mandatory")?,
            reply_to: row.try_get("reply_to")?,
            correlation_id: row.try_get("correlation_id")?,
            // The relay's producer sets its own, if any: the writer's
            // connection user may not be the relay's.
            user_id: None,
            expiration_ms: expiration_ms.and_then(|ms| u128::try_from(ms).ok()),
            headers,
            deadline_ms: deadline_ms.and_then(|ms| u64::try_from(ms).ok()),
        };
        Ok(Stored {
            id,
            aggregate: row.try_get("aggregate")?,
            outgoing: Outgoing::from_parts(parts),
        })
    }
}

/// An (exchange, key) pair from its JSON.
fn read_target(target: &Value) -> Option<(Exchange, String)> {
    let kind = match target.get("kind")?.as_str()? {
        "direct" => ExchangeKind::Direct,
        "fanout" => ExchangeKind::Fanout,
        "topic" => ExchangeKind::Topic,
        "headers" => ExchangeKind::Headers,
        _ => return None,
    };
    let mut exchange = Exchange::new(target.get("exchange")?.as_str()?, kind)
        .durable(target.get("durable")?.as_bool()?)
        .auto_delete(target.get("auto_delete")?.as_bool()?);
    let arguments = target.get("arguments").and_then(Value::as_object);
    for (key, value) in arguments.unwrap_or(&Map::new()) {
        exchange = exchange.argument(key.clone(), value.clone());
    }
    Some((exchange, target.get("key")?.as_str()?.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_reads_back_as_written() {
        let exchange = Exchange::new("orders", ExchangeKind::Topic)
            .durable(true)
            .argument("alternate-exchange", "lost");
        let json = json!({
            "exchange": exchange.name(), "kind": "topic", "durable": true,
            "auto_delete": false, "arguments": exchange.arguments(), "key": "order.*",
        });
        let (read, key) = read_target(&json).unwrap_or_else(|| panic!("unreadable"));
        assert_eq!(read, exchange);
        assert_eq!(key, "order.*");
        assert!(read_target(&json!({"exchange": "x", "kind": "nope", "key": ""})).is_none());
    }
}

//! Between our values and lapin's: declaration arguments as field tables,
//! lapin's errors as ours.

use std::collections::BTreeMap;

use lapin::types::{AMQPValue, FieldArray, FieldTable};
use serde_json::Value;

use crate::error::Error;

/// A failed AMQP operation, with the broker's reply code when the broker
/// refused it; lapin's error is kept as the cause.
pub(super) fn amqp_error(operation: impl Into<String>, error: lapin::Error) -> Error {
    let reply_code = match error.kind() {
        lapin::ErrorKind::ProtocolError(refused) => Some(refused.get_id()),
        _ => None,
    };
    Error::Amqp {
        operation: operation.into(),
        reply_code,
        source: Box::new(error),
    }
}

/// Converts JSON declaration arguments to an AMQP field table.
pub(super) fn field_table(arguments: &BTreeMap<String, Value>) -> FieldTable {
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

/// A field table (message headers) as JSON values: numbers, strings
/// (byte arrays as lossy text), booleans, arrays, tables; timestamps as
/// seconds; void as null.
pub(super) fn json_table(table: &FieldTable) -> BTreeMap<String, Value> {
    table
        .inner()
        .iter()
        .map(|(key, value)| (key.to_string(), json_value(value)))
        .collect()
}

fn json_value(value: &AMQPValue) -> Value {
    match value {
        AMQPValue::Boolean(b) => Value::Bool(*b),
        AMQPValue::ShortShortInt(n) => Value::from(*n),
        AMQPValue::ShortShortUInt(n) => Value::from(*n),
        AMQPValue::ShortInt(n) => Value::from(*n),
        AMQPValue::ShortUInt(n) => Value::from(*n),
        AMQPValue::LongInt(n) => Value::from(*n),
        AMQPValue::LongUInt(n) => Value::from(*n),
        AMQPValue::LongLongInt(n) => Value::from(*n),
        AMQPValue::Float(f) => Value::from(*f),
        AMQPValue::Double(f) => Value::from(*f),
        AMQPValue::DecimalValue(d) => Value::from(d.value),
        AMQPValue::ShortString(s) => Value::from(s.as_str()),
        AMQPValue::LongString(s) => Value::from(String::from_utf8_lossy(s.as_bytes())),
        AMQPValue::ByteArray(bytes) => Value::from(String::from_utf8_lossy(bytes.as_slice())),
        AMQPValue::FieldArray(items) => {
            Value::Array(items.as_slice().iter().map(json_value).collect())
        }
        AMQPValue::Timestamp(t) => Value::from(*t),
        AMQPValue::FieldTable(table) => Value::Object(json_table(table).into_iter().collect()),
        AMQPValue::Void => Value::Null,
    }
}

/// A count in a header as a number, whatever integer type it was sent as.
pub(super) fn count(value: &AMQPValue) -> Option<u64> {
    match value {
        AMQPValue::LongLongInt(n) => u64::try_from(*n).ok(),
        AMQPValue::LongInt(n) => u64::try_from(*n).ok(),
        AMQPValue::LongUInt(n) => Some(u64::from(*n)),
        AMQPValue::ShortInt(n) => u64::try_from(*n).ok(),
        AMQPValue::ShortUInt(n) => Some(u64::from(*n)),
        AMQPValue::ShortShortInt(n) => u64::try_from(*n).ok(),
        AMQPValue::ShortShortUInt(n) => Some(u64::from(*n)),
        _ => None,
    }
}

/// A header's text, when it is a string.
pub(super) fn text(value: &AMQPValue) -> Option<&str> {
    match value {
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok(),
        AMQPValue::ShortString(s) => Some(s.as_str()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn arguments_become_the_field_values_rabbitmq_reads() {
        let mut arguments = BTreeMap::new();
        arguments.insert("x-message-ttl".to_owned(), json!(60000));
        arguments.insert("x-queue-type".to_owned(), json!("quorum"));
        arguments.insert("ratio".to_owned(), json!(0.5));
        arguments.insert("flag".to_owned(), json!(true));
        arguments.insert("none".to_owned(), Value::Null);
        arguments.insert("list".to_owned(), json!([1, "a"]));
        arguments.insert("table".to_owned(), json!({"k": -1}));
        let table = field_table(&arguments);
        let get = |key: &str| table.inner().get(key).cloned();
        assert_eq!(get("x-message-ttl"), Some(AMQPValue::LongLongInt(60000)));
        assert_eq!(
            get("x-queue-type"),
            Some(AMQPValue::LongString("quorum".into()))
        );
        assert_eq!(get("ratio"), Some(AMQPValue::Double(0.5)));
        assert_eq!(get("flag"), Some(AMQPValue::Boolean(true)));
        assert_eq!(get("none"), Some(AMQPValue::Void));
        let mut list = FieldArray::default();
        list.push(AMQPValue::LongLongInt(1));
        list.push(AMQPValue::LongString("a".into()));
        assert_eq!(get("list"), Some(AMQPValue::FieldArray(list)));
        let mut inner = FieldTable::default();
        inner.insert("k".into(), AMQPValue::LongLongInt(-1));
        assert_eq!(get("table"), Some(AMQPValue::FieldTable(inner)));
    }

    #[test]
    fn counts_are_read_from_any_integer_type() {
        assert_eq!(count(&AMQPValue::LongLongInt(3)), Some(3));
        assert_eq!(count(&AMQPValue::ShortShortUInt(2)), Some(2));
        assert_eq!(count(&AMQPValue::LongInt(-1)), None);
        assert_eq!(count(&AMQPValue::LongString("3".into())), None);
    }

    #[test]
    fn a_refusal_by_the_broker_keeps_its_reply_code() {
        use lapin::protocol::{AMQPError, AMQPErrorKind, AMQPSoftError};
        let refused = lapin::Error::from(lapin::ErrorKind::ProtocolError(AMQPError::new(
            AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND),
            "NOT_FOUND - no queue 'q'".into(),
        )));
        let error = amqp_error("queue.declare \"q\"", refused);
        assert_eq!(error.reply_code(), Some(404));
        assert!(
            error
                .report()
                .to_string()
                .contains("NOT_FOUND - no queue 'q'"),
            "{}",
            error.report()
        );
        assert_eq!(error.to_string(), "AMQP queue.declare \"q\" failed");
    }
}

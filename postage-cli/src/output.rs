//! What every command shares: the connection, the command line's
//! fingerprint, parameters, exchanges, and how times and values print.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use postage::{Config, Connection, Exchange, ExchangeKind, Fingerprint};
use serde_json::Value;

use crate::args::ExchangeType;
use crate::failure::Failure;

/// How long the first connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Connects as components do (`POSTAGE_*` variables), `url` replacing
/// `POSTAGE_URL`.
pub(crate) async fn connect(url: Option<&str>) -> Result<Connection, Failure> {
    let config = match url {
        Some(url) => Config::from_lookup(|key| match key {
            "POSTAGE_URL" => Some(url.to_owned()),
            _ => std::env::var(key).ok(),
        }),
        None => Config::from_env(),
    }
    .map_err(|error| Failure::connection(postage::Report::from(error).to_string()))?;
    let config = config
        .with_connect_timeout(CONNECT_TIMEOUT)
        .with_connection_name("postage");
    Ok(Connection::connect(config).await?)
}

/// Who the command line is in the messages it sends (a processor that
/// restricts its control senders may list `postage`).
pub(crate) fn fingerprint() -> Fingerprint {
    Fingerprint::new("postage", "tool")
}

/// The parameters given as JSON (`{}` when none).
pub(crate) fn params(text: Option<&str>) -> Result<Value, Failure> {
    match text {
        None => Ok(Value::Object(serde_json::Map::new())),
        Some(text) => serde_json::from_str(text).map_err(|error| {
            Failure::connection(format!("PARAMS_JSON is not valid JSON: {error}"))
        }),
    }
}

/// The exchange `name`: declared with `kind` (durable, as Python Postage
/// declares exchanges), or only checked to exist when no type is given.
pub(crate) fn exchange(name: &str, kind: Option<ExchangeType>) -> Exchange {
    let declared = |kind| Exchange::new(name, kind);
    match kind {
        None => declared(ExchangeKind::Direct).passive(true),
        Some(ExchangeType::Direct) => declared(ExchangeKind::Direct),
        Some(ExchangeType::Fanout) => declared(ExchangeKind::Fanout),
        Some(ExchangeType::Topic) => declared(ExchangeKind::Topic),
        Some(ExchangeType::Headers) => declared(ExchangeKind::Headers),
    }
}

/// `name/type pid@host`.
pub(crate) fn who(fingerprint: &Fingerprint) -> String {
    let or_unknown = |v: &Option<String>| v.clone().unwrap_or_else(|| "?".into());
    format!(
        "{}/{} {}@{}",
        or_unknown(&fingerprint.name),
        or_unknown(&fingerprint.kind),
        fingerprint
            .pid
            .map_or_else(|| "?".into(), |p| p.to_string()),
        or_unknown(&fingerprint.host)
    )
}

/// A JSON value on one line, or indented.
pub(crate) fn json_text(value: &impl serde::Serialize, one_line: bool) -> String {
    // Through a `Value`: a message's content keeps its text as received,
    // which only a `Value` indents.
    let text = serde_json::to_value(value).and_then(|value| {
        if one_line {
            serde_json::to_string(&value)
        } else {
            serde_json::to_string_pretty(&value)
        }
    });
    text.unwrap_or_else(|error| format!("(cannot print: {error})"))
}

/// A duration of seconds as `3d4h`, `2h5m`, `4m10s` or `12.3s`.
pub(crate) fn uptime(seconds: f64) -> String {
    let whole = seconds as u64;
    let (d, h, m, s) = (
        whole / 86_400,
        whole / 3600 % 24,
        whole / 60 % 60,
        whole % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{seconds:.1}s"),
        (0, 0, _) => format!("{m}m{s}s"),
        (0, _, _) => format!("{h}h{m}m"),
        _ => format!("{d}d{h}h"),
    }
}

/// The time now in UTC, RFC 3339 to the millisecond.
pub(crate) fn now() -> String {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60,
        since.subsec_millis()
    )
}

/// The date `days` after 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_durations_read_as_people_write_them() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(20_788), (2026, 12, 1));
        assert_eq!(uptime(12.34), "12.3s");
        assert_eq!(uptime(250.0), "4m10s");
        assert_eq!(uptime(7500.0), "2h5m");
        assert_eq!(uptime(273_600.0), "3d4h");
    }

    #[test]
    fn parameters_are_json_or_nothing() {
        assert_eq!(params(None).unwrap(), serde_json::json!({}));
        assert_eq!(params(Some("\"hi\"")).unwrap(), "hi");
        let failure = params(Some("{oops")).unwrap_err();
        assert_eq!(failure.status, crate::failure::CONNECTION_OR_USAGE);
        assert!(failure.message.starts_with("PARAMS_JSON is not valid JSON"));
    }
}

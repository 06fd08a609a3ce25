//! The Grafana dashboard (`dashboards/grafana-postage.json`) reads only
//! metrics Postage records, under the labels they carry: a renamed metric
//! or label fails here rather than as an empty panel.

use postage::telemetry;

/// Every metric Postage and `postage-postgres` record, with its labels.
fn metrics() -> Vec<(&'static str, &'static [&'static str])> {
    use telemetry::*;
    let sends: &[&str] = &["exchange", "type", "name"];
    let processor: &[&str] = &["processor"];
    vec![
        (MESSAGES_PUBLISHED, sends),
        (MESSAGES_CONFIRMED, sends),
        (MESSAGES_RETURNED, sends),
        (PUBLISH_FAILURES, sends),
        (DELIVERIES_RECEIVED, processor),
        (DELIVERIES_HANDLED, processor),
        (DELIVERIES_FAILED, processor),
        (DELIVERIES_RETRIED, processor),
        (DELIVERIES_PARKED, processor),
        (DELIVERIES_REJECTED, &["processor", "reason"]),
        (HANDLER_DURATION, &["processor", "handler", "outcome", "le"]),
        (MESSAGES_IN_FLIGHT, processor),
        (RPC_CALL_DURATION, &["name", "outcome", "le"]),
        (RPC_TIMEOUTS, &["name"]),
        (CONNECTION_RECOVERIES, &[]),
        (CONNECTION_STALLS, &[]),
        (CONNECTIONS_BLOCKED, &[]),
        (CONSUMER_STALLS, &["consumer"]),
        (CONSUMER_HEALTH, &["consumer", "state"]),
        (postage_postgres::metrics::OUTBOX_PUBLISHED, &[]),
        (postage_postgres::metrics::OUTBOX_PUBLISH_FAILURES, &[]),
        (postage_postgres::metrics::OUTBOX_DATABASE_ERRORS, &[]),
        (postage_postgres::metrics::INBOX_DUPLICATES, &["consumer"]),
    ]
}

/// The words of `text` made of `[a-z_]`.
fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_ascii_lowercase() || c == '_'))
        .filter(|word| !word.is_empty())
}

#[test]
fn the_dashboard_reads_only_metrics_and_labels_postage_records() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../dashboards/grafana-postage.json"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let dashboard: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path} is not JSON: {e}"));
    let known = metrics();
    let panels = dashboard["panels"]
        .as_array()
        .unwrap_or_else(|| panic!("no panels"));
    assert!(!panels.is_empty());
    let mut used = std::collections::BTreeSet::new();
    for panel in panels {
        let targets = panel["targets"]
            .as_array()
            .unwrap_or_else(|| panic!("a panel without targets: {panel}"));
        for target in targets {
            let expr = target["expr"]
                .as_str()
                .unwrap_or_else(|| panic!("a target without expr: {target}"));
            let metrics: Vec<&str> = words(expr)
                .filter(|word| word.starts_with("postage_"))
                .collect();
            assert!(!metrics.is_empty(), "no Postage metric in {expr}");
            for metric in metrics {
                let base = metric.strip_suffix("_bucket").unwrap_or(metric);
                let labels = known
                    .iter()
                    .find(|(name, _)| *name == base)
                    .map(|(_, labels)| *labels)
                    .unwrap_or_else(|| panic!("{metric} is not a metric Postage records ({expr})"));
                // Labels named in `by (...)` and `{label=...}`.
                for clause in expr.split("by (").skip(1) {
                    let inside = clause.split(')').next().unwrap_or_default();
                    for label in words(inside) {
                        assert!(
                            labels.contains(&label),
                            "{base} has no label {label} ({expr})"
                        );
                    }
                }
                if let Some(selector) = expr.split(&format!("{metric}{{")).nth(1) {
                    let inside = selector.split('}').next().unwrap_or_default();
                    for matcher in inside.split(',') {
                        let label = matcher.split(['=', '!']).next().unwrap_or_default().trim();
                        assert!(
                            labels.contains(&label),
                            "{base} has no label {label} ({expr})"
                        );
                    }
                }
                used.insert(base);
            }
        }
    }
    for wanted in [
        telemetry::DELIVERIES_HANDLED,
        telemetry::HANDLER_DURATION,
        telemetry::CONSUMER_HEALTH,
        telemetry::MESSAGES_PUBLISHED,
    ] {
        assert!(
            used.contains(wanted),
            "the dashboard does not show {wanted}"
        );
    }
}

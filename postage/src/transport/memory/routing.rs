//! Routing as RabbitMQ's exchange types route: an exchange's bindings,
//! indexed by key where the key alone decides (direct, and topic bindings
//! without wildcards), topic patterns and headers matching.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use crate::topology::ExchangeKind;

/// Where a binding leads.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Destination {
    Queue(String),
    Exchange(String),
}

impl Destination {
    /// A queue, or with `to_exchange` an exchange, called `name`.
    pub(super) fn new(name: &str, to_exchange: bool) -> Self {
        if to_exchange {
            Destination::Exchange(name.to_owned())
        } else {
            Destination::Queue(name.to_owned())
        }
    }

    pub(super) fn name(&self) -> &str {
        match self {
            Destination::Queue(name) | Destination::Exchange(name) => name,
        }
    }
}

/// One binding of an exchange.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Bound {
    pub(super) destination: Destination,
    pub(super) key: String,
    pub(super) arguments: BTreeMap<String, Value>,
}

/// The bindings of one exchange of type `kind`.
#[derive(Debug)]
pub(super) struct Bindings {
    kind: ExchangeKind,
    /// Bindings whose key alone decides, by key.
    exact: HashMap<String, Vec<Bound>>,
    /// The others: topic patterns, fanout and headers bindings.
    others: Vec<Bound>,
}

impl Bindings {
    pub(super) fn new(kind: ExchangeKind) -> Self {
        Bindings {
            kind,
            exact: HashMap::new(),
            others: Vec::new(),
        }
    }

    fn indexed(&self, key: &str) -> bool {
        match self.kind {
            ExchangeKind::Direct => true,
            ExchangeKind::Topic => !key.contains(['*', '#']),
            ExchangeKind::Fanout | ExchangeKind::Headers => false,
        }
    }

    /// Adds a binding (a binding made twice is one binding).
    pub(super) fn add(&mut self, bound: Bound) {
        let list = if self.indexed(&bound.key) {
            self.exact.entry(bound.key.clone()).or_default()
        } else {
            &mut self.others
        };
        if !list.contains(&bound) {
            list.push(bound);
        }
    }

    /// Removes the bindings to `destination` with `key`.
    pub(super) fn remove(&mut self, destination: &Destination, key: &str) {
        if self.indexed(key) {
            if let Some(list) = self.exact.get_mut(key) {
                list.retain(|b| b.destination != *destination);
                if list.is_empty() {
                    self.exact.remove(key);
                }
            }
        } else {
            self.others
                .retain(|b| !(b.destination == *destination && b.key == key));
        }
    }

    /// Removes every binding to `destination`; true if there was one.
    pub(super) fn remove_all_to(&mut self, destination: &Destination) -> bool {
        let before = self.len();
        self.exact.retain(|_, list| {
            list.retain(|b| b.destination != *destination);
            !list.is_empty()
        });
        self.others.retain(|b| b.destination != *destination);
        before != self.len()
    }

    pub(super) fn len(&self) -> usize {
        self.exact.values().map(Vec::len).sum::<usize>() + self.others.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.others.is_empty()
    }

    /// Every binding.
    pub(super) fn iter(&self) -> impl Iterator<Item = &Bound> {
        self.exact.values().flatten().chain(&self.others)
    }

    /// The bindings a message with `key` and `headers` matches.
    pub(super) fn matching<'a>(
        &'a self,
        key: &'a str,
        headers: &'a BTreeMap<String, Value>,
    ) -> impl Iterator<Item = &'a Bound> {
        let kind = self.kind;
        self.exact
            .get(key)
            .into_iter()
            .flatten()
            .chain(self.others.iter().filter(move |b| match kind {
                ExchangeKind::Direct => b.key == key,
                ExchangeKind::Fanout => true,
                ExchangeKind::Topic => topic_matches(&b.key, key),
                ExchangeKind::Headers => headers_match(&b.arguments, headers),
            }))
    }
}

/// The words of a routing key or pattern, as RabbitMQ splits them: the
/// empty key has no words, and every dot separates two words (which may
/// be empty: `a..b` has three).
fn words(key: &str) -> Vec<&str> {
    if key.is_empty() {
        Vec::new()
    } else {
        key.split('.').collect()
    }
}

/// Does the topic binding `pattern` match `key`? `*` is exactly one word,
/// `#` zero or more.
pub(super) fn topic_matches(pattern: &str, key: &str) -> bool {
    if !pattern.contains(['*', '#']) {
        return pattern == key;
    }
    let pattern = words(pattern);
    let key = words(key);
    // matches[j]: does the pattern so far match the first j words of the key?
    let mut matches = vec![false; key.len() + 1];
    matches[0] = true;
    for word in pattern {
        let mut next = vec![false; key.len() + 1];
        match word {
            "#" => {
                let mut seen = false;
                for (j, slot) in next.iter_mut().enumerate() {
                    seen |= matches[j];
                    *slot = seen;
                }
            }
            _ => {
                for j in 0..key.len() {
                    if matches[j] && (word == "*" || word == key[j]) {
                        next[j + 1] = true;
                    }
                }
            }
        }
        matches = next;
    }
    matches[key.len()]
}

/// How a headers binding matches, from its `x-match` argument.
#[derive(Clone, Copy, PartialEq, Eq)]
enum XMatch {
    All,
    Any,
    AllWithX,
    AnyWithX,
}

/// Does a headers binding with `arguments` match a message's `headers`?
/// Binding arguments named `x-…` are not matched on, unless `x-match` is
/// `all-with-x` or `any-with-x`; a null argument asks only that the header
/// be present.
pub(super) fn headers_match(
    arguments: &BTreeMap<String, Value>,
    headers: &BTreeMap<String, Value>,
) -> bool {
    let kind = match arguments.get("x-match").and_then(Value::as_str) {
        Some("any") => XMatch::Any,
        Some("all-with-x") => XMatch::AllWithX,
        Some("any-with-x") => XMatch::AnyWithX,
        _ => XMatch::All,
    };
    let with_x = matches!(kind, XMatch::AllWithX | XMatch::AnyWithX);
    let mut all = true;
    let mut any = false;
    for (key, expected) in arguments {
        if key == "x-match" || (!with_x && key.starts_with("x-")) {
            continue;
        }
        let matched = match headers.get(key) {
            None => false,
            Some(_) if expected.is_null() => true,
            Some(value) => same_value(expected, value),
        };
        all &= matched;
        any |= matched;
    }
    match kind {
        XMatch::All | XMatch::AllWithX => all,
        XMatch::Any | XMatch::AnyWithX => any,
    }
}

/// Values compared as RabbitMQ compares them: numbers by value, whatever
/// their type.
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn topic_patterns_match_words() {
        let cases = [
            ("a.b", "a.b", true),
            ("a.*", "a.b", true),
            ("a.*", "a.b.c", false),
            ("a.#", "a", true),
            ("#.a", "a", true),
            ("#.#", "", true),
            ("#", "", true),
            ("*", "", false),
            ("a.*.c", "a..c", true),
            ("#.b.#", "a.b.c", true),
            ("#.b.#", "b", true),
            ("a.#.#.b", "a.b", true),
            ("*.*", "a.", true),
        ];
        for (pattern, key, expected) in cases {
            assert_eq!(topic_matches(pattern, key), expected, "{pattern:?} {key:?}");
        }
    }

    #[test]
    fn headers_match_all_any_and_with_x() {
        let map =
            |v: Value| -> BTreeMap<String, Value> { serde_json::from_value(v).unwrap_or_default() };
        let headers = map(json!({"a": 1, "b": "x", "x-c": true}));
        assert!(headers_match(&map(json!({"a": 1, "b": "x"})), &headers));
        assert!(!headers_match(&map(json!({"a": 1, "b": "y"})), &headers));
        assert!(headers_match(
            &map(json!({"x-match": "any", "a": 2, "b": "x"})),
            &headers
        ));
        assert!(headers_match(&map(json!({"a": null})), &headers));
        assert!(headers_match(&map(json!({"a": 1, "x-c": false})), &headers));
        assert!(!headers_match(
            &map(json!({"x-match": "all-with-x", "x-c": false})),
            &headers
        ));
        assert!(headers_match(
            &map(json!({"x-match": "any-with-x", "x-c": true})),
            &headers
        ));
        assert!(!headers_match(&map(json!({"x-match": "any"})), &headers));
    }
}

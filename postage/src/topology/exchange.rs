//! Exchanges as values: name, type, flags and arguments.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::Value;

/// The exchange types RabbitMQ knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExchangeKind {
    /// Routes on exact routing key (the default, as in Python Postage).
    Direct,
    /// Copies to every bound queue.
    Fanout,
    /// Routes on `*` / `#` patterns.
    Topic,
    /// Routes on headers.
    Headers,
}

impl ExchangeKind {
    /// The AMQP name: `direct`, `fanout`, `topic` or `headers`.
    pub fn as_str(self) -> &'static str {
        match self {
            ExchangeKind::Direct => "direct",
            ExchangeKind::Fanout => "fanout",
            ExchangeKind::Topic => "topic",
            ExchangeKind::Headers => "headers",
        }
    }
}

/// An exchange declaration: name, type and flags, with Python Postage's
/// defaults (direct, not passive, durable, not auto-delete, no arguments).
///
/// Declarations must match across components: RabbitMQ refuses to redeclare
/// an exchange with other settings (`PRECONDITION_FAILED`).
///
/// ```
/// use postage::{Exchange, ExchangeKind};
///
/// const ECHO: Exchange = Exchange::direct("echo-exchange");
/// const EVENTS: Exchange = Exchange::topic("events").durable(false);
/// assert_eq!(ECHO.kind(), ExchangeKind::Direct);
/// assert!(ECHO.is_durable());
///
/// // Names known only at run time:
/// let per_host = Exchange::new(format!("jobs-{}", 7), ExchangeKind::Fanout);
/// assert_eq!(per_host.name(), "jobs-7");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Exchange {
    name: Cow<'static, str>,
    kind: ExchangeKind,
    passive: bool,
    durable: bool,
    auto_delete: bool,
    arguments: BTreeMap<String, Value>,
}

impl Exchange {
    const fn with_kind(name: &'static str, kind: ExchangeKind) -> Self {
        Exchange {
            name: Cow::Borrowed(name),
            kind,
            passive: false,
            durable: true,
            auto_delete: false,
            arguments: BTreeMap::new(),
        }
    }

    /// A direct exchange.
    pub const fn direct(name: &'static str) -> Self {
        Self::with_kind(name, ExchangeKind::Direct)
    }

    /// A fanout exchange.
    pub const fn fanout(name: &'static str) -> Self {
        Self::with_kind(name, ExchangeKind::Fanout)
    }

    /// A topic exchange.
    pub const fn topic(name: &'static str) -> Self {
        Self::with_kind(name, ExchangeKind::Topic)
    }

    /// A headers exchange.
    pub const fn headers(name: &'static str) -> Self {
        Self::with_kind(name, ExchangeKind::Headers)
    }

    /// An exchange whose name is made at run time.
    pub fn new(name: impl Into<String>, kind: ExchangeKind) -> Self {
        Exchange {
            name: Cow::Owned(name.into()),
            ..Self::with_kind("", kind)
        }
    }

    /// Passive: only check that the exchange exists (default `false`).
    #[must_use]
    pub const fn passive(mut self, passive: bool) -> Self {
        self.passive = passive;
        self
    }

    /// Durable: survives a broker restart (default `true`).
    #[must_use]
    pub const fn durable(mut self, durable: bool) -> Self {
        self.durable = durable;
        self
    }

    /// Auto-delete: removed when its last binding goes (default `false`).
    #[must_use]
    pub const fn auto_delete(mut self, auto_delete: bool) -> Self {
        self.auto_delete = auto_delete;
        self
    }

    /// Adds a declaration argument, e.g. `alternate-exchange`.
    #[must_use]
    pub fn argument(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.arguments.insert(key.into(), value.into());
        self
    }

    /// The exchange's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The exchange's type.
    pub fn kind(&self) -> ExchangeKind {
        self.kind
    }

    /// Is the declaration passive?
    pub fn is_passive(&self) -> bool {
        self.passive
    }

    /// Is the exchange durable?
    pub fn is_durable(&self) -> bool {
        self.durable
    }

    /// Is the exchange auto-deleted?
    pub fn is_auto_delete(&self) -> bool {
        self.auto_delete
    }

    /// The declaration arguments.
    pub fn arguments(&self) -> &BTreeMap<String, Value> {
        &self.arguments
    }

    /// Is this the default exchange (`""`), which needs no declaration?
    pub fn is_default(&self) -> bool {
        self.name.is_empty()
    }
}

//! The message as it travels: [`Message`], its [`Category`] and the
//! format [`VERSION`].

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use super::{Content, WireFingerprint};
use crate::fingerprint::Fingerprint;

/// The wire format version this crate speaks.
pub const VERSION: &str = "2";

/// Fire-and-forget (`message`) or request/reply (`rpc`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    /// Fire and forget.
    Message,
    /// A reply is expected at the request's `reply_to`.
    Rpc,
}

impl Category {
    /// The wire name: `message` or `rpc`.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Message => "message",
            Category::Rpc => "rpc",
        }
    }
}

impl std::fmt::Display for Category {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One Postage message, as it travels on the wire.
///
/// Decoding is lenient where Python Postage is loose (`version` as a string
/// or a number, any fingerprint object, `_reserved` missing) and strict where
/// a message would be meaningless (`type`, `name`, `category` and `content`
/// must be there with the right JSON types).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Free text; Postage defines `command`, `status` and `result`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The command, the status text, or `none`.
    pub name: String,
    /// Fire-and-forget or RPC.
    pub category: Category,
    /// Always `"2"` when sent; read from a string or a number.
    #[serde(deserialize_with = "version_from_any", default = "version")]
    pub version: String,
    /// The sender's fingerprint in map form (see [`Fingerprint`]), parsed
    /// when first read.
    #[serde(default)]
    pub fingerprint: WireFingerprint,
    /// The payload.
    pub content: Content,
    /// Reserved by the format; always `{}`.
    #[serde(rename = "_reserved", default)]
    pub reserved: Map<String, Value>,
}

fn version() -> String {
    VERSION.into()
}

/// The version as sent: a string, or a number written as JSON writes it.
fn version_from_any<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    struct Version;

    impl serde::de::Visitor<'_> for Version {
        type Value = String;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("the version as a string or a number")
        }

        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_owned())
        }

        fn visit_string<E: serde::de::Error>(self, v: String) -> Result<String, E> {
            Ok(v)
        }

        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }

        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }

        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<String, E> {
            serde_json::Number::from_f64(v)
                .map(|n| n.to_string())
                .ok_or_else(|| E::custom("the version is not a finite number"))
        }
    }

    d.deserialize_any(Version)
}

impl Message {
    /// A message of any type, name and category with the given content.
    pub fn new(
        kind: impl Into<String>,
        name: impl Into<String>,
        category: Category,
        content: impl Into<Content>,
    ) -> Self {
        Message {
            kind: kind.into(),
            name: name.into(),
            category,
            version: version(),
            fingerprint: WireFingerprint::default(),
            content: content.into(),
            reserved: Map::new(),
        }
    }

    /// Sets the fingerprint (map form).
    #[must_use]
    pub fn with_fingerprint(mut self, fingerprint: &Fingerprint) -> Self {
        self.fingerprint = fingerprint.as_map().into();
        self
    }

    /// The sender's fingerprint, read leniently.
    pub fn sender(&self) -> Fingerprint {
        Fingerprint::from_map(&self.fingerprint)
    }

    /// Is this an RPC request?
    pub fn is_rpc(&self) -> bool {
        self.category == Category::Rpc
    }

    /// Is this a result message (`type` = `result`)?
    pub fn is_result(&self) -> bool {
        self.kind == "result"
    }

    /// The truth value Python Postage gives a message: `false` for error and
    /// exception results, `true` for everything else (success results
    /// included).
    pub fn is_ok(&self) -> bool {
        !(self.is_result()
            && matches!(
                self.content.get("type").and_then(Value::as_str),
                Some("error" | "exception")
            ))
    }
}

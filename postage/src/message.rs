//! The wire model: messages, their kinds and constructors.
//!
//! A [`Message`] is the JSON object every Postage component sends:
//!
//! ```json
//! {"type": "command", "name": "echo", "category": "message", "version": "2",
//!  "fingerprint": {...}, "content": {"parameters": "A test message"}, "_reserved": {}}
//! ```
//!
//! The constructors ([`MessageCommand`], [`RpcCommand`], [`MessageStatus`],
//! [`MessageResult`], [`MessageResultError`], [`MessageResultException`],
//! [`GenericMessage`]) build each kind exactly as Python Postage does; they
//! all turn into a [`Message`] with `.into()`.

use std::ops::{Deref, DerefMut};
use std::sync::OnceLock;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::encoding::DecodeError;
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

/// A message's payload: always a JSON object on the wire.
///
/// Commands keep their arguments under `parameters`; results under `type`,
/// `value` and `message`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Content(pub Map<String, Value>);

impl Content {
    /// The `parameters` of a command, if any.
    pub fn parameters(&self) -> Option<&Value> {
        self.0.get("parameters")
    }

    /// The `parameters` of a command decoded into `T` (a missing
    /// `parameters` key reads as `null`).
    pub fn parameters_as<T: DeserializeOwned>(&self) -> Result<T, DecodeError> {
        let value = self.parameters().unwrap_or(&Value::Null);
        T::deserialize(value).map_err(|e| DecodeError::Parameters(e.to_string()))
    }

    /// Consumes the content, giving the map.
    pub fn into_inner(self) -> Map<String, Value> {
        self.0
    }
}

impl Deref for Content {
    type Target = Map<String, Value>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for Content {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl From<Map<String, Value>> for Content {
    fn from(map: Map<String, Value>) -> Self {
        Content(map)
    }
}

/// A message's `fingerprint` field: the sender's fingerprint in map form.
///
/// It reads like a `Map<String, Value>` (through `Deref`) and is built from
/// one with `.into()` (to change it, assign a new one). A decoded message keeps the field as the JSON text it
/// arrived as and parses it into a map the first time it is read, so that
/// a processor that never looks at the sender does not pay for it;
/// re-encoding an unread field writes that text back unchanged.
///
/// ```
/// use postage::message::WireFingerprint;
/// use postage::Fingerprint;
///
/// let field = WireFingerprint::from(Fingerprint::new("echo_send", "application").as_map());
/// assert_eq!(field["name"], "echo_send");
/// assert_eq!(Fingerprint::from_map(&field).name.as_deref(), Some("echo_send"));
/// ```
#[derive(Clone, Default)]
pub struct WireFingerprint {
    /// The field as received (`None` when built from a map).
    raw: Option<Box<RawValue>>,
    map: OnceLock<Map<String, Value>>,
}

impl WireFingerprint {
    fn map(&self) -> &Map<String, Value> {
        self.map.get_or_init(|| {
            self.raw
                .as_deref()
                .and_then(|raw| serde_json::from_str(raw.get()).ok())
                // Only a fingerprint nested past the parser's depth limit
                // fails here: read it as empty, as any odd fingerprint.
                .unwrap_or_default()
        })
    }

    /// Consumes the field, giving the map.
    pub fn into_inner(self) -> Map<String, Value> {
        self.map();
        self.map.into_inner().unwrap_or_default()
    }
}

impl Deref for WireFingerprint {
    type Target = Map<String, Value>;
    fn deref(&self) -> &Self::Target {
        self.map()
    }
}

impl From<Map<String, Value>> for WireFingerprint {
    fn from(map: Map<String, Value>) -> Self {
        WireFingerprint {
            raw: None,
            map: OnceLock::from(map),
        }
    }
}

/// The fingerprint of a sender, its JSON text written once: a producer or
/// processor puts it into every message it sends, and the encoder copies
/// the text instead of serializing six keys each time.
///
/// ```
/// use postage::message::WireFingerprint;
/// use postage::Fingerprint;
///
/// let field = WireFingerprint::from(&Fingerprint::new("echo_send", "application"));
/// assert_eq!(field["type"], "application");
/// ```
impl From<&Fingerprint> for WireFingerprint {
    fn from(fingerprint: &Fingerprint) -> Self {
        let map = fingerprint.as_map();
        WireFingerprint {
            // A map of strings always serializes; on the impossible error
            // the map is written instead.
            raw: serde_json::value::to_raw_value(&map).ok(),
            map: OnceLock::from(map),
        }
    }
}

impl PartialEq for WireFingerprint {
    fn eq(&self, other: &Self) -> bool {
        self.map() == other.map()
    }
}

impl std::fmt::Debug for WireFingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.map().fmt(f)
    }
}

impl Serialize for WireFingerprint {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.raw {
            Some(raw) => raw.serialize(serializer),
            None => self.map().serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for WireFingerprint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(d)?;
        if !raw.get().starts_with('{') {
            return Err(serde::de::Error::custom(format!(
                "fingerprint must be an object, found {}",
                raw.get()
            )));
        }
        Ok(WireFingerprint {
            raw: Some(raw),
            map: OnceLock::new(),
        })
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

    /// Reads a result message: [`Outcome::Success`], [`Outcome::Error`] or
    /// [`Outcome::Exception`]. Fails when this is not a well-formed result.
    pub fn outcome(&self) -> Result<Outcome, DecodeError> {
        if !self.is_result() {
            return Err(DecodeError::NotAResult(format!(
                "message type is {:?}, not \"result\"",
                self.kind
            )));
        }
        let text = |key: &str| match self.content.get(key) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        };
        match self.content.get("type").and_then(Value::as_str) {
            Some("success") => Ok(Outcome::Success {
                value: self.content.get("value").cloned().unwrap_or(Value::Null),
                message: text("message"),
            }),
            Some("error") => Ok(Outcome::Error {
                message: text("message"),
            }),
            Some("exception") => Ok(Outcome::Exception {
                name: text("value"),
                message: text("message"),
            }),
            other => Err(DecodeError::NotAResult(format!(
                "result content type is {other:?}, expected success, error or exception"
            ))),
        }
    }
}

/// What a result message says.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The call worked and produced `value`.
    Success {
        /// The returned value.
        value: Value,
        /// Optional text.
        message: String,
    },
    /// The call failed in an expected way.
    Error {
        /// What went wrong.
        message: String,
    },
    /// The call raised (Python) or panicked / failed unexpectedly (Rust).
    Exception {
        /// The exception's name, e.g. `TimeoutError`.
        name: String,
        /// Its text.
        message: String,
    },
}

impl Outcome {
    /// `Ok(value)` for a success, `Err(self)` otherwise.
    pub fn into_value(self) -> Result<Value, Outcome> {
        match self {
            Outcome::Success { value, .. } => Ok(value),
            other => Err(other),
        }
    }
}

macro_rules! message_kind {
    ($(#[$doc:meta])* $ty:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq)]
        pub struct $ty(Message);

        impl From<$ty> for Message {
            fn from(kind: $ty) -> Message {
                kind.0
            }
        }

        impl Deref for $ty {
            type Target = Message;
            fn deref(&self) -> &Message {
                &self.0
            }
        }
    };
}

fn parameters(parameters: Value) -> Content {
    let mut map = Map::with_capacity(1);
    map.insert("parameters".into(), parameters);
    Content(map)
}

message_kind!(
    /// A fire-and-forget command: `{"parameters": ...}`.
    ///
    /// ```
    /// use postage::message::{Message, MessageCommand};
    /// let m: Message = MessageCommand::new("echo", "A test message").into();
    /// assert_eq!(m.content.parameters(), Some(&"A test message".into()));
    /// ```
    MessageCommand
);

impl MessageCommand {
    /// A command `name` with these parameters (any JSON value; Python sends
    /// `{}` when there are none).
    pub fn new(name: impl Into<String>, parameters: impl Into<Value>) -> Self {
        MessageCommand(Message::new(
            "command",
            name,
            Category::Message,
            self::parameters(parameters.into()),
        ))
    }
}

message_kind!(
    /// An RPC command: like [`MessageCommand`] with category `rpc`.
    RpcCommand
);

impl RpcCommand {
    /// An RPC command `name` with these parameters.
    pub fn new(name: impl Into<String>, parameters: impl Into<Value>) -> Self {
        RpcCommand(Message::new(
            "command",
            name,
            Category::Rpc,
            self::parameters(parameters.into()),
        ))
    }
}

message_kind!(
    /// A status broadcast: the status is the message's name, content `{}`.
    MessageStatus
);

impl MessageStatus {
    /// A status message such as `online`.
    pub fn new(status: impl Into<String>) -> Self {
        MessageStatus(Message::new(
            "status",
            status,
            Category::Message,
            Content::default(),
        ))
    }
}

fn result(kind: &str, value: Value, message: String) -> Message {
    let mut map = Map::with_capacity(3);
    map.insert("type".into(), kind.into());
    map.insert("value".into(), value);
    map.insert("message".into(), message.into());
    Message::new("result", "none", Category::Message, Content(map))
}

message_kind!(
    /// A success result: `{"type": "success", "value": ..., "message": ...}`.
    MessageResult
);

impl MessageResult {
    /// A success carrying `value`, with an empty message.
    pub fn new(value: impl Into<Value>) -> Self {
        MessageResult(result("success", value.into(), String::new()))
    }

    /// A success carrying `value` and a message.
    pub fn with_message(value: impl Into<Value>, message: impl Into<String>) -> Self {
        MessageResult(result("success", value.into(), message.into()))
    }
}

message_kind!(
    /// An error result: value `null` and a message.
    MessageResultError
);

impl MessageResultError {
    /// An error saying `message`.
    pub fn new(message: impl Into<String>) -> Self {
        MessageResultError(result("error", Value::Null, message.into()))
    }
}

message_kind!(
    /// An exception result: value is the exception's name.
    MessageResultException
);

impl MessageResultException {
    /// An exception called `name` saying `message`.
    pub fn new(name: impl Into<String>, message: impl Into<String>) -> Self {
        MessageResultException(result(
            "exception",
            Value::String(name.into()),
            message.into(),
        ))
    }
}

message_kind!(
    /// A generic message (Python's `producer.message(*args, **kwds)`):
    /// type and name `none`, content `{"args": [...], "kwds": {...}}`, each
    /// key only when non-empty.
    GenericMessage
);

impl GenericMessage {
    /// A generic message with these positional and keyword arguments.
    pub fn new(args: Vec<Value>, kwds: Map<String, Value>) -> Self {
        let mut content = Map::new();
        if !args.is_empty() {
            content.insert("args".into(), Value::Array(args));
        }
        if !kwds.is_empty() {
            content.insert("kwds".into(), Value::Object(kwds));
        }
        GenericMessage(Message::new(
            "none",
            "none",
            Category::Message,
            Content(content),
        ))
    }
}

/// Anything that builds a [`Message`]: every kind above, and `Message`
/// itself. `build_message_*` / `build_rpc_*` methods return one of these.
/// Implement it for a type of your own to send it directly.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a Postage message",
    label = "a `build_` method must return a message",
    note = "return one of Message, MessageCommand, RpcCommand, MessageStatus, MessageResult, MessageResultError, MessageResultException, GenericMessage"
)]
pub trait IntoMessage {
    /// Converts into a message.
    fn into_message(self) -> Message;
}

impl IntoMessage for Message {
    fn into_message(self) -> Message {
        self
    }
}

macro_rules! into_message {
    ($($ty:ident),*) => {$(
        impl IntoMessage for $ty {
            fn into_message(self) -> Message {
                self.0
            }
        }
    )*};
}

into_message!(
    MessageCommand,
    RpcCommand,
    MessageStatus,
    MessageResult,
    MessageResultError,
    MessageResultException,
    GenericMessage
);

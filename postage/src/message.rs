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

/// A JSON object as a message field: kept as the text it arrived as, and
/// parsed into a map the first time it is read as one. Re-encoding a field
/// that was not changed writes that text back unchanged.
#[derive(Clone, Default)]
struct LazyObject {
    /// The field as received; `None` when built from a map or changed.
    raw: Option<Box<RawValue>>,
    map: OnceLock<Map<String, Value>>,
}

impl LazyObject {
    fn from_map(map: Map<String, Value>) -> Self {
        LazyObject {
            raw: None,
            map: OnceLock::from(map),
        }
    }

    /// The text as received, while it was not parsed into a map.
    fn unparsed(&self) -> Option<&RawValue> {
        match self.map.get() {
            None => self.raw.as_deref(),
            Some(_) => None,
        }
    }

    fn map(&self) -> &Map<String, Value> {
        self.map.get_or_init(|| {
            self.raw
                .as_deref()
                .and_then(|raw| serde_json::from_str(raw.get()).ok())
                // Only an object nested past the parser's depth limit fails
                // here: it reads as empty.
                .unwrap_or_default()
        })
    }

    /// The map, to change: the text received no longer applies.
    fn map_mut(&mut self) -> &mut Map<String, Value> {
        self.map();
        self.raw = None;
        match self.map.get_mut() {
            Some(map) => map,
            None => unreachable!("the map was read just above"),
        }
    }

    fn into_map(self) -> Map<String, Value> {
        self.map();
        self.map.into_inner().unwrap_or_default()
    }

    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.raw {
            Some(raw) => raw.serialize(serializer),
            None => self.map().serialize(serializer),
        }
    }

    fn deserialize<'de, D: Deserializer<'de>>(d: D, field: &str) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(d)?;
        if !raw.get().starts_with('{') {
            return Err(serde::de::Error::custom(format!(
                "{field} must be an object, found {}",
                raw.get()
            )));
        }
        Ok(LazyObject {
            raw: Some(raw),
            map: OnceLock::new(),
        })
    }
}

/// A message's payload: always a JSON object on the wire.
///
/// Commands keep their arguments under `parameters`; results under `type`,
/// `value` and `message`. It reads and changes like a `Map<String, Value>`
/// (through `Deref` and `DerefMut`) and is built from one with `.into()`.
/// Decoded content is kept as the JSON text it arrived as until it is read
/// as a map: [`parameters_as`](Content::parameters_as) decodes the
/// parameters straight from that text, without building a map first.
///
/// ```
/// use postage::message::Content;
/// use serde_json::json;
///
/// let mut content = Content::from(json!({"parameters": {"a": 2}}).as_object().unwrap().clone());
/// assert_eq!(content.parameters(), Some(&json!({"a": 2})));
/// content.insert("extra".into(), json!(true));
/// assert_eq!(content.len(), 2);
/// ```
#[derive(Clone, Default)]
pub struct Content(LazyObject);

/// The `parameters` of a content object: read straight from its text, or
/// written from parts.
#[derive(Deserialize, Serialize)]
struct ParametersOf<T> {
    #[serde(default = "Option::default")]
    parameters: Option<T>,
}

impl Content {
    /// The `parameters` of a command, if any.
    pub fn parameters(&self) -> Option<&Value> {
        self.get("parameters")
    }

    /// The `parameters` of a command decoded into `T` (a missing
    /// `parameters` key reads as `null`).
    pub fn parameters_as<T: DeserializeOwned>(&self) -> Result<T, DecodeError> {
        if let Some(raw) = self.0.unparsed()
            && let Ok(of) = serde_json::from_str::<ParametersOf<T>>(raw.get())
        {
            if let Some(parameters) = of.parameters {
                return Ok(parameters);
            }
        } else if let Some(value) = self.parameters() {
            // Parsed already, or not readable from the text as `T` (a
            // mismatch, a duplicate key): the map decides, and words the
            // error.
            return T::deserialize(value).map_err(|e| DecodeError::Parameters(e.to_string()));
        }
        T::deserialize(&Value::Null).map_err(|e| DecodeError::Parameters(e.to_string()))
    }

    /// The content as received, while it was not read as a map.
    pub(crate) fn unparsed(&self) -> Option<&RawValue> {
        self.0.unparsed()
    }

    /// Consumes the content, giving the map.
    pub fn into_inner(self) -> Map<String, Value> {
        self.0.into_map()
    }
}

impl Deref for Content {
    type Target = Map<String, Value>;
    fn deref(&self) -> &Self::Target {
        self.0.map()
    }
}

impl DerefMut for Content {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.0.map_mut()
    }
}

impl From<Map<String, Value>> for Content {
    fn from(map: Map<String, Value>) -> Self {
        Content(LazyObject::from_map(map))
    }
}

impl PartialEq for Content {
    fn eq(&self, other: &Self) -> bool {
        self.0.map() == other.0.map()
    }
}

impl std::fmt::Debug for Content {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Content").field(self.0.map()).finish()
    }
}

impl Serialize for Content {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Content {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut content = LazyObject::deserialize(d, "content")?;
        // The text is valid JSON, but the parser accepts in text it skips
        // what it refuses in text it reads into a map. Where the text could
        // hold such a thing, it is read into a map at once, so that a
        // message whose content cannot be read is refused here, as it
        // always was, and never reaches a handler with its content empty.
        if let Some(raw) = &content.raw
            && may_not_parse(raw.get())
        {
            let map: Map<String, Value> = serde_json::from_str(raw.get())
                .map_err(|e| serde::de::Error::custom(format!("content: {e}")))?;
            content.map = OnceLock::from(map);
        }
        Ok(Content(content))
    }
}

/// Could this valid JSON text hold what the parser skips but does not
/// read into a map: nesting past its recursion limit (128), a `\u` escape
/// in the surrogate range (a lone surrogate), or a number out of range (an
/// exponent, or more than 300 digits in a row)? False only when none can
/// be there; some texts that are fine say true and are parsed at once (a
/// digit before an `e` inside a string, as in Python's `\u00e9`, or a
/// `\ud` escape, as in the surrogate pairs of an emoji).
fn may_not_parse(json: &str) -> bool {
    /// Bytes looked at per step: fixed-size lanes the compiler turns into
    /// vector instructions.
    const LANES: usize = 16;
    let bytes = json.as_bytes();
    // Each byte with the two after it (the last two bytes, `}` and the one
    // before it, cannot start anything that matters).
    let lane = |a: u8, b: u8, c: u8| -> (u8, bool) {
        let bracket = u8::from(a == b'{' || a == b'[');
        let exponent = a.is_ascii_digit() & (b | 0x20 == b'e');
        let surrogate = (a == b'\\') & (b == b'u') & (c | 0x20 == b'd');
        (bracket, exponent | surrogate)
    };
    let ends = bytes.len().saturating_sub(2);
    let (mut brackets, mut suspect) = (0usize, false);
    let mut at = 0;
    while at + LANES <= ends {
        let window = |offset: usize| {
            bytes
                .get(at + offset..)
                .and_then(<[u8]>::first_chunk::<LANES>)
        };
        let (Some(a), Some(b), Some(c)) = (window(0), window(1), window(2)) else {
            break;
        };
        let (mut count, mut flag) = (0u8, false);
        for i in 0..LANES {
            let (bracket, odd) = lane(a[i], b[i], c[i]);
            count += bracket;
            flag |= odd;
        }
        brackets += usize::from(count);
        suspect |= flag;
        at += LANES;
    }
    for i in at..ends {
        let (bracket, odd) = lane(bytes[i], bytes[i + 1], bytes[i + 2]);
        brackets += usize::from(bracket);
        suspect |= odd;
    }
    let long_number = || {
        bytes.len() > 300
            && bytes
                .split(|b| !b.is_ascii_digit())
                .any(|digits| digits.len() > 300)
    };
    brackets >= 128 || suspect || long_number()
}

/// A message's `fingerprint` field: the sender's fingerprint in map form.
///
/// It reads like a `Map<String, Value>` (through `Deref`) and is built from
/// one with `.into()` (to change it, assign a new one). A decoded message
/// keeps the field as the JSON text it arrived as and parses it into a map
/// the first time it is read, so that a processor that never looks at the
/// sender does not pay for it; re-encoding an unread field writes that text
/// back unchanged.
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
pub struct WireFingerprint(LazyObject);

impl WireFingerprint {
    /// Consumes the field, giving the map.
    pub fn into_inner(self) -> Map<String, Value> {
        self.0.into_map()
    }
}

impl Deref for WireFingerprint {
    type Target = Map<String, Value>;
    fn deref(&self) -> &Self::Target {
        self.0.map()
    }
}

impl From<Map<String, Value>> for WireFingerprint {
    fn from(map: Map<String, Value>) -> Self {
        WireFingerprint(LazyObject::from_map(map))
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
        WireFingerprint(LazyObject {
            // A map of strings always serializes; on the impossible error
            // the map is written instead.
            raw: serde_json::value::to_raw_value(&map).ok(),
            map: OnceLock::from(map),
        })
    }
}

impl PartialEq for WireFingerprint {
    fn eq(&self, other: &Self) -> bool {
        self.0.map() == other.0.map()
    }
}

impl std::fmt::Debug for WireFingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.map().fmt(f)
    }
}

impl Serialize for WireFingerprint {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for WireFingerprint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        LazyObject::deserialize(d, "fingerprint").map(WireFingerprint)
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
        // Read straight from the received text when the content was not
        // parsed yet (a duplicate key there falls back to the map: last wins).
        let fields = self
            .content
            .unparsed()
            .and_then(|raw| serde_json::from_str::<ResultFields>(raw.get()).ok())
            .unwrap_or_else(|| ResultFields {
                kind: self.content.get("type").cloned(),
                value: self.content.get("value").cloned(),
                message: self.content.get("message").cloned(),
            });
        let text = |field: Option<Value>| match field {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s,
            Some(other) => other.to_string(),
        };
        match fields.kind.as_ref().and_then(Value::as_str) {
            Some("success") => Ok(Outcome::Success {
                value: fields.value.unwrap_or(Value::Null),
                message: text(fields.message),
            }),
            Some("error") => Ok(Outcome::Error {
                message: text(fields.message),
            }),
            Some("exception") => Ok(Outcome::Exception {
                name: text(fields.value),
                message: text(fields.message),
            }),
            other => Err(DecodeError::NotAResult(format!(
                "result content type is {other:?}, expected success, error or exception"
            ))),
        }
    }
}

/// The keys of a result's content.
#[derive(Deserialize)]
struct ResultFields {
    #[serde(rename = "type", default)]
    kind: Option<Value>,
    #[serde(default)]
    value: Option<Value>,
    #[serde(default)]
    message: Option<Value>,
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

/// The result message saying this outcome.
///
/// ```
/// use postage::message::{Message, MessageResultError, Outcome};
///
/// let message = Message::from(Outcome::Error { message: "no".into() });
/// assert_eq!(message, MessageResultError::new("no").into());
/// assert_eq!(message.outcome().unwrap(), Outcome::Error { message: "no".into() });
/// ```
impl From<Outcome> for Message {
    fn from(outcome: Outcome) -> Message {
        match outcome {
            Outcome::Success { value, message } => {
                MessageResult::with_message(value, message).into()
            }
            Outcome::Error { message } => MessageResultError::new(message).into(),
            Outcome::Exception { name, message } => {
                MessageResultException::new(name, message).into()
            }
        }
    }
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
    Content::from(map)
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
    Message::new("result", "none", Category::Message, Content::from(map))
}

/// A command or a result borrowed from its parts, for an [`Encoder`] to
/// write without a [`Message`] being built and dropped for it: what
/// [`Producer::command`](crate::Producer::command),
/// [`Producer::rpc`](crate::Producer::rpc) and the [`Reply`](crate::Reply)
/// methods send.
///
/// [`Encoder`]: crate::Encoder
///
/// ```
/// use postage::message::{Message, MessageParts, MessageResult, Outcome};
///
/// let outcome = Outcome::Success { value: 5.into(), message: String::new() };
/// let message: Message = MessageResult::new(5).into();
/// assert_eq!(MessageParts::result(&outcome).to_message(), message);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MessageParts<'a> {
    /// The message type: `command` or `result`.
    pub kind: &'a str,
    /// The command, or `none` for a result.
    pub name: &'a str,
    /// Fire-and-forget or RPC.
    pub category: Category,
    /// The content.
    pub content: ContentParts<'a>,
}

/// The content of [`MessageParts`].
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum ContentParts<'a> {
    /// A command's `{"parameters": ...}`.
    Parameters(&'a Value),
    // Not called `Result`: a public item of that name makes rustc spell
    // out `std::result::Result` in its messages.
    /// A result's `{"type": ..., "value": ..., "message": ...}`, as
    /// [`Message::outcome`] reads it.
    Answer(&'a Outcome),
}

impl<'a> MessageParts<'a> {
    /// A command `name` with these parameters.
    pub fn command(name: &'a str, category: Category, parameters: &'a Value) -> Self {
        MessageParts {
            kind: "command",
            name,
            category,
            content: ContentParts::Parameters(parameters),
        }
    }

    /// The result saying `outcome`, as [`MessageResult`],
    /// [`MessageResultError`] and [`MessageResultException`] build it.
    pub fn result(outcome: &'a Outcome) -> Self {
        MessageParts {
            kind: "result",
            name: "none",
            category: Category::Message,
            content: ContentParts::Answer(outcome),
        }
    }

    /// The message these parts make.
    pub fn to_message(&self) -> Message {
        let content = match self.content {
            ContentParts::Parameters(value) => parameters(value.clone()),
            ContentParts::Answer(outcome) => Message::from(outcome.clone()).content,
        };
        Message::new(self.kind, self.name, self.category, content)
    }
}

/// Writes the content as the equivalent map would be written (keys sorted).
impl Serialize for ContentParts<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match *self {
            ContentParts::Parameters(parameters) => ParametersOf {
                parameters: Some(parameters),
            }
            .serialize(serializer),
            ContentParts::Answer(outcome) => match outcome {
                Outcome::Success { value, message } => {
                    AnswerView::new("success", value, message).serialize(serializer)
                }
                Outcome::Error { message } => {
                    AnswerView::new("error", &Value::Null, message).serialize(serializer)
                }
                Outcome::Exception { name, message } => {
                    AnswerView::new("exception", name, message).serialize(serializer)
                }
            },
        }
    }
}

/// A result's content, its keys in the order of the equivalent map
/// (sorted).
#[derive(Serialize)]
struct AnswerView<'a, V> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    value: &'a V,
}

impl<'a, V> AnswerView<'a, V> {
    fn new(kind: &'a str, value: &'a V, message: &'a str) -> Self {
        AnswerView {
            message,
            kind,
            value,
        }
    }
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
            Content::from(content),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::{Encoder, JsonEncoder};
    use serde_json::json;

    fn decoded(content: &str) -> Message {
        let body = format!(
            r#"{{"type":"command","name":"echo","category":"message","content":{content}}}"#
        );
        JsonEncoder.decode(body.as_bytes()).unwrap()
    }

    #[test]
    fn received_content_is_read_from_its_text_until_changed() {
        let text = r#"{"parameters": {"a": 2, "b": [1, "x\"}"]}, "z": null}"#;
        let mut message = decoded(text);
        #[derive(Deserialize, PartialEq, Debug)]
        struct P {
            a: u8,
            b: (u8, String),
        }
        let p: P = message.content.parameters_as().unwrap();
        assert_eq!(
            p,
            P {
                a: 2,
                b: (1, "x\"}".into())
            }
        );
        assert!(message.content.unparsed().is_some());
        // Unchanged, the content goes out as it came, spacing included.
        let body = String::from_utf8(JsonEncoder.encode(&message).unwrap()).unwrap();
        assert!(body.contains(text), "{body}");
        // Read as a map: the same answers, and still written as received.
        assert_eq!(
            message.content.parameters(),
            Some(&json!({"a": 2, "b": [1, "x\"}"]}))
        );
        assert!(message.content.unparsed().is_none());
        assert_eq!(message.content.parameters_as::<P>().unwrap(), p);
        let body = String::from_utf8(JsonEncoder.encode(&message).unwrap()).unwrap();
        assert!(body.contains(text), "{body}");
        // Changed: the map is written.
        message.content.insert("c".into(), json!(3));
        let body = JsonEncoder.encode(&message).unwrap();
        let again = JsonEncoder.decode(&body).unwrap();
        assert_eq!(again.content["c"], 3);
        assert_eq!(again.content["z"], Value::Null);
        assert_eq!(again, message);
    }

    #[test]
    fn parameters_missing_or_null_read_as_null_either_way() {
        for text in [r#"{}"#, r#"{"parameters": null}"#] {
            let message = decoded(text);
            assert_eq!(message.content.parameters_as::<Option<u8>>().unwrap(), None);
            assert_eq!(message.content.parameters_as::<()>().unwrap(), ());
            assert!(message.content.parameters_as::<u8>().is_err());
            let parsed = Content::from(message.content.clone().into_inner());
            assert_eq!(parsed.parameters_as::<Option<u8>>().unwrap(), None);
            assert!(parsed.parameters_as::<u8>().is_err());
        }
        // A mismatch is worded as from the map (no position in the text).
        let message = decoded(r#"{"parameters": "text"}"#);
        assert_eq!(
            message.content.parameters_as::<u8>(),
            Err(DecodeError::Parameters(
                "invalid type: string \"text\", expected u8".into()
            ))
        );
        // A duplicate key: the last wins, as in the map (and in Python).
        let message = decoded(r#"{"parameters": 1, "parameters": 2}"#);
        assert_eq!(message.content.parameters_as::<u8>(), Ok(2));
    }

    #[test]
    fn content_the_parser_cannot_read_is_refused_at_decoding() {
        let nested = |depth: usize| format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
        let long = "9".repeat(400);
        // Each of these is valid JSON the parser skips without complaint
        // but refuses to read into a map: the message must fail to decode,
        // as when its content was read into a map at once.
        let refused = [
            format!(r#"{{"p":{}}}"#, nested(200)),
            r#"{"p": 1e400}"#.to_owned(),
            r#"{"p": -2.5E+999}"#.to_owned(),
            format!(r#"{{"p": {long}}}"#),
            r#"{"p": "\ud800"}"#.to_owned(),
            r#"{"p": "x\uDC00y"}"#.to_owned(),
        ];
        for content in &refused {
            let body = format!(
                r#"{{"type":"command","name":"echo","category":"message","content":{content}}}"#
            );
            let whole = serde_json::from_str::<Value>(&body);
            assert!(whole.is_err(), "{content}: the parser reads it");
            assert!(
                matches!(
                    JsonEncoder.decode(body.as_bytes()),
                    Err(DecodeError::Malformed(_))
                ),
                "{content}: decoded"
            );
        }
        // Look-alikes that are fine are read, from the text or the map.
        let fine = [
            format!(r#"{{"p":{}}}"#, nested(100)),
            r#"{"p": 1e300, "q": "1e400", "r": "\u00e9\ud83d\ude00"}"#.to_owned(),
            format!(r#"{{"p": "{long}", "q": 12345678901234567890123}}"#),
            format!(r#"{{"p": "{}"}}"#, "[{".repeat(200)),
        ];
        for content in &fine {
            let message = decoded(content);
            let expected = serde_json::from_str::<Map<String, Value>>(content).unwrap();
            assert_eq!(*message.content, expected, "{content}");
        }
        assert!(!may_not_parse(
            r#"{"parameters": {"text": "quick brown fox", "seq": 7}}"#
        ));
        assert!(!may_not_parse(r#"{"text": "a\"b\\c\n\u00f1"}"#));
        // Found at every position, in the vector steps and after them.
        for pad in 0..40 {
            let pad = " ".repeat(pad);
            for odd in ["1e5", "\"\\udc00\"", "2E-3"] {
                let text = format!(r#"{{"p":[{pad}{odd}, 1, 2, 3, 4, 5, 6, 7, 8]}}"#);
                assert!(may_not_parse(&text), "{text}");
                let short = format!(r#"{{"p":{pad}{odd}}}"#);
                assert!(may_not_parse(&short), "{short}");
            }
            assert!(!may_not_parse(&format!(
                r#"{{"p":[{pad}15, 1, 2, 3, 4, 5, 6, 7, 8]}}"#
            )));
        }
        // A false alarm: Python's escape of é looks like an exponent.
        assert!(may_not_parse(r#"{"text": "caf\u00e9"}"#));
    }

    #[test]
    fn result_outcome_is_read_from_text_or_map_alike() {
        let texts = [
            r#"{"type": "success", "value": {"n": 5}, "message": "ok"}"#,
            r#"{"type": "error", "value": null, "message": "bad"}"#,
            r#"{"type": "exception", "value": "KeyError", "message": 7}"#,
            r#"{"type": "exception", "value": "A", "value": "B", "message": ""}"#,
            r#"{"type": 3}"#,
        ];
        for text in texts {
            let body = format!(
                r#"{{"type":"result","name":"none","category":"message","content":{text}}}"#
            );
            let lazy = JsonEncoder.decode(body.as_bytes()).unwrap();
            let parsed = lazy.clone();
            parsed.content.len();
            assert!(parsed.content.unparsed().is_none());
            assert_eq!(lazy.outcome(), parsed.outcome(), "{text}");
        }
        let duplicate = format!(
            r#"{{"type":"result","name":"none","category":"message","content":{}}}"#,
            texts[3]
        );
        assert_eq!(
            JsonEncoder
                .decode(duplicate.as_bytes())
                .unwrap()
                .outcome()
                .unwrap(),
            Outcome::Exception {
                name: "B".into(),
                message: String::new()
            }
        );
    }

    #[test]
    fn parts_encode_as_the_message_they_make() {
        let fingerprint = WireFingerprint::from(&Fingerprint::new("parts", "test"));
        let parameters = json!({"text": "h\u{e9}", "seq": 7});
        let outcomes = [
            Outcome::Success {
                value: parameters.clone(),
                message: String::new(),
            },
            Outcome::Error {
                message: "it failed".into(),
            },
            Outcome::Exception {
                name: "KeyError".into(),
                message: "missing".into(),
            },
        ];
        let all = [
            MessageParts::command("sum", Category::Rpc, &parameters),
            MessageParts::result(&outcomes[0]),
            MessageParts::result(&outcomes[1]),
            MessageParts::result(&outcomes[2]),
        ];
        let built: [Message; 4] = [
            RpcCommand::new("sum", parameters.clone()).into(),
            MessageResult::new(parameters.clone()).into(),
            MessageResultError::new("it failed").into(),
            MessageResultException::new("KeyError", "missing").into(),
        ];
        #[derive(Debug)]
        struct Plain;
        impl Encoder for Plain {
            fn content_type(&self) -> &str {
                "application/json"
            }
            fn encode(&self, message: &Message) -> Result<Vec<u8>, crate::EncodeError> {
                JsonEncoder.encode(message)
            }
            fn decode(&self, body: &[u8]) -> Result<Message, DecodeError> {
                JsonEncoder.decode(body)
            }
        }
        for (parts, message) in all.iter().zip(built) {
            assert_eq!(parts.to_message(), message);
            let expected = JsonEncoder
                .encode_with_fingerprint(message, &fingerprint)
                .unwrap();
            assert_eq!(
                JsonEncoder.encode_parts(parts, &fingerprint).unwrap(),
                expected
            );
            assert_eq!(Plain.encode_parts(parts, &fingerprint).unwrap(), expected);
        }
    }
}

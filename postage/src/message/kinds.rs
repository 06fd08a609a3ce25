//! The kinds of message, built as Python Postage builds them:
//! [`MessageCommand`], [`RpcCommand`], [`MessageStatus`], the results, and
//! [`GenericMessage`]; [`IntoMessage`] for anything that builds one.

use std::ops::Deref;

use serde_json::{Map, Value};

use super::{Category, Content, Message};

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

pub(super) fn parameters(parameters: Value) -> Content {
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

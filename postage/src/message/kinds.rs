//! The kinds of message, built as Python Postage builds them:
//! [`MessageCommand`], [`RpcCommand`], [`MessageStatus`], the results, and
//! [`GenericMessage`]; [`IntoMessage`] for anything that builds one.

use std::marker::PhantomData;
use std::ops::Deref;

use serde::Serialize;
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

message_kind!(
    /// A fire-and-forget command: `{"parameters": ...}`.
    ///
    /// ```
    /// use postage::message::{Message, MessageCommand};
    /// use serde::Serialize;
    ///
    /// let m: Message = MessageCommand::new("echo", "A test message").into();
    /// assert_eq!(m.content.parameters(), Some(&"A test message".into()));
    ///
    /// #[derive(Serialize)]
    /// struct Order { id: u64, item: &'static str }
    /// let m: Message = MessageCommand::new("create", Order { id: 7, item: "tea" }).into();
    /// assert_eq!(m.content.parameters(), Some(&serde_json::json!({"id": 7, "item": "tea"})));
    /// ```
    MessageCommand
);

impl MessageCommand {
    /// A command `name` with these parameters: any `Serialize` value (a
    /// struct of yours, a string, `json!(...)`; Python sends `{}` when
    /// there are none). A value whose `Serialize` fails makes the send
    /// fail, saying why.
    pub fn new(name: impl Into<String>, parameters: impl Serialize) -> Self {
        MessageCommand(Message::new(
            "command",
            name,
            Category::Message,
            Content::with_parameters(&parameters),
        ))
    }
}

/// An RPC command: like [`MessageCommand`] with category `rpc`, and the
/// type of its success value, `R`.
///
/// `R` is `Value` unless said: a `build_rpc_*` method of
/// [`#[producer]`](crate::macros) that returns `RpcCommand<OrderCreated>`
/// gets a sender whose call gives an `OrderCreated` (error and exception
/// results are [`Error::RpcError`](crate::Error::RpcError) and
/// [`Error::RpcException`](crate::Error::RpcException)); one that returns
/// `RpcCommand` gets the reply message.
///
/// ```
/// use postage::message::{Message, RpcCommand};
///
/// #[derive(serde::Serialize)]
/// struct Sum { a: i64, b: i64 }
/// let untyped: Message = RpcCommand::new("sum", Sum { a: 2, b: 3 }).into();
/// let typed: RpcCommand<i64> = RpcCommand::new("sum", Sum { a: 2, b: 3 });
/// assert_eq!(typed.untyped().into_message(), untyped);
/// # use postage::IntoMessage;
/// ```
pub struct RpcCommand<R = Value> {
    message: Message,
    reply: PhantomData<fn() -> R>,
}

impl<R> RpcCommand<R> {
    /// An RPC command `name` with these parameters (any `Serialize`
    /// value, as [`MessageCommand::new`]).
    pub fn new(name: impl Into<String>, parameters: impl Serialize) -> Self {
        RpcCommand {
            message: Message::new(
                "command",
                name,
                Category::Rpc,
                Content::with_parameters(&parameters),
            ),
            reply: PhantomData,
        }
    }

    /// The same command, its reply not typed.
    pub fn untyped(self) -> RpcCommand {
        RpcCommand {
            message: self.message,
            reply: PhantomData,
        }
    }
}

impl<R> std::fmt::Debug for RpcCommand<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("RpcCommand").field(&self.message).finish()
    }
}

impl<R> Clone for RpcCommand<R> {
    fn clone(&self) -> Self {
        RpcCommand {
            message: self.message.clone(),
            reply: PhantomData,
        }
    }
}

impl<R> PartialEq for RpcCommand<R> {
    fn eq(&self, other: &Self) -> bool {
        self.message == other.message
    }
}

impl<R> Deref for RpcCommand<R> {
    type Target = Message;
    fn deref(&self) -> &Message {
        &self.message
    }
}

impl From<RpcCommand> for Message {
    fn from(command: RpcCommand) -> Message {
        command.message
    }
}

impl IntoMessage for RpcCommand {
    fn into_message(self) -> Message {
        self.message
    }
}

message_kind!(
    /// A status broadcast: the status is the message's name; the content
    /// is `{}`, as Python Postage sends it, or the parameters it carries.
    ///
    /// ```
    /// use postage::message::{Message, MessageStatus};
    ///
    /// let online: Message = MessageStatus::new("online").into();
    /// assert!(online.content.is_empty());
    /// let created: Message =
    ///     MessageStatus::with_parameters("order_created", serde_json::json!({"id": 7})).into();
    /// assert_eq!(created.content.parameters(), Some(&serde_json::json!({"id": 7})));
    /// ```
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

    /// A status message carrying parameters (any `Serialize` value, under
    /// `parameters` as a command's: handlers read them with `Params<T>`).
    pub fn with_parameters(status: impl Into<String>, parameters: impl Serialize) -> Self {
        MessageStatus(Message::new(
            "status",
            status,
            Category::Message,
            Content::with_parameters(&parameters),
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
    MessageStatus,
    MessageResult,
    MessageResultError,
    MessageResultException,
    GenericMessage
);

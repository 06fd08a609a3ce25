//! Handler tables: [`Handler`] entries, what handlers return
//! ([`HandlerResult`], [`HandlerError`], [`IntoHandlerResult`]), and the
//! [`Handlers`] trait `#[processor]` implements.

use std::fmt;
use std::sync::Arc;

use serde_json::Value;

use super::{Context, OnError, Reply};
use crate::BoxFuture;
use crate::error::Error;
use crate::message::{Category, Content, Message};

/// What a handler returns.
pub type HandlerResult = Result<(), HandlerError>;

/// The future a handler entry produces.
pub type HandlerFuture = BoxFuture<'static, HandlerResult>;

/// A handler's failure: a name (like a Python exception class) and a text.
/// An RPC caller receives it as an exception result. A failure is
/// transient unless made [permanent](HandlerError::permanent): the
/// processor's [failure policy](OnError) may retry a transient one, and
/// parks a permanent one at once.
///
/// A handler that returns `Result<(), HandlerError>` keeps its error's name
/// and permanence:
///
/// ```
/// use postage::processor::HandlerError;
///
/// fn check(width: u32) -> Result<(), HandlerError> {
///     if width == 0 {
///         // Retrying cannot help: park it for an operator.
///         return Err(HandlerError::permanent("InvalidSize", "width 0"));
///     }
///     Ok(())
/// }
/// assert!(check(0).unwrap_err().is_permanent());
/// ```
#[derive(Debug, Clone)]
pub struct HandlerError {
    /// A short name, e.g. the error type or `Panic`.
    pub name: String,
    /// What went wrong.
    pub message: String,
    permanent: bool,
    /// The handler (its index in the table) that failed; `None` for a
    /// refusal by middleware.
    pub(super) handler: Option<usize>,
}

impl PartialEq for HandlerError {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && self.message == other.message
            && self.permanent == other.permanent
    }
}

impl Eq for HandlerError {}

impl HandlerError {
    /// A transient failure called `name` saying `message`.
    pub fn new(name: impl Into<String>, message: impl Into<String>) -> Self {
        HandlerError {
            name: name.into(),
            message: message.into(),
            permanent: false,
            handler: None,
        }
    }

    /// A permanent failure: trying again cannot help (bad input, say), so
    /// a policy that retries parks the message at once.
    pub fn permanent(name: impl Into<String>, message: impl Into<String>) -> Self {
        HandlerError {
            permanent: true,
            ..HandlerError::new(name, message)
        }
    }

    /// Was it marked permanent?
    pub fn is_permanent(&self) -> bool {
        self.permanent
    }

    pub(super) fn panic(payload: &(dyn std::any::Any + Send)) -> Self {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "handler panicked".into());
        HandlerError::new("Panic", message)
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.message)
    }
}

impl std::error::Error for HandlerError {}

impl From<Error> for HandlerError {
    fn from(error: Error) -> Self {
        HandlerError::new(short_type_name::<Error>(), error.report().to_string())
    }
}

/// An error out of a stack of middleware layers: a
/// handler's failure as it was, a timeout layer's as `TimeoutError`, any
/// other as `MiddlewareError` with its text.
impl From<tower::BoxError> for HandlerError {
    fn from(error: tower::BoxError) -> Self {
        super::stack::handler_error(error, None)
    }
}

/// The last segment of a type's path, generics dropped: `postage::Error`
/// gives `Error`.
pub(crate) fn short_type_name<T: ?Sized>() -> String {
    let full = std::any::type_name::<T>();
    let base = full.split('<').next().unwrap_or(full);
    base.rsplit("::").next().unwrap_or(base).to_owned()
}

/// Turns what a handler method returns into a [`HandlerResult`]: `()` is
/// success, `Result<(), E>` fails with `E`'s type name and text, or, when
/// `E` is a [`HandlerError`], with that error as it is.
#[diagnostic::on_unimplemented(
    message = "a Postage handler cannot return `{Self}`",
    label = "handlers return `()` or `Result<(), E>` with `E: Display`",
    note = "RPC handlers may also return a value: see `postage::IntoReply`"
)]
pub trait IntoHandlerResult {
    /// Converts.
    fn into_handler_result(self) -> HandlerResult;
}

impl IntoHandlerResult for () {
    fn into_handler_result(self) -> HandlerResult {
        Ok(())
    }
}

impl<E: fmt::Display + 'static> IntoHandlerResult for Result<(), E> {
    fn into_handler_result(self) -> HandlerResult {
        self.map_err(
            |e| match (&e as &dyn std::any::Any).downcast_ref::<HandlerError>() {
                Some(error) => error.clone(),
                None => HandlerError::new(short_type_name::<E>(), e.to_string()),
            },
        )
    }
}

/// The function a handler entry calls.
pub enum HandlerFn<P> {
    /// Gets the message's content (Python's `MessageHandler`).
    Message(fn(Arc<P>, Content) -> HandlerFuture),
    /// Gets the whole message, fingerprint included
    /// (`MessageHandlerFullBody`).
    FullBody(fn(Arc<P>, Message) -> HandlerFuture),
    /// Gets the content and the reply to send (`RpcHandler`).
    Rpc(fn(Arc<P>, Content, Reply) -> HandlerFuture),
    /// Gets a [`Context`]: processor, message, reply and control together
    /// (Python's class-based `Handler`).
    Context(fn(Context<P>) -> HandlerFuture),
}

impl<P> fmt::Debug for HandlerFn<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HandlerFn::Message(_) => "Message",
            HandlerFn::FullBody(_) => "FullBody",
            HandlerFn::Rpc(_) => "Rpc",
            HandlerFn::Context(_) => "Context",
        })
    }
}

/// One entry of a dispatch table: which messages, and what to call.
#[derive(Debug)]
pub struct Handler<P> {
    /// `message` or `rpc`.
    pub category: Category,
    /// The message type, e.g. `command`.
    pub kind: &'static str,
    /// The message name, e.g. `echo`.
    pub name: &'static str,
    /// What to call.
    pub call: HandlerFn<P>,
    /// The method's name, for logs.
    pub label: &'static str,
    /// What becomes of a message when this handler fails (`None`: the
    /// processor's policy).
    pub on_error: Option<OnError>,
    /// The type its parameters are decoded into (a `Params<T>` argument's
    /// `T`), for documents: `None` when the handler takes the content as
    /// it comes.
    pub params: Option<ParamType>,
}

/// The Rust type a handler decodes a command's parameters into, for
/// documents (`info` answers, `postage::docs`): its name as written,
/// and its JSON Schema when it has one (types implementing
/// `schemars::JsonSchema`, with the feature `schemars`).
#[derive(Clone, Copy)]
pub struct ParamType {
    /// The type as written, e.g. `Operands` or `Vec<i64>`.
    pub name: &'static str,
    /// Makes its JSON Schema, or `None`.
    pub schema: fn() -> Option<Value>,
}

impl ParamType {
    /// A type known by its name alone.
    pub const fn new(name: &'static str) -> Self {
        ParamType {
            name,
            schema: no_schema,
        }
    }

    /// A type whose JSON Schema `schema` makes.
    pub const fn with_schema(name: &'static str, schema: fn() -> Option<Value>) -> Self {
        ParamType { name, schema }
    }

    /// Its JSON Schema, if it has one.
    pub fn schema(&self) -> Option<Value> {
        (self.schema)()
    }
}

fn no_schema() -> Option<Value> {
    None
}

impl fmt::Debug for ParamType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParamType")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<P> Handler<P> {
    /// A content handler for `message` category messages.
    pub const fn message(
        kind: &'static str,
        name: &'static str,
        f: fn(Arc<P>, Content) -> HandlerFuture,
    ) -> Self {
        Self::new(Category::Message, kind, name, HandlerFn::Message(f))
    }

    /// A full-body handler for `message` category messages.
    pub const fn full_body(
        kind: &'static str,
        name: &'static str,
        f: fn(Arc<P>, Message) -> HandlerFuture,
    ) -> Self {
        Self::new(Category::Message, kind, name, HandlerFn::FullBody(f))
    }

    /// An RPC handler for `rpc` category messages.
    pub const fn rpc(
        kind: &'static str,
        name: &'static str,
        f: fn(Arc<P>, Content, Reply) -> HandlerFuture,
    ) -> Self {
        Self::new(Category::Rpc, kind, name, HandlerFn::Rpc(f))
    }

    /// A context handler for either category.
    pub const fn context(
        category: Category,
        kind: &'static str,
        name: &'static str,
        f: fn(Context<P>) -> HandlerFuture,
    ) -> Self {
        Self::new(category, kind, name, HandlerFn::Context(f))
    }

    const fn new(
        category: Category,
        kind: &'static str,
        name: &'static str,
        call: HandlerFn<P>,
    ) -> Self {
        Handler {
            category,
            kind,
            name,
            call,
            label: "",
            on_error: None,
            params: None,
        }
    }

    /// Names the entry (the method name) for logs.
    #[must_use]
    pub const fn labeled(mut self, label: &'static str) -> Self {
        self.label = label;
        self
    }

    /// What becomes of a message when this handler fails, in place of the
    /// processor's policy (`message` category handlers only).
    #[must_use]
    pub const fn on_error(mut self, policy: OnError) -> Self {
        self.on_error = Some(policy);
        self
    }

    /// Says what type the entry decodes its parameters into (the
    /// `#[processor]` macro does, for `Params<T>` arguments).
    #[must_use]
    pub const fn with_params(mut self, params: ParamType) -> Self {
        self.params = Some(params);
        self
    }
}

/// A type whose methods handle messages: the dispatch table a
/// [`Processor`](crate::Processor) reads. `#[processor]` implements it.
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no Postage handlers",
    label = "not a processor",
    note = "put #[postage::processor] on an impl block of `{Self}` with #[handler(...)] methods, or implement `postage::Handlers` by hand"
)]
pub trait Handlers: Send + Sync + Sized + 'static {
    /// The table, in declaration order.
    fn handlers() -> &'static [Handler<Self>];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_named_after_their_type() {
        assert_eq!(short_type_name::<Error>(), "Error");
        assert_eq!(short_type_name::<Vec<u8>>(), "Vec");
        let failed: Result<(), std::num::ParseIntError> = "x".parse::<u8>().map(drop);
        let error = failed.into_handler_result().unwrap_err();
        assert_eq!(error.name, "ParseIntError");
        assert_eq!(
            error.to_string(),
            "ParseIntError: invalid digit found in string"
        );
        // A HandlerError returned as it is keeps its name and permanence.
        let permanent: Result<(), HandlerError> = Err(HandlerError::permanent("Invalid", "w=0"));
        let error = permanent.into_handler_result().unwrap_err();
        assert_eq!(
            (error.name.as_str(), error.is_permanent()),
            ("Invalid", true)
        );
        assert!(!HandlerError::new("A", "b").is_permanent());
        let payload: Box<dyn std::any::Any + Send> = Box::new("boom");
        assert_eq!(
            HandlerError::panic(&*payload),
            HandlerError::new("Panic", "boom")
        );
        let payload: Box<dyn std::any::Any + Send> = Box::new(7);
        assert_eq!(HandlerError::panic(&*payload).message, "handler panicked");
    }
}

//! Handler arguments read from a command's content: [`Params<T>`],
//! decoded with serde, or the [`Content`] as it came ([`FromContent`]).

use std::ops::{Deref, DerefMut};

use serde::de::DeserializeOwned;

use crate::message::{Content, ContentError};

/// A handler argument decoded from the command's `parameters` with serde.
///
/// ```
/// # use postage::prelude::*;
/// #[derive(serde::Deserialize)]
/// struct Sum { a: i64, b: i64 }
///
/// struct Math;
///
/// #[processor]
/// impl Math {
///     #[rpc_handler("command", "sum")]
///     async fn sum(&self, Params(sum): Params<Sum>) -> i64 {
///         sum.a + sum.b
///     }
/// }
/// ```
///
/// When the parameters do not fit `T`, the handler does not run: an RPC
/// caller gets an error result saying why, a message is logged and
/// acknowledged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Params<T>(pub T);

impl<T> Params<T> {
    /// The decoded value.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> Deref for Params<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> DerefMut for Params<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

/// What a `#[handler]` / `#[rpc_handler]` method may take as its content
/// argument: [`Content`] as it came, or [`Params<T>`] decoded.
#[diagnostic::on_unimplemented(
    message = "a Postage handler cannot take `{Self}` as its content argument",
    label = "expected `Content` or `Params<T>` with `T: serde::Deserialize`",
    note = "full-body handlers take `Message` (#[full_body_handler]); context handlers take `Context<Self>` (#[context_handler])"
)]
pub trait FromContent: Sized {
    /// Reads the argument from the content.
    fn from_content(content: Content) -> Result<Self, ContentError>;
}

impl FromContent for Content {
    fn from_content(content: Content) -> Result<Self, ContentError> {
        Ok(content)
    }
}

impl<T: DeserializeOwned> FromContent for Params<T> {
    fn from_content(content: Content) -> Result<Self, ContentError> {
        content.parameters_as().map(Params)
    }
}

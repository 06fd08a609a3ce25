//! How messages become bytes: the [`Encoder`] trait, the default
//! [`JsonEncoder`], and the errors of decoding a body ([`DecodeError`]) or
//! encoding a message ([`EncodeError`]).
//!
//! Errors of reading a decoded message's content (parameters that do not
//! fit, a message that is not a result) are
//! [`ContentError`](crate::message::ContentError)s of the message module.

mod encoder;
mod error;
mod json;

pub use encoder::Encoder;
pub use error::{DecodeError, EncodeError};
pub use json::JsonEncoder;
pub(crate) use json::encode_command;

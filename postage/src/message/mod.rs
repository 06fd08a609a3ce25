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
//!
//! | file | holds |
//! |---|---|
//! | `wire` | [`Message`], [`Category`], [`VERSION`] |
//! | `content` | [`Content`]: the payload, read from its text or as a map |
//! | `fingerprint` | [`WireFingerprint`]: the sender's field |
//! | `lazy` | the JSON object both keep as text until read |
//! | `outcome` | [`Outcome`] and [`Message::outcome`] |
//! | `kinds` | the constructors and [`IntoMessage`] |
//! | `parts` | [`MessageParts`]: a command or result borrowed from its parts |
//! | `error` | [`ContentError`]: reading a content as parameters or a result |

mod content;
mod error;
mod fingerprint;
mod kinds;
mod lazy;
mod outcome;
mod parts;
mod wire;

pub use content::Content;
pub use error::ContentError;
pub use fingerprint::WireFingerprint;
pub use kinds::{
    GenericMessage, IntoMessage, MessageCommand, MessageResult, MessageResultError,
    MessageResultException, MessageStatus, RpcCommand,
};
pub use outcome::Outcome;
pub use parts::{ContentParts, MessageParts};
pub use wire::{Category, Message, VERSION};

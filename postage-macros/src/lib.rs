//! Procedural macros for Postage: `#[producer]`, `#[processor]` and the
//! handler attributes. Use them through the `postage-amqp` crate (`use
//! postage::prelude::*;`): its module `postage::macros` documents every
//! macro, every argument and what each expands to.
//!
//! The macros write thin glue over `postage::__private` helpers: a typed
//! sender per `build_*` method, a `const` dispatch table of function
//! pointers per `#[processor]` impl block. Every error of one impl block
//! is reported at once, on the user's own tokens, and the impl block is
//! still emitted, so that other code keeps compiling against it.

mod common;
mod ctxt;
mod processor;
mod producer;

use proc_macro::TokenStream;

/// Typed senders from `build_message_<name>` / `build_rpc_<name>` methods.
/// Arguments: `eks = [(EXCHANGE, "key"), ...]`, `crate = "path"`. See
/// `postage::macros` for the whole story.
#[proc_macro_attribute]
pub fn producer(args: TokenStream, item: TokenStream) -> TokenStream {
    producer::producer(args.into(), item.into()).into()
}

/// A dispatch table from `#[handler]`, `#[full_body_handler]`,
/// `#[rpc_handler]` and `#[context_handler]` methods. Argument:
/// `crate = "path"`. See `postage::macros` for the whole story.
#[proc_macro_attribute]
pub fn processor(args: TokenStream, item: TokenStream) -> TokenStream {
    processor::processor(args.into(), item.into()).into()
}

/// `#[handler("type", "name")]` (and `on_error = ...`): a `message`
/// handler taking `Content` or `Params<T>`. Only inside a `#[processor]`
/// impl block; see `postage::macros`.
#[proc_macro_attribute]
pub fn handler(_args: TokenStream, item: TokenStream) -> TokenStream {
    processor::standalone("handler", item.into()).into()
}

/// `#[full_body_handler("type", "name")]` (and `on_error = ...`): a
/// `message` handler taking the whole `Message`. Only inside a
/// `#[processor]` impl block; see `postage::macros`.
#[proc_macro_attribute]
pub fn full_body_handler(_args: TokenStream, item: TokenStream) -> TokenStream {
    processor::standalone("full_body_handler", item.into()).into()
}

/// `#[rpc_handler("type", "name")]`: an RPC handler that replies through a
/// `Reply` or returns its reply. Only inside a `#[processor]` impl block.
///
/// Which it is comes from the signature as written, by the last path
/// segment of a type: the reply form when the last argument's type is
/// `Reply` (`Reply`, `postage::Reply`); a `Result` handler when the return
/// type is `Result` (`Result<T, E>`, `std::result::Result<T, E>`,
/// `postage::Result<T>`); otherwise the returned value is the reply.
///
/// A type alias of `Result` is not read through: see "Type aliases of
/// `Result`" in `postage::macros`.
#[proc_macro_attribute]
pub fn rpc_handler(_args: TokenStream, item: TokenStream) -> TokenStream {
    processor::standalone("rpc_handler", item.into()).into()
}

/// `#[context_handler("message" | "rpc", "type", "name")]` (and, for
/// `"message"`, `on_error = ...`): a handler taking a `Context<Self>`.
/// Only inside a `#[processor]` impl block; see `postage::macros`.
#[proc_macro_attribute]
pub fn context_handler(_args: TokenStream, item: TokenStream) -> TokenStream {
    processor::standalone("context_handler", item.into()).into()
}

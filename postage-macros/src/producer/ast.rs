//! The model of a `#[producer]` impl block: its build methods, each read
//! as the sender to generate. Nothing is rejected here (see `check`).

use proc_macro2::Span;
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{FnArg, Generics, Ident, ImplItem, ImplItemFn, ItemImpl, Pat, Path, ReturnType, Type};

use crate::common::{tokens_text, type_text};

/// `message_<name>` or `rpc_<name>`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Message,
    Rpc,
}

impl Kind {
    pub(crate) fn prefix(self) -> &'static str {
        match self {
            Kind::Message => "message_",
            Kind::Rpc => "rpc_",
        }
    }
}

/// The impl block, read.
pub(crate) struct Producer<'a> {
    /// The spec type (`EchoProducer`).
    pub(crate) self_ty: &'a Type,
    /// `Trait` of `impl Trait for T`.
    pub(crate) trait_path: Option<&'a Path>,
    pub(crate) generics: &'a Generics,
    /// The spec type's last path segment, when it is a plain path: the
    /// API struct's name comes from it.
    pub(crate) ident: Option<Ident>,
    /// One per `build_message_*` / `build_rpc_*` method, in order.
    pub(crate) senders: Vec<Sender<'a>>,
}

/// A typed sender to generate from a build method.
pub(crate) struct Sender<'a> {
    pub(crate) kind: Kind,
    /// The command name in the method's name (`echo`).
    pub(crate) command: String,
    pub(crate) method: &'a ImplItemFn,
    pub(crate) params: Vec<Param<'a>>,
    /// Where the returned message is checked: the return type (the
    /// method's name when there is none).
    pub(crate) ret_span: Span,
    /// `T` of a build method written `-> RpcCommand<T>`: its sender's
    /// call gives a `T`.
    pub(crate) reply: Option<&'a Type>,
}

/// A parameter of a build method.
pub(crate) struct Param<'a> {
    /// The name the sender uses for it.
    pub(crate) ident: Ident,
    pub(crate) ty: &'a Type,
    /// Its name in the static API.
    pub(crate) api_name: String,
    /// Its type in the static API.
    pub(crate) api_ty: String,
}

/// The producer the expansion takes: checked, named, with the senders
/// that are fine.
pub(crate) struct Api<'a> {
    pub(crate) self_ty: &'a Type,
    pub(crate) ident: Ident,
    pub(crate) senders: Vec<&'a Sender<'a>>,
}

impl<'a> Producer<'a> {
    /// Reads `item`.
    pub(crate) fn from_item(item: &'a ItemImpl) -> Producer<'a> {
        let ident = match &*item.self_ty {
            Type::Path(path) if path.qself.is_none() => {
                path.path.segments.last().map(|s| s.ident.clone())
            }
            _ => None,
        };
        let senders = item
            .items
            .iter()
            .filter_map(|impl_item| match impl_item {
                ImplItem::Fn(method) => Sender::from_method(method),
                _ => None,
            })
            .collect();
        Producer {
            self_ty: &item.self_ty,
            trait_path: item.trait_.as_ref().map(|(_, path, _)| path),
            generics: &item.generics,
            ident,
            senders,
        }
    }
}

impl<'a> Sender<'a> {
    /// The sender of a build method; `None` for other methods.
    fn from_method(method: &'a ImplItemFn) -> Option<Sender<'a>> {
        let sig = &method.sig;
        let name = sig.ident.to_string();
        let (kind, command) = if let Some(command) = name.strip_prefix("build_message_") {
            (Kind::Message, command)
        } else if let Some(command) = name.strip_prefix("build_rpc_") {
            (Kind::Rpc, command)
        } else {
            return None;
        };
        let params = sig
            .inputs
            .iter()
            .enumerate()
            .filter_map(|(i, arg)| match arg {
                FnArg::Typed(arg) => Some(Param::new(i, arg)),
                FnArg::Receiver(_) => None,
            })
            .collect();
        let reply = match (&kind, &sig.output) {
            (Kind::Rpc, ReturnType::Type(_, ty)) => reply_type(ty),
            _ => None,
        };
        Some(Sender {
            kind,
            command: command.to_owned(),
            method,
            params,
            ret_span: match &sig.output {
                ReturnType::Type(_, ty) => ty.span(),
                ReturnType::Default => sig.ident.span(),
            },
            reply,
        })
    }

    /// The build method's name (`build_message_echo`).
    pub(crate) fn name(&self) -> String {
        self.method.sig.ident.to_string()
    }
}

impl<'a> Param<'a> {
    /// The `i`th input of a build method (counting the receiver).
    fn new(i: usize, arg: &'a syn::PatType) -> Param<'a> {
        let (ident, api_name) = match &*arg.pat {
            Pat::Ident(pat) if pat.subpat.is_none() => {
                (pat.ident.clone(), pat.ident.unraw().to_string())
            }
            other => (
                quote::format_ident!("__postage_arg{}", i),
                tokens_text(other),
            ),
        };
        Param {
            ident,
            ty: &arg.ty,
            api_name,
            api_ty: type_text(&arg.ty),
        }
    }
}

/// `T` of a return type written `RpcCommand<T>` (as written, by its last
/// path segment: an alias is not read through).
fn reply_type(ty: &Type) -> Option<&Type> {
    let Type::Path(path) = ty else {
        return None;
    };
    let last = path.path.segments.last()?;
    if last.ident != "RpcCommand" {
        return None;
    }
    let syn::PathArguments::AngleBracketed(arguments) = &last.arguments else {
        return None;
    };
    match arguments.args.iter().collect::<Vec<_>>().as_slice() {
        [syn::GenericArgument::Type(reply)] => Some(reply),
        _ => None,
    }
}

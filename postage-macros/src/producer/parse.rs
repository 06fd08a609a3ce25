//! Reads `#[producer(...)]` and its impl block into a [`Producer`] model,
//! collecting every error.

use proc_macro2::{Span, TokenStream};
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::spanned::Spanned;
use syn::{Expr, FnArg, Ident, ImplItem, ImplItemFn, ItemImpl, Pat, ReturnType, Token, Type};

use crate::common::{CratePath, parse_crate_arg, tokens_text, type_text};
use crate::ctxt::Ctxt;

mod kw {
    syn::custom_keyword!(eks);
}

/// The arguments of `#[producer(eks = [...], crate = "...")]`.
#[derive(Default)]
pub(crate) struct Args {
    /// The default (exchange, key) pairs, as written.
    pub(crate) eks: Vec<(Expr, Expr)>,
    /// The runtime crate's path.
    pub(crate) krate: CratePath,
}

/// Parses the attribute's arguments; errors go to `cx`.
pub(crate) fn parse_args(cx: &mut Ctxt, tokens: TokenStream) -> Args {
    let mut args = Args::default();
    let mut eks: Option<Expr> = None;
    let parser = |input: ParseStream<'_>| {
        while !input.is_empty() {
            let lookahead = input.lookahead1();
            if lookahead.peek(kw::eks) {
                let key: kw::eks = input.parse()?;
                if eks.is_some() {
                    return Err(syn::Error::new(key.span, "`eks` is given twice"));
                }
                input.parse::<Token![=]>()?;
                eks = Some(input.parse()?);
            } else if lookahead.peek(Token![crate]) {
                args.krate = parse_crate_arg(input)?;
            } else if input.peek(Ident::peek_any) {
                let ident = input.call(Ident::parse_any)?;
                return Err(syn::Error::new(
                    ident.span(),
                    format!(
                        "unknown argument `{ident}`: #[producer] takes `eks = [(EXCHANGE, \"key\"), ...]` and `crate = \"path\"`"
                    ),
                ));
            } else {
                return Err(lookahead.error());
            }
            if !input.is_empty() {
                input.parse::<Token![,]>()?;
            }
        }
        Ok(())
    };
    if let Err(error) = parser.parse2(tokens) {
        cx.syn_error(error);
    }
    if let Some(expr) = eks {
        args.eks = pairs(cx, expr);
    }
    args
}

/// Checks that `eks` is a list of pairs: `[(exchange, key), ...]`.
fn pairs(cx: &mut Ctxt, expr: Expr) -> Vec<(Expr, Expr)> {
    let Expr::Array(array) = expr else {
        cx.error_spanned_by(
            &expr,
            "`eks` takes a list of (exchange, key) pairs: `eks = [(ECHO, \"echo-rk\")]`",
        );
        return Vec::new();
    };
    let mut pairs = Vec::with_capacity(array.elems.len());
    for elem in array.elems {
        match elem {
            Expr::Tuple(tuple) if tuple.elems.len() == 2 => {
                let mut elems = tuple.elems.into_iter();
                if let (Some(exchange), Some(key)) = (elems.next(), elems.next()) {
                    pairs.push((exchange, key));
                }
            }
            other => cx.error_spanned_by(
                &other,
                "expected an (exchange, key) pair, e.g. `(ECHO, \"echo-rk\")`",
            ),
        }
    }
    pairs
}

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
    /// Its last path segment, for the API struct's name.
    pub(crate) ident: Ident,
    /// One per `build_message_*` / `build_rpc_*` method.
    pub(crate) senders: Vec<Sender<'a>>,
}

/// A typed sender to generate from a build method.
pub(crate) struct Sender<'a> {
    pub(crate) kind: Kind,
    /// The command name in the method's name (`echo`).
    pub(crate) command: String,
    pub(crate) method: &'a ImplItemFn,
    pub(crate) params: Vec<Param<'a>>,
    /// Where the returned message is checked: the return type.
    pub(crate) ret_span: Span,
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

/// Reads the impl block.
pub(crate) fn parse_impl<'a>(cx: &mut Ctxt, item: &'a ItemImpl) -> Option<Producer<'a>> {
    if let Some((_, path, _)) = &item.trait_ {
        cx.error_spanned_by(
            path,
            "#[producer] goes on an inherent impl block (`impl EchoProducer { ... }`), not a trait impl",
        );
        return None;
    }
    if !item.generics.params.is_empty() {
        cx.error_spanned_by(&item.generics, "a #[producer] type cannot be generic");
    }
    let ident = match &*item.self_ty {
        Type::Path(path) if path.qself.is_none() => {
            path.path.segments.last().map(|s| s.ident.clone())
        }
        _ => None,
    };
    let Some(ident) = ident else {
        cx.error_spanned_by(
            &item.self_ty,
            "#[producer] needs a named type (`impl EchoProducer`)",
        );
        return None;
    };
    let mut senders = Vec::new();
    for impl_item in &item.items {
        if let ImplItem::Fn(method) = impl_item
            && let Some(sender) = sender(cx, method)
        {
            senders.push(sender);
        }
    }
    Some(Producer {
        self_ty: &item.self_ty,
        ident,
        senders,
    })
}

/// A build method's sender, or `None` for other methods and bad ones.
fn sender<'a>(cx: &mut Ctxt, method: &'a ImplItemFn) -> Option<Sender<'a>> {
    let sig = &method.sig;
    let name = sig.ident.to_string();
    let (kind, command) = if let Some(command) = name.strip_prefix("build_message_") {
        (Kind::Message, command)
    } else if let Some(command) = name.strip_prefix("build_rpc_") {
        (Kind::Rpc, command)
    } else {
        return None;
    };
    let mut ok = true;
    if command.is_empty() {
        cx.error_spanned_by(
            &sig.ident,
            format!("`{name}` names no command: write `{name}<command>`"),
        );
        ok = false;
    }
    if let Some(asyncness) = &sig.asyncness {
        cx.error_spanned_by(
            asyncness,
            format!("`{name}` must not be async: a build method only builds the message"),
        );
        ok = false;
    }
    match sig.receiver() {
        Some(receiver)
            if receiver.reference.is_some()
                && receiver.mutability.is_none()
                && receiver.colon_token.is_none() => {}
        Some(receiver) => {
            cx.error_spanned_by(receiver, format!("`{name}` must take `&self`"));
            ok = false;
        }
        None => {
            cx.error_spanned_by(
                &sig.ident,
                format!("`{name}` must take `&self` as its first parameter"),
            );
            ok = false;
        }
    }
    let ret_span = match &sig.output {
        ReturnType::Type(_, ty) => ty.span(),
        ReturnType::Default => {
            cx.error_spanned_by(
                &sig.ident,
                format!("`{name}` must return a message, e.g. `-> MessageCommand`"),
            );
            return None;
        }
    };
    let mut params = Vec::new();
    for (i, arg) in sig.inputs.iter().enumerate() {
        let FnArg::Typed(arg) = arg else { continue };
        let (ident, api_name) = match &*arg.pat {
            Pat::Ident(pat) if pat.subpat.is_none() => {
                (pat.ident.clone(), pat.ident.unraw().to_string())
            }
            other => (
                quote::format_ident!("__postage_arg{}", i),
                tokens_text(other),
            ),
        };
        params.push(Param {
            ident,
            ty: &arg.ty,
            api_name,
            api_ty: type_text(&arg.ty),
        });
    }
    ok.then(|| Sender {
        kind,
        command: command.to_owned(),
        method,
        params,
        ret_span,
    })
}

//! Reads `#[processor]` and its handler attributes into a model,
//! stripping the attributes from the methods and collecting every error.

use std::collections::HashMap;

use proc_macro2::{Span, TokenStream};
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::spanned::Spanned;
use syn::{
    Attribute, FnArg, Ident, ImplItem, ImplItemFn, ItemImpl, LitStr, Meta, PatType, ReturnType,
    Token, Type,
};

use crate::common::{CratePath, parse_crate_arg};
use crate::ctxt::Ctxt;

/// The arguments of `#[processor(crate = "...")]`.
#[derive(Default)]
pub(crate) struct Args {
    pub(crate) krate: CratePath,
}

/// Parses the attribute's arguments; errors go to `cx`.
pub(crate) fn parse_args(cx: &mut Ctxt, tokens: TokenStream) -> Args {
    let mut args = Args::default();
    let parser = |input: ParseStream<'_>| {
        while !input.is_empty() {
            if input.peek(Token![crate]) {
                args.krate = parse_crate_arg(input)?;
            } else if input.peek(Ident::peek_any) {
                let ident = input.call(Ident::parse_any)?;
                return Err(syn::Error::new(
                    ident.span(),
                    format!(
                        "unknown argument `{ident}`: #[processor] takes only `crate = \"path\"`"
                    ),
                ));
            } else {
                return Err(input.error("expected `crate = \"path\"`"));
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
    args
}

/// Which handler attribute.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Form {
    /// `#[handler(type, name)]`
    Message,
    /// `#[full_body_handler(type, name)]`
    FullBody,
    /// `#[rpc_handler(type, name)]`
    Rpc,
    /// `#[context_handler(category, type, name)]`
    Context,
}

impl Form {
    fn of(attr: &Attribute) -> Option<Form> {
        let ident = attr.path().segments.last()?.ident.to_string();
        Some(match ident.as_str() {
            "handler" => Form::Message,
            "full_body_handler" => Form::FullBody,
            "rpc_handler" => Form::Rpc,
            "context_handler" => Form::Context,
            _ => return None,
        })
    }

    fn attribute(self) -> &'static str {
        match self {
            Form::Message => "#[handler]",
            Form::FullBody => "#[full_body_handler]",
            Form::Rpc => "#[rpc_handler]",
            Form::Context => "#[context_handler]",
        }
    }

    fn example(self) -> &'static str {
        match self {
            Form::Message => "#[handler(\"command\", \"echo\")]",
            Form::FullBody => "#[full_body_handler(\"command\", \"echo\")]",
            Form::Rpc => "#[rpc_handler(\"command\", \"echo\")]",
            Form::Context => "#[context_handler(\"message\", \"command\", \"echo\")]",
        }
    }
}

/// How the generated glue calls the method. Spans are the user's
/// argument types and return type, where failed checks are reported.
pub(crate) enum Shape {
    /// `(&self)` or `(&self, content: C)`, `C: FromContent`.
    Message { content: Option<Span> },
    /// `(&self, message: Message)`.
    FullBody { message: Span },
    /// `(&self, [content: C,] reply: Reply)`.
    RpcReply { content: Option<Span>, reply: Span },
    /// `(&self [, content: C]) -> T` (`T: Serialize`) or `-> Result<T, E>`.
    RpcValue { content: Option<Span>, result: bool },
    /// `([&self,] ctx: Context<Self>)`.
    Context { rpc: bool, ctx: Span },
}

/// One table entry.
pub(crate) struct Entry {
    pub(crate) shape: Shape,
    pub(crate) kind: LitStr,
    pub(crate) name: LitStr,
    pub(crate) method: Ident,
    pub(crate) has_self: bool,
    /// The return type, or the method's name when it returns `()`.
    pub(crate) ret: Span,
}

/// The impl block, read.
pub(crate) struct Processor {
    pub(crate) self_ty: Type,
    pub(crate) entries: Vec<Entry>,
}

/// Reads the impl block, removing the handler attributes from `item`.
pub(crate) fn parse_impl(cx: &mut Ctxt, item: &mut ItemImpl) -> Option<Processor> {
    let mut ok = true;
    if let Some((_, path, _)) = &item.trait_ {
        cx.error_spanned_by(
            path,
            "#[processor] goes on an inherent impl block (`impl EchoReceiver { ... }`), not a trait impl",
        );
        ok = false;
    }
    if !item.generics.params.is_empty() {
        cx.error_spanned_by(&item.generics, "a #[processor] type cannot be generic");
        ok = false;
    }
    let mut entries = Vec::new();
    let mut rpc_routes: HashMap<(String, String), Ident> = HashMap::new();
    for impl_item in &mut item.items {
        let attrs = match impl_item {
            ImplItem::Fn(method) => take_handler_attrs(&mut method.attrs),
            ImplItem::Const(c) => take_handler_attrs(&mut c.attrs),
            ImplItem::Type(t) => take_handler_attrs(&mut t.attrs),
            ImplItem::Macro(m) => take_handler_attrs(&mut m.attrs),
            _ => Vec::new(),
        };
        if attrs.is_empty() {
            continue;
        }
        let ImplItem::Fn(method) = impl_item else {
            for (form, attr) in attrs {
                cx.error_spanned_by(&attr, format!("{} goes on a method", form.attribute()));
            }
            continue;
        };
        let method_ok = check_method(cx, method);
        for (form, attr) in attrs {
            let Some((rpc, kind, name)) = parse_attr(cx, form, &attr) else {
                continue;
            };
            let Some(shape) = shape(cx, form, rpc, method) else {
                continue;
            };
            if !method_ok {
                continue;
            }
            if rpc {
                let key = (kind.value(), name.value());
                if let Some(first) = rpc_routes.get(&key) {
                    cx.error_spanned_by(
                        &name,
                        format!(
                            "{:?} {:?} already has an RPC handler, `{first}`: an RPC request gets one reply",
                            key.0, key.1
                        ),
                    );
                    continue;
                }
                rpc_routes.insert(key, method.sig.ident.clone());
            }
            entries.push(Entry {
                shape,
                kind,
                name,
                method: method.sig.ident.clone(),
                has_self: method.sig.receiver().is_some(),
                ret: match &method.sig.output {
                    ReturnType::Type(_, ty) => ty.span(),
                    ReturnType::Default => method.sig.ident.span(),
                },
            });
        }
    }
    ok.then(|| Processor {
        self_ty: (*item.self_ty).clone(),
        entries,
    })
}

fn take_handler_attrs(attrs: &mut Vec<Attribute>) -> Vec<(Form, Attribute)> {
    let mut taken = Vec::new();
    attrs.retain(|attr| match Form::of(attr) {
        Some(form) => {
            taken.push((form, attr.clone()));
            false
        }
        None => true,
    });
    taken
}

/// Checks what every handler needs: async, not generic, `&self` or no
/// receiver.
fn check_method(cx: &mut Ctxt, method: &ImplItemFn) -> bool {
    let sig = &method.sig;
    let mut ok = true;
    if sig.asyncness.is_none() {
        cx.error_spanned_by(
            sig.fn_token,
            format!("handler `{}` must be an `async fn`", sig.ident),
        );
        ok = false;
    }
    if !sig.generics.params.is_empty() {
        cx.error_spanned_by(&sig.generics, "a handler cannot be generic");
        ok = false;
    }
    if let Some(receiver) = sig.receiver()
        && (receiver.reference.is_none()
            || receiver.mutability.is_some()
            || receiver.colon_token.is_some())
    {
        cx.error_spanned_by(
            receiver,
            "a handler takes `&self` (the processor is shared by its handlers) or no receiver",
        );
        ok = false;
    }
    ok
}

/// Reads the attribute's strings: `(rpc, type, name)`.
fn parse_attr(cx: &mut Ctxt, form: Form, attr: &Attribute) -> Option<(bool, LitStr, LitStr)> {
    let tokens = match &attr.meta {
        Meta::List(list) => list.tokens.clone(),
        _ => {
            cx.error_spanned_by(
                attr,
                format!(
                    "{} needs the message type and name: `{}`",
                    form.attribute(),
                    form.example()
                ),
            );
            return None;
        }
    };
    let labels: &[&str] = match form {
        Form::Context => &["category", "type", "name"],
        _ => &["type", "name"],
    };
    let parser = |input: ParseStream<'_>| {
        let mut strings = Vec::with_capacity(labels.len());
        for (i, label) in labels.iter().enumerate() {
            if i > 0 {
                if input.is_empty() {
                    break;
                }
                input.parse::<Token![,]>()?;
            }
            if input.is_empty() {
                break;
            }
            if input.peek(LitStr) {
                strings.push(input.parse::<LitStr>()?);
            } else if input.peek(Ident::peek_any) && input.peek2(Token![=]) {
                let ident = input.call(Ident::parse_any)?;
                return Err(unknown_argument(form, &ident));
            } else {
                let token: proc_macro2::TokenTree = input.parse()?;
                return Err(syn::Error::new_spanned(
                    token,
                    format!(
                        "the message {label} must be a string literal, e.g. `{}`",
                        form.example()
                    ),
                ));
            }
        }
        if !input.is_empty() {
            input.parse::<Token![,]>()?;
        }
        if !input.is_empty() {
            if input.peek(Ident::peek_any) {
                let ident = input.call(Ident::parse_any)?;
                return Err(unknown_argument(form, &ident));
            }
            return Err(input.error(format!(
                "unexpected argument: {} takes the message {}, `{}`",
                form.attribute(),
                labels.join(" and "),
                form.example()
            )));
        }
        Ok(strings)
    };
    let strings = match parser.parse2(tokens) {
        Ok(strings) => strings,
        Err(error) => {
            cx.syn_error(error);
            return None;
        }
    };
    if strings.len() < labels.len() {
        cx.error_spanned_by(
            attr,
            format!(
                "{} needs the message {}: `{}`",
                form.attribute(),
                labels[strings.len()..].join(" and "),
                form.example()
            ),
        );
        return None;
    }
    let mut ok = true;
    for (string, label) in strings.iter().zip(labels) {
        if string.value().is_empty() {
            cx.error_spanned_by(string, format!("the message {label} cannot be empty"));
            ok = false;
        }
    }
    let mut strings = strings.into_iter();
    let rpc = match form {
        Form::Rpc => true,
        Form::Context => {
            let category = strings.next()?;
            match category.value().as_str() {
                "message" => false,
                "rpc" => true,
                _ => {
                    cx.error_spanned_by(&category, "the category is \"message\" or \"rpc\"");
                    ok = false;
                    false
                }
            }
        }
        Form::Message | Form::FullBody => false,
    };
    let kind = strings.next()?;
    let name = strings.next()?;
    ok.then_some((rpc, kind, name))
}

fn unknown_argument(form: Form, ident: &Ident) -> syn::Error {
    syn::Error::new(
        ident.span(),
        format!(
            "unknown argument `{ident}`: {} takes only strings, `{}`",
            form.attribute(),
            form.example()
        ),
    )
}

/// Checks the arguments against the form; gives the call shape.
fn shape(cx: &mut Ctxt, form: Form, rpc: bool, method: &ImplItemFn) -> Option<Shape> {
    let args: Vec<&PatType> = method
        .sig
        .inputs
        .iter()
        .filter_map(|arg| match arg {
            FnArg::Typed(arg) => Some(arg),
            FnArg::Receiver(_) => None,
        })
        .collect();
    let name = &method.sig.ident;
    let ty_span = |i: usize| args[i].ty.span();
    let too_many = |cx: &mut Ctxt, from: usize, what: &str| {
        cx.error_spanned_by(
            args[from],
            format!(
                "too many arguments: a {} method takes {what}",
                form.attribute()
            ),
        );
        None
    };
    match form {
        Form::Message => match args.len() {
            0 => Some(Shape::Message { content: None }),
            1 => Some(Shape::Message {
                content: Some(ty_span(0)),
            }),
            _ => too_many(
                cx,
                1,
                "`&self` and at most a content argument (`Content` or `Params<T>`)",
            ),
        },
        Form::FullBody => match args.len() {
            0 => {
                cx.error_spanned_by(
                    name,
                    "a #[full_body_handler] method takes the whole message: `message: Message`",
                );
                None
            }
            1 => Some(Shape::FullBody {
                message: ty_span(0),
            }),
            _ => too_many(cx, 1, "`&self` and `message: Message`"),
        },
        Form::Rpc => {
            let result = matches!(&method.sig.output, ReturnType::Type(_, ty) if last_segment_is(ty, "Result"));
            match args.last() {
                Some(last) if last_segment_is(&last.ty, "Reply") => match args.len() {
                    1 => Some(Shape::RpcReply {
                        content: None,
                        reply: ty_span(0),
                    }),
                    2 => Some(Shape::RpcReply {
                        content: Some(ty_span(0)),
                        reply: ty_span(1),
                    }),
                    _ => too_many(cx, 1, "`&self`, a content argument and `reply: Reply`"),
                },
                _ => match args.len() {
                    0 => Some(Shape::RpcValue {
                        content: None,
                        result,
                    }),
                    1 => Some(Shape::RpcValue {
                        content: Some(ty_span(0)),
                        result,
                    }),
                    _ => too_many(
                        cx,
                        1,
                        "`&self`, a content argument, and `reply: Reply` last when it replies itself",
                    ),
                },
            }
        }
        Form::Context => match args.len() {
            0 => {
                cx.error_spanned_by(
                    name,
                    "a #[context_handler] method takes the context: `ctx: Context<Self>`",
                );
                None
            }
            1 => Some(Shape::Context {
                rpc,
                ctx: ty_span(0),
            }),
            _ => too_many(cx, 1, "`ctx: Context<Self>` (and `&self`)"),
        },
    }
}

/// Whether `ty` is a path ending in `ident` (`Reply`, `postage::Reply`).
fn last_segment_is(ty: &Type, ident: &str) -> bool {
    match ty {
        Type::Path(path) => path.path.segments.last().is_some_and(|s| s.ident == ident),
        _ => false,
    }
}

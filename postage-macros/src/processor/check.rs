//! The rules of a `#[processor]` impl block, checked on its model: every
//! broken rule is reported through `Ctxt` on the token at fault, and the
//! routes that pass make the dispatch table.

use std::collections::HashMap;

use syn::Ident;

use super::ast::{Entry, Handler, Marked, Misfit, Processor, Route, Shape, Table};
use super::attr::{Form, HandlerAttr};
use crate::ctxt::Ctxt;

/// Checks `processor`, method by method. The table holds the routes that
/// are fine; there is none when the impl block itself is wrong (a trait
/// impl, generic).
pub(crate) fn check<'a>(cx: &Ctxt, processor: &'a Processor) -> Option<Table<'a>> {
    let mut ok = true;
    if let Some(path) = &processor.trait_path {
        cx.error_spanned_by(
            path,
            "#[processor] goes on an inherent impl block (`impl EchoReceiver { ... }`), not a trait impl",
        );
        ok = false;
    }
    if !processor.generics.params.is_empty() {
        cx.error_spanned_by(&processor.generics, "a #[processor] type cannot be generic");
        ok = false;
    }
    let mut entries = Vec::new();
    let mut rpc_routes: HashMap<(String, String), &Ident> = HashMap::new();
    for marked in &processor.marked {
        let handler = match marked {
            Marked::NotAMethod(attrs) => {
                for (form, attr) in attrs {
                    cx.error_spanned_by(attr, format!("{} goes on a method", form.attribute()));
                }
                continue;
            }
            Marked::Method(handler) => handler,
        };
        let method_ok = check_signature(cx, handler);
        for route in &handler.routes {
            let Some((attr, shape)) = check_route(cx, handler, route) else {
                continue;
            };
            if !method_ok {
                continue;
            }
            if attr.rpc() && !check_one_rpc_handler(cx, &mut rpc_routes, handler, attr) {
                continue;
            }
            entries.push(Entry {
                handler,
                attr,
                shape,
            });
        }
    }
    ok.then_some(Table {
        self_ty: &processor.self_ty,
        entries,
    })
}

/// What every handler needs: async, not generic, `&self` or no receiver.
fn check_signature(cx: &Ctxt, handler: &Handler) -> bool {
    let sig = &handler.sig;
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

/// One handler attribute: its grammar, its strings, then the method's
/// arguments against its form.
fn check_route<'a>(
    cx: &Ctxt,
    handler: &Handler,
    route: &'a Route,
) -> Option<(&'a HandlerAttr, &'a Shape)> {
    let attr = match &route.parsed {
        Ok(attr) => attr,
        Err(error) => {
            cx.syn_error(error.clone());
            return None;
        }
    };
    if !check_strings(cx, attr) {
        return None;
    }
    match &route.shape {
        Ok(shape) => Some((attr, shape)),
        Err(misfit) => {
            report_misfit(cx, route.form, handler, misfit);
            None
        }
    }
}

/// No string is empty; a category is `"message"` or `"rpc"`.
fn check_strings(cx: &Ctxt, attr: &HandlerAttr) -> bool {
    let mut ok = true;
    for (string, label) in attr.labeled() {
        if string.value().is_empty() {
            cx.error_spanned_by(string, format!("the message {label} cannot be empty"));
            ok = false;
        }
    }
    if let Some(category) = &attr.category
        && !matches!(category.value().as_str(), "message" | "rpc")
    {
        cx.error_spanned_by(category, "the category is \"message\" or \"rpc\"");
        ok = false;
    }
    if let Some(on_error) = &attr.on_error
        && attr.rpc()
    {
        cx.error_spanned_by(
            &on_error.keyword,
            "`on_error` is for message handlers: a failed RPC handler answers its caller with an exception result",
        );
        ok = false;
    }
    ok
}

/// The arguments the form takes, said on the method's name (one missing)
/// or on the first argument too many.
fn report_misfit(cx: &Ctxt, form: Form, handler: &Handler, misfit: &Misfit) {
    match misfit {
        Misfit::Missing => {
            let message = match form {
                Form::Context => {
                    "a #[context_handler] method takes the context: `ctx: Context<Self>`"
                }
                _ => "a #[full_body_handler] method takes the whole message: `message: Message`",
            };
            cx.error_spanned_by(&handler.sig.ident, message);
        }
        Misfit::TooMany { extra } => {
            let takes = match form {
                Form::Message => {
                    "`&self` and at most a content argument (`Content` or `Params<T>`)"
                }
                Form::FullBody => "`&self` and `message: Message`",
                Form::Rpc if handler.replies_itself() => {
                    "`&self`, a content argument and `reply: Reply`"
                }
                Form::Rpc => {
                    "`&self`, a content argument, and `reply: Reply` last when it replies itself"
                }
                Form::Context => "`ctx: Context<Self>` (and `&self`)",
            };
            cx.error_spanned_by(
                extra,
                format!(
                    "too many arguments: a {} method takes {takes}",
                    form.attribute()
                ),
            );
        }
    }
}

/// An RPC (type, name) has one handler: the first one keeps it.
fn check_one_rpc_handler<'a>(
    cx: &Ctxt,
    rpc_routes: &mut HashMap<(String, String), &'a Ident>,
    handler: &'a Handler,
    attr: &HandlerAttr,
) -> bool {
    let key = (attr.kind.value(), attr.name.value());
    if let Some(first) = rpc_routes.get(&key) {
        cx.error_spanned_by(
            &attr.name,
            format!(
                "{:?} {:?} already has an RPC handler, `{first}`: an RPC request gets one reply",
                key.0, key.1
            ),
        );
        return false;
    }
    rpc_routes.insert(key, &handler.sig.ident);
    true
}

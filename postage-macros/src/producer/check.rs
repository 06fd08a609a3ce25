//! The rules of a `#[producer]` impl block, checked on its model: every
//! broken rule is reported through `Ctxt` on the token at fault, and the
//! build methods that pass make the API.

use syn::ReturnType;

use super::ast::{Api, Producer, Sender};
use crate::ctxt::Ctxt;

/// Checks `producer`. There is no API when the impl block itself is
/// wrong: a trait impl (then its methods are not looked at) or a type
/// without a name. A generic type is reported and still expanded.
pub(crate) fn check<'a>(cx: &Ctxt, producer: &'a Producer<'a>) -> Option<Api<'a>> {
    if let Some(path) = producer.trait_path {
        cx.error_spanned_by(
            path,
            "#[producer] goes on an inherent impl block (`impl EchoProducer { ... }`), not a trait impl",
        );
        return None;
    }
    if !producer.generics.params.is_empty() {
        cx.error_spanned_by(producer.generics, "a #[producer] type cannot be generic");
    }
    let Some(ident) = &producer.ident else {
        cx.error_spanned_by(
            producer.self_ty,
            "#[producer] needs a named type (`impl EchoProducer`)",
        );
        return None;
    };
    let senders = producer
        .senders
        .iter()
        .filter(|sender| check_sender(cx, sender))
        .collect();
    Some(Api {
        self_ty: producer.self_ty,
        ident: ident.clone(),
        senders,
    })
}

/// A build method names a command, is not async, takes `&self` and
/// returns a message.
fn check_sender(cx: &Ctxt, sender: &Sender<'_>) -> bool {
    let sig = &sender.method.sig;
    let name = sender.name();
    let mut ok = true;
    if sender.command.is_empty() {
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
    if matches!(sig.output, ReturnType::Default) {
        cx.error_spanned_by(
            &sig.ident,
            format!("`{name}` must return a message, e.g. `-> MessageCommand`"),
        );
        ok = false;
    }
    ok
}

//! `#[processor]`: the dispatch table from handler methods.

mod expand;
mod parse;

use proc_macro2::TokenStream;
use quote::ToTokens;

use crate::ctxt::Ctxt;

/// Expands `#[processor(args)] item`: the item without its handler
/// attributes, the `Handlers` impl, and every error found.
pub(crate) fn processor(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut cx = Ctxt::default();
    let mut item_impl = match syn::parse2::<syn::ItemImpl>(item.clone()) {
        Ok(item_impl) => item_impl,
        Err(_) => {
            cx.error_at(
                proc_macro2::Span::call_site(),
                "#[processor] goes on an impl block: `#[processor] impl EchoReceiver { ... }`",
            );
            let mut out = item;
            out.extend(cx.into_compile_errors());
            return out;
        }
    };
    let args = parse::parse_args(&mut cx, args);
    let model = parse::parse_impl(&mut cx, &mut item_impl);
    let mut out = item_impl.into_token_stream();
    if let Some(model) = model {
        out.extend(expand::expand(&args, &model));
    }
    out.extend(cx.into_compile_errors());
    out
}

/// `#[handler]` and its kin outside a `#[processor]` impl block: the item
/// unchanged, and an error on the attribute.
pub(crate) fn standalone(attribute: &str, item: TokenStream) -> TokenStream {
    let mut cx = Ctxt::default();
    cx.error_at(
        proc_macro2::Span::call_site(),
        format!(
            "#[{attribute}] only works on a method of an impl block marked #[processor]: \
             put #[processor] on the impl block"
        ),
    );
    let mut out = item;
    out.extend(cx.into_compile_errors());
    out
}

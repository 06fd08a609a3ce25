//! `#[processor]`: the dispatch table from handler methods, by stage:
//! `attr` (the attributes' grammar), `ast` (the impl block's model),
//! `check` (the rules), `expand` (the `Handlers` impl).

mod ast;
mod attr;
mod check;
mod expand;

use proc_macro2::TokenStream;
use quote::ToTokens;

use crate::ctxt::{Ctxt, with_errors};

/// Expands `#[processor(args)] item`: the item without its handler
/// attributes, the `Handlers` impl, and every error found.
pub(crate) fn processor(args: TokenStream, item: TokenStream) -> TokenStream {
    let cx = Ctxt::new();
    let mut item_impl = match syn::parse2::<syn::ItemImpl>(item.clone()) {
        Ok(item_impl) => item_impl,
        Err(_) => {
            cx.error_at(
                proc_macro2::Span::call_site(),
                "#[processor] goes on an impl block: `#[processor] impl EchoReceiver { ... }`",
            );
            return with_errors(item, cx);
        }
    };
    let args = attr::Args::from_tokens(&cx, args);
    let processor = ast::Processor::from_item(&mut item_impl);
    let table = check::check(&cx, &processor).map(|table| expand::expand(&args, &table));
    let mut out = item_impl.into_token_stream();
    out.extend(table);
    with_errors(out, cx)
}

/// `#[handler]` and its kin outside a `#[processor]` impl block: the item
/// unchanged, and an error on the attribute.
pub(crate) fn standalone(attribute: &str, item: TokenStream) -> TokenStream {
    let cx = Ctxt::new();
    cx.error_at(
        proc_macro2::Span::call_site(),
        format!(
            "#[{attribute}] only works on a method of an impl block marked #[processor]: \
             put #[processor] on the impl block"
        ),
    );
    with_errors(item, cx)
}

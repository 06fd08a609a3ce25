//! `#[producer]`: typed senders from build methods, by stage: `attr` (the
//! attribute's grammar), `ast` (the impl block's model), `check` (the
//! rules), `expand` (the API).

mod ast;
mod attr;
mod check;
mod expand;

use proc_macro2::TokenStream;
use quote::ToTokens;

use crate::ctxt::{Ctxt, with_errors};

/// Expands `#[producer(args)] item`: the item unchanged, the generated
/// API, and every error found.
pub(crate) fn producer(args: TokenStream, item: TokenStream) -> TokenStream {
    let cx = Ctxt::new();
    let item_impl = match syn::parse2::<syn::ItemImpl>(item.clone()) {
        Ok(item_impl) => item_impl,
        Err(_) => {
            cx.error_at(
                proc_macro2::Span::call_site(),
                "#[producer] goes on an impl block: `#[producer(eks = [...])] impl EchoProducer { ... }`",
            );
            return with_errors(item, cx);
        }
    };
    let args = attr::Args::from_tokens(&cx, args);
    let producer = ast::Producer::from_item(&item_impl);
    let api = check::check(&cx, &producer).map(|api| expand::expand(&args, &api));
    let mut out = item_impl.to_token_stream();
    out.extend(api);
    with_errors(out, cx)
}

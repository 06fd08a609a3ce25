//! `#[producer]`: typed senders from build methods.

mod expand;
mod parse;

use proc_macro2::TokenStream;
use quote::ToTokens;

use crate::ctxt::Ctxt;

/// Expands `#[producer(args)] item`: the item unchanged, the generated
/// API, and every error found.
pub(crate) fn producer(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut cx = Ctxt::default();
    let item_impl = match syn::parse2::<syn::ItemImpl>(item.clone()) {
        Ok(item_impl) => item_impl,
        Err(_) => {
            cx.error_at(
                proc_macro2::Span::call_site(),
                "#[producer] goes on an impl block: `#[producer(eks = [...])] impl EchoProducer { ... }`",
            );
            let mut out = item;
            out.extend(cx.into_compile_errors());
            return out;
        }
    };
    let args = parse::parse_args(&mut cx, args);
    let model = parse::parse_impl(&mut cx, &item_impl);
    let mut out = item_impl.to_token_stream();
    if let Some(model) = model {
        out.extend(expand::expand(&args, &model));
    }
    out.extend(cx.into_compile_errors());
    out
}

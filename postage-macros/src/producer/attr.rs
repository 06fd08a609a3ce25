//! The grammar of `#[producer(...)]`: `eks = [(exchange, key), ...]` and
//! `crate = "path"`.

use proc_macro2::TokenStream;
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::{Expr, Ident, Token};

use crate::common::{CratePath, parse_crate_arg};
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

impl Args {
    /// Parses the attribute's arguments. Errors go to `cx`; what was read
    /// before an error is kept.
    pub(crate) fn from_tokens(cx: &Ctxt, tokens: TokenStream) -> Args {
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
}

/// The pairs of `eks = [(exchange, key), ...]`; anything else in their
/// place is an error.
fn pairs(cx: &Ctxt, expr: Expr) -> Vec<(Expr, Expr)> {
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

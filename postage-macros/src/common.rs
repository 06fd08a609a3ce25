//! Pieces both macros use: the crate path, respanning, type text.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{ToTokens, quote};
use syn::parse::ParseStream;
use syn::{LitStr, Token, Type};

/// The path generated code uses for the runtime crate: `::postage`, or
/// the `crate = "..."` override.
#[derive(Clone)]
pub(crate) struct CratePath(TokenStream);

impl Default for CratePath {
    fn default() -> Self {
        CratePath(quote!(::postage))
    }
}

impl CratePath {
    /// Parses the value of `crate = "my::postage"`.
    pub(crate) fn parse_value(input: ParseStream<'_>) -> syn::Result<Self> {
        let lit: LitStr = input.parse()?;
        let path: syn::Path = lit.parse().map_err(|e| {
            syn::Error::new(
                lit.span(),
                format!("`crate` must be a path, e.g. \"::postage\": {e}"),
            )
        })?;
        Ok(CratePath(path.into_token_stream()))
    }

    /// The path with every token at `span`, so that a failed bound on a
    /// helper reached through it points at the user's token.
    pub(crate) fn at(&self, span: Span) -> TokenStream {
        respan(self.0.clone(), span)
    }
}

impl ToTokens for CratePath {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        self.0.to_tokens(tokens);
    }
}

/// `crate = "..."`, on its own (after the `crate` keyword was seen).
pub(crate) fn parse_crate_arg(input: ParseStream<'_>) -> syn::Result<CratePath> {
    input.parse::<Token![crate]>()?;
    input.parse::<Token![=]>()?;
    CratePath::parse_value(input)
}

/// Gives every token of `tokens` the span `span`.
pub(crate) fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut token| {
            if let TokenTree::Group(group) = &token {
                let mut inner =
                    proc_macro2::Group::new(group.delimiter(), respan(group.stream(), span));
                inner.set_span(span);
                token = TokenTree::Group(inner);
            } else {
                token.set_span(span);
            }
            token
        })
        .collect()
}

/// A type as source text, spaced as people write it: `&'a str`,
/// `Vec<(i64, String)>`, `std::time::Duration`.
pub(crate) fn type_text(ty: &Type) -> String {
    tokens_text(ty)
}

/// Tokens as source text, spaced as people write them.
pub(crate) fn tokens_text(tokens: impl ToTokens) -> String {
    let raw = tokens.to_token_stream().to_string();
    let mut text = String::with_capacity(raw.len());
    for piece in raw.split(' ') {
        let glue = matches!(
            text.chars().last(),
            None | Some('&' | '<' | '(' | '[' | ':' | '\'' | '*')
        ) || matches!(
            piece.chars().next(),
            Some('>' | '(' | ')' | ']' | ',' | ';' | ':' | '<')
        );
        // `dyn Trait + Send`, `impl Fn(i64) -> i64`, `[u8; 4]`, `fn(a, b)`
        let spaced_before = matches!(piece, "+" | "->" | "=");
        let after_spaced =
            text.ends_with(['+', ';', ',']) || text.ends_with("->") || text.ends_with('=');
        if !text.is_empty() && (spaced_before || after_spaced || !glue) {
            text.push(' ');
        }
        text.push_str(piece);
    }
    text
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::type_text;

    fn text(s: &str) -> String {
        type_text(&syn::parse_str(s).expect("a type"))
    }

    #[test]
    fn types_read_as_written() {
        assert_eq!(text("&str"), "&str");
        assert_eq!(text("&'a str"), "&'a str");
        assert_eq!(text("&mut Vec<u8>"), "&mut Vec<u8>");
        assert_eq!(text("i64"), "i64");
        assert_eq!(text("Vec<(i64, String)>"), "Vec<(i64, String)>");
        assert_eq!(
            text("std::collections::HashMap<String, Vec<u8>>"),
            "std::collections::HashMap<String, Vec<u8>>"
        );
        assert_eq!(text("[u8; 4]"), "[u8; 4]");
        assert_eq!(text("impl Into<String>"), "impl Into<String>");
        assert_eq!(
            text("Box<dyn Fn(i64) -> i64 + Send>"),
            "Box<dyn Fn(i64) -> i64 + Send>"
        );
        assert_eq!(text("Option<&'static str>"), "Option<&'static str>");
    }
}

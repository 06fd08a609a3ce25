//! Error collection: every error of an item is gathered, then reported
//! together (as serde_derive's `internals/ctxt.rs`).

use std::cell::RefCell;
use std::fmt::Display;

use proc_macro2::TokenStream;
use quote::ToTokens;

/// The errors found so far. Stages report through `&Ctxt`; the macro's
/// entry point ends with [`Ctxt::check`], which turns them into one
/// `syn::Error`. In debug builds a `Ctxt` dropped without being checked
/// panics, so that no error is lost on the way.
pub(crate) struct Ctxt {
    /// `None` once checked.
    errors: RefCell<Option<Vec<syn::Error>>>,
}

impl Ctxt {
    /// No errors yet.
    pub(crate) fn new() -> Self {
        Ctxt {
            errors: RefCell::new(Some(Vec::new())),
        }
    }

    /// An error spanning `tokens`.
    pub(crate) fn error_spanned_by(&self, tokens: impl ToTokens, message: impl Display) {
        self.syn_error(syn::Error::new_spanned(tokens, message));
    }

    /// An error at `span`.
    pub(crate) fn error_at(&self, span: proc_macro2::Span, message: impl Display) {
        self.syn_error(syn::Error::new(span, message));
    }

    /// An error from a parser.
    pub(crate) fn syn_error(&self, error: syn::Error) {
        if let Some(errors) = self.errors.borrow_mut().as_mut() {
            errors.push(error);
        }
    }

    /// Takes the errors: `Err` with all of them combined, in the order
    /// they were reported, or `Ok` when there are none.
    pub(crate) fn check(self) -> syn::Result<()> {
        let mut errors = self
            .errors
            .borrow_mut()
            .take()
            .unwrap_or_default()
            .into_iter();
        let Some(mut combined) = errors.next() else {
            return Ok(());
        };
        for rest in errors {
            combined.combine(rest);
        }
        Err(combined)
    }
}

/// `out`, then the errors of `cx` as `compile_error!` invocations: a
/// macro's output, which keeps the user's item when something is wrong.
pub(crate) fn with_errors(mut out: TokenStream, cx: Ctxt) -> TokenStream {
    if let Err(errors) = cx.check() {
        out.extend(errors.into_compile_error());
    }
    out
}

#[cfg(debug_assertions)]
impl Drop for Ctxt {
    fn drop(&mut self) {
        if !std::thread::panicking() && self.errors.borrow().is_some() {
            panic!("forgot to check for errors");
        }
    }
}

#[cfg(test)]
mod tests {
    use proc_macro2::Span;

    use super::Ctxt;

    #[test]
    fn no_errors_check_ok() {
        assert!(Ctxt::new().check().is_ok());
    }

    #[test]
    fn errors_come_out_together_in_order() {
        let cx = Ctxt::new();
        cx.error_at(Span::call_site(), "first");
        cx.error_at(Span::call_site(), "second");
        let messages: Vec<String> = match cx.check() {
            Ok(()) => Vec::new(),
            Err(error) => error.into_iter().map(|e| e.to_string()).collect(),
        };
        assert_eq!(messages, ["first", "second"]);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "forgot to check for errors")]
    fn unchecked_ctxt_panics() {
        let cx = Ctxt::new();
        cx.error_at(Span::call_site(), "lost");
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "forgot to check for errors")]
    fn unchecked_ctxt_panics_even_without_errors() {
        let _cx = Ctxt::new();
    }
}

//! The grammar of `#[processor(...)]` and of the handler attributes
//! (`#[handler]`, `#[full_body_handler]`, `#[rpc_handler]`,
//! `#[context_handler]`): tokens to values, nothing about the method they
//! sit on.

use proc_macro2::TokenStream;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream, Parser};
use syn::{Attribute, Expr, Ident, LitStr, Meta, Token};

use crate::common::{CratePath, parse_crate_arg};
use crate::ctxt::Ctxt;

/// The arguments of `#[processor(crate = "...")]`.
#[derive(Default)]
pub(crate) struct Args {
    pub(crate) krate: CratePath,
}

/// One argument of `#[processor(...)]`.
enum Arg {
    /// `crate = "path"`
    Crate(CratePath),
}

impl Parse for Arg {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        if input.peek(Token![crate]) {
            parse_crate_arg(input).map(Arg::Crate)
        } else if input.peek(Ident::peek_any) {
            let ident = input.call(Ident::parse_any)?;
            Err(syn::Error::new(
                ident.span(),
                format!("unknown argument `{ident}`: #[processor] takes only `crate = \"path\"`"),
            ))
        } else {
            Err(input.error("expected `crate = \"path\"`"))
        }
    }
}

impl Args {
    /// Parses the attribute's arguments. The error goes to `cx`; what was
    /// read before it is kept.
    pub(crate) fn from_tokens(cx: &Ctxt, tokens: TokenStream) -> Args {
        let mut args = Args::default();
        let parser = |input: ParseStream<'_>| {
            while !input.is_empty() {
                match input.parse()? {
                    Arg::Crate(krate) => args.krate = krate,
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
    /// The handler attribute `attr` is, by its last path segment.
    pub(crate) fn of(attr: &Attribute) -> Option<Form> {
        let ident = attr.path().segments.last()?.ident.to_string();
        Some(match ident.as_str() {
            "handler" => Form::Message,
            "full_body_handler" => Form::FullBody,
            "rpc_handler" => Form::Rpc,
            "context_handler" => Form::Context,
            _ => return None,
        })
    }

    /// The attribute as messages name it: `#[handler]`.
    pub(crate) fn attribute(self) -> &'static str {
        match self {
            Form::Message => "#[handler]",
            Form::FullBody => "#[full_body_handler]",
            Form::Rpc => "#[rpc_handler]",
            Form::Context => "#[context_handler]",
        }
    }

    /// The attribute written out, for messages.
    pub(crate) fn example(self) -> &'static str {
        match self {
            Form::Message => "#[handler(\"command\", \"echo\")]",
            Form::FullBody => "#[full_body_handler(\"command\", \"echo\")]",
            Form::Rpc => "#[rpc_handler(\"command\", \"echo\")]",
            Form::Context => "#[context_handler(\"message\", \"command\", \"echo\")]",
        }
    }

    /// What its strings are, in order.
    fn labels(self) -> &'static [&'static str] {
        match self {
            Form::Context => &["category", "type", "name"],
            _ => &["type", "name"],
        }
    }
}

/// A handler attribute, read: its strings as written (an empty string or
/// an unknown category is for the checks to reject).
pub(crate) struct HandlerAttr {
    pub(crate) form: Form,
    /// `"message"` or `"rpc"`, for `#[context_handler]` only.
    pub(crate) category: Option<LitStr>,
    /// The message type (`"command"`).
    pub(crate) kind: LitStr,
    /// The message name (`"echo"`).
    pub(crate) name: LitStr,
    /// `on_error = <expr>`: the handler's failure policy.
    pub(crate) on_error: Option<OnErrorArg>,
}

/// `on_error = <expr>`, as written.
pub(crate) struct OnErrorArg {
    /// The `on_error` keyword, for errors about the argument.
    pub(crate) keyword: Ident,
    /// The policy: any constant expression of type `OnError`.
    pub(crate) policy: Expr,
}

impl HandlerAttr {
    /// Reads `attr`, a handler attribute of form `form`.
    pub(crate) fn parse(form: Form, attr: &Attribute) -> syn::Result<HandlerAttr> {
        let Meta::List(list) = &attr.meta else {
            return Err(syn::Error::new_spanned(
                attr,
                format!(
                    "{} needs the message type and name: `{}`",
                    form.attribute(),
                    form.example()
                ),
            ));
        };
        let (strings, on_error) =
            (|input: ParseStream<'_>| parse_args(form, input)).parse2(list.tokens.clone())?;
        let count = strings.len();
        let mut strings = strings.into_iter();
        let category = match form {
            Form::Context => strings.next(),
            _ => None,
        };
        match (strings.next(), strings.next()) {
            (Some(kind), Some(name)) => Ok(HandlerAttr {
                form,
                category,
                kind,
                name,
                on_error,
            }),
            _ => Err(syn::Error::new_spanned(
                attr,
                format!(
                    "{} needs the message {}: `{}`",
                    form.attribute(),
                    form.labels()[count..].join(" and "),
                    form.example()
                ),
            )),
        }
    }

    /// The strings with what they are, in the order written.
    pub(crate) fn labeled(&self) -> impl Iterator<Item = (&LitStr, &'static str)> {
        let strings = self.category.iter().chain([&self.kind, &self.name]);
        strings.zip(self.form.labels().iter().copied())
    }

    /// Whether it handles the `rpc` category.
    pub(crate) fn rpc(&self) -> bool {
        match self.form {
            Form::Rpc => true,
            Form::Context => self.category.as_ref().is_some_and(|c| c.value() == "rpc"),
            Form::Message | Form::FullBody => false,
        }
    }
}

/// The arguments of a handler attribute: its strings, then an optional
/// `on_error = <expr>`.
fn parse_args(
    form: Form,
    input: ParseStream<'_>,
) -> syn::Result<(Vec<LitStr>, Option<OnErrorArg>)> {
    let strings = parse_strings(form, input)?;
    let mut on_error = None;
    if !input.is_empty() {
        let keyword = input.call(Ident::parse_any)?;
        if keyword != "on_error" || !input.peek(Token![=]) {
            return Err(unknown_argument(form, &keyword));
        }
        input.parse::<Token![=]>()?;
        on_error = Some(OnErrorArg {
            keyword,
            policy: input.parse()?,
        });
        if !input.is_empty() {
            input.parse::<Token![,]>()?;
        }
        if !input.is_empty() {
            return Err(input.error(format!(
                "unexpected argument: {} takes the message {} and `on_error = ...`",
                form.attribute(),
                form.labels().join(" and "),
            )));
        }
    }
    Ok((strings, on_error))
}

/// The strings of a handler attribute: up to as many as the form takes,
/// comma-separated, with an optional trailing comma. Fewer is not an
/// error here; what follows them is left to the caller.
fn parse_strings(form: Form, input: ParseStream<'_>) -> syn::Result<Vec<LitStr>> {
    let labels = form.labels();
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
            // `on_error = ...` before the strings are all there: they are
            // missing (the check says which).
            let fork = input.fork();
            let ident = fork.call(Ident::parse_any)?;
            if ident == "on_error" {
                break;
            }
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
    if !input.is_empty() && strings.len() == labels.len() {
        input.parse::<Token![,]>()?;
    }
    if !input.is_empty() && !input.peek(Ident::peek_any) {
        return Err(input.error(format!(
            "unexpected argument: {} takes the message {}, `{}`",
            form.attribute(),
            labels.join(" and "),
            form.example()
        )));
    }
    Ok(strings)
}

fn unknown_argument(form: Form, ident: &Ident) -> syn::Error {
    let takes = match form {
        Form::Rpc => "only strings",
        _ => "strings and `on_error = ...`",
    };
    syn::Error::new(
        ident.span(),
        format!(
            "unknown argument `{ident}`: {} takes {takes}, `{}`",
            form.attribute(),
            form.example()
        ),
    )
}

//! Writes the `Handlers` impl of a `#[processor]` impl block: a const
//! table of `Handler` entries whose functions call the methods through
//! `__private` helpers.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};

use super::ast::{Entry, Shape, Table};
use super::attr::Args;

/// `impl Handlers for EchoReceiver { fn handlers() -> ... { const TABLE ... } }`
pub(crate) fn expand(args: &Args, table: &Table<'_>) -> TokenStream {
    let krate = &args.krate;
    let self_ty = table.self_ty;
    let entries = table
        .entries
        .iter()
        .map(|entry| expand_entry(args, table, entry));
    quote! {
        impl #krate::Handlers for #self_ty {
            fn handlers() -> &'static [#krate::__private::Handler<Self>] {
                const TABLE: &[#krate::__private::Handler<#self_ty>] = &[#(#entries),*];
                TABLE
            }
        }
    }
}

/// `Handler::message("command", "echo", |this, content| ...).labeled("echo")`,
/// with `.on_error(<expr>)` when the attribute gives a policy.
fn expand_entry(args: &Args, table: &Table<'_>, entry: &Entry<'_>) -> TokenStream {
    let krate = &args.krate;
    let (kind, name) = (&entry.attr.kind, &entry.attr.name);
    let method = &entry.handler.sig.ident;
    let label = method.to_string();
    let has_self = entry.handler.has_self();
    let self_ty = table.self_ty;
    // `this.echo` or `<EchoReceiver>::echo`
    let this = if has_self { quote!(this) } else { quote!(_) };
    let call = |ret: Span| {
        if has_self {
            quote_spanned!(ret=> this.#method)
        } else {
            quote_spanned!(ret=> <#self_ty>::#method)
        }
    };
    // Helpers whose bound concerns the return type sit on it; those
    // concerning an argument sit on the argument's type. The call of the
    // method is spanned by the return type too, also after decoding the
    // content, so that a failed bound on its value points there.
    let at = |span: Span| krate.at(span);
    let ret = entry.handler.ret;
    let p_ret = at(ret);
    let f = call(ret);
    let boxed = |body: TokenStream| {
        let p = at(method.span());
        quote_spanned!(method.span()=> #p::__private::boxed(async move { #body }))
    };
    let entry_fn = match entry.shape {
        Shape::Message { content: None } => {
            let body = boxed(quote_spanned!(ret=> #p_ret::__private::done(#f().await)));
            quote!(message(#kind, #name, |#this, _| #body))
        }
        Shape::Message { content: Some(ty) } => {
            let p = at(*ty);
            let arg = quote_spanned!(*ty=> #p::__private::params(content)?);
            let body = boxed(quote_spanned!(ret=> #p_ret::__private::done(#f(#arg).await)));
            quote!(message(#kind, #name, |#this, content| #body))
        }
        Shape::FullBody { message } => {
            let arg = quote_spanned!(*message=> message);
            let body = boxed(quote_spanned!(ret=> #p_ret::__private::done(#f(#arg).await)));
            quote!(full_body(#kind, #name, |#this, message| #body))
        }
        Shape::RpcReply { content, reply } => {
            let reply_arg = quote_spanned!(*reply=> reply);
            match content {
                None => {
                    let body =
                        boxed(quote_spanned!(ret=> #p_ret::__private::done(#f(#reply_arg).await)));
                    quote!(rpc(#kind, #name, |#this, _, reply| #body))
                }
                Some(ty) => {
                    let p = at(*ty);
                    let decode =
                        quote_spanned!(*ty=> #p::__private::rpc_params(content, reply).await?);
                    let call = quote_spanned! {ret=>
                        #p_ret::__private::done(#f(content, #reply_arg).await)
                    };
                    let body = boxed(quote! {
                        let (content, reply) = #decode;
                        #call
                    });
                    quote!(rpc(#kind, #name, |#this, content, reply| #body))
                }
            }
        }
        Shape::RpcValue { content, result } => {
            let helper = if *result {
                "reply_result"
            } else {
                "reply_value"
            };
            let helper = proc_macro2::Ident::new(helper, ret);
            let reply = quote_spanned!(ret=> #p_ret::__private::#helper);
            match content {
                None => {
                    let body = boxed(quote_spanned!(ret=> #reply(reply, #f().await).await));
                    quote!(rpc(#kind, #name, |#this, _, reply| #body))
                }
                Some(ty) => {
                    let p = at(*ty);
                    let decode =
                        quote_spanned!(*ty=> #p::__private::rpc_params(content, reply).await?);
                    let call = quote_spanned!(ret=> #reply(reply, #f(content).await).await);
                    let body = boxed(quote! {
                        let (content, reply) = #decode;
                        #call
                    });
                    quote!(rpc(#kind, #name, |#this, content, reply| #body))
                }
            }
        }
        Shape::Context { ctx } => {
            let category = if entry.attr.rpc() {
                quote!(Rpc)
            } else {
                quote!(Message)
            };
            let arg = quote_spanned!(*ctx=> ctx);
            let body = boxed(quote_spanned!(ret=> #p_ret::__private::done(#f(#arg).await)));
            let body = if has_self {
                quote!({
                    let this = ::std::sync::Arc::clone(&ctx.processor);
                    #body
                })
            } else {
                body
            };
            quote!(context(#krate::__private::Category::#category, #kind, #name, |ctx| #body))
        }
    };
    let params = params_type(args, entry);
    let handler = quote!(#krate::__private::Handler::<#self_ty>::#entry_fn.labeled(#label) #params);
    match &entry.attr.on_error {
        Some(on_error) => {
            let policy = &on_error.policy;
            quote!(#handler.on_error(#policy))
        }
        None => handler,
    }
}

/// `.with_params(ParamType::with_schema("Operands", || ...))` for a
/// handler whose content argument is `Params<T>`: `T`'s name, and its JSON
/// Schema when it has one (see `__private::SchemaProbe`).
fn params_type(args: &Args, entry: &Entry<'_>) -> TokenStream {
    let has_content = match entry.shape {
        Shape::Message { content } | Shape::RpcValue { content, .. } => content.is_some(),
        Shape::RpcReply { content, .. } => content.is_some(),
        Shape::FullBody { .. } | Shape::Context { .. } => false,
    };
    let Some(ty) = entry.handler.params_type().filter(|_| has_content) else {
        return TokenStream::new();
    };
    let krate = &args.krate;
    let name = quote!(#ty).to_string().replace(' ', "").replace(',', ", ");
    quote! {
        .with_params(#krate::__private::ParamType::with_schema(#name, || {
            use #krate::__private::{HasSchema as _, NoSchema as _};
            (&&#krate::__private::SchemaProbe::<#ty>(::core::marker::PhantomData)).schema()
        }))
    }
}

//! Writes the typed API of a `#[producer]` impl block.

use proc_macro2::{Ident, TokenStream};
use quote::{format_ident, quote, quote_spanned};

use super::ast::{Api, Kind, Sender};
use super::attr::Args;

/// The API struct, its senders, and the `ProducerSpec` impl.
pub(crate) fn expand(args: &Args, producer: &Api<'_>) -> TokenStream {
    let krate = &args.krate;
    let self_ty = producer.self_ty;
    let api = format_ident!("__Postage{}Api", producer.ident);
    let doc = format!(
        "The connected API of [`{0}`], from `{0}.connect(&connection)`: one method per build \
         method, and every `Producer` method through `Deref`.",
        producer.ident
    );
    let senders = producer
        .senders
        .iter()
        .map(|sender| expand_sender(args, sender));
    let api_list = producer
        .senders
        .iter()
        .map(|sender| api_entry(args, sender));
    let eks = args
        .eks
        .iter()
        .map(|(exchange, key)| quote!((#exchange, ::std::convert::Into::into(#key))));
    quote! {
        #[doc = #doc]
        #[doc(hidden)]
        #[derive(Clone)]
        #[allow(unreachable_pub)]
        pub struct #api {
            producer: #krate::Producer,
            spec: ::std::sync::Arc<#self_ty>,
        }

        #[allow(unreachable_pub, dead_code)]
        impl #api {
            /// The spec this API was connected from.
            pub fn spec(&self) -> &#self_ty {
                &self.spec
            }
            #(#senders)*
        }

        impl ::std::ops::Deref for #api {
            type Target = #krate::Producer;
            fn deref(&self) -> &#krate::Producer {
                &self.producer
            }
        }

        impl ::std::fmt::Debug for #api {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                ::std::fmt::Debug::fmt(&self.producer, f)
            }
        }

        impl #krate::ProducerSpec for #self_ty {
            type Api = #api;
            const API: &'static [#krate::MessageApi] = &[#(#api_list),*];

            fn default_eks(&self) -> ::std::vec::Vec<(#krate::Exchange, ::std::string::String)> {
                ::std::vec![#(#eks),*]
            }

            fn bind(self, producer: #krate::Producer) -> #api {
                #api { producer, spec: ::std::sync::Arc::new(self) }
            }
        }
    }
}

/// `pub fn message_echo(&self, text: &str) -> Publish<'_> { ... }`
fn expand_sender(args: &Args, sender: &Sender<'_>) -> TokenStream {
    let method = sender.method;
    let build = &method.sig.ident;
    let name = format_ident!(
        "{}{}",
        sender.kind.prefix(),
        sender.command,
        span = build.span()
    );
    let mut docs: Vec<TokenStream> = method
        .attrs
        .iter()
        .filter(|attr| attr.path().is_ident("doc"))
        .map(|attr| quote!(#attr))
        .collect();
    if docs.is_empty() {
        let verb = match sender.kind {
            Kind::Message => "Sends",
            Kind::Rpc => "Calls",
        };
        let doc = format!(" {verb} the message `{build}` builds; `.await` it, after options.");
        docs.push(quote!(#[doc = #doc]));
    }
    let where_clause = &method.sig.generics.where_clause;
    let generics = &method.sig.generics;
    let params = sender.params.iter().map(|param| {
        let (ident, ty) = (&param.ident, param.ty);
        quote!(#ident: #ty)
    });
    // Every token of the check sits on the return type: a build method
    // that does not return a message is reported there.
    let span = sender.ret_span;
    let krate = args.krate.at(span);
    let build = at(build, span);
    let idents = sender.params.iter().map(|param| at(&param.ident, span));
    let idents2 = idents.clone();
    let message = quote_spanned!(span=> #krate::__private::message(self.spec.#build(#(#idents),*)));
    let krate = &args.krate;
    match sender.kind {
        Kind::Message => quote! {
            #(#docs)*
            pub fn #name #generics (&self, #(#params),*) -> #krate::producer::Publish<'_> #where_clause {
                self.producer.send(#message)
            }
        },
        Kind::Rpc => match sender.reply {
            Some(reply) => {
                let typed = args.krate.at(span);
                let call = quote_spanned!(span=> #typed::__private::typed_rpc(&self.producer, self.spec.#build(#(#idents2),*)));
                quote! {
                    #(#docs)*
                    pub fn #name #generics (&self, #(#params),*) -> #krate::rpc::TypedRpcCall<'_, #reply> #where_clause {
                        #call
                    }
                }
            }
            None => quote! {
                #(#docs)*
                pub fn #name #generics (&self, #(#params),*) -> #krate::rpc::RpcCall<'_> #where_clause {
                    self.producer.rpc_message(#message)
                }
            },
        },
    }
}

/// `MessageApi::message("echo", "message_echo", &[ApiParam::new("text", "&str")])`
fn api_entry(args: &Args, sender: &Sender<'_>) -> TokenStream {
    let krate = &args.krate;
    let command = &sender.command;
    let name = format!("{}{}", sender.kind.prefix(), sender.command);
    let constructor = match sender.kind {
        Kind::Message => quote!(message),
        Kind::Rpc => quote!(rpc),
    };
    let params = sender.params.iter().map(|param| {
        let (name, ty) = (&param.api_name, &param.api_ty);
        quote!(#krate::ApiParam::new(#name, #ty))
    });
    quote!(#krate::MessageApi::#constructor(#command, #name, &[#(#params),*]))
}

/// `ident` at `span` (raw identifiers stay raw).
fn at(ident: &Ident, span: proc_macro2::Span) -> Ident {
    let mut ident = ident.clone();
    ident.set_span(span);
    ident
}

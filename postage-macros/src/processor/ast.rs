//! The model of a `#[processor]` impl block: its handler methods, each
//! with its routes (one per handler attribute) and the call shape its
//! signature gives. Built from the syn item, taking the handler
//! attributes off it; nothing is rejected here (see `check`).

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{
    Attribute, FnArg, Generics, ImplItem, ItemImpl, PatType, Path, ReturnType, Signature, Type,
};

use super::attr::{Form, HandlerAttr};

/// The impl block, read.
pub(crate) struct Processor {
    pub(crate) self_ty: Type,
    /// `Trait` of `impl Trait for T`.
    pub(crate) trait_path: Option<Path>,
    pub(crate) generics: Generics,
    /// The items that carried handler attributes, in order.
    pub(crate) marked: Vec<Marked>,
}

/// An item of the impl block with handler attributes.
pub(crate) enum Marked {
    /// Not a method: a const, type or macro item.
    NotAMethod(Vec<(Form, Attribute)>),
    Method(Box<Handler>),
}

/// A method with handler attributes.
pub(crate) struct Handler {
    pub(crate) sig: Signature,
    /// The arguments after the receiver.
    pub(crate) args: Vec<PatType>,
    /// The return type, or the method's name when it returns `()`.
    pub(crate) ret: Span,
    /// Whether the return type is written as a `Result` (see
    /// [`returns_result`]).
    pub(crate) ret_is_result: bool,
    /// One per handler attribute, in order.
    pub(crate) routes: Vec<Route>,
}

/// One handler attribute of a method.
pub(crate) struct Route {
    pub(crate) form: Form,
    /// Its grammar; a grammar error is kept here and reported by `check`
    /// in its turn, so that errors come out method by method.
    pub(crate) parsed: syn::Result<HandlerAttr>,
    /// How the generated glue calls the method for this form.
    pub(crate) shape: Result<Shape, Misfit>,
}

/// How the generated glue calls the method. Spans are the user's
/// argument types and return type, where failed checks are reported.
pub(crate) enum Shape {
    /// `(&self)` or `(&self, content: C)`, `C: FromContent`.
    Message { content: Option<Span> },
    /// `(&self, message: Message)`.
    FullBody { message: Span },
    /// `(&self, [content: C,] reply: Reply)`.
    RpcReply { content: Option<Span>, reply: Span },
    /// `(&self [, content: C]) -> T` (`T: Serialize`) or `-> Result<T, E>`.
    RpcValue { content: Option<Span>, result: bool },
    /// `([&self,] ctx: Context<Self>)`.
    Context { ctx: Span },
}

/// Why a method's arguments fit no shape of a form.
pub(crate) enum Misfit {
    /// The form's one argument (`message`, `ctx`) is missing.
    Missing,
    /// More arguments than the form takes; `extra` is the second one.
    TooMany { extra: Box<PatType> },
}

/// One entry of the dispatch table: a route that passed the checks.
pub(crate) struct Entry<'a> {
    pub(crate) handler: &'a Handler,
    pub(crate) attr: &'a HandlerAttr,
    pub(crate) shape: &'a Shape,
}

/// The dispatch table, checked.
pub(crate) struct Table<'a> {
    pub(crate) self_ty: &'a Type,
    pub(crate) entries: Vec<Entry<'a>>,
}

impl Processor {
    /// Reads `item`, taking the handler attributes off its items.
    pub(crate) fn from_item(item: &mut ItemImpl) -> Processor {
        let mut marked = Vec::new();
        for impl_item in &mut item.items {
            let attrs = match impl_item {
                ImplItem::Fn(method) => take_handler_attrs(&mut method.attrs),
                ImplItem::Const(c) => take_handler_attrs(&mut c.attrs),
                ImplItem::Type(t) => take_handler_attrs(&mut t.attrs),
                ImplItem::Macro(m) => take_handler_attrs(&mut m.attrs),
                _ => Vec::new(),
            };
            if attrs.is_empty() {
                continue;
            }
            marked.push(match impl_item {
                ImplItem::Fn(method) => Marked::Method(Box::new(Handler::new(&method.sig, attrs))),
                _ => Marked::NotAMethod(attrs),
            });
        }
        Processor {
            self_ty: (*item.self_ty).clone(),
            trait_path: item.trait_.as_ref().map(|(_, path, _)| path.clone()),
            generics: item.generics.clone(),
            marked,
        }
    }
}

fn take_handler_attrs(attrs: &mut Vec<Attribute>) -> Vec<(Form, Attribute)> {
    let mut taken = Vec::new();
    attrs.retain(|attr| match Form::of(attr) {
        Some(form) => {
            taken.push((form, attr.clone()));
            false
        }
        None => true,
    });
    taken
}

impl Handler {
    fn new(sig: &Signature, attrs: Vec<(Form, Attribute)>) -> Handler {
        let args: Vec<PatType> = sig
            .inputs
            .iter()
            .filter_map(|arg| match arg {
                FnArg::Typed(arg) => Some(arg.clone()),
                FnArg::Receiver(_) => None,
            })
            .collect();
        let mut handler = Handler {
            sig: sig.clone(),
            args,
            ret: match &sig.output {
                ReturnType::Type(_, ty) => ty.span(),
                ReturnType::Default => sig.ident.span(),
            },
            ret_is_result: returns_result(&sig.output),
            routes: Vec::new(),
        };
        handler.routes = attrs
            .into_iter()
            .map(|(form, attr)| Route {
                form,
                parsed: HandlerAttr::parse(form, &attr),
                shape: handler.shape(form),
            })
            .collect();
        handler
    }

    /// Whether it has a receiver (`&self`, once checked).
    pub(crate) fn has_self(&self) -> bool {
        self.sig.receiver().is_some()
    }

    /// Whether it is an RPC handler of the reply form: its last
    /// argument's type is written `Reply` (by last path segment).
    pub(crate) fn replies_itself(&self) -> bool {
        self.args
            .last()
            .is_some_and(|arg| last_segment_is(&arg.ty, "Reply"))
    }

    /// The `T` of a first argument written `Params<T>` (by last path
    /// segment): the type the parameters are decoded into, for documents.
    pub(crate) fn params_type(&self) -> Option<&Type> {
        let Type::Path(path) = &*self.args.first()?.ty else {
            return None;
        };
        let last = path.path.segments.last()?;
        if last.ident != "Params" {
            return None;
        }
        match &last.arguments {
            syn::PathArguments::AngleBracketed(args) if args.args.len() == 1 => {
                match args.args.first()? {
                    syn::GenericArgument::Type(ty) => Some(ty),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// The call shape for `form`, from the arguments.
    fn shape(&self, form: Form) -> Result<Shape, Misfit> {
        let ty = |i: usize| self.args[i].ty.span();
        let content = self.args.first().map(|arg| arg.ty.span());
        match (form, self.args.len()) {
            (Form::Message, 0 | 1) => Ok(Shape::Message { content }),
            (Form::FullBody | Form::Context, 0) => Err(Misfit::Missing),
            (Form::FullBody, 1) => Ok(Shape::FullBody { message: ty(0) }),
            (Form::Context, 1) => Ok(Shape::Context { ctx: ty(0) }),
            (Form::Rpc, 1) if self.replies_itself() => Ok(Shape::RpcReply {
                content: None,
                reply: ty(0),
            }),
            (Form::Rpc, 2) if self.replies_itself() => Ok(Shape::RpcReply {
                content: Some(ty(0)),
                reply: ty(1),
            }),
            (Form::Rpc, 0 | 1) => Ok(Shape::RpcValue {
                content,
                result: self.ret_is_result,
            }),
            _ => Err(Misfit::TooMany {
                extra: Box::new(self.args[1].clone()),
            }),
        }
    }
}

/// Whether a handler's return type is a `Result`, read syntactically: a
/// path whose last segment is `Result` (`Result<T, E>`,
/// `std::result::Result<T, E>`, and aliases named `Result`, such as
/// `postage::Result<T>`). Other aliases are not seen through: with
/// `type Answer = Result<i64, RpcError>;`, `-> Answer` is a value, replied
/// with through `reply_value` (`T: IntoReply`, i.e. `Serialize`), not
/// `reply_result`. serde implements `Serialize` for `Result`, so when `T`
/// and `E` are both `Serialize` (`Result<i64, String>`) it compiles and
/// every call gets a success result whose value is `{"Ok": ..}` or
/// `{"Err": ..}`; otherwise (`RpcError`, most error types) it fails to
/// compile on the return type, `RpcError: Serialize` not satisfied
/// (`tests/ui/processor/fail/result_alias.rs`). `MyResult<T>` is no
/// different: its last segment is `MyResult`. The `rpc_handler` docs in
/// `lib.rs` say the same to users.
fn returns_result(output: &ReturnType) -> bool {
    matches!(output, ReturnType::Type(_, ty) if last_segment_is(ty, "Result"))
}

/// Whether `ty` is a path ending in `ident` (`Reply`, `postage::Reply`).
fn last_segment_is(ty: &Type, ident: &str) -> bool {
    match ty {
        Type::Path(path) => path.path.segments.last().is_some_and(|s| s.ident == ident),
        _ => false,
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::returns_result;

    fn result(signature: &str) -> bool {
        let sig: syn::Signature = syn::parse_str(signature).expect("a signature");
        returns_result(&sig.output)
    }

    #[test]
    fn result_is_read_by_last_path_segment() {
        assert!(result("fn f() -> Result<i64, RpcError>"));
        assert!(result("fn f() -> std::result::Result<i64, RpcError>"));
        assert!(result("fn f() -> postage::Result<()>"));
        // aliases are not seen through: these are values to reply with
        assert!(!result("fn f() -> Answer"));
        assert!(!result("fn f() -> MyResult<i64>"));
        assert!(!result("fn f() -> i64"));
        assert!(!result("fn f()"));
    }
}

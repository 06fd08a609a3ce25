//! The route table: which handlers of a table serve each (type, name).

use std::sync::Arc;

use super::Handler;
use crate::message::Category;

/// The handlers of one (type, name): every message handler in declaration
/// order, and the RPC handler, if any.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Routes {
    /// Indexes of the table's message handlers.
    pub(super) message: Arc<[usize]>,
    /// Index of the table's RPC handler.
    pub(super) rpc: Option<usize>,
}

/// The routes of each (type, name), sorted by it (a handful of strings
/// compared beats hashing them).
#[derive(Debug, Default)]
pub(super) struct RouteTable(Vec<((&'static str, &'static str), Routes)>);

impl RouteTable {
    /// The routes of a handler table. A second RPC handler for the same
    /// (type, name) is logged and never called: only the first replies.
    pub(super) fn new<P>(table: &[Handler<P>]) -> Self {
        // (type, name), message handlers, RPC handler.
        type Entry = ((&'static str, &'static str), Vec<usize>, Option<usize>);
        let mut index: Vec<Entry> = Vec::new();
        for (i, handler) in table.iter().enumerate() {
            let key = (handler.kind, handler.name);
            let at = match index.binary_search_by(|(k, _, _)| k.cmp(&key)) {
                Ok(at) => at,
                Err(at) => {
                    index.insert(at, (key, Vec::new(), None));
                    at
                }
            };
            let (_, message, rpc) = &mut index[at];
            match handler.category {
                Category::Message => message.push(i),
                Category::Rpc if rpc.is_some() => tracing::warn!(
                    kind = handler.kind,
                    name = handler.name,
                    "more than one RPC handler; only the first replies"
                ),
                Category::Rpc => *rpc = Some(i),
            }
        }
        RouteTable(
            index
                .into_iter()
                .map(|(key, message, rpc)| {
                    let message = message.into();
                    (key, Routes { message, rpc })
                })
                .collect(),
        )
    }

    /// The routes of messages of type `kind` called `name`.
    pub(super) fn get(&self, kind: &str, name: &str) -> Option<&Routes> {
        let key = (kind, name);
        let at = self.0.binary_search_by(|(k, _)| k.cmp(&key)).ok()?;
        Some(&self.0[at].1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Content;
    use crate::processor::{HandlerFuture, Reply};
    use std::sync::Arc;

    struct P;

    fn message(_: Arc<P>, _: Content) -> HandlerFuture {
        Box::pin(async { Ok(()) })
    }

    fn rpc(_: Arc<P>, _: Content, _: Reply) -> HandlerFuture {
        Box::pin(async { Ok(()) })
    }

    #[test]
    fn every_message_handler_and_the_first_rpc_handler_are_routed() {
        let table = [
            Handler::message("command", "echo", message),
            Handler::rpc("command", "echo", rpc),
            Handler::message("status", "online", message),
            Handler::message("command", "echo", message),
            Handler::rpc("command", "echo", rpc),
            Handler::rpc("command", "sum", rpc),
        ];
        let routes = RouteTable::new(&table);
        assert_eq!(
            routes.get("command", "echo"),
            Some(&Routes {
                message: vec![0, 3].into(),
                rpc: Some(1)
            })
        );
        assert_eq!(
            routes.get("command", "sum"),
            Some(&Routes {
                message: vec![].into(),
                rpc: Some(5)
            })
        );
        assert_eq!(
            routes.get("status", "online"),
            Some(&Routes {
                message: vec![2].into(),
                rpc: None
            })
        );
        // Type and name are both part of the key.
        assert_eq!(routes.get("status", "echo"), None);
        assert_eq!(routes.get("command", "online"), None);
        assert_eq!(routes.get("command", "ech"), None);
        assert!(RouteTable::new::<P>(&[]).get("command", "echo").is_none());
    }
}

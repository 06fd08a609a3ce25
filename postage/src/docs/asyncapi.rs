//! [`AsyncApi`]: an AsyncAPI 3.0.0 document of components, gathered
//! from processors' handler tables and bindings, producers' API lists,
//! and `info` answers.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::schema;
use crate::processor::{Handlers, binding_infos, handler_info};
use crate::producer::{MessageApi, ProducerSpec};
use crate::remote::{BindingInfo, HandlerInfo, Info, ParamsInfo};
use crate::topology::{Binding, Exchange};

/// The reply channel: RPC results go to each request's `reply_to`.
const REPLY_CHANNEL: &str = "postage.reply";
/// The result message's id.
const RESULT: &str = "result";

/// An AsyncAPI 3.0.0 document being gathered: each processor's bindings
/// become channels (an exchange and a routing key, with its AMQP
/// binding) and its handlers `receive` operations (RPC handlers with a
/// reply); each producer's messages become `send` operations; every
/// message's payload is the wire format's envelope, its parameters
/// described by their JSON Schema (feature `schemars`) or their Rust
/// type's name.
#[derive(Debug, Clone)]
pub struct AsyncApi {
    title: String,
    version: String,
    description: Option<String>,
    channels: BTreeMap<String, Value>,
    operations: BTreeMap<String, Value>,
    messages: BTreeMap<String, Value>,
}

impl AsyncApi {
    /// An empty document titled `title`, of version `version` (the
    /// document's, not AsyncAPI's).
    pub fn new(title: impl Into<String>, version: impl Into<String>) -> Self {
        AsyncApi {
            title: title.into(),
            version: version.into(),
            description: None,
            channels: BTreeMap::new(),
            operations: BTreeMap::new(),
            messages: BTreeMap::new(),
        }
    }

    /// Describes the document.
    #[must_use]
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// Adds a processor called `name` running the handler table of `P`
    /// with these bindings.
    #[must_use]
    pub fn processor<P: Handlers>(self, name: &str, bindings: &[Binding]) -> Self {
        let handlers: Vec<HandlerInfo> = P::handlers().iter().map(handler_info).collect();
        let bindings: Vec<BindingInfo> = bindings.iter().flat_map(binding_infos).collect();
        self.receiver(name, &handlers, &bindings)
    }

    /// Adds a running component as its `info` answer describes it.
    #[must_use]
    pub fn component(self, info: &Info) -> Self {
        let name = info.fingerprint.name.as_deref().unwrap_or("anonymous");
        self.receiver(name, &info.handlers, &info.bindings)
    }

    /// Adds a producer called `name`, of the `#[producer]` spec `S`,
    /// sending to these (exchange, key) pairs (its default pairs:
    /// `spec.default_eks()`).
    #[must_use]
    pub fn producer<S: ProducerSpec>(mut self, name: &str, eks: &[(Exchange, String)]) -> Self {
        for (exchange, key) in eks {
            let channel = self.channel(&ChannelOf::exchange(exchange, key));
            for api in S::API {
                let message = self.message_of_api(api);
                self.link(&channel, &message);
                let id = schema::id(&format!("{name}.{}.{channel}", api.sender));
                let operation = operation("send", &channel, &message, false, None);
                self.operations.insert(id, operation);
            }
        }
        self
    }

    /// The document.
    pub fn to_value(&self) -> Value {
        let mut info = json!({ "title": self.title, "version": self.version });
        if let Some(description) = &self.description {
            info["description"] = json!(description);
        }
        let mut messages: Map<String, Value> = self.messages.clone().into_iter().collect();
        let mut channels: Map<String, Value> = self.channels.clone().into_iter().collect();
        if self.operations.values().any(|op| op.get("reply").is_some()) {
            messages.insert(
                RESULT.into(),
                json!({
                    "name": "result",
                    "title": "A result: success, error or exception",
                    "payload": schema::result_payload(),
                }),
            );
            channels.insert(
                REPLY_CHANNEL.into(),
                json!({
                    "address": null,
                    "description": "The queue each RPC request names in its reply_to property.",
                    "messages": { RESULT: { "$ref": format!("#/components/messages/{RESULT}") } },
                }),
            );
        }
        json!({
            "asyncapi": "3.0.0",
            "info": info,
            "defaultContentType": "application/json",
            "channels": channels,
            "operations": self.operations,
            "components": { "messages": messages },
        })
    }

    fn receiver(mut self, name: &str, handlers: &[HandlerInfo], bindings: &[BindingInfo]) -> Self {
        for binding in bindings {
            let channel = self.channel(&ChannelOf::binding(binding));
            let queue = json!({
                "name": binding.queue,
                "durable": binding.durable,
                "exclusive": binding.exclusive,
                "autoDelete": binding.auto_delete,
            });
            for handler in handlers {
                let message = self.message(
                    &handler.kind,
                    &handler.name,
                    &handler.category,
                    handler.params.as_ref(),
                );
                self.link(&channel, &message);
                let id = schema::id(&format!("{name}.{}.{channel}", handler.handler));
                let rpc = handler.category == "rpc";
                let mut operation = operation("receive", &channel, &message, rpc, Some(&queue));
                operation["summary"] = json!(format!(
                    "{name} handles {} {} ({}) with {}",
                    handler.kind, handler.name, handler.category, handler.handler
                ));
                self.operations.insert(id, operation);
            }
        }
        self
    }

    /// The channel of an exchange and a routing key, added if new; its id.
    fn channel(&mut self, of: &ChannelOf<'_>) -> String {
        let id = schema::id(&format!("{}.{}", of.exchange, of.key));
        self.channels.entry(id.clone()).or_insert_with(|| {
            json!({
                "address": of.key,
                "description": format!(
                    "Messages published to the {} exchange {:?} with routing key {:?}.",
                    of.kind, of.exchange, of.key
                ),
                "messages": {},
                "bindings": { "amqp": {
                    "is": "routingKey",
                    "exchange": {
                        "name": of.exchange,
                        "type": of.kind,
                        "durable": of.durable,
                        "autoDelete": of.auto_delete,
                        "vhost": "/",
                    },
                    "bindingVersion": "0.3.0",
                }},
            })
        });
        id
    }

    /// Lists `message` among the messages of `channel`.
    fn link(&mut self, channel: &str, message: &str) {
        if let Some(channel) = self.channels.get_mut(channel) {
            channel["messages"][message] =
                json!({ "$ref": format!("#/components/messages/{message}") });
        }
    }

    /// The message of a producer's typed sender.
    fn message_of_api(&mut self, api: &MessageApi) -> String {
        let built_from = api
            .params
            .iter()
            .map(|p| format!("{}: {}", p.name, p.ty))
            .collect::<Vec<_>>()
            .join(", ");
        let params = ParamsInfo {
            type_name: format!("built by {}({built_from})", api.sender),
            schema: None,
        };
        self.message("command", api.name, api.category.as_str(), Some(&params))
    }

    /// The message of type `kind` called `name`, added to the components
    /// if new; its id.
    fn message(
        &mut self,
        kind: &str,
        name: &str,
        category: &str,
        params: Option<&ParamsInfo>,
    ) -> String {
        let id = schema::id(&format!("{kind}.{name}.{category}"));
        self.messages.entry(id.clone()).or_insert_with(|| {
            let payload = schema::message_payload(kind, name, category, schema::parameters(params));
            json!({
                "name": name,
                "title": format!("{kind} {name} ({category})"),
                "payload": payload,
            })
        });
        id
    }
}

/// What names a channel: an exchange (its settings) and a routing key.
struct ChannelOf<'a> {
    exchange: &'a str,
    kind: &'a str,
    durable: bool,
    auto_delete: bool,
    key: &'a str,
}

impl<'a> ChannelOf<'a> {
    fn exchange(exchange: &'a Exchange, key: &'a str) -> Self {
        ChannelOf {
            exchange: exchange.name(),
            kind: exchange.kind().as_str(),
            durable: exchange.is_durable(),
            auto_delete: exchange.is_auto_delete(),
            key,
        }
    }

    fn binding(binding: &'a BindingInfo) -> Self {
        ChannelOf {
            exchange: &binding.exchange,
            kind: &binding.exchange_type,
            durable: binding.exchange_durable,
            auto_delete: false,
            key: &binding.key,
        }
    }
}

/// An operation on `channel` with `message` (which the channel then
/// lists); with a reply to the request's `reply_to` for RPC.
fn operation(
    action: &str,
    channel: &str,
    message: &str,
    rpc: bool,
    queue: Option<&Value>,
) -> Value {
    let mut operation = json!({
        "action": action,
        "channel": { "$ref": format!("#/channels/{channel}") },
        "messages": [{ "$ref": format!("#/channels/{channel}/messages/{message}") }],
    });
    if rpc {
        operation["reply"] = json!({
            "address": { "location": "$message.header#/reply_to" },
            "channel": { "$ref": format!("#/channels/{REPLY_CHANNEL}") },
            "messages": [{ "$ref": format!("#/channels/{REPLY_CHANNEL}/messages/{RESULT}") }],
        });
    }
    if let Some(queue) = queue {
        operation["x-postage-queue"] = queue.clone();
    }
    operation
}

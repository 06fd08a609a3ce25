//! Dispatch: one delivery's way through a processor: decoded or
//! rejected, its handlers found and run (panics caught), RPC replies sent,
//! control commands obeyed, and the delivery acknowledged.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::FutureExt;
use serde_json::Value;

use super::control::ControlSenders;
use super::handler::{HandlerError, HandlerFn, HandlerFuture, HandlerResult};
use super::reply::{ReplySlot, ReplyTarget};
use super::routes::{RouteTable, Routes};
use super::{Context, Control, Handler, Handlers, Reply, Stop};
use crate::consumer::Delivery;
use crate::encoding::{DecodeError, Encoder};
use crate::error::Chain;
use crate::fingerprint::Fingerprint;
use crate::message::{Category, Message, Outcome, WireFingerprint};
use crate::transport::Channel;

pub(super) struct Core<P: 'static> {
    pub(super) handlers: Arc<P>,
    pub(super) table: &'static [Handler<P>],
    pub(super) routes: RouteTable,
    pub(super) reply_channel: Channel,
    pub(super) fingerprint: Arc<WireFingerprint>,
    pub(super) encoder: Arc<dyn Encoder>,
    pub(super) control: Control,
    pub(super) quit_command: bool,
    pub(super) restart_command: bool,
    pub(super) control_senders: ControlSenders,
    pub(super) max_deliveries: u64,
}

impl<P: Handlers> Core<P> {
    pub(super) async fn process(&self, mut delivery: Delivery) {
        let message = match delivery.take_message() {
            Ok(message) => message,
            Err(reason) => {
                tracing::warn!(
                    queue = delivery.queue(),
                    routing_key = delivery.routing_key(),
                    sender = %sender_of_undecodable(delivery.body(), &reason),
                    reason = %Chain(&reason),
                    "rejecting a message that cannot be decoded"
                );
                finish(&delivery, false).await;
                return;
            }
        };
        if let Some(count) = delivery.delivery_count()
            && count >= self.max_deliveries
        {
            tracing::warn!(
                queue = delivery.queue(),
                kind = %message.kind,
                name = %message.name,
                sender = %message.sender(),
                deliveries = count,
                "rejecting a message delivered too many times"
            );
            finish(&delivery, false).await;
            return;
        }
        match message.category {
            Category::Rpc => self.process_rpc(delivery, message).await,
            Category::Message => self.process_message(delivery, message).await,
        }
    }

    async fn process_message(&self, delivery: Delivery, message: Message) {
        let handlers = self
            .routes(&message)
            .map_or(&[][..], |routes| routes.message.as_slice());
        if handlers.is_empty() && message.kind == "command" {
            let stop = match message.name.as_str() {
                "quit" if self.quit_command => Some(Stop::Quit),
                "restart" if self.restart_command => Some(Stop::Restart),
                _ => None,
            };
            if let Some(stop) = stop {
                let sender = message.sender();
                if self.control_senders.allow(&sender) {
                    tracing::info!(command = %message.name, %sender, "control command received");
                    finish(&delivery, true).await;
                    self.control.request(stop);
                } else {
                    tracing::warn!(command = %message.name, %sender, "control command from a sender not allowed; ignored");
                    finish(&delivery, true).await;
                }
                return;
            }
        }
        if handlers.is_empty() && message.is_result() {
            tracing::warn!(
                queue = delivery.queue(),
                sender = %message.sender(),
                "rejecting a result message where commands are expected"
            );
            finish(&delivery, false).await;
            return;
        }
        if handlers.is_empty() {
            tracing::debug!(kind = %message.kind, name = %message.name, "no handler; message dropped");
            finish(&delivery, true).await;
            return;
        }
        let last = handlers.len() - 1;
        let mut message = Some(message);
        for (position, &i) in handlers.iter().enumerate() {
            let handler = &self.table[i];
            let Some(current) = (if position == last {
                message.take()
            } else {
                message.clone()
            }) else {
                break;
            };
            let future = match &handler.call {
                HandlerFn::Message(f) => call(|| f(self.handlers.clone(), current.content)),
                HandlerFn::FullBody(f) => call(|| f(self.handlers.clone(), current)),
                HandlerFn::Context(f) => {
                    let context = self.context(&delivery, current, None);
                    call(|| f(context))
                }
                HandlerFn::Rpc(_) => continue,
            };
            if let Err(error) = run_handler(future).await {
                tracing::error!(handler = handler.label, kind = handler.kind, name = handler.name, %error, "handler failed");
            }
        }
        finish(&delivery, true).await;
    }

    async fn process_rpc(&self, delivery: Delivery, mut message: Message) {
        let Some(reply_to) = delivery.reply_to().map(str::to_owned) else {
            tracing::warn!(
                name = %message.name,
                sender = %message.sender(),
                "rejecting an RPC request without reply_to"
            );
            finish(&delivery, false).await;
            return;
        };
        let target = ReplyTarget {
            channel: self.reply_channel.clone(),
            reply_to,
            correlation_id: delivery.correlation_id().map(str::to_owned),
            fingerprint: self.fingerprint.clone(),
            encoder: self.encoder.clone(),
        };
        let Some(i) = self.routes(&message).and_then(|routes| routes.rpc) else {
            tracing::debug!(kind = %message.kind, name = %message.name, "no RPC handler; replying with an error");
            let text = format!("no handler for RPC {} {:?}", message.kind, message.name);
            target.answer(Outcome::Error { message: text }).await;
            finish(&delivery, true).await;
            return;
        };
        let handler = &self.table[i];
        // An RPC handler gets the content alone: the name moves to the slot.
        let command = match handler.call {
            HandlerFn::Rpc(_) => std::mem::take(&mut message.name),
            _ => message.name.clone(),
        };
        let slot = Arc::new(ReplySlot {
            target: Mutex::new(Some(target)),
            handler_done: AtomicBool::new(false),
            command,
        });
        let reply = Reply { slot: slot.clone() };
        let future = match &handler.call {
            HandlerFn::Rpc(f) => call(|| f(self.handlers.clone(), message.content, reply)),
            HandlerFn::Context(f) => {
                let context = self.context(&delivery, message, Some(reply));
                call(|| f(context))
            }
            HandlerFn::Message(_) | HandlerFn::FullBody(_) => {
                drop(reply);
                Box::pin(async { Ok(()) })
            }
        };
        let outcome = run_handler(future).await;
        slot.handler_done.store(true, Ordering::Release);
        if let Err(error) = &outcome {
            tracing::error!(handler = handler.label, kind = handler.kind, name = handler.name, %error, "RPC handler failed");
        }
        // Only the processor's reference left: the handler dropped its
        // reply; otherwise someone still holds it and answers later.
        if Arc::strong_count(&slot) == 1
            && let Some(target) = slot.take()
        {
            let answer = match outcome {
                Ok(()) => Outcome::Error {
                    message: format!(
                        "the handler of {:?} finished without replying",
                        slot.command
                    ),
                },
                Err(error) => Outcome::Exception {
                    name: error.name,
                    message: error.message,
                },
            };
            target.answer(answer).await;
        }
        finish(&delivery, true).await;
    }

    fn routes(&self, message: &Message) -> Option<&Routes> {
        self.routes.get(&message.kind, &message.name)
    }

    fn context(&self, delivery: &Delivery, message: Message, reply: Option<Reply>) -> Context<P> {
        Context {
            processor: self.handlers.clone(),
            message,
            reply,
            control: self.control.clone(),
            queue: delivery.queue().to_owned(),
            routing_key: delivery.routing_key().to_owned(),
            redelivered: delivery.redelivered(),
        }
    }
}

/// The sender of a body that is not a valid message, when it is at least a
/// JSON object with a fingerprint; `unknown` otherwise.
fn sender_of_undecodable(body: &[u8], reason: &DecodeError) -> String {
    if matches!(reason, DecodeError::TooLarge { .. }) {
        return "unknown".to_owned();
    }
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|value| match value.get("fingerprint") {
            Some(Value::Object(map)) => Some(Fingerprint::from_map(map).to_string()),
            _ => None,
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Calls a handler entry, turning a panic in the call itself into a
/// failed future.
fn call(f: impl FnOnce() -> HandlerFuture) -> HandlerFuture {
    match std::panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(future) => future,
        Err(panic) => {
            let error = HandlerError::panic(&*panic);
            Box::pin(async move { Err(error) })
        }
    }
}

async fn run_handler(future: HandlerFuture) -> HandlerResult {
    match AssertUnwindSafe(future).catch_unwind().await {
        Ok(result) => result,
        Err(panic) => Err(HandlerError::panic(&*panic)),
    }
}

async fn finish(delivery: &Delivery, ack: bool) {
    let result = if ack {
        delivery.ack().await
    } else {
        delivery.reject(false).await
    };
    if let Err(error) = result {
        tracing::warn!(error = %error.report(), "could not acknowledge a delivery; the broker will redeliver it");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sender_of_an_undecodable_body_is_read_when_it_can_be() {
        let body = br#"{"type": "command", "fingerprint": {"name": "bad_sender", "type": "application", "pid": 42, "host": "h"}}"#;
        let reason = DecodeError::NotAnObject;
        let sender = sender_of_undecodable(body, &reason);
        assert!(sender.contains("bad_sender"), "{sender}");
        assert_eq!(
            sender,
            Fingerprint::from_map(
                serde_json::from_slice::<Value>(body).unwrap()["fingerprint"]
                    .as_object()
                    .unwrap()
            )
            .to_string()
        );
        for body in [
            &b"not json"[..],
            b"[1, 2]",
            br#"{"fingerprint": "text"}"#,
            b"{}",
        ] {
            assert_eq!(sender_of_undecodable(body, &reason), "unknown");
        }
        // A body too large is not parsed at all.
        let too_large = DecodeError::TooLarge {
            size: body.len(),
            limit: 1,
        };
        assert_eq!(sender_of_undecodable(body, &too_large), "unknown");
    }

    #[tokio::test]
    async fn a_panicking_handler_is_a_failed_handler() {
        let panics_when_called = call(|| panic!("at the call"));
        assert_eq!(
            run_handler(panics_when_called).await,
            Err(HandlerError::new("Panic", "at the call"))
        );
        let panics_when_run: HandlerFuture = Box::pin(async { panic!("while running") });
        assert_eq!(
            run_handler(call(|| panics_when_run)).await,
            Err(HandlerError::new("Panic", "while running"))
        );
        let fine: HandlerFuture = Box::pin(async { Ok(()) });
        assert_eq!(run_handler(call(|| fine)).await, Ok(()));
    }
}

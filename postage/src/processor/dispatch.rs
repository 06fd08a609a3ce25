//! Dispatch: one delivery's way through a processor: decoded or
//! rejected, its handlers found and run (panics caught), RPC replies sent,
//! control commands obeyed, and the delivery acknowledged.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use std::time::{Instant, SystemTime};

use serde_json::Value;
use tracing::{Instrument, Span};

use super::acks::{Acks, Holds};
use super::control::ControlAccess;
use super::failure::{Failure, Failures, Settle, Settled};
use super::handler::{HandlerError, HandlerFn, HandlerFuture, HandlerResult};
use super::incoming::{Incoming, Route};
use super::reply::{ReplySlot, ReplyTarget};
use super::routes::{RouteTable, Routes};
use super::running::Running;
use super::stack::{Dispatch, HandlerService, Holding, through};
use super::unhandled::Unhandled;
use super::{Context, Control, Handler, Handlers, Reply, Stop};
use crate::consumer::Delivery;
use crate::encoding::{DecodeError, Encoder};
use crate::error::Chain;
use crate::fingerprint::Fingerprint;
use crate::flow::Breaker;
use crate::message::{Category, Message, Outcome, WireFingerprint};
use crate::telemetry::{self, About, ProcessorInstruments, Received, Rejection, span};
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
    pub(super) control_access: ControlAccess,
    pub(super) max_deliveries: u64,
    /// The processor's name in spans and metrics (its fingerprint's).
    pub(super) name: String,
    pub(super) instruments: ProcessorInstruments,
    /// What becomes of messages whose handlers failed.
    pub(super) failures: Failures,
    /// Acknowledgements, coalesced.
    pub(super) acks: Acks,
    /// The longest a handler may run.
    pub(super) handler_timeout: Option<std::time::Duration>,
    /// What becomes of messages no handler takes.
    pub(super) unhandled: Unhandled,
    /// The handlers' names, by index in the table.
    pub(super) labels: Arc<[&'static str]>,
    /// The layers of each handler that has some, by index in the table
    /// (empty when none has).
    pub(super) handler_services: Vec<Option<HandlerService>>,
    /// The names of the processor's layers, outermost first, and of each
    /// handler's.
    pub(super) layer_names: LayerNames,
    /// The periodic jobs' status, when it has jobs.
    pub(super) jobs: Option<Arc<Mutex<Vec<crate::jobs::JobStatus>>>>,
    /// The kill switch's counts, when it has one.
    pub(super) kill_switch: Option<Arc<Breaker>>,
}

/// The names of a processor's layers, for `info`.
#[derive(Debug, Default)]
pub(super) struct LayerNames {
    /// Around all handlers, outermost first.
    pub(super) processor: Vec<String>,
    /// Around one handler: (index in the table, name), outermost first.
    pub(super) handlers: Vec<(usize, String)>,
}

impl<P: Handlers> Core<P> {
    /// Processes one delivery within its `process` span, counted by the
    /// processor's metrics.
    pub(super) async fn process<D: Dispatch<P>>(&self, stack: &D, mut delivery: Delivery) {
        let _in_flight = self.instruments.received();
        let span = span::process(&Received {
            exchange: delivery.exchange(),
            routing_key: delivery.routing_key(),
            queue: delivery.queue(),
            correlation_id: delivery.correlation_id(),
            body_size: delivery.body().len(),
            delivery_tag: delivery.delivery_tag(),
            processor: &self.name,
        });
        let message = delivery.take_message();
        if span.is_disabled() {
            self.dispatch(stack, delivery, message, &span).await;
        } else {
            telemetry::continue_trace(&span, |key| delivery.header_text(key));
            // Before the span is entered: OpenTelemetry fixes a span's kind
            // (server for an RPC request) when it starts.
            match &message {
                Ok(message) => {
                    let about = About {
                        kind: &message.kind,
                        name: &message.name,
                        category: message.category.as_str(),
                    };
                    let sender = message.fingerprint.get("name").and_then(Value::as_str);
                    span::decoded(&span, Some((&about, sender)));
                }
                Err(_) => span::decoded(&span, None),
            }
            self.dispatch(stack, delivery, message, &span)
                .instrument(span.clone())
                .await;
        }
    }

    async fn dispatch<D: Dispatch<P>>(
        &self,
        stack: &D,
        delivery: Delivery,
        message: Result<Message, DecodeError>,
        span: &Span,
    ) {
        let message = match message {
            Ok(message) => message,
            Err(reason) => {
                tracing::warn!(
                    queue = delivery.queue(),
                    routing_key = delivery.routing_key(),
                    sender = %sender_of_undecodable(delivery.body(), &reason),
                    reason = %Chain(&reason),
                    "rejecting a message that cannot be decoded"
                );
                let why = match reason {
                    DecodeError::TooLarge { .. } => Rejection::TooLarge,
                    DecodeError::ContentType { .. } => Rejection::ContentType,
                    _ => Rejection::Undecodable,
                };
                self.rejected(span, why);
                self.settle(delivery, Settle::DeadLetter).await;
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
            self.rejected(span, Rejection::DeliveryLimit);
            self.settle(delivery, Settle::DeadLetter).await;
            return;
        }
        match message.category {
            Category::Rpc => self.process_rpc(stack, delivery, message, span).await,
            Category::Message => self.process_message(stack, delivery, message, span).await,
        }
    }

    async fn process_message<D: Dispatch<P>>(
        &self,
        stack: &D,
        delivery: Delivery,
        message: Message,
        span: &Span,
    ) {
        let handlers = self
            .routes(&message)
            .map(|routes| routes.message.clone())
            .unwrap_or_default();
        if handlers.is_empty() && message.kind == "command" {
            let stop = match message.name.as_str() {
                "quit" if self.quit_command => Some(Stop::Quit),
                "restart" if self.restart_command => Some(Stop::Restart),
                _ => None,
            };
            if let Some(stop) = stop {
                let sender = message.sender();
                match self.control_access.check(&sender, delivery.user_id()) {
                    Ok(()) => {
                        tracing::info!(command = %message.name, %sender, "control command received");
                        self.handled(span);
                        self.settle(delivery, Settle::Ack).await;
                        self.control.request(stop);
                    }
                    Err(reason) => {
                        tracing::warn!(command = %message.name, %sender, user_id = delivery.user_id(), reason, "control command not allowed; ignored");
                        self.rejected(span, Rejection::SenderNotAllowed);
                        self.settle(delivery, Settle::Ack).await;
                    }
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
            self.rejected(span, Rejection::UnexpectedResult);
            self.settle(delivery, Settle::DeadLetter).await;
            return;
        }
        if handlers.is_empty() {
            let settle = self.unhandled.settle(&message, delivery.queue());
            self.rejected(span, Rejection::NoHandler);
            self.settle(delivery, settle).await;
            return;
        }
        let first = handlers[0];
        let route = Route::Message(handlers);
        let delivery = D::hold(delivery);
        let outcome = stack.run(self, &delivery, None, route, message, None).await;
        let Err(error) = outcome else {
            self.handled(span);
            self.acks.settle(delivery, Settle::Ack).await;
            return;
        };
        // A refusal by a layer goes the way of the first handler's policy.
        let handler = &self.table[error.handler.unwrap_or(first)];
        self.failed(span);
        let failure = Failure {
            policy: handler.on_error.unwrap_or(self.failures.default),
            handler: handler_label(handler),
            error: &error,
        };
        let (settled, settle) = self.failures.settle(delivery.held(), &failure).await;
        let (label, kind, name) = (handler.label, handler.kind, handler.name);
        match settled {
            // Tried again: said at WARN; the last failure at ERROR.
            Settled::Retried => {
                self.instruments.retried();
                tracing::warn!(handler = label, kind, name, %error, "handler failed; the message is tried again");
            }
            Settled::Parked => {
                self.instruments.parked();
                tracing::error!(handler = label, kind, name, %error, "handler failed; the message is parked");
            }
            Settled::Other => {
                tracing::error!(handler = label, kind, name, %error, "handler failed");
            }
        }
        self.acks.settle(delivery, settle).await;
    }

    async fn process_rpc<D: Dispatch<P>>(
        &self,
        stack: &D,
        delivery: Delivery,
        mut message: Message,
        span: &Span,
    ) {
        let Some(reply_to) = delivery.reply_to().map(str::to_owned) else {
            tracing::warn!(
                name = %message.name,
                sender = %message.sender(),
                "rejecting an RPC request without reply_to"
            );
            self.rejected(span, Rejection::NoReplyTo);
            self.settle(delivery, Settle::DeadLetter).await;
            return;
        };
        let deadline = match delivery.deadline() {
            None => None,
            Some(at) => match at.duration_since(SystemTime::now()) {
                Ok(left) if !left.is_zero() => Some(Instant::now() + left),
                _ => {
                    tracing::warn!(
                        name = %message.name,
                        sender = %message.sender(),
                        "dropping an RPC request that arrived after its caller's deadline"
                    );
                    self.rejected(span, Rejection::Expired);
                    self.settle(delivery, Settle::Ack).await;
                    return;
                }
            },
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
            self.rejected(span, Rejection::NoHandler);
            let text = format!("no handler for RPC {} {:?}", message.kind, message.name);
            target.answer(Outcome::Error { message: text }).await;
            self.settle(delivery, Settle::Ack).await;
            return;
        };
        let handler = &self.table[i];
        // An RPC handler gets the content alone: the name moves to the
        // slot, unless layers are to see the whole message.
        let layered = D::LAYERED || matches!(self.handler_services.get(i), Some(Some(_)));
        let command = match handler.call {
            HandlerFn::Rpc(_) if !layered => std::mem::take(&mut message.name),
            _ => message.name.clone(),
        };
        let slot = Arc::new(ReplySlot {
            target: Mutex::new(Some(target)),
            handler_done: AtomicBool::new(false),
            command,
            deadline,
        });
        let reply = Reply { slot: slot.clone() };
        let delivery = D::hold(delivery);
        let running = stack.run(
            self,
            &delivery,
            deadline,
            Route::One(i),
            message,
            Some(reply),
        );
        let outcome = match deadline {
            None => running.await,
            Some(at) => {
                match tokio::time::timeout_at(at.into(), running).await {
                    Ok(outcome) => outcome,
                    Err(_) => {
                        // The caller gave up: no reply, now or later.
                        drop(slot.take());
                        slot.handler_done.store(true, Ordering::Release);
                        tracing::warn!(
                            handler = handler.label,
                            kind = handler.kind,
                            name = handler.name,
                            "RPC handler cancelled at its caller's deadline; no reply sent"
                        );
                        self.instruments.failed();
                        span::outcome(span, "cancelled", Some("DeadlineExceeded"));
                        self.acks.settle(delivery, Settle::Ack).await;
                        return;
                    }
                }
            }
        };
        slot.handler_done.store(true, Ordering::Release);
        if let Err(error) = &outcome {
            tracing::error!(handler = handler.label, kind = handler.kind, name = handler.name, %error, "RPC handler failed");
            self.failed(span);
        } else {
            self.handled(span);
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
        self.acks.settle(delivery, Settle::Ack).await;
    }

    /// Runs the handlers of `route`, each under its own layers when it has
    /// some. Every handler of a message runs; the first failure decides
    /// (the later ones are said only). The reply, if any, goes to the last
    /// (an RPC route has one handler).
    pub(super) async fn run_route<H: Holding>(
        &self,
        delivery: &H,
        deadline: Option<Instant>,
        route: Route,
        message: Message,
        reply: Option<Reply>,
    ) -> HandlerResult {
        match *route.indices() {
            // One handler (every RPC, most messages).
            [index] => {
                self.run_one(delivery, deadline, index, message, reply)
                    .await
            }
            // Boxed: the route's future stays the size of one handler's.
            _ => Box::pin(self.run_each(delivery, deadline, route, message, reply)).await,
        }
    }

    /// Runs the handlers of a message with several, in order.
    async fn run_each<H: Holding>(
        &self,
        delivery: &H,
        deadline: Option<Instant>,
        route: Route,
        message: Message,
        mut reply: Option<Reply>,
    ) -> HandlerResult {
        let indices = route.indices();
        let last = indices.len().saturating_sub(1);
        let mut message = Some(message);
        let mut failed: Option<HandlerError> = None;
        for (position, &index) in indices.iter().enumerate() {
            let (current, reply) = if position == last {
                (message.take(), reply.take())
            } else {
                (message.clone(), None)
            };
            let Some(current) = current else { break };
            let outcome = self
                .run_one(delivery, deadline, index, current, reply)
                .await;
            if let Err(error) = outcome {
                if failed.is_some() {
                    let handler = &self.table[index];
                    tracing::warn!(handler = handler.label, kind = handler.kind, name = handler.name, %error, "handler failed");
                }
                failed.get_or_insert(error);
            }
        }
        failed.map_or(Ok(()), Err)
    }

    /// Runs handler `index`, under its own layers when it has some (and
    /// the delivery is shared with layers).
    async fn run_one<H: Holding>(
        &self,
        delivery: &H,
        deadline: Option<Instant>,
        index: usize,
        message: Message,
        reply: Option<Reply>,
    ) -> HandlerResult {
        let layered = delivery
            .shared()
            .and_then(|shared| Some((shared, self.own_layers(index)?)));
        if let Some((shared, service)) = layered {
            let incoming = Incoming {
                message,
                delivery: shared.clone(),
                deadline,
                reply,
                route: Route::One(index),
                labels: self.labels.clone(),
            };
            // Boxed: the direct call's future stays small.
            return Box::pin(through(service, incoming, index)).await;
        }
        match self.handler_future(delivery.held(), deadline, index, message, reply) {
            Some(future) => Running::new(self, index, future).await,
            None => Ok(()),
        }
    }

    /// The layers of handler `index`, when it has some of its own.
    fn own_layers(&self, index: usize) -> Option<&HandlerService> {
        self.handler_services.get(index).and_then(Option::as_ref)
    }

    /// Whether handler `index` has layers of its own.
    pub(super) fn has_own_layers(&self, index: usize) -> bool {
        self.own_layers(index).is_some()
    }

    /// The future of handler `index` on `message`; `None` for an entry of
    /// the other category (nothing to run: a reply dropped unsent is
    /// answered by the processor).
    #[inline]
    pub(super) fn handler_future(
        &self,
        delivery: &Delivery,
        deadline: Option<Instant>,
        index: usize,
        message: Message,
        reply: Option<Reply>,
    ) -> Option<HandlerFuture> {
        let future = match (&self.table[index].call, reply) {
            (HandlerFn::Message(f), None) => call(|| f(self.handlers.clone(), message.content)),
            (HandlerFn::FullBody(f), None) => call(|| f(self.handlers.clone(), message)),
            (HandlerFn::Rpc(f), Some(reply)) => {
                call(|| f(self.handlers.clone(), message.content, reply))
            }
            (HandlerFn::Context(f), reply) => {
                let context = self.context(delivery, deadline, message, reply);
                call(|| f(context))
            }
            _ => return None,
        };
        Some(future)
    }

    /// Settles a delivery no handler ran for.
    async fn settle(&self, delivery: Delivery, settle: Settle) {
        self.acks.settle(delivery, settle).await;
    }

    fn handled(&self, span: &Span) {
        self.instruments.handled();
        if let Some(breaker) = &self.kill_switch {
            breaker.record(true);
        }
        span::outcome(span, "handled", None);
    }

    fn failed(&self, span: &Span) {
        self.instruments.failed();
        if let Some(breaker) = &self.kill_switch {
            breaker.record(false);
        }
        span::outcome(span, "failed", Some("HandlerError"));
    }

    fn rejected(&self, span: &Span, why: Rejection) {
        self.instruments.rejected(why);
        span::outcome(span, "rejected", Some(why.label()));
    }

    fn routes(&self, message: &Message) -> Option<&Routes> {
        self.routes.get(&message.kind, &message.name)
    }

    fn context(
        &self,
        delivery: &Delivery,
        deadline: Option<Instant>,
        message: Message,
        reply: Option<Reply>,
    ) -> Context<P> {
        Context {
            processor: self.handlers.clone(),
            message,
            reply,
            control: self.control.clone(),
            queue: delivery.queue().to_owned(),
            routing_key: delivery.routing_key().to_owned(),
            redelivered: delivery.redelivered(),
            deadline,
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

/// The name a handler goes by in spans and metrics: its method's, or
/// its message's for a table written by hand without labels.
pub(super) fn handler_label<P>(handler: &Handler<P>) -> &'static str {
    if handler.label.is_empty() {
        handler.name
    } else {
        handler.label
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
    async fn a_handler_that_panics_when_called_is_a_failed_handler() {
        let panics_when_called = call(|| panic!("at the call"));
        assert_eq!(
            panics_when_called.await,
            Err(HandlerError::new("Panic", "at the call"))
        );
        let fine = call(|| Box::pin(async { Ok(()) }));
        assert_eq!(fine.await, Ok(()));
    }
}

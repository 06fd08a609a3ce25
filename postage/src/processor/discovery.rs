//! The processor's side of remote control: a consumer of its own on the
//! control exchange, answering `ping` and `info` and obeying `quit` and
//! `restart` sent to the components it is among (see
//! [`remote`](crate::remote)).

use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};
use tokio::task::JoinHandle;

use super::Handlers;
use super::Stop;
use super::dispatch::{Core, handler_label};
use super::reply::ReplyTarget;
use crate::consumer::{Consumer, ConsumerHandle, Delivery};
use crate::error::Result;
use crate::fingerprint::Fingerprint;
use crate::message::{Category, Message, Outcome};
use crate::remote::{
    BindingInfo, CONTROL_EXCHANGE, ControlRequest, Counters, HandlerInfo, INFO, Info, JobInfo,
    PAUSE, PING, ParamsInfo, Pong, QUIT, RESTART, RESUME,
};
use crate::topology::{Binding, Queue};
use crate::transport::Connection;

/// A processor's control consumer, connected, not yet answering.
pub(super) struct Discovery {
    consumer: Consumer,
    fingerprint: Fingerprint,
    started: Instant,
    bindings: Vec<BindingInfo>,
}

/// The control consumer at work; [`stop`](Serving::stop) it with its
/// processor.
pub(super) struct Serving {
    handle: ConsumerHandle,
    task: JoinHandle<()>,
}

impl Discovery {
    /// Binds a queue the broker names to the control exchange and
    /// consumes it.
    pub(super) async fn connect(
        connection: &Connection,
        name: &str,
        fingerprint: &Fingerprint,
        bindings: &[Binding],
    ) -> Result<Self> {
        let consumer = Consumer::builder()
            .bind(CONTROL_EXCHANGE, [(Queue::server_named(), "")])
            .prefetch(4)
            .name(format!("{name}.control"))
            // Control commands are few and never pile up: no watchdog,
            // and no passive declaration every period per processor.
            .watchdog(std::time::Duration::ZERO)
            .connect(connection)
            .await?;
        Ok(Discovery {
            consumer,
            fingerprint: fingerprint.clone(),
            started: Instant::now(),
            bindings: bindings.iter().flat_map(binding_infos).collect(),
        })
    }

    /// Answers control commands in a task of its own until stopped.
    pub(super) fn serve<P: Handlers>(
        self,
        core: Arc<Core<P>>,
        consumer: ConsumerHandle,
        concurrency: usize,
    ) -> Serving {
        let handle = self.consumer.handle();
        let answering = Answering {
            handlers: {
                let mut handlers: Vec<HandlerInfo> = core.table.iter().map(handler_info).collect();
                for (index, name) in &core.layer_names.handlers {
                    if let Some(handler) = handlers.get_mut(*index) {
                        handler.layers.push(name.clone());
                    }
                }
                handlers
            },
            core,
            consumer,
            concurrency,
            discovery: self,
        };
        Serving {
            handle,
            task: tokio::spawn(answering.run()),
        }
    }
}

impl Serving {
    /// Stops consuming and waits for the answers under way.
    pub(super) async fn stop(self) {
        self.handle.stop().await;
        if let Err(error) = self.task.await {
            tracing::warn!(%error, "the control consumer's task failed");
        }
    }
}

struct Answering<P: 'static> {
    discovery: Discovery,
    core: Arc<Core<P>>,
    /// The processor's own consumer, for its health.
    consumer: ConsumerHandle,
    concurrency: usize,
    handlers: Vec<HandlerInfo>,
}

impl<P: Handlers> Answering<P> {
    async fn run(mut self) {
        while let Some(delivery) = self.discovery.consumer.next().await {
            let stop = self.answer(&delivery).await;
            if let Err(error) = delivery.ack().await {
                tracing::debug!(error = %error.report(), "could not acknowledge a control command");
            }
            if let Some(stop) = stop {
                self.core.control.request(stop);
            }
        }
        self.discovery.consumer.close().await;
    }

    /// Answers one control command if it is for this processor; the stop
    /// it asks for, if any.
    async fn answer(&self, delivery: &Delivery) -> Option<Stop> {
        let Ok(message) = delivery.message() else {
            tracing::debug!("not a Postage message on the control exchange; ignored");
            return None;
        };
        let reply_to = delivery.reply_to()?;
        if message.category != Category::Rpc || message.kind != "command" {
            return None;
        }
        let request: ControlRequest = message
            .content
            .parameters_as()
            .unwrap_or_else(|_| ControlRequest::default());
        if !request.destination.selects(&self.discovery.fingerprint) {
            return None;
        }
        let (mut outcome, action) = self.outcome(message, delivery.user_id());
        let stop = match action {
            Some(Action::Stop(stop)) => Some(stop),
            Some(action @ (Action::Pause | Action::Resume)) => {
                let done = match action {
                    Action::Pause => self.consumer.pause().await,
                    _ => self.consumer.resume().await,
                };
                match done {
                    Ok(done) => set_done(&mut outcome, done),
                    Err(error) => {
                        let message = error.report().to_string();
                        tracing::warn!(%message, "pause or resume refused");
                        outcome = Outcome::Error { message };
                    }
                }
                None
            }
            None => None,
        };
        let target = ReplyTarget {
            channel: self.core.reply_channel.clone(),
            reply_to: reply_to.to_owned(),
            correlation_id: delivery.correlation_id().map(str::to_owned),
            fingerprint: self.core.fingerprint.clone(),
            encoder: self.core.encoder.clone(),
        };
        target.answer(outcome).await;
        stop
    }

    fn outcome(&self, message: &Message, user_id: Option<&str>) -> (Outcome, Option<Action>) {
        let success = |value: Value| Outcome::Success {
            value,
            message: String::new(),
        };
        let core = &*self.core;
        let (stop, enabled) = match message.name.as_str() {
            PING => return (success(to_value(&self.pong())), None),
            INFO => return (success(to_value(&self.info())), None),
            QUIT => (Action::Stop(Stop::Quit), core.quit_command),
            RESTART => (Action::Stop(Stop::Restart), core.restart_command),
            PAUSE => (Action::Pause, true),
            RESUME => (Action::Resume, true),
            other => {
                let message = format!("unknown control command {other:?}");
                return (Outcome::Error { message }, None);
            }
        };
        let sender = message.sender();
        let command = &message.name;
        if !enabled {
            let message = format!("{command} is switched off on {}", core.name);
            return (Outcome::Error { message }, None);
        }
        if let Err(reason) = core.control_access.check(&sender, user_id) {
            tracing::warn!(%command, %sender, user_id, reason, "control command not allowed; refused");
            let message = format!("{command} refused: {reason}");
            return (Outcome::Error { message }, None);
        }
        tracing::info!(%command, %sender, "control command received");
        let value = json!({ "command": command, "fingerprint": self.discovery.fingerprint });
        (success(value), Some(stop))
    }

    fn pong(&self) -> Pong {
        Pong {
            fingerprint: self.discovery.fingerprint.clone(),
            uptime_secs: self.discovery.started.elapsed().as_secs_f64(),
            postage: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }

    fn jobs(&self) -> Vec<JobInfo> {
        let Some(jobs) = &self.core.jobs else {
            return Vec::new();
        };
        let secs = |at: std::time::SystemTime| {
            at.duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |since| since.as_secs_f64())
        };
        let jobs = jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        jobs.iter()
            .map(|job| JobInfo {
                name: job.name.clone(),
                schedule: job.schedule.clone(),
                next_run: job.next_run.map(secs),
                last_run: job.last_run.map(secs),
                runner: job.runner,
            })
            .collect()
    }

    fn info(&self) -> Info {
        let Pong {
            fingerprint,
            uptime_secs,
            postage,
        } = self.pong();
        let tallies = self.core.instruments.tallies();
        Info {
            fingerprint,
            uptime_secs,
            postage,
            handlers: self.handlers.clone(),
            bindings: self.discovery.bindings.clone(),
            counters: Counters {
                received: tallies.received,
                handled: tallies.handled,
                failed: tallies.failed,
                rejected: tallies.rejected,
                unhandled: tallies.unhandled,
            },
            health: self.consumer.health().to_string(),
            concurrency: self.concurrency,
            layers: self.core.layer_names.processor.clone(),
            jobs: self.jobs(),
            queues: self.consumer.queues(),
        }
    }
}

/// What a control command asks of the processor.
enum Action {
    Stop(Stop),
    Pause,
    Resume,
}

/// Says in a pause's or resume's answer whether it changed anything
/// (`"done": false`: it was paused, or consuming, already).
fn set_done(outcome: &mut Outcome, done: bool) {
    if let Outcome::Success {
        value: Value::Object(map),
        ..
    } = outcome
    {
        map.insert("done".to_owned(), Value::Bool(done));
    }
}

fn to_value<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or_default()
}

/// What `info` says of a handler table's entry.
pub(crate) fn handler_info<P>(handler: &super::Handler<P>) -> HandlerInfo {
    HandlerInfo {
        kind: handler.kind.to_owned(),
        name: handler.name.to_owned(),
        category: handler.category.as_str().to_owned(),
        handler: handler_label(handler).to_owned(),
        params: handler.params.map(|params| ParamsInfo {
            type_name: params.name.to_owned(),
            schema: params.schema(),
        }),
        layers: Vec::new(),
    }
}

/// What `info` says of a binding: one entry per (queue, key).
pub(crate) fn binding_infos(binding: &Binding) -> impl Iterator<Item = BindingInfo> + '_ {
    let exchange = &binding.exchange;
    binding.queues.iter().map(move |(queue, key)| BindingInfo {
        exchange: exchange.name().to_owned(),
        exchange_type: exchange.kind().as_str().to_owned(),
        exchange_durable: exchange.is_durable(),
        queue: queue.name().to_owned(),
        key: key.clone(),
        durable: queue.is_durable(),
        exclusive: queue.is_exclusive(),
        auto_delete: queue.is_auto_delete(),
    })
}

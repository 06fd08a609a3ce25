//! [`ProcessorBuilder`]: bindings, prefetch, fingerprint, concurrency,
//! control commands and the redelivery bound.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use super::acks::Acks;
use super::control::ControlAccess;
use super::discovery::Discovery;
use tower::BoxError;
use tower::layer::util::{Identity, Stack};
use tower::{Layer, Service};

use super::dispatch::{Core, LayerNames, handler_label};
use super::failure::Failures;
use super::handler::{HandlerResult, IntoHandlerResult, short_type_name};
use super::incoming::Incoming;
use super::routes::RouteTable;
use super::run::Parts;
use super::stack::{
    HandlerLayer, HandlerService, Handling, ProcessorLayers, handler_layer, handler_services,
};
use super::unhandled::Unhandled;
use super::{Control, Handlers, OnError, Processor};
use crate::consumer::ConsumerBuilder;
use crate::encoding::Encoder;
use crate::error::{Error, Result};
use crate::fingerprint::Fingerprint;
use crate::flow::{
    Breaker, KillSwitch, Membership, OrderKey, PARTITION_WATCHDOG_PERIOD, Partitions,
};
use crate::jobs::{Job, JobFn, Jobs};
use crate::message::WireFingerprint;
use crate::telemetry::ProcessorInstruments;
use crate::topology::{Exchange, Queue};
use crate::transport::Connection;

/// Builds a [`Processor`]. `L` is the stack of its
/// [layers](ProcessorBuilder::layer): `Identity` until one is added.
pub struct ProcessorBuilder<P, L = Identity> {
    pub(super) handlers: Arc<P>,
    pub(super) consumer: ConsumerBuilder,
    pub(super) fingerprint: Option<Fingerprint>,
    pub(super) concurrency: usize,
    pub(super) order: Option<OrderKey>,
    pub(super) kill_switch: Option<KillSwitch>,
    pub(super) partitions: Option<Partitions>,
    pub(super) quit_command: bool,
    pub(super) restart_command: bool,
    pub(super) control_senders: Option<Vec<String>>,
    pub(super) control_users: Option<Vec<String>>,
    pub(super) max_deliveries: u64,
    pub(super) on_error: OnError,
    pub(super) coalesce_acks: bool,
    pub(super) ack_delay: std::time::Duration,
    pub(super) discoverable: bool,
    pub(super) handler_timeout: Option<std::time::Duration>,
    pub(super) dead_letter_unhandled: bool,
    pub(super) layers: L,
    /// The names of `layers`, outermost first.
    pub(super) layer_names: Vec<String>,
    /// Layers of single handlers: (handler name, layer name, layer), in
    /// the order added.
    pub(super) handler_layers: Vec<(&'static str, String, HandlerLayer)>,
    /// Periodic jobs, with what runs them.
    pub(super) jobs: Vec<(Job, JobRun<P>)>,
}

/// What runs a periodic job of a processor.
pub(super) type JobRun<P> =
    Arc<dyn Fn(Arc<P>) -> crate::BoxFuture<'static, HandlerResult> + Send + Sync>;

/// The redelivery bound of [`ProcessorBuilder::max_deliveries`].
pub const DEFAULT_MAX_DELIVERIES: u64 = 5;

impl<P, L> fmt::Debug for ProcessorBuilder<P, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessorBuilder")
            .field("consumer", &self.consumer)
            .field("concurrency", &self.concurrency)
            .field("layers", &self.layer_names)
            .finish_non_exhaustive()
    }
}

impl<P: Handlers, L> ProcessorBuilder<P, L> {
    /// Binds these (queue, key) pairs to `exchange` (Python's `eqk` entry).
    #[must_use]
    pub fn bind<Q: Into<Queue>, K: Into<String>>(
        mut self,
        exchange: Exchange,
        queues: impl IntoIterator<Item = (Q, K)>,
    ) -> Self {
        self.consumer = self.consumer.bind(exchange, queues);
        self
    }

    /// Prefetch per queue (default
    /// [`DEFAULT_PREFETCH`](crate::consumer::DEFAULT_PREFETCH)).
    #[must_use]
    pub fn prefetch(mut self, prefetch: u16) -> Self {
        self.consumer = self.consumer.prefetch(prefetch);
        self
    }

    /// Whether a queue deleted from outside is declared again and
    /// consumed again (default `true`), or ends the processor with
    /// [`Error::ConsumerLost`](crate::Error::ConsumerLost): see
    /// [`ConsumerBuilder::redeclare_deleted_queues`](crate::consumer::ConsumerBuilder::redeclare_deleted_queues).
    #[must_use]
    pub fn redeclare_deleted_queues(mut self, redeclare: bool) -> Self {
        self.consumer = self.consumer.redeclare_deleted_queues(redeclare);
        self
    }

    /// How often the consumer's watchdog looks at its progress: see
    /// [`ConsumerBuilder::watchdog`](crate::consumer::ConsumerBuilder::watchdog).
    #[must_use]
    pub fn watchdog(mut self, period: std::time::Duration) -> Self {
        self.consumer = self.consumer.watchdog(period);
        self
    }

    /// The largest body decoded (default
    /// [`DEFAULT_MAX_BODY_SIZE`](crate::consumer::DEFAULT_MAX_BODY_SIZE));
    /// a larger one is rejected unread.
    #[must_use]
    pub fn max_body_size(mut self, bytes: usize) -> Self {
        self.consumer = self.consumer.max_body_size(bytes);
        self
    }

    /// A message the broker says it delivered this many times before (the
    /// `x-delivery-count` header of quorum queues) is rejected without
    /// running its handlers, so that a message that crashes its consumer
    /// is dead-lettered instead of retried forever (default
    /// [`DEFAULT_MAX_DELIVERIES`]). Classic queues do not count deliveries;
    /// failed handlers never requeue, so only a crash redelivers there.
    #[must_use]
    pub fn max_deliveries(mut self, deliveries: u64) -> Self {
        self.max_deliveries = deliveries;
        self
    }

    /// Replaces the encoder for incoming messages and replies.
    #[must_use]
    pub fn encoder(mut self, encoder: impl Encoder) -> Self {
        self.consumer = self.consumer.encoder(encoder);
        self
    }

    /// The fingerprint put into replies (default: anonymous).
    #[must_use]
    pub fn fingerprint(mut self, fingerprint: Fingerprint) -> Self {
        self.fingerprint = Some(fingerprint);
        self
    }

    /// How many handlers may run at once (default 1, which keeps the
    /// order of arrival, as Python Postage).
    #[must_use]
    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.max(1);
        self
    }

    /// Whether `command quit` stops the processor (default on). A handler
    /// of your own for `command quit` replaces the default.
    #[must_use]
    pub fn quit_command(mut self, enabled: bool) -> Self {
        self.quit_command = enabled;
        self
    }

    /// Whether `command restart` restarts the process (default on). A
    /// handler of your own for `command restart` replaces the default.
    #[must_use]
    pub fn restart_command(mut self, enabled: bool) -> Self {
        self.restart_command = enabled;
        self
    }

    /// Accept `quit` / `restart` (and `pause` / `resume`) only from
    /// senders whose fingerprint name is one of these. A sender writes its
    /// own fingerprint: this keeps a tool or a component from stopping
    /// what it was not meant to by mistake, not a sender who means to.
    #[must_use]
    pub fn control_senders<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.control_senders = Some(names.into_iter().map(Into::into).collect());
        self
    }

    /// Accept control commands (`quit`, `restart`, `pause`, `resume`, by
    /// the control exchange or as classic commands) only when published by
    /// one of these broker users: read from the message's AMQP `user_id`,
    /// which RabbitMQ refuses on a publish by any other user. A command
    /// without a `user_id`, or from another user, is refused with an error
    /// result (ignored, for a classic command) and a warning, whatever its
    /// fingerprint says; with [`control_senders`](Self::control_senders)
    /// too, both must allow it. `postage quit` and [`Remote`](crate::remote::Remote)
    /// commands carry their connection's user; a producer's sends do with
    /// [`ProducerBuilder::user_id`](crate::ProducerBuilder::user_id).
    ///
    /// ```no_run
    /// use postage::prelude::*;
    /// # struct Billing;
    /// # #[processor] impl Billing { #[handler("command", "charge")] async fn charge(&self) {} }
    /// # async fn run(connection: &Connection) -> postage::Result<()> {
    /// let processor = Processor::builder(Billing)
    ///     .bind(Exchange::direct("billing"), [("billing", "charge")])
    ///     .control_users(["ops"]) // only the broker user `ops` may stop it
    ///     .connect(connection)
    ///     .await?;
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn control_users<S: Into<String>>(mut self, users: impl IntoIterator<Item = S>) -> Self {
        self.control_users = Some(users.into_iter().map(Into::into).collect());
        self
    }

    /// What becomes of a message when a handler fails, for handlers
    /// without a policy of their own (default [`OnError::Acknowledge`]).
    /// A policy that retries or parks needs named queues: it is refused
    /// at [`connect`](ProcessorBuilder::connect) for a server-named one.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use postage::prelude::*;
    /// # struct Jobs;
    /// # #[processor] impl Jobs { #[handler("command", "run")] async fn run(&self) {} }
    ///
    /// const JOBS: Exchange = Exchange::direct("jobs");
    /// const DELAYS: &[Duration] = &[Duration::from_secs(1), Duration::from_secs(10)];
    ///
    /// # async fn run() -> postage::Result<()> {
    /// let connection = Connection::from_env().await?;
    /// let processor = Processor::builder(Jobs)
    ///     .bind(JOBS, [(Queue::quorum("jobs"), "run")])
    ///     .on_error(OnError::retry(DELAYS))
    ///     .connect(&connection)
    ///     .await?;
    /// # let _ = processor; Ok(()) }
    /// ```
    #[must_use]
    pub fn on_error(mut self, policy: OnError) -> Self {
        self.on_error = policy;
        self
    }

    /// Whether finished deliveries are acknowledged in runs, with one
    /// `basic.ack(multiple)` each (default on), or one by one. A run is
    /// acknowledged when it holds half the prefetch, after the
    /// [`ack_delay`](ProcessorBuilder::ack_delay), before a delivery is
    /// rejected, and when the processor stops; a delivery whose handlers
    /// have not all finished is never part of one. The broker takes a run
    /// in one frame, which roughly doubles what a queue can deliver to a
    /// processor; the price is that a process killed outright has its last
    /// run (at most half the prefetch, or what finished within the delay)
    /// delivered again, to it or another consumer. A graceful stop
    /// acknowledges everything first.
    #[must_use]
    pub fn coalesce_acks(mut self, coalesce: bool) -> Self {
        self.coalesce_acks = coalesce;
        self
    }

    /// How long finished deliveries may wait for their acknowledgement
    /// (default [`DEFAULT_ACK_DELAY`](super::DEFAULT_ACK_DELAY)): see
    /// [`coalesce_acks`](ProcessorBuilder::coalesce_acks).
    #[must_use]
    pub fn ack_delay(mut self, delay: std::time::Duration) -> Self {
        self.ack_delay = delay;
        self
    }

    /// What becomes of a message the processor has no handler for (a
    /// command sent to the wrong component, a status where commands are
    /// expected): acknowledged and dropped (the default, as Python
    /// Postage does) or, with `true`, dead-lettered (to the queue's
    /// dead-letter exchange, where it can be looked at; dropped by the
    /// broker when the queue has none). Either way it is counted (the
    /// `unhandled` counter of `info` and `postage ps`, the metric
    /// `postage_deliveries_rejected_total` with reason `no_handler`) and
    /// logged at WARN once per (type, name), with its sender.
    #[must_use]
    pub fn dead_letter_unhandled(mut self, dead_letter: bool) -> Self {
        self.dead_letter_unhandled = dead_letter;
        self
    }

    /// The longest a handler may run (default: no limit). A handler still
    /// running at it is cancelled (dropped at its next `.await`) and fails
    /// with a `TimeoutError`: the message goes the failure policy's way,
    /// an RPC caller gets an exception result. Keep it below the
    /// broker's `consumer_timeout` (RabbitMQ: 30 minutes unless
    /// configured), past which the broker closes the channel of a
    /// delivery left unacknowledged and delivers the message again
    /// (Postage then opens the channel again and resumes, but the work
    /// is done twice).
    #[must_use]
    pub fn handler_timeout(mut self, limit: std::time::Duration) -> Self {
        self.handler_timeout = Some(limit);
        self
    }

    /// Whether the processor answers `ping` and `info` and obeys `quit` /
    /// `restart` sent through the control exchange (default on; see
    /// [`remote`](crate::remote)). Off, it does not listen there: it is
    /// invisible to `postage ping` and `postage ps`, and only the classic
    /// `quit` / `restart` commands on its own queues reach it.
    #[must_use]
    pub fn discoverable(mut self, discoverable: bool) -> Self {
        self.discoverable = discoverable;
        self
    }

    /// Adds a [`tower`] layer around the processor's handlers: it sees
    /// each decoded message as an [`Incoming`] on its way to its handlers,
    /// and their outcome. The first layer added is the outermost (it sees
    /// the message first and the outcome last), as in
    /// `tower::ServiceBuilder`. See `postage::middleware`.
    ///
    /// A layer's error fails the message as a handler's failure would: the
    /// [failure policy](ProcessorBuilder::on_error) of its first handler
    /// applies, and an RPC caller gets an exception result. The layers
    /// run statically dispatched; a processor without any runs its
    /// handlers directly.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use postage::middleware::{ConcurrencyLimitLayer, TimeoutLayer};
    /// use postage::prelude::*;
    /// # struct Jobs;
    /// # #[processor] impl Jobs { #[handler("command", "run")] async fn run(&self) {} }
    /// # async fn run(connection: Connection) -> postage::Result<()> {
    /// let processor = Processor::builder(Jobs)
    ///     .bind(Exchange::direct("jobs"), [("jobs", "run")])
    ///     .layer(TimeoutLayer::new(Duration::from_secs(30)))
    ///     .layer(ConcurrencyLimitLayer::new(4))
    ///     .concurrency(16)
    ///     .connect(&connection)
    ///     .await?;
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn layer<N>(self, layer: N) -> ProcessorBuilder<P, Stack<N, L>> {
        let mut layer_names = self.layer_names;
        layer_names.push(short_type_name::<N>());
        ProcessorBuilder {
            handlers: self.handlers,
            consumer: self.consumer,
            fingerprint: self.fingerprint,
            concurrency: self.concurrency,
            order: self.order,
            kill_switch: self.kill_switch,
            partitions: self.partitions,
            quit_command: self.quit_command,
            restart_command: self.restart_command,
            control_senders: self.control_senders,
            control_users: self.control_users,
            max_deliveries: self.max_deliveries,
            on_error: self.on_error,
            coalesce_acks: self.coalesce_acks,
            ack_delay: self.ack_delay,
            discoverable: self.discoverable,
            handler_timeout: self.handler_timeout,
            dead_letter_unhandled: self.dead_letter_unhandled,
            layers: Stack::new(layer, self.layers),
            layer_names,
            handler_layers: self.handler_layers,
            jobs: self.jobs,
        }
    }

    /// Adds a [`tower`] layer around one handler, named as in the `info`
    /// answer (its method's name; for a table written by hand, its label
    /// or message name). It runs inside the processor's layers; several
    /// around one handler nest in the order added (the first outermost).
    /// Boxed: a handler's layers are dispatched dynamically.
    ///
    /// An unknown name is an error when the processor connects.
    #[must_use]
    pub fn layer_for<N>(mut self, handler: &'static str, layer: N) -> Self
    where
        N: Layer<HandlerService> + Send + 'static,
        N::Service: Service<Incoming, Response = ()> + Clone + Send + Sync + 'static,
        <N::Service as Service<Incoming>>::Error: Into<BoxError>,
        <N::Service as Service<Incoming>>::Future: Send + 'static,
    {
        self.handler_layers
            .push((handler, short_type_name::<N>(), handler_layer(layer)));
        self
    }

    /// Adds a periodic job: `run` gets the handler object at each of the
    /// job's ticks, in one process of the component only (see
    /// [`jobs`](crate::jobs)). It returns `()` or `Result<(), E>`; a
    /// failure is logged. Jobs need the processor's
    /// [`fingerprint`](ProcessorBuilder::fingerprint) name (the component
    /// they belong to); a second job of the same name is an error when the
    /// processor connects.
    #[must_use]
    pub fn job<F, Fut>(mut self, job: Job, run: F) -> Self
    where
        F: Fn(Arc<P>) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: IntoHandlerResult,
    {
        let run: JobRun<P> = Arc::new(move |handlers| {
            let running = run(handlers);
            Box::pin(async move { running.await.into_handler_result() })
        });
        self.jobs.push((job, run));
        self
    }
}

impl<P: Handlers, L: ProcessorLayers<P>> ProcessorBuilder<P, L> {
    /// Declares and binds the queues and starts consuming.
    pub async fn connect(self, connection: &Connection) -> Result<Processor<P>> {
        let table = P::handlers();
        let mut layer_names = LayerNames {
            processor: self.layer_names,
            handlers: Vec::new(),
        };
        let mut handler_layers = Vec::with_capacity(self.handler_layers.len());
        for (label, name, layer) in self.handler_layers {
            let Some(index) = table.iter().position(|h| handler_label(h) == label) else {
                return Err(Error::UnknownHandler {
                    handler: label.to_owned(),
                });
            };
            layer_names.handlers.push((index, name));
            handler_layers.push((index, layer));
        }
        let policies = || table.iter().filter_map(|handler| handler.on_error);
        if self.on_error.republishes() || policies().any(OnError::republishes) {
            let server_named = self
                .consumer
                .bindings()
                .iter()
                .flat_map(|binding| &binding.queues)
                .any(|(queue, _)| queue.name().is_empty());
            if server_named {
                return Err(Error::FailurePolicy {
                    reason: "a policy that retries or parks needs named queues; a binding has a server-named one",
                });
            }
        }
        let jobs = match self.jobs.is_empty() {
            true => None,
            false => {
                Some(connect_jobs(connection, &self.fingerprint, &self.handlers, self.jobs).await?)
            }
        };
        let encoder = self.consumer.encoder_arc();
        let fingerprint = self
            .fingerprint
            .unwrap_or_else(|| Fingerprint::anonymous().with_vhost(connection.config().vhost()));
        let name = fingerprint
            .name
            .clone()
            .unwrap_or_else(|| "anonymous".into());
        let members = match self.partitions {
            Some(partitions) => Some(Membership::connect(connection, partitions, &name).await?),
            None => None,
        };
        let discovery = if self.discoverable {
            let bindings = self.consumer.bindings();
            Some(Discovery::connect(connection, &name, &fingerprint, bindings).await?)
        } else {
            None
        };
        let batch = match self.consumer.prefetch_count() {
            0 => 64,
            prefetch => usize::from(prefetch / 2),
        };
        let acks = Acks::new(self.coalesce_acks, batch, self.ack_delay);
        let mut consumer = self.consumer.name(name.clone());
        if members.is_some() {
            consumer = consumer.default_watchdog(PARTITION_WATCHDOG_PERIOD);
        }
        let consumer = consumer.connect(connection).await?;
        let failures = Failures::new(connection, self.on_error, policies()).await?;
        let instruments = ProcessorInstruments::new(&name, table.iter().map(handler_label));
        let routes = RouteTable::new(table);
        let labels = table.iter().map(handler_label).collect();
        let reply_channel = connection.reply_channel().await?;
        let core = Arc::new_cyclic(|core| Core {
            handlers: self.handlers,
            table,
            routes,
            reply_channel,
            fingerprint: Arc::new(WireFingerprint::from(&fingerprint)),
            encoder,
            control: Control::new(),
            quit_command: self.quit_command,
            restart_command: self.restart_command,
            control_access: ControlAccess {
                senders: self.control_senders,
                users: self.control_users,
            },
            max_deliveries: self.max_deliveries,
            name,
            instruments,
            failures,
            acks,
            handler_timeout: self.handler_timeout,
            unhandled: Unhandled::new(self.dead_letter_unhandled),
            labels,
            handler_services: handler_services(core, handler_layers, table.len()),
            layer_names,
            jobs: jobs.as_ref().map(Jobs::status),
            kill_switch: self
                .kill_switch
                .map(|switch| Arc::new(Breaker::new(switch))),
        });
        let runner = self.layers.runner(Handling::new(&core));
        Ok(Processor {
            parts: Parts {
                core,
                consumer,
                connection: connection.clone(),
                concurrency: self.concurrency,
                order: self.order,
                members,
                discovery,
                jobs,
            },
            runner,
        })
    }
}

/// Connects a processor's jobs under its fingerprint's name.
async fn connect_jobs<P: Handlers>(
    connection: &Connection,
    fingerprint: &Option<Fingerprint>,
    handlers: &Arc<P>,
    jobs: Vec<(Job, JobRun<P>)>,
) -> Result<Jobs> {
    let Some(component) = fingerprint.as_ref().and_then(|f| f.name.clone()) else {
        return Err(Error::Schedule {
            schedule: jobs.iter().map(|(job, _)| job.name()).collect::<Vec<_>>().join(", "),
            reason: "periodic jobs need the processor's fingerprint name: the component whose processes share them".into(),
        });
    };
    let mut named: Vec<(Job, JobFn)> = Vec::with_capacity(jobs.len());
    for (job, run) in jobs {
        if named.iter().any(|(other, _)| other.name() == job.name()) {
            return Err(Error::Schedule {
                schedule: job.name().to_owned(),
                reason: "two jobs of one processor have this name".into(),
            });
        }
        let handlers = handlers.clone();
        let run: JobFn = Arc::new(move || {
            let running = run(handlers.clone());
            Box::pin(async move { running.await.map_err(|error| error.to_string()) })
        });
        named.push((job, run));
    }
    Jobs::connect(connection, &component, named).await
}

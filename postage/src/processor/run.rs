//! [`Processor`]: a consumer with a dispatch table, run until it is told
//! to stop or its consumer is lost.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::builder::ProcessorBuilder;
use super::discovery::Discovery;
use super::dispatch::Core;
use super::lanes::Lanes;
use super::stack::{Dispatch, Runner};
use super::{Control, Handlers, Stop};
use crate::consumer::{Consumer, ConsumerBuilder, ConsumerHandle};
use crate::error::{Error, Result};
use crate::flow::{Membership, OrderKey};
use crate::transport::Connection;

/// A consumer with a dispatch table: receives messages, runs their
/// handlers, replies to RPC requests, and acknowledges.
///
/// - `message` category: every handler for (type, name) runs, in
///   declaration order.
/// - `rpc` category: the RPC handler runs and replies to `reply_to` with
///   the request's correlation id, if any. No handler: the caller gets an
///   error result at once.
/// - A message is acknowledged after its handlers finish. A body that
///   cannot be decoded, or an RPC request without `reply_to`, is rejected
///   without requeue (dead-lettered if the queue has a dead-letter
///   exchange) and logged. A handler that fails or panics is logged; an RPC
///   caller gets an exception result naming the failure; the processor
///   keeps running.
/// - `command quit` stops it, `command restart` ends it with
///   [`Stop::Restart`] (unless switched off or handled by your own handler).
/// - While it runs it answers `ping` and `info` and obeys `quit` and
///   `restart` sent through the control exchange, on a consumer of its
///   own ([`remote`](crate::remote)), unless its builder says
///   [`discoverable(false)`](ProcessorBuilder::discoverable).
pub struct Processor<P: 'static> {
    pub(super) parts: Parts<P>,
    /// The run loop, typed by the processor's layers.
    pub(super) runner: Runner<P>,
}

/// What a processor runs with.
pub(super) struct Parts<P: 'static> {
    pub(super) core: Arc<Core<P>>,
    pub(super) consumer: Consumer,
    pub(super) connection: Connection,
    pub(super) concurrency: usize,
    /// What keeps order among concurrent deliveries, if anything.
    pub(super) order: Option<OrderKey>,
    /// Its partition group's membership, until the processor runs.
    pub(super) members: Option<Membership>,
    /// The control consumer, until the processor runs.
    pub(super) discovery: Option<Discovery>,
    /// The periodic jobs, until the processor runs.
    pub(super) jobs: Option<crate::jobs::Jobs>,
}

impl<P: 'static> fmt::Debug for Processor<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Processor")
            .field("consumer", &self.parts.consumer)
            .field("concurrency", &self.parts.concurrency)
            .finish_non_exhaustive()
    }
}

impl<P: Handlers> Processor<P> {
    /// Starts building a processor around `handlers`.
    pub fn builder(handlers: P) -> ProcessorBuilder<P, tower::layer::util::Identity> {
        Self::builder_arc(Arc::new(handlers))
    }

    /// Like [`builder`](Processor::builder), sharing an `Arc`.
    pub fn builder_arc(handlers: Arc<P>) -> ProcessorBuilder<P, tower::layer::util::Identity> {
        ProcessorBuilder {
            handlers,
            consumer: ConsumerBuilder::default(),
            fingerprint: None,
            concurrency: 1,
            order: None,
            kill_switch: None,
            partitions: None,
            quit_command: true,
            restart_command: true,
            control_senders: None,
            control_users: None,
            max_deliveries: super::DEFAULT_MAX_DELIVERIES,
            on_error: super::OnError::default(),
            coalesce_acks: true,
            ack_delay: super::DEFAULT_ACK_DELAY,
            discoverable: true,
            handler_timeout: None,
            dead_letter_unhandled: false,
            jobs: Vec::new(),
            layers: tower::layer::util::Identity::new(),
            layer_names: Vec::new(),
            handler_layers: Vec::new(),
        }
    }

    /// The handler object.
    pub fn handlers(&self) -> &Arc<P> {
        &self.parts.core.handlers
    }

    /// Stops this processor from elsewhere.
    pub fn control(&self) -> Control {
        self.parts.core.control.clone()
    }

    /// The consumer: bind more queues at run time, read its health.
    pub fn consumer(&self) -> ConsumerHandle {
        self.parts.consumer.handle()
    }

    /// Moves the messages parked from `queue` back into it: see
    /// [`replay_parked`](super::replay_parked).
    pub async fn replay_parked(&self, queue: &str) -> Result<u64> {
        super::replay_parked(&self.parts.connection, queue).await
    }

    /// The connection the processor uses.
    pub fn connection(&self) -> &Connection {
        &self.parts.connection
    }

    /// Runs until `quit`, `restart`, [`Control`] or the consumer's end. A
    /// consumer whose health turns [`Health::Failed`](crate::Health::Failed)
    /// (its queue deleted, its connection's recovery stalled) ends the
    /// processor with [`Error::ConsumerLost`], so that the program (or its
    /// supervisor) can act instead of idling.
    pub async fn run(self) -> Result<Stop> {
        self.run_until(std::future::pending::<()>()).await
    }

    /// Runs until `shutdown` resolves (then ends with [`Stop::Shutdown`]),
    /// or as [`run`](Processor::run). Handlers already running finish and
    /// their messages are acknowledged; deliveries not started go back to
    /// the queue.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send) -> Result<Stop> {
        self.runner.start(self.parts, Box::pin(shutdown)).await
    }
}

impl<P: Handlers> Parts<P> {
    /// The run loop, each delivery through `stack`.
    pub(super) async fn run_loop<D: Dispatch<P>>(
        mut self,
        stack: D,
        shutdown: crate::BoxFuture<'_, ()>,
    ) -> Result<Stop> {
        let core = self.core.clone();
        let control_plane = self.discovery.take().map(|discovery| {
            discovery.serve(core.clone(), self.consumer.handle(), self.concurrency)
        });
        let jobs = self.jobs.take().map(crate::jobs::Jobs::start);
        let members = self
            .members
            .take()
            .map(|members| members.start(self.consumer.handle()));
        // Runs of finished deliveries are acknowledged at the latest after
        // the delay, also while a long handler holds the loop.
        let ack_timer = tokio::spawn({
            let core = core.clone();
            async move { core.acks.timer().await }
        });
        let kill_switch = core.kill_switch.clone().map(|breaker| {
            let consumer = self.consumer.handle();
            tokio::spawn(async move { breaker.watch(consumer).await })
        });
        let semaphore = Arc::new(Semaphore::new(self.concurrency));
        let mut running = JoinSet::new();
        let lanes = match self.order.take() {
            Some(key) if self.concurrency > 1 => Some(Lanes::start(
                key,
                self.concurrency,
                &core,
                &stack,
                &mut running,
            )),
            _ => None,
        };
        let mut shutdown = shutdown;
        // A consumer that was lost ends the processor with an error rather
        // than leaving it idle.
        let handle = self.consumer.handle();
        let mut failed = std::pin::pin!(handle.failed());
        let mut lost = None;
        // One subscription for the whole run, not one per delivery.
        let mut stopped = std::pin::pin!(core.control.stopped());
        let stop = loop {
            tokio::select! {
                biased;
                stop = &mut stopped => break stop,
                () = &mut shutdown => break Stop::Shutdown,
                reason = &mut failed => {
                    tracing::error!(%reason, "the processor's consumer is lost; the processor ends");
                    lost = Some(reason);
                    break Stop::Ended;
                }
                delivery = self.consumer.next() => {
                    let Some(delivery) = delivery else { break Stop::Ended };
                    if let Some(lanes) = &lanes {
                        if !lanes.send(delivery) {
                            break Stop::Ended;
                        }
                    } else if self.concurrency == 1 {
                        core.process(&stack, delivery).await;
                    } else {
                        let Ok(permit) = semaphore.clone().acquire_owned().await else {
                            break Stop::Ended;
                        };
                        let core = core.clone();
                        let stack = stack.clone();
                        running.spawn(async move {
                            core.process(&stack, delivery).await;
                            drop(permit);
                        });
                    }
                    while running.try_join_next().is_some() {}
                }
            }
        };
        tracing::debug!(?stop, "processor stopping");
        // A consumer of a single active consumer queue keeps its broker
        // consumers until its channel closes: the broker then requeues what
        // it did not acknowledge and moves the queue on to the next
        // consumer in one step, never handing the next one a message while
        // this one still works on an earlier one. A partition worker leaves
        // its group first, so that the others stand by on its partitions.
        let single_active = members.is_some() || self.consumer.handle().has_single_active();
        if let Some(members) = members {
            members.stop().await;
        }
        if let Some(kill_switch) = kill_switch {
            kill_switch.abort();
        }
        if !single_active {
            self.consumer.stop().await;
        }
        if let Some(lanes) = lanes {
            lanes.stop();
        }
        while running.join_next().await.is_some() {}
        // Every finished delivery is acknowledged before the channel
        // closes: a graceful stop leaves nothing to deliver twice.
        ack_timer.abort();
        core.acks.flush_all(None).await;
        if single_active {
            self.consumer.handle().close_at_once().await;
        } else {
            self.consumer.close().await;
        }
        if let Some(control_plane) = control_plane {
            control_plane.stop().await;
        }
        if let Some(jobs) = jobs {
            jobs.stop().await;
        }
        match lost {
            Some(reason) => Err(Error::ConsumerLost(reason)),
            None => Ok(stop),
        }
    }
}

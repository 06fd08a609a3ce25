//! The scenarios, one module each holding its Postage and its lapin side,
//! and [`run_one`], which runs one side of one scenario.

mod consume;
mod idle;
pub(crate) mod outbox;
pub(crate) mod pipe;
mod publish;
mod rpc;
pub(crate) mod scale;
mod soak;
pub(crate) mod workers;

use self::consume::{lapin_consume, postage_consume};
use self::pipe::{lapin_pipe, postage_pipe};
use self::publish::{lapin_publish, postage_publish};
use self::rpc::{lapin_rpc, postage_rpc};
use crate::args::{Args, Impl, Scenario};
use crate::common::Res;
use crate::fixture::Fixture;
use crate::lapin_side::{Acks, BATCH};
use crate::measure::Timed;
use crate::postage_side::postage_connect;
use postage::Connection;
use postage::testing::MemoryBroker;

impl Ctx<'_> {
    /// A Postage connection: to the in-memory broker of a `memory` run,
    /// to RabbitMQ otherwise.
    pub(crate) async fn connect(&self) -> Res<Connection> {
        match &self.memory {
            Some(broker) => Ok(broker.connect().await?),
            None => postage_connect(&self.args.url).await,
        }
    }
}

pub(crate) struct Ctx<'a> {
    pub(crate) args: &'a Args,
    /// The in-memory broker of a `memory` run.
    pub(crate) memory: Option<MemoryBroker>,
    pub(crate) fixture: &'a Fixture,
    pub(crate) n: u64,
    /// The soak test's RSS watch, when on.
    pub(crate) soak: bool,
}

pub(crate) async fn run_one(ctx: &Ctx<'_>, scenario: Scenario, imp: Impl) -> Res<Timed> {
    // The Postage code runs as is on the in-memory broker.
    let imp = if imp == Impl::Memory {
        Impl::Postage
    } else {
        imp
    };
    match (scenario, imp) {
        (Scenario::IdleQueues, _) => idle::idle_queues(ctx).await,
        (Scenario::Scale, _) => Err("scale runs on its own (scenario::scale)".into()),
        (Scenario::Workers, _) => Err("workers runs on its own (scenario::workers)".into()),
        (Scenario::Outbox, _) => Err("outbox runs on its own (scenario::outbox)".into()),
        (Scenario::Publish, Impl::Postage) => postage_publish(ctx, false).await,
        (Scenario::Publish, Impl::Lapin) => lapin_publish(ctx, false).await,
        (Scenario::PublishConfirm, Impl::Postage) => postage_publish(ctx, true).await,
        (Scenario::PublishConfirm, Impl::Lapin) => lapin_publish(ctx, true).await,
        (Scenario::Consume, Impl::Postage) => postage_consume(ctx).await,
        (Scenario::Consume, Impl::Lapin) => lapin_consume(ctx, Acks::PerMessage).await,
        (Scenario::Consume, Impl::LapinBatch) => lapin_consume(ctx, Acks::Every(BATCH)).await,
        (Scenario::Pipe | Scenario::Soak, Impl::Postage) => postage_pipe(ctx).await,
        (Scenario::Pipe | Scenario::Soak, Impl::Lapin) => lapin_pipe(ctx, Acks::PerMessage).await,
        (Scenario::Pipe, Impl::LapinBatch) => lapin_pipe(ctx, Acks::Every(BATCH)).await,
        (Scenario::RpcSeq, Impl::Postage) => postage_rpc(ctx, false).await,
        (Scenario::RpcSeq, Impl::Lapin) => lapin_rpc(ctx, false).await,
        (Scenario::RpcPar, Impl::Postage) => postage_rpc(ctx, true).await,
        (Scenario::RpcPar, Impl::Lapin) => lapin_rpc(ctx, true).await,
        (_, Impl::Memory) => Err("unreachable: memory runs the Postage side".into()),
        (_, Impl::LapinBatch) => Err(format!("lapin-batch has no {} run", scenario.name()).into()),
    }
}

//! `pipe` (and `soak`): publish with confirms and consume the same
//! commands on one connection at once.

use std::future::IntoFuture;

use futures_util::stream::{self, FuturesUnordered, StreamExt, TryStreamExt};
use lapin::BasicProperties;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use postage::prelude::*;

use crate::args::Args;
use crate::common::{COMMAND, CONTENT_TYPE, Counter, KEY, PassThrough, Res, fingerprint};
use crate::fixture::Fixture;
use crate::lapin_side::{
    Acks, check_confirm, lapin_close, lapin_command, lapin_connect, lapin_consumer_loop,
    wire_fingerprint,
};
use crate::measure::{Snapshot, Timed, rss_kib};
use crate::postage_side::params;
use crate::scenario::Ctx;
use crate::scenario::soak::{soak_report, spawn_rss_sampler};

pub(crate) async fn postage_pipe(ctx: &Ctx<'_>) -> Res<Timed> {
    let rss_start = rss_kib();
    let connection = ctx.connect().await?;
    let counter = Counter::new(ctx.n);
    let sampler = ctx.soak.then(|| spawn_rss_sampler(counter.clone()));
    let start = Snapshot::now();
    let builder = Processor::builder_arc(counter.clone())
        .bind(ctx.fixture.exchange(), [(ctx.fixture.queue.as_str(), KEY)])
        .prefetch(ctx.args.prefetch)
        .fingerprint(fingerprint());
    let processor = if ctx.args.pass_layer {
        builder.layer(PassThrough).connect(&connection).await?
    } else {
        builder.connect(&connection).await?
    };
    let control = processor.control();
    let running = tokio::spawn(processor.run());
    let producer = Producer::builder()
        .ek(ctx.fixture.exchange(), KEY)
        .fingerprint(fingerprint())
        .connect(&connection)
        .await?;
    stream::iter(0..ctx.n)
        .map(|i| producer.command(COMMAND, params(i)).into_future())
        .buffer_unordered(ctx.args.window)
        .try_for_each(|()| async { Ok(()) })
        .await?;
    counter.done.notified().await;
    let end = Snapshot::now();
    control.quit();
    running.await??;
    let mut timed = Timed::new(start, end);
    if let Some((task, stop)) = sampler {
        stop.notify_one();
        timed.extra = soak_report(rss_start, ctx.n, &task.await?);
    }
    connection.close().await?;
    Ok(timed)
}

pub(crate) async fn lapin_pipe(ctx: &Ctx<'_>, acks: Acks) -> Res<Timed> {
    let rss_start = rss_kib();
    let connection = lapin_connect(&ctx.args.url).await?;
    let counter = Counter::new(ctx.n);
    let sampler = ctx.soak.then(|| spawn_rss_sampler(counter.clone()));
    let start = Snapshot::now();
    let consumer_channel = connection.create_channel().await?;
    let consumer = tokio::spawn(lapin_consumer_loop(
        consumer_channel,
        ctx.fixture.queue.clone(),
        acks.prefetch(ctx.args.prefetch),
        acks,
        counter.clone(),
    ));
    lapin_publish_confirmed(ctx.args, &connection, ctx.fixture, ctx.n).await?;
    consumer.await??;
    let end = Snapshot::now();
    let mut timed = Timed::new(start, end);
    if let Some((task, stop)) = sampler {
        stop.notify_one();
        timed.extra = soak_report(rss_start, ctx.n, &task.await?);
    }
    lapin_close(&connection).await;
    Ok(timed)
}

/// Publishes `n` commands on a new channel of `connection` with confirms,
/// `args.window` of them in flight, as a hand-written producer does.
pub(crate) async fn lapin_publish_confirmed(
    args: &Args,
    connection: &lapin::Connection,
    fixture: &Fixture,
    n: u64,
) -> Res<()> {
    let fp = wire_fingerprint();
    let props = BasicProperties::default().with_content_type(CONTENT_TYPE.into());
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let mut pending = FuturesUnordered::new();
    for i in 0..n {
        let body = lapin_command(&fp, "message", i)?;
        let confirm = channel
            .basic_publish(
                fixture.exchange.as_str().into(),
                KEY.into(),
                BasicPublishOptions::default(),
                &body,
                props.clone(),
            )
            .await?;
        pending.push(confirm);
        if pending.len() >= args.window {
            check_confirm(pending.next().await)?;
        }
    }
    while !pending.is_empty() {
        check_confirm(pending.next().await)?;
    }
    Ok(())
}

//! `consume`: read a pre-filled queue, handle and ack every command.

use postage::prelude::*;

use crate::common::{Counter, KEY, PassThrough, Res, fingerprint};
use crate::lapin_side::{Acks, lapin_close, lapin_connect, lapin_consumer_loop};
use crate::measure::{Snapshot, Timed};
use crate::scenario::Ctx;

pub(crate) async fn postage_consume(ctx: &Ctx<'_>) -> Res<Timed> {
    let connection = ctx.connect().await?;
    let counter = Counter::new(ctx.n);
    let start = Snapshot::now();
    let builder = Processor::builder_arc(counter.clone())
        .bind(ctx.fixture.exchange(), [(ctx.fixture.queue.as_str(), KEY)])
        .prefetch(ctx.args.prefetch)
        .concurrency(ctx.args.concurrency)
        .fingerprint(fingerprint());
    let builder = if ctx.args.ordered {
        builder.ordered_by(postage::flow::OrderKey::parameter("seq"))
    } else {
        builder
    };
    let processor = if ctx.args.pass_layer {
        builder.layer(PassThrough).connect(&connection).await?
    } else {
        builder.connect(&connection).await?
    };
    let control = processor.control();
    let running = tokio::spawn(processor.run());
    counter.done.notified().await;
    let end = Snapshot::now();
    control.quit();
    running.await??;
    connection.close().await?;
    Ok(Timed::new(start, end))
}

pub(crate) async fn lapin_consume(ctx: &Ctx<'_>, acks: Acks) -> Res<Timed> {
    let connection = lapin_connect(&ctx.args.url).await?;
    let counter = Counter::new(ctx.n);
    let start = Snapshot::now();
    let channel = connection.create_channel().await?;
    lapin_consumer_loop(
        channel,
        ctx.fixture.queue.clone(),
        acks.prefetch(ctx.args.prefetch),
        acks,
        counter.clone(),
    )
    .await?;
    let end = Snapshot::now();
    lapin_close(&connection).await;
    Ok(Timed::new(start, end))
}

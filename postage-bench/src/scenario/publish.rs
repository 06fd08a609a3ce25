//! `publish` and `publish-confirm`: send commands to the fixture's exchange,
//! without or with publisher confirms.

use std::future::IntoFuture;

use futures_util::stream::{self, FuturesUnordered, StreamExt, TryStreamExt};
use lapin::BasicProperties;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use postage::prelude::*;

use crate::common::{COMMAND, CONTENT_TYPE, KEY, Res, fingerprint};
use crate::lapin_side::{
    check_confirm, lapin_close, lapin_command, lapin_connect, wire_fingerprint,
};
use crate::measure::{Snapshot, Timed};
use crate::postage_side::params;
use crate::scenario::Ctx;

pub(crate) async fn postage_publish(ctx: &Ctx<'_>, confirms: bool) -> Res<Timed> {
    let connection = ctx.connect().await?;
    let producer = Producer::builder()
        .ek(ctx.fixture.exchange(), KEY)
        .fingerprint(fingerprint())
        .confirms(confirms)
        .connect(&connection)
        .await?;
    let start = Snapshot::now();
    if confirms {
        stream::iter(0..ctx.n)
            .map(|i| producer.command(COMMAND, params(i)).into_future())
            .buffer_unordered(ctx.args.window)
            .try_for_each(|()| async { Ok(()) })
            .await?;
    } else {
        for i in 0..ctx.n {
            producer.command(COMMAND, params(i)).await?;
        }
    }
    let end = Snapshot::now();
    connection.close().await?;
    Ok(Timed::new(start, end))
}

pub(crate) async fn lapin_publish(ctx: &Ctx<'_>, confirms: bool) -> Res<Timed> {
    let connection = lapin_connect(&ctx.args.url).await?;
    let channel = connection.create_channel().await?;
    if confirms {
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
    }
    let fp = wire_fingerprint();
    let props = BasicProperties::default().with_content_type(CONTENT_TYPE.into());
    let start = Snapshot::now();
    let mut pending = FuturesUnordered::new();
    for i in 0..ctx.n {
        let body = lapin_command(&fp, "message", i)?;
        let confirm = channel
            .basic_publish(
                ctx.fixture.exchange.as_str().into(),
                KEY.into(),
                BasicPublishOptions::default(),
                &body,
                props.clone(),
            )
            .await?;
        if confirms {
            pending.push(confirm);
            if pending.len() >= ctx.args.window {
                check_confirm(pending.next().await)?;
            }
        }
    }
    while !pending.is_empty() {
        check_confirm(pending.next().await)?;
    }
    let end = Snapshot::now();
    lapin_close(&connection).await;
    Ok(Timed::new(start, end))
}

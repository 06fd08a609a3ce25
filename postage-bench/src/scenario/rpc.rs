//! `rpc-seq` and `rpc-par`: RPC calls answered by a server on its own
//! connection, one at a time or many in flight, with each call's latency.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt, TryStreamExt};
use lapin::BasicProperties;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, BasicRejectOptions,
};
use lapin::types::FieldTable;
use postage::Stop;
use postage::prelude::*;
use postage::processor::Handler;
use serde_json::json;
use tokio::sync::oneshot;

use crate::common::{BoxError, COMMAND, CONTENT_TYPE, KEY, Params, Res, fingerprint, handle};
use crate::lapin_side::{
    CommandIn, Empty, ResultContent, WireIn, WireOut, lapin_close, lapin_command, lapin_connect,
    wire_fingerprint,
};
use crate::measure::{Snapshot, Timed};
use crate::postage_side::{invalid, params};
use crate::scenario::Ctx;

const DIRECT_REPLY_TO: &str = "amq.rabbitmq.reply-to";
const RPC_TIMEOUT: Duration = Duration::from_secs(30);
const WARMUP_CALLS: u64 = 200;

/// Answers `bench` RPC commands with the parameters' `seq`.
struct RpcServer;

impl Handlers for RpcServer {
    fn handlers() -> &'static [Handler<Self>] {
        const TABLE: &[Handler<RpcServer>] =
            &[Handler::rpc("command", COMMAND, |_this, content, reply| {
                Box::pin(async move {
                    let params: Params = content.parameters_as().map_err(invalid)?;
                    reply.success(handle(&params)).await?;
                    Ok(())
                })
            })];
        TABLE
    }
}

fn check_reply(reply: &Message, seq: u64) -> Res<()> {
    match reply.outcome()? {
        Outcome::Success { value, .. } if value == json!(seq) => Ok(()),
        other => Err(format!("unexpected reply {other:?} to call {seq}").into()),
    }
}

/// Starts the Postage RPC server on its own connection.
async fn postage_rpc_server(
    ctx: &Ctx<'_>,
) -> Res<(
    Connection,
    Control,
    tokio::task::JoinHandle<postage::Result<Stop>>,
)> {
    let connection = ctx.connect().await?;
    let processor = Processor::builder(RpcServer)
        .bind(ctx.fixture.exchange(), [(ctx.fixture.queue.as_str(), KEY)])
        .prefetch(ctx.args.prefetch)
        .fingerprint(fingerprint())
        .connect(&connection)
        .await?;
    let control = processor.control();
    Ok((connection, control, tokio::spawn(processor.run())))
}

pub(crate) async fn postage_rpc(ctx: &Ctx<'_>, parallel: bool) -> Res<Timed> {
    let (server_connection, control, server) = postage_rpc_server(ctx).await?;
    let connection = ctx.connect().await?;
    let producer = Producer::builder()
        .ek(ctx.fixture.exchange(), KEY)
        .fingerprint(fingerprint())
        .rpc_timeout(RPC_TIMEOUT)
        // Default off; `BENCH_RPC_CONFIRMS=1` measures calls with them.
        .rpc_confirms(std::env::var("BENCH_RPC_CONFIRMS").is_ok_and(|v| v == "1"))
        .connect(&connection)
        .await?;
    let call = |seq: u64| {
        let producer = &producer;
        async move {
            let t = Instant::now();
            let reply = producer.rpc(COMMAND, params(seq)).await?;
            check_reply(&reply, seq)?;
            Ok::<Duration, BoxError>(t.elapsed())
        }
    };
    for seq in 0..WARMUP_CALLS {
        call(seq).await?;
    }
    let start = Snapshot::now();
    let latencies = if parallel {
        stream::iter(0..ctx.n)
            .map(call)
            .buffer_unordered(ctx.args.in_flight)
            .try_collect()
            .await?
    } else {
        let mut latencies = Vec::with_capacity(ctx.n as usize);
        for seq in 0..ctx.n {
            latencies.push(call(seq).await?);
        }
        latencies
    };
    let end = Snapshot::now();
    connection.close().await?;
    control.quit();
    server.await??;
    server_connection.close().await?;
    let mut timed = Timed::new(start, end);
    timed.latencies = latencies;
    Ok(timed)
}

/// A hand-written RPC server: decode, compute, publish the result to
/// `reply_to` with the correlation id, ack.
async fn lapin_rpc_server(channel: lapin::Channel, queue: String, prefetch: u16) -> Res<()> {
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await?;
    let mut consumer = channel
        .basic_consume(
            queue.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let fp = wire_fingerprint();
    while let Some(delivery) = consumer.next().await {
        let Ok(delivery) = delivery else { break };
        let request = serde_json::from_slice::<WireIn<CommandIn>>(&delivery.data);
        let reply_to = delivery.properties.reply_to().clone();
        match (request, reply_to) {
            (Ok(request), Some(reply_to))
                if request.kind == "command"
                    && request.name == COMMAND
                    && request.category == "rpc" =>
            {
                let value = handle(&request.content.parameters);
                let body = serde_json::to_vec(&WireOut {
                    kind: "result",
                    name: "none",
                    category: "message",
                    version: "2",
                    fingerprint: &fp,
                    content: ResultContent {
                        kind: "success".to_owned(),
                        value,
                        message: String::new(),
                    },
                    reserved: Empty {},
                })?;
                let mut props = BasicProperties::default().with_content_type(CONTENT_TYPE.into());
                if let Some(id) = delivery.properties.correlation_id() {
                    props = props.with_correlation_id(id.clone());
                }
                channel
                    .basic_publish(
                        "".into(),
                        reply_to,
                        BasicPublishOptions::default(),
                        &body,
                        props,
                    )
                    .await?;
                delivery.ack(BasicAckOptions::default()).await?;
            }
            _ => {
                delivery
                    .reject(BasicRejectOptions { requeue: false })
                    .await?;
            }
        }
    }
    Ok(())
}

fn lapin_reply_value(data: &[u8], seq: u64) -> Res<()> {
    let reply: WireIn<ResultContent<u64>> = serde_json::from_slice(data)?;
    if reply.kind == "result" && reply.content.kind == "success" && reply.content.value == seq {
        Ok(())
    } else {
        Err(format!("unexpected reply {:?} to call {seq}", reply.content).into())
    }
}

fn rpc_props(id: String) -> BasicProperties {
    BasicProperties::default()
        .with_content_type(CONTENT_TYPE.into())
        .with_reply_to(DIRECT_REPLY_TO.into())
        .with_correlation_id(id.into())
}

pub(crate) async fn lapin_rpc(ctx: &Ctx<'_>, parallel: bool) -> Res<Timed> {
    let server_connection = lapin_connect(&ctx.args.url).await?;
    let server = tokio::spawn(lapin_rpc_server(
        server_connection.create_channel().await?,
        ctx.fixture.queue.clone(),
        ctx.args.prefetch,
    ));
    let connection = lapin_connect(&ctx.args.url).await?;
    let channel = connection.create_channel().await?;
    let mut replies = channel
        .basic_consume(
            DIRECT_REPLY_TO.into(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    let fp = wire_fingerprint();
    let exchange = ctx.fixture.exchange.as_str();
    let latencies = if parallel {
        // Many calls in flight: a listener routes replies by correlation id.
        type Waiters = Arc<Mutex<HashMap<String, oneshot::Sender<Vec<u8>>>>>;
        let waiters: Waiters = Arc::default();
        let listener = {
            let waiters = waiters.clone();
            tokio::spawn(async move {
                while let Some(Ok(delivery)) = replies.next().await {
                    let waiter = delivery
                        .properties
                        .correlation_id()
                        .as_ref()
                        .and_then(|id| {
                            waiters
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .remove(id.as_str())
                        });
                    if let Some(waiter) = waiter {
                        let _ = waiter.send(delivery.data);
                    }
                }
            })
        };
        let call = |seq: u64| {
            let (channel, waiters, fp) = (&channel, &waiters, &fp);
            async move {
                let t = Instant::now();
                let id = seq.to_string();
                let (tx, rx) = oneshot::channel();
                waiters
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(id.clone(), tx);
                let body = lapin_command(fp, "rpc", seq)?;
                channel
                    .basic_publish(
                        exchange.into(),
                        KEY.into(),
                        BasicPublishOptions::default(),
                        &body,
                        rpc_props(id),
                    )
                    .await?;
                let data = tokio::time::timeout(RPC_TIMEOUT, rx).await??;
                lapin_reply_value(&data, seq)?;
                Ok::<Duration, BoxError>(t.elapsed())
            }
        };
        for seq in 0..WARMUP_CALLS {
            call(seq).await?;
        }
        let start = Snapshot::now();
        let latencies: Vec<Duration> = stream::iter(WARMUP_CALLS..WARMUP_CALLS + ctx.n)
            .map(call)
            .buffer_unordered(ctx.args.in_flight)
            .try_collect()
            .await?;
        let end = Snapshot::now();
        listener.abort();
        (start, end, latencies)
    } else {
        // One call at a time: read the reply straight off the consumer.
        let mut call = async |seq: u64| -> Res<Duration> {
            let t = Instant::now();
            let id = seq.to_string();
            let body = lapin_command(&fp, "rpc", seq)?;
            channel
                .basic_publish(
                    exchange.into(),
                    KEY.into(),
                    BasicPublishOptions::default(),
                    &body,
                    rpc_props(id.clone()),
                )
                .await?;
            loop {
                let next = tokio::time::timeout(RPC_TIMEOUT, replies.next()).await?;
                let delivery = next.ok_or("reply consumer ended")??;
                let matches = delivery
                    .properties
                    .correlation_id()
                    .as_ref()
                    .is_some_and(|c| c.as_str() == id);
                if matches {
                    lapin_reply_value(&delivery.data, seq)?;
                    return Ok(t.elapsed());
                }
            }
        };
        for seq in 0..WARMUP_CALLS {
            call(seq).await?;
        }
        let start = Snapshot::now();
        let mut latencies = Vec::with_capacity(ctx.n as usize);
        for seq in WARMUP_CALLS..WARMUP_CALLS + ctx.n {
            latencies.push(call(seq).await?);
        }
        let end = Snapshot::now();
        (start, end, latencies)
    };
    lapin_close(&connection).await;
    lapin_close(&server_connection).await;
    let _ = server.await;
    let mut timed = Timed::new(latencies.0, latencies.1);
    timed.latencies = latencies.2;
    Ok(timed)
}

//! `postage send` and `postage call`.

use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use postage::{Connection, Outcome, Producer, ReplyStrategy};

use crate::args::{CallArgs, SendArgs, Target};
use crate::failure::Failure;
use crate::output;

/// A producer sending to the target's exchange and key.
async fn producer(
    url: Option<&str>,
    target: &Target,
    configure: impl FnOnce(postage::ProducerBuilder) -> postage::ProducerBuilder,
) -> Result<(Connection, Producer, serde_json::Value), Failure> {
    let params = output::params(target.params.as_deref())?;
    let connection = output::connect(url).await?;
    let exchange = output::exchange(&target.exchange, target.exchange_type);
    let builder = Producer::builder()
        .ek(exchange, &target.key)
        .fingerprint(output::fingerprint());
    let producer = configure(builder).connect(&connection).await?;
    Ok((connection, producer, params))
}

/// Sends the command `count` times; prints what it sent and, for more
/// than one, the rate.
pub(crate) async fn send(url: Option<&str>, args: SendArgs) -> Result<(), Failure> {
    let target = &args.target;
    let (connection, producer, params) = producer(url, target, |builder| {
        builder
            .confirms(args.confirm)
            .mandatory(args.confirm)
            .persistent(args.persistent)
    })
    .await?;
    let where_to = format!("{}/{}", target.exchange, target.key);
    let progress = (args.count > 1).then(|| {
        let bar = ProgressBar::new(args.count);
        if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} {per_sec}") {
            bar.set_style(style);
        }
        bar
    });
    let started = Instant::now();
    for _ in 0..args.count {
        producer.command(&target.command, params.clone()).await?;
        if let Some(bar) = &progress {
            bar.inc(1);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    if let Some(bar) = progress {
        bar.finish_and_clear();
        let rate = args.count as f64 / elapsed.max(f64::EPSILON);
        println!(
            "sent: {} x {} to {where_to} in {elapsed:.2} s ({rate:.0} messages/s)",
            args.count, target.command
        );
    } else if args.count == 1 {
        println!("sent: {} to {where_to}", target.command);
    }
    connection.close().await?;
    Ok(())
}

/// Calls the command and prints its result's content; an error or
/// exception result is a failure (status 1), no reply in time a timeout
/// (status 2).
pub(crate) async fn call(url: Option<&str>, args: CallArgs) -> Result<(), Failure> {
    let target = &args.target;
    // A reply queue per call: what Python Postage servers answer too.
    let (connection, producer, params) = producer(url, target, |builder| {
        builder.reply_strategy(ReplyStrategy::QueuePerCall)
    })
    .await?;
    let reply = producer
        .rpc(&target.command, params)
        .timeout(args.timeout)
        .retries(0)
        .await;
    let _ = connection.close().await;
    let reply = reply?;
    println!("{}", output::json_text(&reply.content, args.json));
    match reply.outcome() {
        Ok(Outcome::Success { .. }) => Ok(()),
        Ok(Outcome::Error { message }) => Err(Failure::refused(format!(
            "{} answered with an error: {message}",
            target.command
        ))),
        Ok(Outcome::Exception { name, message }) => Err(Failure::refused(format!(
            "{} answered with an exception: {name}: {message}",
            target.command
        ))),
        Err(error) => Err(Failure::refused(format!(
            "the reply is not a result: {}",
            postage::Report::from(error)
        ))),
    }
}

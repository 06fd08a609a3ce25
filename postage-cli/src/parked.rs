//! `postage parked list|replay QUEUE`: the messages a failure policy
//! parked in `QUEUE.parked`, shown without taking them, or moved back
//! into `QUEUE` for their handlers to try again.

use std::time::Duration;

use postage::processor::{failure_headers, parking_queue, replay_parked};
use postage::{Consumer, Delivery, Exchange, Queue};
use serde_json::{Value, json};

use crate::args::{ParkedArgs, ParkedCommand};
use crate::failure::Failure;
use crate::output;

/// Runs `parked list` or `parked replay`.
pub(crate) async fn parked(url: Option<&str>, args: ParkedArgs) -> Result<(), Failure> {
    let connection = output::connect(url).await?;
    match args.command {
        ParkedCommand::List { queue, json, wait } => {
            list(&connection, &queue, json, wait.timeout).await?
        }
        ParkedCommand::Replay { queue } => {
            let moved = replay_parked(&connection, &queue).await?;
            println!("replayed {moved} parked messages into {queue}");
        }
    }
    connection.close().await?;
    Ok(())
}

/// Prints each message parked from `queue`, then gives them all back to
/// the parking queue (they are received and never acknowledged); stops
/// when none came for `quiet`.
async fn list(
    connection: &postage::Connection,
    queue: &str,
    json: bool,
    quiet: Duration,
) -> Result<(), Failure> {
    let parked = parking_queue(queue);
    let checked = Queue::new(parked.as_str()).passive(true);
    let mut consumer = Consumer::builder()
        .bind(Exchange::direct(""), [(checked, parked.as_str())])
        .prefetch(0)
        .name("postage-parked")
        .connect(connection)
        .await
        .map_err(|error| match error.reply_code() {
            Some(404) => {
                Failure::refused(format!("nothing parked from {queue}: no queue {parked}"))
            }
            _ => error.into(),
        })?;
    let mut shown = 0;
    while let Ok(Some(delivery)) = tokio::time::timeout(quiet, consumer.next()).await {
        println!("{}", line(&delivery, json));
        shown += 1;
    }
    // Unacknowledged: the broker puts them back when the channel closes.
    consumer.stop().await;
    if !json {
        eprintln!("{shown} parked in {parked}");
    }
    Ok(())
}

/// One parked message: when it last failed, what it is, how often and
/// why it failed.
fn line(delivery: &Delivery, json: bool) -> String {
    let headers = delivery.headers();
    let text = |key: &str| headers.get(key).and_then(Value::as_str).unwrap_or("?");
    let attempts = headers
        .get(failure_headers::ATTEMPTS)
        .cloned()
        .unwrap_or(Value::Null);
    let (kind, name) = match delivery.message() {
        Ok(message) => (message.kind.clone(), message.name.clone()),
        Err(_) => ("(not a Postage message)".to_owned(), String::new()),
    };
    if json {
        let record = json!({
            "type": kind,
            "name": name,
            "attempts": attempts,
            "handler": text(failure_headers::HANDLER),
            "error": text(failure_headers::ERROR),
            "reason": text(failure_headers::PARKED_REASON),
            "first_failure": text(failure_headers::FIRST_FAILURE),
            "last_failure": text(failure_headers::LAST_FAILURE),
            "body": String::from_utf8_lossy(delivery.body()),
        });
        return output::json_text(&record, true);
    }
    format!(
        "{} {kind} {name} attempts={attempts} handler={} reason={:?} error={:?}",
        text(failure_headers::LAST_FAILURE),
        text(failure_headers::HANDLER),
        text(failure_headers::PARKED_REASON),
        text(failure_headers::ERROR),
    )
}

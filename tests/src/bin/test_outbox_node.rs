//! A process of the outbox and inbox crash tests, killed with `kill -9`
//! where the test chooses: `test_outbox_node relay|consumer|writer`.
//!
//! Environment: `POSTAGE_TEST_URL` (the broker), `POSTAGE_DATABASE_URL`
//! (the database, its test schema first on the search path),
//! `OUTBOX_EXCHANGE`, and:
//!
//! - `relay`: relays the outbox to `OUTBOX_EXCHANGE`. With `HANG_AFTER=n`
//!   it stops after the broker confirmed its n-th publish, before the
//!   relay records it sent, and prints `hung <message_id>`.
//! - `consumer`: consumes `OUTBOX_QUEUE` (bound with key `effect`) under
//!   an inbox (a durable queue); the handler of `effect {"n"}` inserts `n` into `effects`.
//!   Prints `seen <message_id>` for each delivery. With `HANG_AFTER=n` it
//!   stops after the n-th transaction committed, before the ack, and
//!   prints `hung <message_id>`.
//! - `writer`: writes `COUNT` messages into the outbox in one
//!   transaction, prints `written`, and waits without committing.
//!
//! Each prints `ready` when it runs.
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use postage::middleware::{BoxError, Incoming, Next, Outgoing, from_fn};
use postage::prelude::*;
use postage_postgres::{Database, Inbox, OutboxExt, Relay, Tx};
use serde::Deserialize;

#[derive(Deserialize)]
struct Effect {
    n: i64,
}

struct Effects;

#[processor]
impl Effects {
    #[handler("command", "effect")]
    async fn effect(&self, Params(effect): Params<Effect>) -> Result<(), postage_postgres::Error> {
        Tx::current()?
            .execute("INSERT INTO effects (n) VALUES ($1)", &[&effect.n])
            .await?;
        Ok(())
    }
}

fn env(name: &str) -> Result<String, BoxError> {
    std::env::var(name).map_err(|_| format!("{name} is not set").into())
}

/// `HANG_AFTER`, or never.
fn hang_after() -> u64 {
    std::env::var("HANG_AFTER")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let role = std::env::args().nth(1).unwrap_or_default();
    let database = Database::from_env()?;
    let connection = Connection::connect(Config::from_url(&postage_tests::test_url())?).await?;
    let exchange = Exchange::new(env("OUTBOX_EXCHANGE")?, ExchangeKind::Direct);
    let count = Arc::new(AtomicU64::new(0));
    let hang = hang_after();
    match role.as_str() {
        "relay" => {
            let producer = Producer::builder()
                .ek(exchange, "effect")
                .confirms(true)
                .layer(from_fn(move |outgoing: Outgoing, next: Next<Outgoing>| {
                    let count = count.clone();
                    async move {
                        let id = outgoing.message_id().to_owned();
                        next.run(outgoing).await?;
                        if count.fetch_add(1, Ordering::SeqCst) + 1 == hang {
                            println!("hung {id}");
                            std::future::pending::<()>().await;
                        }
                        Ok::<(), BoxError>(())
                    }
                }))
                .connect(&connection)
                .await?;
            let _relay = Relay::builder(database, producer).spawn().await?;
            println!("ready");
            std::future::pending::<()>().await;
        }
        "consumer" => {
            let queue = env("OUTBOX_QUEUE")?;
            let processor = Processor::builder(Effects)
                .bind(exchange, [(Queue::new(queue).durable(true), "effect")])
                .layer(from_fn(move |incoming: Incoming, next: Next<Incoming>| {
                    let count = count.clone();
                    async move {
                        let id = incoming.message_id().unwrap_or("-").to_owned();
                        println!("seen {id}");
                        next.run(incoming).await?;
                        if count.fetch_add(1, Ordering::SeqCst) + 1 == hang {
                            println!("hung {id}");
                            std::future::pending::<()>().await;
                        }
                        Ok::<(), BoxError>(())
                    }
                }))
                .layer(Inbox::new(&database))
                .connect(&connection)
                .await?;
            println!("ready");
            processor.run().await?;
        }
        "writer" => {
            let producer = Producer::builder()
                .ek(exchange, "effect")
                .persistent(true)
                .connect(&connection)
                .await?;
            let mut client = database.pool().get().await?;
            let tx = client.transaction().await?;
            println!("ready");
            for n in 0..env("COUNT")?.parse::<i64>()? {
                producer
                    .command("effect", serde_json::json!({ "n": n }))
                    .in_transaction(&*tx)
                    .await?;
            }
            println!("written");
            std::future::pending::<()>().await;
        }
        other => return Err(format!("unknown role {other:?}").into()),
    }
    Ok(())
}

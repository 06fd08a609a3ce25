//! `orders`: the orders application of [`postage_examples::orders`] on
//! RabbitMQ. It starts the orders service and billing (billing fails its
//! first charge, which is tried again), creates two orders through the
//! typed `create` call, shows the error result of an order of nothing, and
//! stops once billing has charged both:
//!
//! ```text
//! created order 1: 2 x tea
//! created order 2: 1 x cake
//! refused: RPC "create" answered with an error: an order needs a quantity
//! billed order 1: 2 x tea
//! billed order 2: 1 x cake
//! ```
#![allow(clippy::print_stdout)]

use postage::prelude::*;
use postage_examples::components::Lines;
use postage_examples::init_logging;
use postage_examples::orders::{self, NewOrder, OrdersClient};
use tokio::sync::mpsc;

#[tokio::main]
async fn main() -> Result<(), postage::Report> {
    init_logging();
    let connection = Connection::from_env().await?;
    let (lines, mut billed) = mpsc::unbounded_channel();
    let (service, billing) = orders::connect(&connection, Lines::Channel(lines), 1).await?;
    let mut scheduler = Scheduler::new();
    scheduler.add(service);
    scheduler.add(billing);
    let stop = scheduler.shutdown_handle();
    let running = tokio::spawn(scheduler.run());

    let client = OrdersClient.connect(&connection).await?;
    for (item, quantity) in [("tea", 2), ("cake", 1)] {
        let order = NewOrder {
            item: item.into(),
            quantity,
        };
        let created = client.rpc_create(&order).await?;
        println!(
            "created order {}: {} x {}",
            created.id, created.quantity, created.item
        );
    }
    let nothing = NewOrder {
        item: "air".into(),
        quantity: 0,
    };
    match client.rpc_create(&nothing).await {
        Err(error @ postage::Error::RpcError { .. }) => println!("refused: {error}"),
        other => println!("unexpected: {other:?}"),
    }
    for _ in 0..2 {
        if let Some(line) = billed.recv().await {
            println!("{line}");
        }
    }
    stop.shutdown();
    let _ = running.await;
    Ok(())
}

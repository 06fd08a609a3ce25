//! An orders application, as a newcomer writes one: a typed RPC (`create`
//! answers with the order it made), a status broadcast carrying the order
//! (`order_created`), and a billing processor that retries what fails and
//! charges only what the orders component announced (a middleware layer
//! that authenticates the sender).
//! No message is built by hand and no reply is read as JSON: the types go
//! in and come out as they are.
//!
//! `cargo run -p postage-examples --bin orders` runs it on RabbitMQ; the
//! in-process tests run it on the in-memory broker.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use postage::middleware::{Next, from_fn};
use postage::prelude::*;
use postage::processor::Incoming;
use serde::{Deserialize, Serialize};

use crate::components::Lines;

/// The orders exchange: requests and statuses.
pub const ORDERS: Exchange = Exchange::direct("orders-exchange");

/// The key `create` requests go with.
pub const CREATE_KEY: &str = "orders-create-rk";

/// The key the `order_created` status goes with.
pub const CREATED_KEY: &str = "orders-created-rk";

/// What a customer asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewOrder {
    /// What.
    pub item: String,
    /// How many.
    pub quantity: u32,
}

/// An order made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderCreated {
    /// Its number.
    pub id: u64,
    /// What.
    pub item: String,
    /// How many.
    pub quantity: u32,
}

/// The clients' API: `create` answers with an [`OrderCreated`].
pub struct OrdersClient;

#[producer(eks = [(ORDERS, CREATE_KEY)])]
impl OrdersClient {
    fn build_rpc_create(&self, order: &NewOrder) -> RpcCommand<OrderCreated> {
        RpcCommand::new("create", order)
    }
}

/// What the orders service broadcasts.
pub struct OrderEvents;

#[producer(eks = [(ORDERS, CREATED_KEY)])]
impl OrderEvents {
    fn build_message_order_created(&self, order: &OrderCreated) -> MessageStatus {
        MessageStatus::with_parameters("order_created", order)
    }
}

/// The orders service: makes orders and says so.
pub struct OrderService {
    /// Where `order_created` goes.
    pub events: ProducerApi<OrderEvents>,
    /// The last order number given.
    pub last_id: AtomicU64,
}

#[processor]
impl OrderService {
    #[rpc_handler("command", "create")]
    async fn create(&self, Params(order): Params<NewOrder>) -> Result<OrderCreated, RpcError> {
        if order.quantity == 0 {
            return Err(RpcError::error("an order needs a quantity"));
        }
        let created = OrderCreated {
            id: self.last_id.fetch_add(1, Ordering::Relaxed) + 1,
            item: order.item,
            quantity: order.quantity,
        };
        self.events.message_order_created(&created).await?;
        Ok(created)
    }
}

/// Billing: charges each order made; a charge that fails is tried again
/// (see [`BILLING_RETRIES`]).
pub struct Billing {
    /// Where its lines go.
    pub lines: Lines,
    /// Charges to fail before one succeeds (a payment provider that is
    /// down for a moment).
    pub failures_left: Mutex<u32>,
}

/// The delays after which billing tries a failed charge again.
pub const BILLING_RETRIES: &[Duration] = &[Duration::from_millis(200), Duration::from_secs(1)];

#[processor]
impl Billing {
    #[handler("status", "order_created")]
    async fn charge(&self, Params(order): Params<OrderCreated>) -> Result<(), HandlerError> {
        {
            let mut left = self.failures_left.lock().unwrap_or_else(|e| e.into_inner());
            if *left > 0 {
                *left -= 1;
                return Err(HandlerError::new("PaymentUnavailable", "try again later"));
            }
        }
        self.lines.say(format!(
            "billed order {}: {} x {}",
            order.id, order.quantity, order.item
        ));
        Ok(())
    }
}

/// Billing's middleware: only the `orders` component may announce an
/// order. Anything else is refused for good (parked at once under
/// billing's retry policy, never charged).
pub async fn only_from_orders(
    incoming: Incoming,
    next: Next<Incoming>,
) -> Result<(), HandlerError> {
    let sender = incoming.sender();
    if sender.name.as_deref() != Some("orders") {
        return Err(HandlerError::permanent(
            "Unauthorized",
            format!("billing charges orders announced by `orders`, not by {sender}"),
        ));
    }
    Ok(next.run(incoming).await?)
}

/// Connects the service and billing on `connection`: the service takes
/// `create` requests from `orders-queue`, billing `order_created` from
/// `billing-queue`, retrying failed charges after [`BILLING_RETRIES`].
pub async fn connect(
    connection: &Connection,
    lines: Lines,
    billing_failures: u32,
) -> postage::Result<(Processor<OrderService>, Processor<Billing>)> {
    // The service announces orders under its own name: billing checks it.
    let orders = Fingerprint::new("orders", "service");
    let events = OrderEvents
        .connect_with(Producer::builder().fingerprint(orders.clone()), connection)
        .await?;
    let service = Processor::builder(OrderService {
        events,
        last_id: AtomicU64::new(0),
    })
    .bind(
        ORDERS,
        [(Queue::new("orders-queue").durable(true), CREATE_KEY)],
    )
    .fingerprint(orders)
    .connect(connection)
    .await?;
    let billing = Processor::builder(Billing {
        lines,
        failures_left: Mutex::new(billing_failures),
    })
    .bind(
        ORDERS,
        [(Queue::new("billing-queue").durable(true), CREATED_KEY)],
    )
    .on_error(OnError::retry(BILLING_RETRIES))
    .layer(from_fn(only_from_orders))
    .fingerprint(Fingerprint::new("billing", "service"))
    .connect(connection)
    .await?;
    Ok((service, billing))
}

//! The [`ProcessorBuilder`] options that shape its flow: order by key,
//! the kill switch, partitions (see [`crate::flow`]).

use super::{Handlers, ProcessorBuilder};
use crate::flow::{KillSwitch, OrderKey, Partitions};

impl<P: Handlers, L> ProcessorBuilder<P, L> {
    /// Keeps the order of the messages of each key while several are
    /// handled at once ([`concurrency`](Self::concurrency) above 1): the
    /// messages of one key (a routing key, a header, a field of the
    /// parameters) never overlap and are handled in the order the queue
    /// delivered them; other keys run at once. The concurrency is the
    /// number of lanes; keys are spread over them by hash, so two keys may
    /// share a lane and take turns. Without it, concurrent messages run in
    /// any order. Order holds for one processor; across processes, see
    /// single active consumers ([`Queue::single_active_consumer`]).
    ///
    /// A message retried by its failure policy comes back later and so
    /// out of order; a processor that stops hands the messages still
    /// waiting in its lanes back to the broker, which delivers them again
    /// in order.
    ///
    /// ```no_run
    /// use postage::prelude::*;
    /// use postage::flow::OrderKey;
    ///
    /// struct Accounts;
    ///
    /// #[processor]
    /// impl Accounts {
    ///     #[handler("command", "deposit")]
    ///     async fn deposit(&self, Params(deposit): Params<serde_json::Value>) {
    ///         // Two deposits of one account never run at once.
    ///     }
    /// }
    ///
    /// # async fn run(connection: &Connection) -> postage::Result<()> {
    /// let processor = Processor::builder(Accounts)
    ///     .bind(Exchange::direct("accounts"), [("accounts", "deposit")])
    ///     .concurrency(8)
    ///     .ordered_by(OrderKey::parameter("account"))
    ///     .connect(connection)
    ///     .await?;
    /// # Ok(()) }
    /// ```
    ///
    /// [`Queue::single_active_consumer`]: crate::Queue::single_active_consumer
    #[must_use]
    pub fn ordered_by(mut self, key: OrderKey) -> Self {
        self.order = Some(key);
        self
    }

    /// Pauses consumption for a cool-down when too many recent messages
    /// fail (see [`KillSwitch`]), so that a failing dependency costs a
    /// few messages, not the queue; the health says `tripped` meanwhile.
    ///
    /// ```no_run
    /// # use postage::prelude::*;
    /// use std::time::Duration;
    /// use postage::flow::KillSwitch;
    /// # struct Orders;
    /// # #[processor]
    /// # impl Orders {
    /// #     #[handler("command", "place")]
    /// #     async fn place(&self) {}
    /// # }
    /// # async fn run(connection: &Connection) -> postage::Result<()> {
    /// let processor = Processor::builder(Orders)
    ///     .bind(Exchange::direct("orders"), [("orders", "place")])
    ///     .kill_switch(KillSwitch::new(0.5).cool_down(Duration::from_secs(30)))
    ///     .connect(connection)
    ///     .await?;
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn kill_switch(mut self, switch: KillSwitch) -> Self {
        self.kill_switch = Some(switch);
        self
    }

    /// Makes it a worker of a partition group ([`Partitions`]): it
    /// declares the group's partition queues and consumes those the
    /// workers of the group assign it, spread again within seconds when a
    /// worker joins, stops or dies. The messages of one key are handled in
    /// order, one at a time (with [`concurrency`](Self::concurrency) and
    /// [`ordered_by`](Self::ordered_by) with the same key, partitions run
    /// at once inside one worker). Producers send through
    /// `middleware::PartitionLayer`.
    ///
    /// ```no_run
    /// # use postage::prelude::*;
    /// use postage::flow::{OrderKey, Partitions};
    /// use postage::middleware::PartitionLayer;
    /// # struct Accounts;
    /// # #[processor]
    /// # impl Accounts {
    /// #     #[handler("command", "deposit")]
    /// #     async fn deposit(&self) {}
    /// # }
    /// # async fn run(connection: &Connection) -> postage::Result<()> {
    /// let accounts = Partitions::new("accounts", 16).by(OrderKey::parameter("account"));
    /// let worker = Processor::builder(Accounts)
    ///     .partitions(accounts.clone())
    ///     .concurrency(4)
    ///     .ordered_by(accounts.key().clone())
    ///     .connect(connection)
    ///     .await?;
    /// let producer = Producer::builder()
    ///     .ek(accounts.exchange(), "")
    ///     .layer(PartitionLayer::new(accounts.clone()))
    ///     .connect(connection)
    ///     .await?;
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn partitions(mut self, partitions: Partitions) -> Self {
        self.partitions = Some(partitions);
        self
    }
}

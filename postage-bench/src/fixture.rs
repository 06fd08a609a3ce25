//! Per-run broker set-up: a uniquely named exchange and queue, declared,
//! pre-filled and deleted on the harness's own lapin channel.

use futures_util::stream::{FuturesUnordered, StreamExt};
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, ExchangeDeleteOptions,
    QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, ConnectionProperties};
use postage::prelude::*;
use postage::testing::{MemoryBroker, Probe};

use crate::args::{Impl, Scenario};
use crate::common::{CONTENT_TYPE, KEY, Res};
use crate::lapin_side::check_confirm;

/// A uniquely named exchange and queue, bound with [`KEY`].
pub(crate) struct Fixture {
    pub(crate) exchange: String,
    pub(crate) queue: String,
}

impl Fixture {
    pub(crate) fn exchange(&self) -> Exchange {
        Exchange::new(self.exchange.as_str(), ExchangeKind::Direct)
    }
}

/// The fixture of a run on a new in-memory broker, declared (and
/// pre-filled with `n` copies of `body`) through a probe.
pub(crate) async fn memory_fixture(
    broker: &MemoryBroker,
    scenario: Scenario,
    run: usize,
    prefill: Option<(u64, &[u8])>,
) -> Res<Fixture> {
    let tag = format!("postage-bench-{}-memory-{run}", scenario.name());
    let fixture = Fixture {
        exchange: format!("{tag}-x"),
        queue: format!("{tag}-q"),
    };
    let probe = Probe::open(&broker.connect().await?).await?;
    probe.declare_exchange(&fixture.exchange()).await?;
    probe
        .declare_queue(&Queue::new(fixture.queue.as_str()))
        .await?;
    probe.bind(&fixture.queue, &fixture.exchange, KEY).await?;
    if let Some((n, body)) = prefill {
        for _ in 0..n {
            probe
                .publish(&fixture.exchange, KEY, body)
                .content_type(CONTENT_TYPE)
                .await?;
        }
    }
    probe.close().await;
    Ok(fixture)
}

/// The harness's own lapin channel: declares, pre-fills, deletes.
pub(crate) struct Admin {
    _connection: lapin::Connection,
    channel: lapin::Channel,
}

impl Admin {
    pub(crate) async fn connect(url: &str) -> Res<Self> {
        let connection = lapin::Connection::connect(url, ConnectionProperties::default()).await?;
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(Admin {
            _connection: connection,
            channel,
        })
    }

    pub(crate) async fn fixture(&self, scenario: Scenario, imp: Impl, run: usize) -> Res<Fixture> {
        let tag = format!(
            "postage-bench-{}-{}-{}-{run}",
            scenario.name(),
            imp.name(),
            std::process::id()
        );
        let fixture = Fixture {
            exchange: format!("{tag}-x"),
            queue: format!("{tag}-q"),
        };
        self.channel
            .exchange_declare(
                fixture.exchange.as_str().into(),
                lapin::ExchangeKind::Direct,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        self.channel
            .queue_declare(
                fixture.queue.as_str().into(),
                QueueDeclareOptions::default(),
                FieldTable::default(),
            )
            .await?;
        self.channel
            .queue_bind(
                fixture.queue.as_str().into(),
                fixture.exchange.as_str().into(),
                KEY.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok(fixture)
    }

    pub(crate) async fn remove(&self, fixture: &Fixture) -> Res<()> {
        self.channel
            .queue_delete(fixture.queue.as_str().into(), QueueDeleteOptions::default())
            .await?;
        self.channel
            .exchange_delete(
                fixture.exchange.as_str().into(),
                ExchangeDeleteOptions::default(),
            )
            .await?;
        Ok(())
    }

    /// Puts `n` copies of `body` into the fixture's queue.
    pub(crate) async fn prefill(
        &self,
        fixture: &Fixture,
        n: u64,
        body: &[u8],
        window: usize,
    ) -> Res<()> {
        let props = BasicProperties::default().with_content_type(CONTENT_TYPE.into());
        let mut pending = FuturesUnordered::new();
        for _ in 0..n {
            let confirm = self
                .channel
                .basic_publish(
                    fixture.exchange.as_str().into(),
                    KEY.into(),
                    BasicPublishOptions::default(),
                    body,
                    props.clone(),
                )
                .await?;
            pending.push(confirm);
            if pending.len() >= window {
                check_confirm(pending.next().await)?;
            }
        }
        while !pending.is_empty() {
            check_confirm(pending.next().await)?;
        }
        Ok(())
    }
}

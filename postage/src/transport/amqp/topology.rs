//! Declarations through a channel Postage opens again after a loss:
//! exchanges, queues, bindings and deletions, each recorded (or
//! forgotten) for the next recovery.

use std::collections::BTreeMap;

use serde_json::Value;

use super::channel::Channel;
use super::declare;
use crate::error::Result;
use crate::topology::{Exchange, Queue};
use crate::transport::Declared;

impl Channel {
    pub(crate) async fn declare_exchange(&self, exchange: &Exchange) -> Result<()> {
        let what = || format!("exchange.declare {:?}", exchange.name());
        self.0
            .with_channel(what, |channel| async move {
                declare::exchange(&channel, exchange).await
            })
            .await?;
        self.0.connection.state().record.exchange(exchange);
        Ok(())
    }

    pub(crate) async fn declare_queue(&self, queue: &Queue) -> Result<Declared> {
        let what = || format!("queue.declare {:?}", queue.name());
        // A passive declaration of a server-named queue by the name it had
        // before a recovery (the watchdog's, a consumer's) finds it under
        // the name it has now.
        let name = if queue.is_passive() {
            let state = self.0.connection.state();
            state.record.current_name(queue.name()).to_owned()
        } else {
            queue.name().to_owned()
        };
        let name = name.as_str();
        let (declared, _) = self
            .0
            .with_channel(what, |channel| async move {
                declare::queue(&channel, queue, name).await
            })
            .await?;
        if !queue.is_passive() {
            self.0
                .connection
                .state()
                .record
                .queue(queue, &declared.name);
        }
        Ok(declared)
    }

    pub(crate) async fn bind(
        &self,
        destination: &str,
        to_exchange: bool,
        exchange: &str,
        key: &str,
        arguments: &BTreeMap<String, Value>,
    ) -> Result<()> {
        let what = || format!("bind {destination:?} to {exchange:?} with key {key:?}");
        self.0
            .with_channel(what, |channel| async move {
                declare::bind(&channel, destination, to_exchange, exchange, key, arguments).await
            })
            .await?;
        self.0.connection.state().record.binding(
            destination,
            to_exchange,
            exchange,
            key,
            arguments,
        );
        Ok(())
    }

    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    pub(crate) async fn unbind(
        &self,
        destination: &str,
        to_exchange: bool,
        exchange: &str,
        key: &str,
    ) -> Result<()> {
        let what = || format!("unbind {destination:?} from {exchange:?} with key {key:?}");
        self.0
            .with_channel(what, |channel| async move {
                declare::unbind(&channel, destination, to_exchange, exchange, key).await
            })
            .await?;
        self.0
            .connection
            .state()
            .record
            .unbound(destination, exchange, key);
        Ok(())
    }

    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    pub(crate) async fn delete_queue(&self, queue: &str) -> Result<u32> {
        let what = || format!("queue.delete {queue:?}");
        let (messages, _) = self
            .0
            .with_channel(what, |channel| async move {
                declare::delete_queue(&channel, queue).await
            })
            .await?;
        self.0.connection.state().record.forget_queue(queue);
        Ok(messages)
    }

    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    pub(crate) async fn delete_exchange(&self, exchange: &str) -> Result<()> {
        let what = || format!("exchange.delete {exchange:?}");
        self.0
            .with_channel(what, |channel| async move {
                declare::delete_exchange(&channel, exchange).await
            })
            .await?;
        self.0.connection.state().record.forget_exchange(exchange);
        Ok(())
    }
}

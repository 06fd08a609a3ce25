//! Deliveries and consumers as lapin gives them.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::{Stream, StreamExt};
use lapin::options::{BasicAckOptions, BasicRejectOptions};

use super::convert::{amqp_error, count};
use crate::error::Result;

/// A delivery as lapin received it.
pub(crate) struct Delivery(lapin::message::Delivery);

/// A lapin consumer's stream of deliveries. Cheap to clone (a handle).
#[derive(Clone)]
pub(crate) struct Consumer(pub(super) lapin::Consumer);

/// Why a consumer's stream was interrupted (usually a lost connection).
#[derive(Debug)]
pub(crate) struct Interruption(pub(super) lapin::Error);

impl std::fmt::Display for Interruption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl Stream for Consumer {
    type Item = Result<Delivery, Interruption>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0
            .poll_next_unpin(cx)
            .map(|next| next.map(|item| item.map(Delivery).map_err(Interruption)))
    }
}

impl Delivery {
    pub(crate) fn data(&self) -> &[u8] {
        &self.0.data
    }

    pub(crate) fn exchange(&self) -> &str {
        self.0.exchange.as_str()
    }

    pub(crate) fn routing_key(&self) -> &str {
        self.0.routing_key.as_str()
    }

    pub(crate) fn redelivered(&self) -> bool {
        self.0.redelivered
    }

    pub(crate) fn reply_to(&self) -> Option<&str> {
        self.0.properties.reply_to().as_ref().map(|s| s.as_str())
    }

    pub(crate) fn correlation_id(&self) -> Option<&str> {
        self.0
            .properties
            .correlation_id()
            .as_ref()
            .map(|s| s.as_str())
    }

    pub(crate) fn content_type(&self) -> Option<&str> {
        self.0
            .properties
            .content_type()
            .as_ref()
            .map(|s| s.as_str())
    }

    pub(crate) fn delivery_count(&self) -> Option<u64> {
        let headers = self.0.properties.headers().as_ref()?;
        count(headers.inner().get("x-delivery-count")?)
    }

    pub(crate) async fn ack(&self) -> Result<()> {
        self.0
            .ack(BasicAckOptions::default())
            .await
            .map(|_| ())
            .map_err(|e| amqp_error("basic.ack", e))
    }

    pub(crate) async fn reject(&self, requeue: bool) -> Result<()> {
        self.0
            .reject(BasicRejectOptions { requeue })
            .await
            .map(|_| ())
            .map_err(|e| amqp_error("basic.reject", e))
    }
}

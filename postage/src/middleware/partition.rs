//! [`PartitionLayer`]: a producer layer that sends each message to its
//! key's partition of a [`Partitions`] group.

use std::task::{Context, Poll};

use serde_json::Value;
use tower::{Layer, Service};

use super::Outgoing;
use crate::flow::{OrderKey, Partitions, routing_key};

/// A producer layer: routes each message to its key's partition (the
/// routing key of every target becomes `pNN`).
///
/// ```
/// use postage::flow::{OrderKey, Partitions};
/// use postage::middleware::PartitionLayer;
///
/// let accounts = Partitions::new("accounts", 16).by(OrderKey::parameter("account"));
/// let layer = PartitionLayer::new(accounts);
/// # let _ = layer;
/// ```
#[derive(Debug, Clone)]
pub struct PartitionLayer {
    partitions: Partitions,
}

impl PartitionLayer {
    /// Routes to the partitions of `partitions`.
    pub fn new(partitions: Partitions) -> Self {
        PartitionLayer { partitions }
    }
}

impl<S> Layer<S> for PartitionLayer {
    type Service = Partitioned<S>;

    fn layer(&self, inner: S) -> Partitioned<S> {
        Partitioned {
            inner,
            partitions: self.partitions.clone(),
        }
    }
}

/// The service of a [`PartitionLayer`].
#[derive(Debug, Clone)]
pub struct Partitioned<S> {
    inner: S,
    partitions: Partitions,
}

impl<S: Service<Outgoing>> Service<Outgoing> for Partitioned<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut outgoing: Outgoing) -> S::Future {
        let keys: Vec<String> = outgoing
            .targets()
            .iter()
            .map(|(_, key)| {
                let key = key_of(&self.partitions, &outgoing, key);
                routing_key(self.partitions.partition_of(&key))
            })
            .collect();
        for ((_, key), partition) in outgoing.targets_mut().iter_mut().zip(keys) {
            *key = partition;
        }
        self.inner.call(outgoing)
    }
}

/// The key of an outgoing message, as text.
fn key_of(partitions: &Partitions, outgoing: &Outgoing, routing_key: &str) -> String {
    let text = |value: &Value| match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    match partitions.key() {
        OrderKey::RoutingKey => routing_key.to_owned(),
        OrderKey::Header(name) => outgoing.headers().get(name).map(text).unwrap_or_default(),
        OrderKey::Parameter(name) => serde_json::from_slice::<Value>(outgoing.body())
            .ok()
            .and_then(|body| body.get("content")?.get("parameters")?.get(name).map(text))
            .unwrap_or_default(),
    }
}

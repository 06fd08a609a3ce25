//! [`Partitions`]: the messages of a group spread over a fixed number of
//! partition queues by a key, each consumed by one worker at a time.

use std::time::Duration;

use super::OrderKey;
use crate::topology::{Exchange, ExchangeKind, Queue};

/// A group of partition queues: `<group>.p00` … bound to the durable
/// direct exchange `<group>` with keys `p00` …, each with a single active
/// consumer. A producer routes a message to partition
/// `fnv1a64(key) % count` (FNV-1a, 64 bits, over the key's UTF-8 bytes;
/// the same in any language) with the producer layer
/// `middleware::PartitionLayer`; processors of
/// the group (`ProcessorBuilder::partitions`) agree on which worker
/// consumes which partitions and spread them again when a worker joins,
/// stops or dies. The messages of one key are handled in order, one at a
/// time, by whichever worker holds its partition; a partition changes
/// hands only after what its last holder received is settled.
///
/// ```
/// use postage::flow::{OrderKey, Partitions};
///
/// let accounts = Partitions::new("accounts", 16).by(OrderKey::parameter("account"));
/// assert_eq!(accounts.queue(3).name(), "accounts.p03");
/// assert!(accounts.partition_of("acct-7") < 16);
/// assert_eq!(accounts.partition_of("acct-7"), accounts.partition_of("acct-7"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partitions {
    group: String,
    count: u16,
    key: OrderKey,
    quorum: bool,
}

impl Partitions {
    /// `count` partitions (at least 1, at most 100) of `group`, keyed by
    /// the routing key until [`by`](Self::by) says otherwise.
    pub fn new(group: impl Into<String>, count: u16) -> Self {
        Partitions {
            group: group.into(),
            count: count.clamp(1, 100),
            key: OrderKey::RoutingKey,
            quorum: false,
        }
    }

    /// Quorum partition queues (replicated over a cluster's nodes, so a
    /// partition outlives the node it was on) instead of classic ones.
    /// Every producer and worker of a group must say the same: RabbitMQ
    /// refuses to declare a queue again with another type.
    ///
    /// ```
    /// use postage::flow::Partitions;
    ///
    /// let orders = Partitions::new("orders", 8).quorum();
    /// assert_eq!(orders.queue(0).arguments()["x-queue-type"], "quorum");
    /// assert!(orders.queue(0).is_single_active_consumer());
    /// ```
    #[must_use]
    pub fn quorum(mut self) -> Self {
        self.quorum = true;
        self
    }

    /// What a message's key is: its routing key, a header, or a field of
    /// its parameters.
    #[must_use]
    pub fn by(mut self, key: OrderKey) -> Self {
        self.key = key;
        self
    }

    /// The group's name.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// How many partitions it has.
    pub fn count(&self) -> u16 {
        self.count
    }

    /// What a message's key is.
    pub fn key(&self) -> &OrderKey {
        &self.key
    }

    /// The exchange the partitions are bound to: `<group>`, durable,
    /// direct.
    pub fn exchange(&self) -> Exchange {
        Exchange::new(self.group.clone(), ExchangeKind::Direct).durable(true)
    }

    /// Partition `partition`'s queue: `<group>.pNN`, durable, with a
    /// single active consumer (a quorum queue when [`quorum`](Self::quorum)
    /// says so).
    pub fn queue(&self, partition: u16) -> Queue {
        let name = format!("{}.{}", self.group, routing_key(partition));
        let queue = if self.quorum {
            Queue::quorum(name)
        } else {
            Queue::new(name).durable(true)
        };
        queue.single_active_consumer()
    }

    /// The partition of a message whose key is `key`.
    pub fn partition_of(&self, key: &str) -> u16 {
        let partition = fnv1a64(key.as_bytes()) % u64::from(self.count);
        u16::try_from(partition).unwrap_or(0)
    }
}

/// How often a partition worker's consumer watchdog looks at its
/// partitions, unless the processor sets its own
/// ([`ProcessorBuilder::watchdog`](crate::ProcessorBuilder::watchdog)):
/// a partition that holds ready messages and delivered none for two
/// periods gets its consumer a new channel.
///
/// RabbitMQ 3.10 can leave a single active consumer queue with one
/// consumer that receives nothing, when two workers subscribed to it at
/// once (each before it heard the other take it) and the active one then
/// gave it up. Measured with `postage-bench workers --workers 8`: 2 runs
/// in 36 had a partition stand still until the watchdog replaced the
/// channel.
pub const PARTITION_WATCHDOG_PERIOD: Duration = Duration::from_secs(2);

/// The routing key of partition `partition`: `p00`, `p01`, …
pub fn routing_key(partition: u16) -> String {
    format!("p{partition:02}")
}

/// FNV-1a, 64 bits.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_matches_its_reference_values() {
        // From the FNV reference test vectors.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn keys_spread_over_every_partition() {
        let partitions = Partitions::new("g", 16);
        let mut seen = [0_u32; 16];
        for n in 0..1600 {
            seen[usize::from(partitions.partition_of(&format!("key-{n}")))] += 1;
        }
        assert!(seen.iter().all(|&n| n > 50), "{seen:?}");
        assert_eq!(Partitions::new("g", 0).count(), 1);
        assert_eq!(routing_key(7), "p07");
    }
}

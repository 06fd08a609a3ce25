//! The workers of a partition group agreeing on who consumes which
//! partitions: each says once a second, on the group's fanout exchange
//! `<group>.members`, that it is there and which partitions it holds; a
//! worker not heard from for three seconds (or that said it leaves) is
//! gone. With the members sorted by name, worker `r` of `W` is given the
//! partitions `p` with `p % W == r`: at most ⌈N/W⌉ each.
//!
//! A partition changes hands without two workers at work on it:
//! - the worker that gives it up cancels its consumer, handles what it
//!   already received, and holds the partition until all of it is
//!   acknowledged; only then does it stop saying it holds it;
//! - the worker it goes to consumes it once no other worker present says
//!   it holds it;
//! - a worker that stops closes its channel without cancelling first, so
//!   that the broker requeues what it did not acknowledge and moves the
//!   partition's single active consumer on in one step; one that dies
//!   loses its connection, with the same effect. Others may stand by on
//!   its partitions as soon as it leaves: the single active consumer lets
//!   one of them work only then.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::Partitions;
use super::routing_key;
use crate::consumer::{Consumer, ConsumerHandle, Released};
use crate::error::Result;
use crate::telemetry::About;
use crate::topology::{Exchange, ExchangeKind, Queue};
use crate::transport::{Channel, Connection, OutgoingProperties, Role};

/// How often a worker says it is there.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// How long a worker not heard from counts as there.
const GONE_AFTER: Duration = Duration::from_secs(3);

/// What a worker says on the members exchange.
#[derive(Debug, Serialize, Deserialize)]
struct Heartbeat {
    member: String,
    #[serde(default)]
    leaving: bool,
    /// The partitions it consumes, or gave up and still settles.
    #[serde(default)]
    held: BTreeSet<u16>,
}

/// A member as last heard from.
struct Member {
    at: Instant,
    held: BTreeSet<u16>,
}

/// This worker's partitions.
#[derive(Default)]
struct Mine {
    /// Consumed.
    held: BTreeSet<u16>,
    /// Given up, not yet all settled.
    releasing: Vec<(u16, Released)>,
}

impl Mine {
    /// What it says it holds.
    fn said(&self) -> BTreeSet<u16> {
        let mut said = self.held.clone();
        said.extend(self.releasing.iter().map(|(p, _)| *p));
        said
    }
}

/// A worker of a partition group, connected, not yet taking part.
pub(crate) struct Membership {
    partitions: Partitions,
    me: String,
    members: Exchange,
    channel: Channel,
    heartbeats: Consumer,
}

/// A worker taking part: [`stop`](Members::stop) it with its processor.
pub(crate) struct Members {
    stop: Arc<Notify>,
    task: JoinHandle<()>,
}

impl Membership {
    /// Declares the group's partition queues and members exchange, and
    /// listens to the other workers; `component` names this one.
    pub(crate) async fn connect(
        connection: &Connection,
        partitions: Partitions,
        component: &str,
    ) -> Result<Self> {
        let channel = connection.open_channel(Role::Publish, false).await?;
        let exchange = partitions.exchange();
        channel.declare_exchange(&exchange).await?;
        for partition in 0..partitions.count() {
            let queue = channel.declare_queue(&partitions.queue(partition)).await?;
            channel
                .bind(
                    &queue,
                    false,
                    exchange.name(),
                    &routing_key(partition),
                    &Default::default(),
                )
                .await?;
        }
        let members = Exchange::new(
            format!("{}.members", partitions.group()),
            ExchangeKind::Fanout,
        );
        let heartbeats = Consumer::builder()
            .bind(members.clone(), [(Queue::server_named(), "")])
            .prefetch(64)
            .name(format!("{}.members", partitions.group()))
            .watchdog(Duration::ZERO)
            .connect(connection)
            .await?;
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_nanos());
        Ok(Membership {
            partitions,
            me: format!("{component}.{}.{started}", std::process::id()),
            members,
            channel,
            heartbeats,
        })
    }

    /// Takes part: consumes this worker's partitions on `consumer`, and
    /// follows the others' comings and goings.
    pub(crate) fn start(self, consumer: ConsumerHandle) -> Members {
        let stop = Arc::new(Notify::new());
        let task = tokio::spawn(self.run(consumer, stop.clone()));
        Members { stop, task }
    }

    async fn run(mut self, consumer: ConsumerHandle, stop: Arc<Notify>) {
        let mut seen: HashMap<String, Member> = HashMap::new();
        let mut mine = Mine::default();
        let mut tick = tokio::time::interval(HEARTBEAT);
        // The others are heard from within a heartbeat: only then does a
        // new worker take partitions.
        let joined = Instant::now();
        let stopping = stop.notified();
        tokio::pin!(stopping);
        loop {
            tokio::select! {
                () = &mut stopping => break,
                _ = tick.tick() => {
                    seen.retain(|_, member| member.at.elapsed() < GONE_AFTER);
                    self.say(false, mine.said()).await;
                }
                delivery = self.heartbeats.next() => {
                    let Some(delivery) = delivery else { break };
                    let heartbeat = serde_json::from_slice::<Heartbeat>(delivery.body());
                    if let Err(error) = delivery.ack().await {
                        tracing::debug!(error = %error.report(), "could not acknowledge a heartbeat");
                    }
                    match heartbeat {
                        Ok(Heartbeat { member, leaving: true, .. }) => {
                            seen.remove(&member);
                        }
                        Ok(Heartbeat { member, held, .. }) => {
                            seen.insert(member, Member { at: Instant::now(), held });
                        }
                        Err(_) => {}
                    }
                }
            }
            if joined.elapsed() >= HEARTBEAT && self.rebalance(&consumer, &seen, &mut mine).await {
                self.say(false, mine.said()).await;
            }
        }
        self.say(true, mine.said()).await;
        self.heartbeats.close().await;
        self.channel.close().await;
    }

    /// Gives up the partitions no longer this worker's among `seen`, and
    /// consumes those that are and that nobody else holds. Whether what it
    /// holds changed.
    async fn rebalance(
        &self,
        consumer: &ConsumerHandle,
        seen: &HashMap<String, Member>,
        mine: &mut Mine,
    ) -> bool {
        let mut members: Vec<&str> = seen.keys().map(String::as_str).collect();
        if !members.contains(&self.me.as_str()) {
            members.push(&self.me);
        }
        members.sort_unstable();
        let workers = members.len();
        let rank = members.iter().position(|m| *m == self.me).unwrap_or(0);
        let given: BTreeSet<u16> = (0..self.partitions.count())
            .filter(|p| usize::from(*p) % workers == rank)
            .collect();
        let before = mine.said();
        for partition in mine.held.difference(&given).copied().collect::<Vec<_>>() {
            mine.held.remove(&partition);
            if let Some(released) = consumer
                .queue_release(self.partitions.queue(partition).name())
                .await
            {
                mine.releasing.push((partition, released));
            }
        }
        mine.releasing.retain(|(_, released)| !released.settled());
        let held_by_others: BTreeSet<u16> = seen
            .iter()
            .filter(|(name, _)| **name != self.me)
            .flat_map(|(_, member)| member.held.iter().copied())
            .collect();
        let exchange = self.partitions.exchange();
        for partition in given.difference(&mine.said()).copied().collect::<Vec<_>>() {
            if held_by_others.contains(&partition) {
                continue;
            }
            let queue = self.partitions.queue(partition);
            match consumer
                .queue_bind(&exchange, queue, &routing_key(partition))
                .await
            {
                Ok(_) => {
                    mine.held.insert(partition);
                }
                Err(error) => {
                    tracing::warn!(partition, error = %error.report(), "could not consume a partition; tried again at the next heartbeat");
                }
            }
        }
        let changed = mine.said() != before;
        if changed {
            tracing::info!(group = self.partitions.group(), workers, held = ?mine.held, releasing = mine.releasing.len(), "partitions");
        }
        changed
    }

    /// Says this worker is there (holding `held`), or leaves.
    async fn say(&self, leaving: bool, held: BTreeSet<u16>) {
        let heartbeat = Heartbeat {
            member: self.me.clone(),
            leaving,
            held,
        };
        let Ok(body) = serde_json::to_vec(&heartbeat) else {
            return;
        };
        let props = OutgoingProperties {
            content_type: Some("application/json"),
            ..OutgoingProperties::default()
        };
        let sent = self
            .channel
            .publish(
                self.members.name(),
                "",
                &body,
                &props,
                &About::of("heartbeat", "partitions"),
            )
            .await;
        if let Err(error) = sent {
            tracing::debug!(error = %error.report(), "could not send a heartbeat");
        }
    }
}

impl Members {
    /// Leaves the group (the others take its partitions over at once) and
    /// stops listening.
    pub(crate) async fn stop(self) {
        self.stop.notify_one();
        if let Err(error) = self.task.await {
            tracing::warn!(%error, "the partition membership's task failed");
        }
    }
}

//! Consumers on a channel Postage opens again: starting, cancelling, and
//! resuming one whose stream was interrupted (its connection lost, its
//! channel closed by the broker, or the consumer alone cancelled by the
//! broker because its queue was deleted).

use std::sync::Arc;
use std::time::Duration;

use lapin::options::{BasicCancelOptions, BasicConsumeOptions};
use lapin::types::FieldTable;
use tokio::time::Instant;

use super::channel::{Channel, lock};
use super::convert::amqp_error;
use super::delivery::{Consumer, ConsumerId, Interruption, Slot, Started};
use crate::error::Result;

impl Channel {
    pub(crate) async fn consume(&self, queue: &str, no_ack: bool) -> Result<Consumer> {
        let what = || format!("basic.consume {queue:?}");
        loop {
            let ((started, epoch), generation) = self
                .0
                .with_channel(what, |channel| async move {
                    let epoch = self.0.now().epoch;
                    channel
                        .basic_consume(
                            queue.into(),
                            "".into(),
                            BasicConsumeOptions {
                                no_ack,
                                ..BasicConsumeOptions::default()
                            },
                            FieldTable::default(),
                        )
                        .await
                        .map(|consumer| (consumer, epoch))
                })
                .await?;
            // Registered under the consumers' lock, on which a reopening
            // swaps the channel: either the reopening sees this consumer
            // and starts it on the new channel, or the channel was swapped
            // already and the consumer is started again there.
            let mut slots = lock(&self.0.slots);
            if self.0.generation() != generation {
                continue;
            }
            let slot = Slot::new(
                queue,
                no_ack,
                Started {
                    consumer: started,
                    generation,
                    epoch,
                },
            );
            slots.push(slot.clone());
            return Ok(Consumer::new(slot, self.0.clone()));
        }
    }

    pub(crate) async fn cancel(&self, consumer: &ConsumerId) -> Result<()> {
        let slot = &consumer.0;
        slot.cancel();
        let queue = slot.queue();
        let others = {
            let mut slots = lock(&self.0.slots);
            slots.retain(|s| !Arc::ptr_eq(s, slot));
            slots.iter().any(|s| *s.queue() == *queue)
        };
        if !others {
            self.0.connection.state().record.consumers_gone(&queue);
        }
        let now = self.0.now();
        let tag = slot.tag();
        match now
            .lapin
            .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
            .await
        {
            Ok(()) => Ok(()),
            // Gone with its channel: nothing left to cancel.
            Err(_) if self.0.lost_since(now.epoch) || !now.lapin.status().connected() => Ok(()),
            Err(e) => Err(amqp_error("basic.cancel", e)),
        }
    }

    /// Waits until `consumer` of `queue` runs again after `interruption`,
    /// and gives the consumer that replaces it:
    /// - its connection lost: once the connection is recovered;
    /// - its channel closed by the broker (a delivery unacknowledged past
    ///   the queue's `consumer_timeout`, another operation refused on the
    ///   channel): once the channel is opened again;
    /// - the consumer alone cancelled by the broker (its queue deleted):
    ///   once the queue is declared again from the connection's record
    ///   and consumed, unless `redeclare` is off.
    ///
    /// An error when the consumer was cancelled on request or cannot be
    /// restored within the recovery timeout.
    pub(crate) async fn resume_consumer(
        &self,
        queue: &str,
        consumer: &Consumer,
        interruption: Interruption,
        redeclare: bool,
    ) -> Result<Consumer> {
        let what = format!("basic.consume {queue:?}");
        let (generation, epoch) = consumer.started();
        if consumer.slot().is_cancelled() {
            return Err(interruption.into_error(what, "the consumer was cancelled"));
        }
        let shared = &self.0;
        let now = shared.now();
        // However long it takes (a consumer waits for its connection),
        // unless the consumer is stopped meanwhile.
        let reopened =
            || unless_cancelled(consumer.slot(), shared.reopened_within(generation, None));
        let reason = if now.generation != generation && !shared.lost_since(now.epoch) {
            // Replaced already (renewed, or reopened after a refusal).
            reopened().await
        } else if shared.closed_by_broker(&now) {
            warn_channel_closed(queue, &interruption);
            reopened().await
        } else if shared.failed_by_loss(epoch, interruption.error()).await {
            tracing::warn!(queue, %interruption, "consumer interrupted; waiting for recovery");
            reopened().await
        } else if redeclare {
            tracing::warn!(
                queue,
                "the broker cancelled the consumer (its queue was deleted?); declaring the queue again"
            );
            self.restart(consumer).await
        } else {
            Err("the broker cancelled the consumer (its queue was deleted?)")
        };
        if let Err(reason) = reason {
            return Err(interruption.into_error(what, reason));
        }
        let resumed = consumer.resumed();
        if resumed.same_as(consumer) {
            return Err(interruption.into_error(what, "the consumer was not started again"));
        }
        tracing::info!(queue, "consumer resumed");
        Ok(resumed)
    }

    /// Starts a consumer the broker cancelled again, on the same channel,
    /// its queue declared again first; tries until the recovery timeout
    /// (or until the channel is replaced, which starts it).
    async fn restart(&self, consumer: &Consumer) -> Result<(), &'static str> {
        let shared = &self.0;
        let slot = consumer.slot();
        let (generation, _) = consumer.started();
        let deadline = Instant::now() + shared.connection.config.recovery_timeout();
        let mut pause = Duration::from_millis(100);
        loop {
            if slot.is_cancelled() || shared.is_closed() {
                return Err("the consumer was cancelled");
            }
            let now = shared.now();
            if now.generation != generation || shared.closed_by_broker(&now) {
                // The channel was (or is to be) opened again, which
                // declares the queue again and starts the consumer.
                return shared.reopened_after(generation).await;
            }
            let attempt = slot.start_on(&shared.connection, &now.lapin, true);
            match shared.until_lost(now.epoch, attempt).await {
                Ok(started) => {
                    let _swap = lock(&shared.slots);
                    if shared.generation() == generation {
                        slot.replace(started, generation, now.epoch);
                    }
                    return Ok(());
                }
                Err(error) => {
                    tracing::debug!(%error, "starting a cancelled consumer again failed");
                    if Instant::now() >= deadline {
                        return Err(
                            "the queue could not be consumed again within the recovery timeout",
                        );
                    }
                    // A refusal closed the channel: the next turn opens
                    // it again, with this consumer.
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
            }
        }
    }
}

/// Waits for `wait`, or until the consumer of `slot` is cancelled.
pub(super) async fn unless_cancelled(
    slot: &Slot,
    wait: impl Future<Output = Result<(), &'static str>>,
) -> Result<(), &'static str> {
    let cancelled = async {
        while !slot.is_cancelled() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::select! {
        done = wait => done,
        () = cancelled => Err("the consumer was cancelled"),
    }
}

/// Says why the broker closed a consumer's channel, naming the queue's
/// `consumer_timeout` when that was the cause.
fn warn_channel_closed(queue: &str, interruption: &Interruption) {
    let reason = interruption.to_string();
    tracing::warn!(queue, %reason, "{}", channel_closed_warning(&reason));
}

/// The warning for a consumer's channel the broker closed for `reason`.
fn channel_closed_warning(reason: &str) -> &'static str {
    if reason.contains("acknowledgement") && reason.contains("timed out") {
        "the broker closed the consumer's channel: a delivery stayed unacknowledged past the queue's \
         consumer_timeout (a handler took too long; cap handlers with ProcessorBuilder::handler_timeout); \
         the channel is opened again and the broker delivers the message again"
    } else {
        "the broker closed the consumer's channel; opening it again"
    }
}

#[cfg(test)]
mod tests {
    use super::channel_closed_warning;

    #[test]
    fn an_acknowledgement_timeout_is_named_for_consumer_timeout() {
        // What RabbitMQ 3.10 closes the channel with.
        let reason = "protocol error: AMQP soft error: PRECONDITION_FAILED - delivery acknowledgement \
                      on channel 1 timed out. Timeout value used: 2000 ms. This timeout value can be \
                      configured, see consumers doc guide to learn more";
        assert!(channel_closed_warning(reason).contains("consumer_timeout"));
        assert!(channel_closed_warning(reason).contains("handler_timeout"));
        let other = "NOT_FOUND - no exchange 'x' in vhost '/'";
        assert!(!channel_closed_warning(other).contains("consumer_timeout"));
    }
}

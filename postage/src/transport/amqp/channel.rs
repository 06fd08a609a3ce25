//! A lapin channel: declarations, consumers, and publishing that rides out
//! a lost connection.

use std::sync::Arc;
use std::time::Duration;

use lapin::options::{
    BasicCancelOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Confirmation};

use super::convert::{amqp_error, field_table};
use super::delivery::{Consumer, Interruption};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::topology::{Exchange, ExchangeKind, Queue};
use crate::transport::{Link, OutgoingProperties};

/// How many times a publish interrupted by a lost connection is retried
/// after recovery.
const PUBLISH_RETRIES: u32 = 5;

/// A lapin channel. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Channel {
    inner: lapin::Channel,
    recovery_timeout: Duration,
    link: Arc<Link>,
    /// Publisher confirms on?
    confirms: bool,
}

fn basic_properties(props: &OutgoingProperties<'_>) -> BasicProperties {
    let mut properties = BasicProperties::default();
    if let Some(content_type) = props.content_type {
        properties = properties.with_content_type(content_type.into());
    }
    if props.persistent {
        properties = properties.with_delivery_mode(2);
    }
    if let Some(reply_to) = props.reply_to {
        properties = properties.with_reply_to(reply_to.into());
    }
    if let Some(correlation_id) = props.correlation_id {
        properties = properties.with_correlation_id(correlation_id.into());
    }
    if let Some(ms) = props.expiration_ms {
        properties = properties.with_expiration(ms.to_string().into());
    }
    properties
}

impl Channel {
    pub(super) fn new(
        inner: lapin::Channel,
        config: &Config,
        link: Arc<Link>,
        confirms: bool,
    ) -> Self {
        Channel {
            inner,
            recovery_timeout: config.recovery_timeout(),
            link,
            confirms,
        }
    }

    pub(crate) async fn declare_exchange(&self, exchange: &Exchange) -> Result<()> {
        let kind = match exchange.kind() {
            ExchangeKind::Direct => lapin::ExchangeKind::Direct,
            ExchangeKind::Fanout => lapin::ExchangeKind::Fanout,
            ExchangeKind::Topic => lapin::ExchangeKind::Topic,
            ExchangeKind::Headers => lapin::ExchangeKind::Headers,
        };
        let options = ExchangeDeclareOptions {
            passive: exchange.is_passive(),
            durable: exchange.is_durable(),
            auto_delete: exchange.is_auto_delete(),
            internal: false,
            nowait: false,
        };
        self.inner
            .exchange_declare(
                exchange.name().into(),
                kind,
                options,
                field_table(exchange.arguments()),
            )
            .await
            .map_err(|e| amqp_error(format!("exchange.declare {:?}", exchange.name()), e))
    }

    pub(crate) async fn declare_queue(&self, queue: &Queue) -> Result<String> {
        let options = QueueDeclareOptions {
            passive: false,
            durable: queue.is_durable(),
            exclusive: queue.is_exclusive(),
            auto_delete: queue.is_auto_delete(),
            nowait: false,
        };
        let declared = self
            .inner
            .queue_declare(queue.name().into(), options, field_table(queue.arguments()))
            .await
            .map_err(|e| amqp_error(format!("queue.declare {:?}", queue.name()), e))?;
        Ok(declared.name().to_string())
    }

    pub(crate) async fn bind(&self, queue: &str, exchange: &str, key: &str) -> Result<()> {
        self.inner
            .queue_bind(
                queue.into(),
                exchange.into(),
                key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| {
                amqp_error(
                    format!("queue.bind {queue:?} to {exchange:?} with key {key:?}"),
                    e,
                )
            })
    }

    pub(crate) async fn qos(&self, prefetch: u16) -> Result<()> {
        self.inner
            .basic_qos(prefetch, BasicQosOptions::default())
            .await
            .map_err(|e| amqp_error("basic.qos", e))
    }

    pub(crate) async fn consume(&self, queue: &str, no_ack: bool) -> Result<Consumer> {
        self.inner
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
            .map(Consumer)
            .map_err(|e| amqp_error(format!("basic.consume {queue:?}"), e))
    }

    pub(crate) async fn cancel(&self, consumer: &Consumer) -> Result<()> {
        self.inner
            .basic_cancel(consumer.0.tag(), BasicCancelOptions::default())
            .await
            .map_err(|e| amqp_error("basic.cancel", e))
    }

    /// See [`transport::Channel::publish`](crate::transport::Channel::publish).
    pub(crate) async fn publish(
        &self,
        exchange: &str,
        key: &str,
        body: &[u8],
        props: &OutgoingProperties<'_>,
    ) -> Result<()> {
        let options = BasicPublishOptions {
            // Without confirms lapin keeps a returned message to itself,
            // never reported: mandatory is only asked for with confirms.
            mandatory: props.mandatory && self.confirms,
            immediate: false,
        };
        let mut retries = 0;
        loop {
            let attempt = async {
                self.inner
                    .basic_publish(
                        exchange.into(),
                        key.into(),
                        options,
                        body,
                        basic_properties(props),
                    )
                    .await?
                    .await
            };
            let outcome = if self.confirms {
                // A confirmation lost with the connection never resolves: the
                // attempt ends when the connection comes back, or at the
                // recovery timeout when it does not. Created before the
                // attempt starts, so that no recovery is missed; an attempt
                // made while the connection still counts as recovering (just
                // after `wait_for_recovery`) does not race the end of that
                // same recovery.
                let recovered = self.link.recovered_notified();
                let race_recovery = !self.link.recovering();
                tokio::select! {
                    outcome = tokio::time::timeout(self.recovery_timeout, attempt) => match outcome {
                        Ok(outcome) => outcome,
                        Err(_) => return Err(Error::Unconfirmed {
                            exchange: exchange.to_owned(),
                            key: key.to_owned(),
                            timeout: self.recovery_timeout,
                        }),
                    },
                    () = recovered, if race_recovery => {
                        if retries == PUBLISH_RETRIES {
                            return Err(Error::PublishInterrupted {
                                exchange: exchange.to_owned(),
                                key: key.to_owned(),
                                attempts: retries + 1,
                            });
                        }
                        retries += 1;
                        tracing::warn!(exchange, key, "the connection recovered before the publisher confirmation came; publishing again");
                        continue;
                    }
                }
            } else {
                // Without confirms the attempt ends once the frames are
                // written or rejected: nothing to lose, no time limit to arm.
                attempt.await
            };
            let error = match outcome {
                Ok(confirmation) => return confirmed(confirmation, exchange, key),
                Err(error) if retries < PUBLISH_RETRIES => error,
                Err(error) => {
                    return Err(amqp_error(format!("basic.publish to {exchange:?}"), error));
                }
            };
            retries += 1;
            tracing::warn!(exchange, key, %error, "publish interrupted; waiting for the connection to recover");
            self.wait_for_recovery(error)
                .await
                .map_err(|e| amqp_error(format!("basic.publish to {exchange:?}"), e))?;
        }
    }

    /// Waits until lapin has recovered the channel of the consumer of
    /// `queue` after `interruption`, logging the interruption and the
    /// recovery; an error when recovery is impossible.
    pub(crate) async fn resume_consumer(
        &self,
        queue: &str,
        interruption: Interruption,
    ) -> Result<()> {
        let error = interruption.0;
        tracing::warn!(queue, %error, "consumer interrupted; waiting for recovery");
        self.wait_for_recovery(error)
            .await
            .map_err(|e| amqp_error(format!("basic.consume {queue:?}"), e))?;
        tracing::info!(queue, "consumer recovered");
        Ok(())
    }

    /// Waits until lapin has recovered the channel after `error`; gives
    /// the error back when recovery is impossible.
    /// Waits at most the recovery timeout.
    async fn wait_for_recovery(&self, error: lapin::Error) -> Result<(), lapin::Error> {
        let wait = async {
            match self.inner.wait_for_recovery(error.clone()).await {
                // Frames that were still waiting to be written when the
                // socket died are rejected with the bare I/O error, without
                // the notifier lapin gives errors of a channel it is
                // recovering: the connection is lost all the same, and
                // comes back by itself.
                Err(lost)
                    if matches!(
                        lost.kind(),
                        lapin::ErrorKind::IOError(_) | lapin::ErrorKind::MissingHeartbeatError
                    ) =>
                {
                    self.back_after_loss().await;
                    Ok(())
                }
                other => other,
            }
        };
        match tokio::time::timeout(self.recovery_timeout, wait).await {
            Ok(result) => result,
            Err(_) => Err(error),
        }
    }

    /// Returns once the connection has recovered, or this channel has been
    /// seen down and up again (whichever is noticed first).
    async fn back_after_loss(&self) {
        let mut seen_down = false;
        loop {
            let recovered = self.link.recovered_notified();
            if !self.inner.status().connected() {
                seen_down = true;
            } else if seen_down {
                return;
            }
            tokio::select! {
                () = recovered => return,
                () = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        }
    }

    pub(crate) fn is_open(&self) -> bool {
        self.inner.status().connected()
    }

    pub(crate) async fn close(&self) {
        if self.inner.status().connected()
            && let Err(e) = self.inner.close(200, "OK".into()).await
        {
            tracing::debug!(error = %e, "channel close");
        }
    }
}

/// A confirmation as a result: a nack or a returned (unroutable) mandatory
/// message is an error.
fn confirmed(confirmation: Confirmation, exchange: &str, key: &str) -> Result<()> {
    match confirmation {
        Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
        Confirmation::Ack(Some(returned)) | Confirmation::Nack(Some(returned)) => {
            Err(Error::Unroutable {
                exchange: exchange.to_owned(),
                key: key.to_owned(),
                reply: returned.reply_text.to_string(),
            })
        }
        Confirmation::Nack(None) => Err(Error::Nacked {
            exchange: exchange.to_owned(),
            key: key.to_owned(),
        }),
    }
}

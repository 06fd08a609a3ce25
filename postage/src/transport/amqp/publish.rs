//! Publishing through a channel Postage opens again, within the publish
//! time limit: held while the broker blocks the connection, sent again
//! when a lost connection swallowed its confirmation, and sent again on a
//! new channel once when the broker nacks it (RabbitMQ 3.10 can leave a
//! channel that nacks every publish to a quorum queue whose leader moved:
//! only a new channel recovers from it).

use std::future::poll_fn;
use std::pin::pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::time::Duration;

use lapin::options::BasicPublishOptions;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Confirmation};

use super::channel::{Channel, ChannelShared, RETRIES, lock, lost};
use super::convert::{amqp_error, field_table};
use crate::error::{Error, Result};
use crate::transport::{DEADLINE_HEADER, OutgoingProperties, new_message_id};

/// How often, at most, a channel the broker nacks is replaced.
const RENEW_AFTER_NACK: Duration = Duration::from_secs(1);

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
    if let Some(user_id) = props.user_id {
        properties = properties.with_user_id(user_id.into());
    }
    properties = properties.with_message_id(match props.message_id {
        Some(message_id) => message_id.into(),
        None => new_message_id().into(),
    });
    if let Some(ms) = props.expiration_ms {
        properties = properties.with_expiration(ms.to_string().into());
    }
    let mut headers = props.headers.map(field_table);
    if let Some(ms) = props.deadline_ms {
        headers.get_or_insert_with(FieldTable::default).insert(
            DEADLINE_HEADER.into(),
            AMQPValue::LongLongInt(i64::try_from(ms).unwrap_or(i64::MAX)),
        );
    }
    if let Some(headers) = headers {
        properties = properties.with_headers(headers);
    }
    properties
}

impl Channel {
    /// See [`transport::Channel::publish`](crate::transport::Channel::publish).
    pub(crate) async fn publish(
        &self,
        exchange: &str,
        key: &str,
        body: &[u8],
        props: &OutgoingProperties<'_>,
    ) -> Result<()> {
        let config = &self.0.connection.config;
        let limit = config.publish_timeout();
        let sent = AtomicBool::new(false);
        let publishing = self.publish_unbounded(exchange, key, body, props, &sent);
        match tokio::time::timeout(limit, publishing).await {
            Ok(published) => published,
            Err(_) => Err(self.timed_out(exchange, key, limit, sent.into_inner())),
        }
    }

    /// Why a publish did not finish within `limit` (`sent`: it had left).
    fn timed_out(&self, exchange: &str, key: &str, limit: Duration, sent: bool) -> Error {
        let (exchange, key) = (exchange.to_owned(), key.to_owned());
        match self.0.connection.link.blocked() {
            Some(reason) => Error::Blocked {
                exchange,
                key,
                reason,
                waited: limit,
                sent,
            },
            None if self.0.confirms => Error::Unconfirmed {
                exchange,
                key,
                timeout: limit,
            },
            None => Error::PublishTimeout {
                exchange,
                key,
                timeout: limit,
            },
        }
    }

    async fn publish_unbounded(
        &self,
        exchange: &str,
        key: &str,
        body: &[u8],
        props: &OutgoingProperties<'_>,
        sent: &AtomicBool,
    ) -> Result<()> {
        let shared = &*self.0;
        let link = &shared.connection.link;
        let options = BasicPublishOptions {
            // Without confirms lapin keeps a returned message to itself,
            // never reported: mandatory is only asked for with confirms.
            mandatory: props.mandatory && shared.confirms,
            immediate: false,
        };
        let mut retries = 0;
        let mut nacked = false;
        loop {
            // Nothing is sent while the broker blocks the connection.
            link.unblocked().await;
            let now = shared.now();
            if shared.closed_by_broker(&now) && retries < RETRIES {
                retries += 1;
                if let Err(reason) = shared.reopened_after(now.generation).await {
                    return Err(Error::Amqp {
                        operation: format!("basic.publish to {exchange:?}"),
                        reply_code: None,
                        source: reason.into(),
                    });
                }
                continue;
            }
            let channel = &now.lapin;
            sent.store(true, Ordering::Relaxed);
            let attempt = async {
                let _turn = Turn::take(shared, options.mandatory).await;
                let publishing = channel.basic_publish(
                    exchange.into(),
                    key.into(),
                    options,
                    body,
                    basic_properties(props),
                );
                // Without confirms nothing is numbered: no lock.
                let numbering = shared.confirms.then_some(&shared.numbering);
                numbered_in_order(numbering, publishing).await?.await
            };
            let outcome = if shared.confirms {
                // A confirmation lost with the connection may never come:
                // the attempt ends when the connection is replaced. Armed
                // before the attempt, so that no replacement is missed.
                let recovered = link.recovered_notified();
                tokio::select! {
                    outcome = attempt => outcome,
                    () = recovered, if now.epoch == shared.connection.epoch() => {
                        if retries == RETRIES {
                            return Err(Error::PublishInterrupted {
                                exchange: exchange.to_owned(),
                                key: key.to_owned(),
                                attempts: retries + 1,
                            });
                        }
                        retries += 1;
                        tracing::warn!(exchange, key, "the connection was replaced before the publisher confirmation came; publishing again");
                        continue;
                    }
                }
            } else {
                // Without confirms the attempt ends once the frames are
                // written or rejected (lapin refuses a publish on a channel
                // that is down at once, and fails the frames it could not
                // write when its connection dies).
                attempt.await
            };
            let error = match outcome {
                Ok(Confirmation::Nack(None)) if !nacked => {
                    nacked = true;
                    shared
                        .renew(
                            now.generation,
                            RENEW_AFTER_NACK,
                            "the broker nacked a publish; a new channel publishes it again",
                        )
                        .await;
                    continue;
                }
                Ok(confirmation) => {
                    link.published();
                    return confirmed(confirmation, exchange, key);
                }
                Err(error) => error,
            };
            // Closed by the broker just before the publish (lapin did not
            // send it): the loop's first step opens the channel again.
            if matches!(error.kind(), lapin::ErrorKind::InvalidChannelState(..))
                && !shared.lost_since(now.epoch)
                && retries < RETRIES
            {
                retries += 1;
                continue;
            }
            if retries == RETRIES || !shared.failed_by_loss(now.epoch, Some(&error)).await {
                return Err(amqp_error(format!("basic.publish to {exchange:?}"), error));
            }
            retries += 1;
            tracing::warn!(exchange, key, %error, "publish interrupted; waiting for the channel to come back");
            if let Err(reason) = shared.reopened_after(now.generation).await {
                return Err(lost(
                    format!("basic.publish to {exchange:?}"),
                    error,
                    reason,
                ));
            }
        }
    }
}

/// A publish's turn on a channel with confirmations, held until its
/// confirmation comes: shared with other publishes, or alone for a
/// mandatory one.
///
/// The broker returns an unroutable mandatory message before it confirms
/// it, without saying which publish it was, and may confirm several
/// publishes with one `basic.ack`; lapin then gives the returned message
/// to any one of them. A mandatory publish with no other outstanding on
/// its channel is the only one its confirmation can cover, so a returned
/// message is its own.
enum Turn<'a> {
    Shared {
        _held: tokio::sync::RwLockReadGuard<'a, ()>,
    },
    Alone {
        _held: tokio::sync::RwLockWriteGuard<'a, ()>,
    },
    Free,
}

impl<'a> Turn<'a> {
    async fn take(channel: &'a ChannelShared, mandatory: bool) -> Turn<'a> {
        if !channel.confirms {
            Turn::Free
        } else if mandatory {
            Turn::Alone {
                _held: channel.returns.write().await,
            }
        } else {
            Turn::Shared {
                _held: channel.returns.read().await,
            }
        }
    }
}

/// Runs lapin's `basic_publish`, its first poll under `numbering` (on a
/// channel with confirmations).
///
/// That first poll takes the publish's confirmation number and queues its
/// frames, as two steps under two locks of lapin's. The broker numbers
/// publishes in the order their frames arrive, so two tasks publishing at
/// once on one channel from two threads could each get the other's
/// confirmation: a send reported confirmed while its own message was lost
/// with the connection, or refused. Under one lock the numbers follow the
/// order of the frames. lapin 4's `basic_publish` does both before its
/// first wait; the routing test
/// `concurrent_sends_each_get_their_own_confirmation` fails if a new
/// lapin stops doing so.
async fn numbered_in_order<F: Future>(numbering: Option<&Mutex<()>>, publishing: F) -> F::Output {
    let Some(numbering) = numbering else {
        return publishing.await;
    };
    let mut publishing = pin!(publishing);
    let first = poll_fn(|cx| {
        let _numbering = lock(numbering);
        Poll::Ready(publishing.as_mut().poll(cx))
    })
    .await;
    match first {
        Poll::Ready(output) => output,
        Poll::Pending => publishing.await,
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

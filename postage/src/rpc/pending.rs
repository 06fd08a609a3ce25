//! [`PendingReply`]: a sent request whose reply is awaited, from the
//! direct reply-to reader or a queue of its own.

use std::borrow::Cow;
use std::future::IntoFuture;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::reader::{Reader, WaiterGuard};
use crate::BoxFuture;
use crate::encoding::Encoder;
use crate::error::{Error, Result};
use crate::message::Message;
use crate::transport::{Channel, RawConsumer};

pub(super) enum Wait {
    Direct {
        rx: oneshot::Receiver<Message>,
        _guard: WaiterGuard,
        reader: Arc<tokio::sync::Mutex<Reader>>,
    },
    Queue {
        consumer: Box<RawConsumer>,
        channel: Channel,
        encoder: Arc<dyn Encoder>,
    },
}

/// A sent RPC request whose reply has not been awaited yet (from
/// [`RpcCall::queue_only`](super::RpcCall::queue_only)). Await it for the reply, within the call's
/// timeout.
#[must_use = "the reply is lost unless the handle is awaited"]
pub struct PendingReply {
    pub(super) wait: Wait,
    pub(super) reply_queue: Cow<'static, str>,
    pub(super) correlation_id: String,
    pub(super) command: Arc<str>,
    pub(super) timeout: Duration,
    pub(super) deadline: Instant,
}

impl std::fmt::Debug for PendingReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingReply")
            .field("reply_queue", &self.reply_queue)
            .field("correlation_id", &self.correlation_id)
            .field("command", &self.command)
            .finish_non_exhaustive()
    }
}

impl PendingReply {
    /// The queue the reply goes to (`amq.rabbitmq.reply-to` or an
    /// `amq.gen-...` queue).
    pub fn reply_queue(&self) -> &str {
        &self.reply_queue
    }

    /// The request's correlation id.
    pub fn correlation_id(&self) -> &str {
        &self.correlation_id
    }

    /// Waits for the reply, until the call's timeout has passed since it
    /// was sent.
    pub async fn wait(self) -> Result<Message> {
        let sleep = std::pin::pin!(tokio::time::sleep_until(self.deadline));
        self.wait_with(sleep).await
    }

    /// Waits for the reply until `sleep`, armed for the call's deadline,
    /// ends (a call reuses the timer of its attempt).
    pub(super) async fn wait_with(self, sleep: Pin<&mut tokio::time::Sleep>) -> Result<Message> {
        let (command, timeout) = (self.command, self.timeout);
        let timed_out = || Error::RpcTimeout {
            command: command.to_string(),
            attempts: 1,
            timeout,
        };
        match self.wait {
            Wait::Direct {
                mut rx,
                _guard,
                reader,
            } => {
                // The reply comes from the call reading the replies, or
                // this call becomes the reader.
                let reply = async {
                    let mut reader = match reader.try_lock() {
                        Ok(reader) => reader,
                        Err(_) => tokio::select! {
                            biased;
                            reply = &mut rx => return reply.ok(),
                            reader = reader.lock() => reader,
                        },
                    };
                    // Only this reader's holder hands out the replies to
                    // requests sent on its channel, so from here on this
                    // call's reply comes from this task: `rx` is checked,
                    // not awaited. A call that took the reader at once never
                    // registered a waker on `rx`, and handing itself its
                    // reply wakes nobody (no task poll for nothing).
                    loop {
                        match rx.try_recv() {
                            Ok(reply) => return Some(reply),
                            Err(oneshot::error::TryRecvError::Closed) => return None,
                            Err(oneshot::error::TryRecvError::Empty) => reader.read_one().await,
                        }
                    }
                };
                tokio::select! {
                    reply = reply => reply.ok_or_else(|| Error::ReplyLost { command: command.to_string() }),
                    () = sleep => Err(timed_out()),
                }
            }
            Wait::Queue {
                mut consumer,
                channel,
                encoder,
            } => {
                let result = tokio::select! {
                    next = consumer.next() => Some(next),
                    () = sleep => None,
                };
                if let Err(e) = channel.cancel(&consumer.id()).await {
                    tracing::debug!(error = %e.report(), "cancel reply queue consumer");
                }
                match result {
                    Some(Some(Ok(delivery))) => Ok(encoder.decode(delivery.data())?),
                    Some(Some(Err(interruption))) => {
                        tracing::warn!(%interruption, "RPC reply queue interrupted");
                        Err(Error::ReplyLost {
                            command: command.to_string(),
                        })
                    }
                    Some(None) => Err(Error::ReplyLost {
                        command: command.to_string(),
                    }),
                    None => Err(timed_out()),
                }
            }
        }
    }
}

impl IntoFuture for PendingReply {
    type Output = Result<Message>;
    type IntoFuture = BoxFuture<'static, Result<Message>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.wait())
    }
}

//! The direct reply-to consumer, and the guard that forgets a waiting
//! call however it ends.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError};

use futures_util::StreamExt;

use super::DIRECT_REPLY_TO;
use super::state::Waiters;
use crate::encoding::Encoder;
use crate::error::Chain;
use crate::transport::{Channel, RawConsumer};

/// The direct reply-to consumer. No task of its own: a waiting call takes
/// the lock and reads replies, handing each to the call it answers, until
/// its own has come; then the next waiting call takes over. A single caller
/// thus reads its reply itself, with no hand-over between tasks.
pub(super) struct Reader {
    pub(super) consumer: RawConsumer,
    pub(super) channel: Channel,
    pub(super) encoder: Arc<dyn Encoder>,
    pub(super) waiters: Waiters,
    pub(super) prefix: Arc<str>,
    pub(super) ended: Arc<AtomicBool>,
}

impl Reader {
    /// Reads one reply and hands it to its call. Pending forever once the
    /// consumer has ended (the next call opens a new one).
    pub(super) async fn read_one(&mut self) {
        if self.ended.load(Ordering::Relaxed) {
            return std::future::pending().await;
        }
        let delivery = match self.consumer.next().await {
            Some(Ok(delivery)) => delivery,
            Some(Err(error)) => {
                match self
                    .channel
                    .resume_consumer(DIRECT_REPLY_TO, &self.consumer, error, false)
                    .await
                {
                    Ok(consumer) => self.consumer = consumer,
                    Err(error) => {
                        tracing::debug!(error = %error.report(), "RPC reply consumer lost; the next call opens a new one");
                        self.ended.store(true, Ordering::Relaxed);
                    }
                }
                return;
            }
            None => {
                tracing::debug!("RPC reply consumer ended");
                self.ended.store(true, Ordering::Relaxed);
                return;
            }
        };
        let message = match self.encoder.decode(delivery.data()) {
            Ok(message) => message,
            Err(reason) => {
                tracing::warn!(reason = %Chain(&reason), "undecodable RPC reply dropped");
                return;
            }
        };
        let waiter = {
            let mut waiters = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
            match delivery.correlation_id() {
                Some(id) => {
                    call_number(&self.prefix, id).and_then(|number| waiters.remove(&number))
                }
                None if waiters.len() == 1 => {
                    let number = waiters.keys().next().copied();
                    number.and_then(|number| waiters.remove(&number))
                }
                None => None,
            }
        };
        match waiter {
            Some(waiter) => {
                let _ = waiter.send(message);
            }
            None => tracing::debug!(
                correlation_id = ?delivery.correlation_id(),
                "RPC reply for no waiting call (late or duplicate) dropped"
            ),
        }
    }
}

/// Removes a waiter when its call ends, however it ends.
pub(super) struct WaiterGuard {
    pub(super) waiters: Waiters,
    pub(super) number: u64,
}

impl Drop for WaiterGuard {
    fn drop(&mut self) {
        self.waiters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.number);
    }
}

/// The call number in a correlation id of ours (`{prefix}.{number}`);
/// `None` for any other.
fn call_number(prefix: &str, correlation_id: &str) -> Option<u64> {
    correlation_id
        .strip_prefix(prefix)?
        .strip_prefix('.')?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::call_number;

    #[test]
    fn only_correlation_ids_of_ours_name_a_call() {
        assert_eq!(call_number("1f.2a", "1f.2a.7"), Some(7));
        assert_eq!(
            call_number("1f.2a", "1f.2a.18446744073709551615"),
            Some(u64::MAX)
        );
        assert_eq!(call_number("1f.2a", "1f.2b.7"), None);
        assert_eq!(call_number("1f.2a", "1f.2a7"), None);
        assert_eq!(call_number("1f.2a", "1f.2a."), None);
        assert_eq!(call_number("1f.2a", "1f.2a.-1"), None);
        assert_eq!(call_number("1f.2a", "python-uuid"), None);
    }
}

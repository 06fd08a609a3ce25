//! A consumer's queue streams: each queue's deliveries decoded, riding
//! out connection recovery, and all of them polled in turn.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::StreamExt;
use futures_util::stream::{Fuse, Stream};

use super::Delivery;
use super::Health;
use super::delivery::decode;
use super::handle::Shared;
use super::watch::{InHand, QueueState};
use crate::transport::{Interruption, RawConsumer, RawDelivery};

/// A consumer's queue streams, polled in turn, each pass starting after the
/// queue that delivered last (no queue starves the others).
///
/// Not `SelectAll`: its `FuturesUnordered` wakes its own task whenever all
/// of its streams are pending after one was polled, which with a single
/// queue (the common case) is once per delivery, a task poll for nothing.
/// Here a stream is polled only from `poll_next` and the wake-ups are the
/// queues' own. A pass polls every queue, as `tokio_stream::StreamMap`
/// does: a consumer holds a handful of queues.
pub(crate) struct Queues<S> {
    streams: Vec<Fuse<S>>,
    start: usize,
}

impl<S: Stream + Unpin> Queues<S> {
    pub(super) fn new() -> Self {
        Queues {
            streams: Vec::new(),
            start: 0,
        }
    }

    pub(super) fn push(&mut self, stream: S) {
        self.streams.push(stream.fuse());
    }

    pub(super) fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }
}

impl<S: Stream + Unpin> Stream for Queues<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = &mut *self;
        let len = this.streams.len();
        let mut ended = false;
        for k in 0..len {
            let i = (this.start + k) % len;
            match this.streams[i].poll_next_unpin(cx) {
                Poll::Ready(Some(delivery)) => {
                    this.start = i + 1;
                    return Poll::Ready(Some(delivery));
                }
                Poll::Ready(None) => ended = true,
                Poll::Pending => {}
            }
        }
        if ended {
            this.streams.retain(|stream| !stream.is_done());
        }
        if this.streams.is_empty() {
            Poll::Ready(None)
        } else {
            Poll::Pending
        }
    }
}

/// One queue's deliveries, decoded; rides out connection recovery and
/// reports a consumer that is lost. Written out rather than built with
/// `stream::unfold`, which moves its state in and out of a fresh future for
/// every delivery.
pub(crate) struct QueueStream {
    pub(super) shared: Arc<Shared>,
    pub(super) raw: RawConsumer,
    pub(super) queue: Arc<QueueState>,
    /// Waiting for the connection to recover after an error; resolves to
    /// the queue's consumer once it is back.
    pub(super) recovering: Option<Pin<Box<dyn Future<Output = Option<RawConsumer>> + Send>>>,
    pub(super) ended: bool,
    /// The consumer's pauses when it began: a pause since ended it.
    pub(super) session: u64,
}

pub(super) fn queue_stream(
    shared: Arc<Shared>,
    raw: RawConsumer,
    queue: Arc<QueueState>,
    session: u64,
) -> QueueStream {
    QueueStream {
        shared,
        raw,
        queue,
        recovering: None,
        ended: false,
        session,
    }
}

impl Stream for QueueStream {
    type Item = Delivery;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Delivery>> {
        let this = self.get_mut();
        loop {
            if let Some(recovering) = &mut this.recovering {
                let back = std::task::ready!(recovering.as_mut().poll(cx));
                this.recovering = None;
                match back {
                    Some(raw) => this.raw = raw,
                    None => this.ended = true,
                }
            }
            if this.ended {
                return Poll::Ready(None);
            }
            match std::task::ready!(this.raw.poll_next_unpin(cx)) {
                Some(Ok(delivery)) => {
                    return Poll::Ready(Some(this.shared.delivery(delivery, &this.queue)));
                }
                Some(Err(error)) => {
                    let (shared, queue, raw) =
                        (this.shared.clone(), this.queue.clone(), this.raw.clone());
                    this.recovering = Some(Box::pin(async move {
                        shared.ride_out(queue.name(), &raw, error).await
                    }));
                }
                None => {
                    this.shared.cancelled(this.queue.name(), this.session);
                    this.queue
                        .ended
                        .store(true, std::sync::atomic::Ordering::Release);
                    this.ended = true;
                }
            }
        }
    }
}

impl Shared {
    fn delivery(&self, raw: RawDelivery, queue: &Arc<QueueState>) -> Delivery {
        let message = decode(&*self.encoder, &raw, self.max_body_size);
        if self.channel.debug() {
            tracing::debug!(queue = queue.name(), body = %String::from_utf8_lossy(raw.data()), "delivery");
        }
        if self.flag.raised() {
            // Deliveries flow again after a stall or a stand-by.
            self.flag.lower();
            self.set_health(Health::Consuming);
        }
        Delivery {
            raw,
            queue: InHand::arrived(queue),
            message,
        }
    }

    /// Waits for the connection to recover after `interruption` and gives
    /// the queue's consumer back; `None` (and health `Failed`, unless
    /// stopped) when the consumer cannot be restored.
    async fn ride_out(
        &self,
        queue: &str,
        raw: &RawConsumer,
        interruption: Interruption,
    ) -> Option<RawConsumer> {
        self.set_health(Health::Recovering);
        match self
            .channel
            .resume_consumer(queue, raw, interruption, self.redeclare)
            .await
        {
            Ok(raw) => {
                self.set_health(Health::Consuming);
                Some(raw)
            }
            Err(error) => {
                if !self.stopped() {
                    let error = error.report().to_string();
                    tracing::error!(queue, %error, "consumer lost and not recoverable");
                    self.set_health(Health::Failed(format!("queue {queue}: {error}")));
                }
                None
            }
        }
    }

    /// The broker ended the consumer: health `Failed` unless it was
    /// stopped, its channel closed, or it failed already.
    fn cancelled(&self, queue: &str, session: u64) {
        let on_purpose = {
            let state = self.state();
            state.session != session || !state.queues.contains_key(queue)
        };
        if !self.stopped()
            && !on_purpose
            && self.channel.is_open()
            && !matches!(*self.health.borrow(), Health::Failed(_))
        {
            tracing::error!(
                queue,
                "the broker cancelled the consumer (queue deleted?); nothing more arrives from it"
            );
            self.set_health(Health::Failed(format!(
                "queue {queue}: consumer cancelled by the broker"
            )));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Poll, Wake, Waker};

    use futures_util::stream::{self, StreamExt};
    use tokio::sync::mpsc;

    use super::Queues;

    /// Counts its wake-ups.
    #[derive(Default)]
    struct Wakes(AtomicUsize);

    impl Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn an_item_then_nothing_wakes_nobody() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut queues = Queues::new();
        queues.push(stream::poll_fn(move |cx| rx.poll_recv(cx)));
        let wakes = Arc::new(Wakes::default());
        let waker = Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        tx.send(1).unwrap();
        assert_eq!(queues.poll_next_unpin(&mut cx), Poll::Ready(Some(1)));
        assert_eq!(queues.poll_next_unpin(&mut cx), Poll::Pending);
        // `SelectAll` with one stream wakes its task here, for nothing.
        assert_eq!(wakes.0.load(Ordering::SeqCst), 0);
        tx.send(2).unwrap();
        assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
        assert_eq!(queues.poll_next_unpin(&mut cx), Poll::Ready(Some(2)));
    }

    #[test]
    fn queues_take_turns_and_ended_ones_are_dropped() {
        let mut queues = Queues::new();
        queues.push(stream::iter(vec![1, 2, 3]).boxed());
        queues.push(stream::iter(vec![10, 20]).boxed());
        queues.push(stream::iter(Vec::<i32>::new()).boxed());
        let waker = Waker::from(Arc::new(Wakes::default()));
        let mut cx = Context::from_waker(&waker);
        let mut seen = Vec::new();
        while let Poll::Ready(Some(item)) = queues.poll_next_unpin(&mut cx) {
            seen.push(item);
        }
        assert_eq!(seen, [1, 10, 2, 20, 3]);
        assert!(queues.is_empty());
        assert_eq!(queues.poll_next_unpin(&mut cx), Poll::Ready(None));
    }
}

//! One handler running: its future with a panic in it caught, its time
//! limit, its span entered while it is polled, and its metrics when it
//! ends. A named future, so that the innermost service of a processor's
//! layers returns it without a box.

use std::future::Future;
use std::ops::Deref;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use futures_util::future::CatchUnwind;
use tracing::Span;

use super::Handlers;
use super::dispatch::{Core, handler_label};
use super::handler::{HandlerError, HandlerFuture, HandlerResult};
use crate::telemetry::span;

/// Handler `index` of a processor's table running, its failure said as
/// that handler's. `C` reaches the processor's core: a reference while
/// the processor runs it, a strong handle inside layers.
pub(super) struct Running<C> {
    core: C,
    index: usize,
    future: CatchUnwind<AssertUnwindSafe<HandlerFuture>>,
    /// The handler's time limit, when it has one.
    limit: Option<(Pin<Box<tokio::time::Sleep>>, Duration)>,
    span: Span,
    started: Instant,
}

impl<P: Handlers, C: Deref<Target = Core<P>>> Running<C> {
    #[inline]
    pub(super) fn new(core: C, index: usize, future: HandlerFuture) -> Self {
        let handler = &core.table[index];
        let span = span::handler(handler_label(handler), handler.kind, handler.name);
        let limit = core
            .handler_timeout
            .map(|limit| (Box::pin(tokio::time::sleep(limit)), limit));
        Running {
            core,
            index,
            future: AssertUnwindSafe(future).catch_unwind(),
            limit,
            span,
            started: Instant::now(),
        }
    }
}

impl<P: Handlers, C: Deref<Target = Core<P>> + Unpin> Future for Running<C> {
    type Output = HandlerResult;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<HandlerResult> {
        let this = self.get_mut();
        let entered = (!this.span.is_disabled()).then(|| this.span.enter());
        let outcome = match this.future.poll_unpin(cx) {
            Poll::Ready(Ok(outcome)) => outcome,
            Poll::Ready(Err(panic)) => Err(HandlerError::panic(&*panic)),
            Poll::Pending => {
                let Some((sleep, limit)) = &mut this.limit else {
                    return Poll::Pending;
                };
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                Err(HandlerError::new(
                    "TimeoutError",
                    format!("the handler ran past its time limit of {limit:?} and was cancelled"),
                ))
            }
        };
        drop(entered);
        this.core
            .instruments
            .handler_ran(this.index, this.started.elapsed(), outcome.is_ok());
        Poll::Ready(outcome.map_err(|mut error| {
            if !this.span.is_disabled() {
                span::failed(&this.span, &error.name);
            }
            // Said as this handler's failure.
            error.handler.get_or_insert(this.index);
            error
        }))
    }
}

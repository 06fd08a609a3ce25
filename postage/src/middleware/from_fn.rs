//! [`from_fn`]: a layer written as an async function.

use std::future::Future;
use std::task::{Context, Poll};

use tower::util::{BoxCloneSyncService, ServiceExt};
use tower::{BoxError, Layer, Service};

use crate::BoxFuture;

/// A layer that runs `f` for each request, with [`Next`] to call the
/// service it wraps (or not, to refuse): the way axum's
/// `middleware::from_fn` reads.
///
/// `f` is `async fn(request, Next<Request>) -> Result<Response, E>` with
/// `E` any error (a [`HandlerError`](crate::processor::HandlerError) in a
/// processor, an [`Error`](crate::Error) in a producer). The service it
/// wraps is boxed for `Next`: write a `Layer` of your own where a layer
/// sits on a hot path and every instruction counts.
pub fn from_fn<F>(f: F) -> FromFnLayer<F> {
    FromFnLayer { f }
}

/// The layer [`from_fn`] makes.
#[derive(Debug, Clone)]
pub struct FromFnLayer<F> {
    f: F,
}

impl<S, F: Clone> Layer<S> for FromFnLayer<F> {
    type Service = FromFn<F, S>;

    fn layer(&self, inner: S) -> FromFn<F, S> {
        FromFn {
            f: self.f.clone(),
            inner,
        }
    }
}

/// The service of a [`from_fn`] layer.
#[derive(Debug, Clone)]
pub struct FromFn<F, S> {
    f: F,
    inner: S,
}

/// The rest of the stack, for a [`from_fn`] function to call.
pub struct Next<R, T = ()> {
    inner: BoxCloneSyncService<R, T, BoxError>,
}

impl<R, T> std::fmt::Debug for Next<R, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Next").finish_non_exhaustive()
    }
}

impl<R, T> Next<R, T> {
    /// Passes `request` on and waits for its outcome.
    pub async fn run(self, request: R) -> Result<T, BoxError> {
        self.inner.oneshot(request).await
    }
}

impl<R, S, F, Fut, E> Service<R> for FromFn<F, S>
where
    R: Send + 'static,
    S: Service<R> + Clone + Send + Sync + 'static,
    S::Response: 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    F: Fn(R, Next<R, S::Response>) -> Fut,
    Fut: Future<Output = Result<S::Response, E>> + Send + 'static,
    E: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<S::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: R) -> Self::Future {
        // The service made ready goes on; its clone stays for the next call.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let next = Next {
            inner: BoxCloneSyncService::new(inner.map_err(Into::into)),
        };
        let running = (self.f)(request, next);
        Box::pin(async move { running.await.map_err(Into::into) })
    }
}

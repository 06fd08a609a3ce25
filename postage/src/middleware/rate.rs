//! [`RateLimitLayer`]: at most so many messages per second through a
//! processor (or one handler), across all its concurrent deliveries.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::task::{Context, Poll};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tower::{Layer, Service};

use crate::BoxFuture;

/// Limits the rate at which messages reach the handlers it wraps: a
/// message over the rate waits (holding its place in the processor's
/// concurrency) until the limit lets it through. Every clone of the layer
/// and of its services shares one limit (a [`governor`] rate limiter, the
/// generic cell rate algorithm), so the limit holds across concurrent
/// deliveries.
///
/// ```
/// use std::num::NonZeroU32;
/// use postage::middleware::RateLimitLayer;
///
/// // 50 messages a second, evenly spaced; with bursts of up to 10.
/// let limit = RateLimitLayer::per_second(NonZeroU32::new(50).unwrap())
///     .burst(NonZeroU32::new(10).unwrap());
/// # drop(limit);
/// ```
#[derive(Debug, Clone)]
pub struct RateLimitLayer {
    quota: Quota,
    limiter: Arc<DefaultDirectRateLimiter>,
}

impl RateLimitLayer {
    /// At most `rate` messages a second, spaced evenly (a burst of one).
    pub fn per_second(rate: NonZeroU32) -> Self {
        Self::with_quota(Quota::per_second(rate).allow_burst(NonZeroU32::MIN))
    }

    /// At most `rate` messages a minute, spaced evenly.
    pub fn per_minute(rate: NonZeroU32) -> Self {
        Self::with_quota(Quota::per_minute(rate).allow_burst(NonZeroU32::MIN))
    }

    /// Lets up to `burst` messages through at once when the limit has
    /// been idle; the rate over time stays the same.
    #[must_use]
    pub fn burst(self, burst: NonZeroU32) -> Self {
        Self::with_quota(self.quota.allow_burst(burst))
    }

    /// Any [`governor`] quota.
    pub fn with_quota(quota: Quota) -> Self {
        RateLimitLayer {
            quota,
            limiter: Arc::new(RateLimiter::direct(quota)),
        }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> RateLimit<S> {
        RateLimit {
            inner,
            limiter: self.limiter.clone(),
        }
    }
}

/// The service of a [`RateLimitLayer`].
#[derive(Debug, Clone)]
pub struct RateLimit<S> {
    inner: S,
    limiter: Arc<DefaultDirectRateLimiter>,
}

impl<S, R> Service<R> for RateLimit<S>
where
    S: Service<R> + Clone + Send + 'static,
    S::Future: Send,
    R: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        // The service made ready is the one called, once the limit lets
        // the request through.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let limiter = self.limiter.clone();
        Box::pin(async move {
            while let Err(not_until) = limiter.check() {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                tokio::time::sleep(wait).await;
            }
            inner.call(request).await
        })
    }
}

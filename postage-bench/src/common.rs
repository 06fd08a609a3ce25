//! What both sides share: the error type, the routing key and command, the
//! typed parameters and what a handler does with them, and the counter of
//! handled commands.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use postage::prelude::*;
use postage::processor::{Handler, HandlerResult};
use serde::Deserialize;
use tokio::sync::Notify;

use crate::postage_side::invalid;

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub(crate) type Res<T> = Result<T, BoxError>;

pub(crate) const KEY: &str = "bench-rk";
pub(crate) const COMMAND: &str = "bench";
pub(crate) const CONTENT_TYPE: &str = "application/json";
/// Pads the command to about 250 bytes on the wire.
pub(crate) const TEXT: &str = "quick brown fox";

#[derive(Debug, Deserialize)]
pub(crate) struct Params {
    text: String,
    seq: u64,
}

pub(crate) fn fingerprint() -> Fingerprint {
    Fingerprint::new("postage-bench", "application")
}

/// What a handler does with a command: read the typed parameters.
pub(crate) fn handle(params: &Params) -> u64 {
    black_box(params.text.len());
    black_box(params.seq)
}

/// Counts handled commands and says when `target` is reached.
pub(crate) struct Counter {
    pub(crate) handled: AtomicU64,
    pub(crate) target: u64,
    pub(crate) done: Notify,
}

impl Counter {
    pub(crate) fn new(target: u64) -> Arc<Self> {
        Arc::new(Counter {
            handled: AtomicU64::new(0),
            target,
            done: Notify::new(),
        })
    }

    pub(crate) fn tick(&self) {
        if self.handled.fetch_add(1, Ordering::Relaxed) + 1 == self.target {
            self.done.notify_one();
        }
    }

    fn on_command(&self, content: &Content) -> HandlerResult {
        let params: Params = content.parameters_as().map_err(invalid)?;
        handle(&params);
        self.tick();
        Ok(())
    }
}

impl Handlers for Counter {
    fn handlers() -> &'static [Handler<Self>] {
        const TABLE: &[Handler<Counter>] =
            &[Handler::message("command", COMMAND, |this, content| {
                Box::pin(async move { this.on_command(&content) })
            })];
        TABLE
    }
}

/// A middleware layer that passes every message on untouched
/// (`--pass-layer`): the cost of a layer, statically dispatched.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PassThrough;

impl<S> postage::middleware::Layer<S> for PassThrough {
    type Service = Pass<S>;

    fn layer(&self, inner: S) -> Pass<S> {
        Pass(inner)
    }
}

/// The service of [`PassThrough`].
#[derive(Debug, Clone)]
pub(crate) struct Pass<S>(S);

impl<S, R> postage::middleware::Service<R> for Pass<S>
where
    S: postage::middleware::Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> S::Future {
        self.0.call(request)
    }
}

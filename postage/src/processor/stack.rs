//! A processor's middleware: the layers around its handlers, built into
//! one service at connection and run for each delivery without dynamic
//! dispatch. A processor without layers runs its handlers directly.

use std::future::Future;
use std::sync::{Arc, Weak};
use std::task::{Context as TaskContext, Poll};
use std::time::Instant;

use futures_util::TryFutureExt;
use tower::util::{BoxCloneSyncService, ServiceExt};
use tower::{BoxError, Layer, Service};

use super::dispatch::Core;
use super::handler::{HandlerError, HandlerFuture, HandlerResult};
use super::incoming::{Envelope, Incoming, Route};
use super::{Handlers, Reply};
use crate::consumer::Delivery;
use crate::message::Message;

/// The layers of one handler, around the service that runs it.
pub type HandlerService = BoxCloneSyncService<Incoming, (), BoxError>;

/// The innermost service of a processor's layers: runs the handlers an
/// [`Incoming`] message is routed to (each under its own layers, if it
/// has some) and fails with the first handler's failure. Inside one
/// handler's layers, it runs that handler.
pub struct Handling<P: 'static> {
    /// Held weakly: a handler's layers live in the processor's core.
    core: Weak<Core<P>>,
    /// The one handler it runs, inside that handler's layers.
    only: Option<usize>,
}

impl<P> Clone for Handling<P> {
    fn clone(&self) -> Self {
        Handling {
            core: self.core.clone(),
            only: self.only,
        }
    }
}

impl<P: Handlers> Service<Incoming> for Handling<P> {
    type Response = ();
    type Error = HandlerError;
    type Future = HandlerFuture;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), HandlerError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, incoming: Incoming) -> HandlerFuture {
        let (core, only) = (self.core.upgrade(), self.only);
        Box::pin(async move {
            let Some(core) = core else {
                return Err(HandlerError::new(
                    "Stopped",
                    "the processor stopped before its handlers ran",
                ));
            };
            let Incoming {
                message,
                envelope,
                reply,
                route,
                ..
            } = incoming;
            match only {
                None => core.run_route(envelope, route, message, reply).await,
                Some(index) => match core.handler_future(&envelope, index, message, reply) {
                    Some(future) => core.run_handler(index, future).await,
                    None => Ok(()),
                },
            }
        })
    }
}

/// Adds layers to one handler's service.
pub(super) type HandlerLayer = Box<dyn FnOnce(HandlerService) -> HandlerService + Send>;

/// The layers of each handler of `P`'s table (`None` for a handler without
/// any), around services that hold `core` weakly.
pub(super) fn handler_services<P: Handlers>(
    core: &Weak<Core<P>>,
    mut layers: Vec<(usize, HandlerLayer)>,
    handlers: usize,
) -> Vec<Option<HandlerService>> {
    if layers.is_empty() {
        return Vec::new();
    }
    let mut services: Vec<Option<HandlerService>> = vec![None; handlers];
    // Added first, outermost: applied last.
    while let Some((index, layer)) = layers.pop() {
        let Some(slot) = services.get_mut(index) else {
            continue;
        };
        let inner = slot.take().unwrap_or_else(|| {
            BoxCloneSyncService::new(
                Handling {
                    core: core.clone(),
                    only: Some(index),
                }
                .map_err(BoxError::from),
            )
        });
        *slot = Some(layer(inner));
    }
    services
}

/// Wraps `layer` for [`handler_services`].
pub(super) fn handler_layer<L>(layer: L) -> HandlerLayer
where
    L: Layer<HandlerService> + Send + 'static,
    L::Service: Service<Incoming, Response = ()> + Clone + Send + Sync + 'static,
    <L::Service as Service<Incoming>>::Error: Into<BoxError>,
    <L::Service as Service<Incoming>>::Future: Send + 'static,
{
    Box::new(move |inner| {
        BoxCloneSyncService::new(layer.layer(inner).map_err(Into::<BoxError>::into))
    })
}

/// Runs one handler's layers for `incoming`, the failure said as that
/// handler's.
pub(super) async fn through(
    service: &HandlerService,
    incoming: Incoming,
    index: usize,
) -> HandlerResult {
    service
        .clone()
        .oneshot(incoming)
        .await
        .map_err(|error| handler_error(error, Some(index)))
}

/// A failure out of the layers as a handler failure: a handler's own as
/// it is, a timeout layer's as `TimeoutError`, any other layer's as
/// `MiddlewareError` with its text.
pub(super) fn handler_error(error: BoxError, index: Option<usize>) -> HandlerError {
    let mut error = match error.downcast::<HandlerError>() {
        Ok(error) => *error,
        Err(error) if error.is::<tower::timeout::error::Elapsed>() => HandlerError::new(
            "TimeoutError",
            "the handler ran past the time limit of a timeout layer and was cancelled",
        ),
        Err(error) => HandlerError::new("MiddlewareError", error.to_string()),
    };
    if error.handler.is_none() {
        error.handler = index;
    }
    error
}

/// Where the handlers' arguments come from: a delivery (no layers), or the
/// envelope of an [`Incoming`].
pub(super) trait Origin: Sync {
    fn queue(&self) -> &str;
    fn routing_key(&self) -> &str;
    fn redelivered(&self) -> bool;
    fn deadline(&self) -> Option<Instant>;
    /// The envelope, for a handler's own layers.
    fn envelope(&self) -> Arc<Envelope>;
}

impl Origin for (&Delivery, Option<Instant>) {
    fn queue(&self) -> &str {
        self.0.queue()
    }
    fn routing_key(&self) -> &str {
        self.0.routing_key()
    }
    fn redelivered(&self) -> bool {
        self.0.redelivered()
    }
    fn deadline(&self) -> Option<Instant> {
        self.1
    }
    fn envelope(&self) -> Arc<Envelope> {
        Arc::new(Envelope::of(self.0, self.1))
    }
}

impl Origin for Arc<Envelope> {
    fn queue(&self) -> &str {
        &self.queue
    }
    fn routing_key(&self) -> &str {
        &self.routing_key
    }
    fn redelivered(&self) -> bool {
        self.redelivered
    }
    fn deadline(&self) -> Option<Instant> {
        self.deadline
    }
    fn envelope(&self) -> Arc<Envelope> {
        self.clone()
    }
}

/// How a processor runs the handlers of a delivery: directly, or through
/// its layers.
pub(super) trait Dispatch<P>: Clone + Send + Sync + 'static {
    /// Whether layers see the messages (and so need them whole).
    const LAYERED: bool;

    fn run<'a>(
        &'a self,
        core: &'a Core<P>,
        origin: (&'a Delivery, Option<Instant>),
        route: Route,
        message: Message,
        reply: Option<Reply>,
    ) -> impl Future<Output = HandlerResult> + Send + 'a;
}

/// No layers: the handlers run directly (the route's own future, nothing
/// around it).
#[derive(Clone, Copy)]
pub(super) struct Direct;

impl<P: Handlers> Dispatch<P> for Direct {
    const LAYERED: bool = false;

    fn run<'a>(
        &'a self,
        core: &'a Core<P>,
        origin: (&'a Delivery, Option<Instant>),
        route: Route,
        message: Message,
        reply: Option<Reply>,
    ) -> impl Future<Output = HandlerResult> + Send + 'a {
        core.run_route(origin, route, message, reply)
    }
}

/// A stack of layers around [`Handling`].
#[derive(Clone)]
pub(super) struct Layered<S>(S);

impl<P, S> Dispatch<P> for Layered<S>
where
    P: Handlers,
    S: Service<Incoming, Response = ()> + Clone + Send + Sync + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    const LAYERED: bool = true;

    fn run<'a>(
        &'a self,
        core: &'a Core<P>,
        origin: (&'a Delivery, Option<Instant>),
        route: Route,
        message: Message,
        reply: Option<Reply>,
    ) -> impl Future<Output = HandlerResult> + Send + 'a {
        let incoming = Incoming {
            message,
            envelope: origin.envelope(),
            reply,
            route,
            labels: core.labels.clone(),
        };
        self.0
            .clone()
            .oneshot(incoming)
            .map_err(|error| handler_error(error.into(), None))
    }
}

mod sealed {
    #[allow(unreachable_pub)]
    pub trait Sealed {}
    impl Sealed for tower::layer::util::Identity {}
    impl<I, O> Sealed for tower::layer::util::Stack<I, O> {}
}

/// The layers a [`ProcessorBuilder`](super::ProcessorBuilder) holds: none
/// (`Identity`), or those its [`layer`](super::ProcessorBuilder::layer)
/// calls stacked. Implemented for those alone.
pub trait ProcessorLayers<P: 'static>: sealed::Sealed + Send + Sized + 'static {
    #[doc(hidden)]
    fn runner(self, handling: Handling<P>) -> Runner<P>;
}

/// A processor's run loop, typed by its layers, behind one box.
#[doc(hidden)]
pub struct Runner<P: 'static>(Box<dyn Start<P>>);

/// Starts the run loop of a processor with these layers.
pub(super) trait Start<P: 'static>: Send {
    fn start<'a>(
        self: Box<Self>,
        processor: super::run::Parts<P>,
        shutdown: crate::BoxFuture<'a, ()>,
    ) -> crate::BoxFuture<'a, crate::Result<super::Stop>>;
}

impl<P: Handlers, D: Dispatch<P>> Start<P> for D {
    fn start<'a>(
        self: Box<Self>,
        processor: super::run::Parts<P>,
        shutdown: crate::BoxFuture<'a, ()>,
    ) -> crate::BoxFuture<'a, crate::Result<super::Stop>> {
        Box::pin(processor.run_loop(*self, shutdown))
    }
}

impl<P: 'static> Runner<P> {
    pub(super) fn direct() -> Self
    where
        P: Handlers,
    {
        Runner(Box::new(Direct))
    }

    pub(super) fn start<'a>(
        self,
        processor: super::run::Parts<P>,
        shutdown: crate::BoxFuture<'a, ()>,
    ) -> crate::BoxFuture<'a, crate::Result<super::Stop>> {
        self.0.start(processor, shutdown)
    }
}

impl<P: Handlers> ProcessorLayers<P> for tower::layer::util::Identity {
    fn runner(self, _: Handling<P>) -> Runner<P> {
        Runner::direct()
    }
}

impl<P, I, O> ProcessorLayers<P> for tower::layer::util::Stack<I, O>
where
    P: Handlers,
    I: Send + 'static,
    O: Send + 'static,
    Self: Layer<Handling<P>>,
    <Self as Layer<Handling<P>>>::Service:
        Service<Incoming, Response = ()> + Clone + Send + Sync + 'static,
    <<Self as Layer<Handling<P>>>::Service as Service<Incoming>>::Error: Into<BoxError>,
    <<Self as Layer<Handling<P>>>::Service as Service<Incoming>>::Future: Send + 'static,
{
    fn runner(self, handling: Handling<P>) -> Runner<P> {
        Runner(Box::new(Layered(self.layer(handling))))
    }
}

impl<P: Handlers> Handling<P> {
    pub(super) fn new(core: &Arc<Core<P>>) -> Self {
        Handling {
            core: Arc::downgrade(core),
            only: None,
        }
    }
}

//! A processor's middleware: the layers around its handlers, built into
//! one service at connection and run for each delivery without dynamic
//! dispatch. A processor without layers runs its handlers directly.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context as TaskContext, Poll};
use std::time::Instant;

use futures_util::TryFutureExt;
use tower::util::{BoxCloneSyncService, ServiceExt};
use tower::{BoxError, Layer, Service};

use super::acks::{Holds, Kept};
use super::dispatch::Core;
use super::handler::{HandlerError, HandlerFuture, HandlerResult};
use super::incoming::{Incoming, Route};
use super::running::Running;
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
    type Future = HandlingFuture<P>;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), HandlerError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, incoming: Incoming) -> HandlingFuture<P> {
        let Some(core) = self.core.upgrade() else {
            return HandlingFuture::Done(Some(Err(HandlerError::new(
                "Stopped",
                "the processor stopped before its handlers ran",
            ))));
        };
        let Incoming {
            message,
            delivery,
            deadline,
            reply,
            route,
            ..
        } = incoming;
        // One handler without layers of its own (the common case): its
        // future as it is; several, or one with its own layers: boxed.
        let index = match (self.only, route.indices()) {
            (Some(index), _) => index,
            (None, &[index]) if !core.has_own_layers(index) => index,
            (None, _) => {
                return HandlingFuture::Route(Box::pin(async move {
                    core.run_route(&delivery, deadline, route, message, reply)
                        .await
                }));
            }
        };
        match core.handler_future(&delivery, deadline, index, message, reply) {
            Some(future) => HandlingFuture::One(Running::new(core, index, future)),
            None => HandlingFuture::Done(Some(Ok(()))),
        }
    }
}

/// The future of [`Handling`]: the one handler a message goes to running,
/// or the handlers of its route.
#[doc(hidden)]
#[allow(private_interfaces)]
pub enum HandlingFuture<P: 'static> {
    /// Nothing to run, or the processor is gone.
    Done(Option<HandlerResult>),
    /// One handler.
    One(Running<Arc<Core<P>>>),
    /// Several handlers, or one under its own layers.
    Route(HandlerFuture),
}

impl<P: Handlers> Future for HandlingFuture<P> {
    type Output = HandlerResult;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<HandlerResult> {
        match self.get_mut() {
            HandlingFuture::Done(outcome) => Poll::Ready(outcome.take().unwrap_or(Ok(()))),
            HandlingFuture::One(running) => Pin::new(running).poll(cx),
            HandlingFuture::Route(future) => future.as_mut().poll(cx),
        }
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

/// How a processor runs the handlers of a delivery: directly, or through
/// its layers.
pub(super) trait Dispatch<P>: Clone + Send + Sync + 'static {
    /// Whether layers see the messages (and so need them whole).
    const LAYERED: bool;

    /// How the processor holds a delivery while its handlers run: as it
    /// is, or shared with the layers' [`Incoming`].
    type Held: Holding;

    fn hold(delivery: Delivery) -> Self::Held;

    fn run<'a>(
        &'a self,
        core: &'a Core<P>,
        delivery: &'a Self::Held,
        deadline: Option<Instant>,
        route: Route,
        message: Message,
        reply: Option<Reply>,
    ) -> impl Future<Output = HandlerResult> + Send + 'a;
}

/// A delivery as a processor holds it while its handlers run.
pub(super) trait Holding: Holds + Into<Kept> + Send + Sync + 'static {
    /// The delivery shared, for the `Incoming` of a handler's own layers;
    /// `None` when it is held alone (a processor without any layers).
    fn shared(&self) -> Option<&Arc<Delivery>>;
}

impl Holding for Delivery {
    fn shared(&self) -> Option<&Arc<Delivery>> {
        None
    }
}

impl Holding for Arc<Delivery> {
    fn shared(&self) -> Option<&Arc<Delivery>> {
        Some(self)
    }
}

/// No layers, neither the processor's nor a handler's: the handlers run
/// directly (the route's own future, nothing around it).
#[derive(Clone, Copy)]
pub(super) struct Direct;

impl<P: Handlers> Dispatch<P> for Direct {
    const LAYERED: bool = false;
    type Held = Delivery;

    fn hold(delivery: Delivery) -> Delivery {
        delivery
    }

    fn run<'a>(
        &'a self,
        core: &'a Core<P>,
        delivery: &'a Delivery,
        deadline: Option<Instant>,
        route: Route,
        message: Message,
        reply: Option<Reply>,
    ) -> impl Future<Output = HandlerResult> + Send + 'a {
        core.run_route(delivery, deadline, route, message, reply)
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
    type Held = Arc<Delivery>;

    fn hold(delivery: Delivery) -> Arc<Delivery> {
        Arc::new(delivery)
    }

    fn run<'a>(
        &'a self,
        core: &'a Core<P>,
        delivery: &'a Arc<Delivery>,
        deadline: Option<Instant>,
        route: Route,
        message: Message,
        reply: Option<Reply>,
    ) -> impl Future<Output = HandlerResult> + Send + 'a {
        let incoming = Incoming {
            message,
            delivery: delivery.clone(),
            deadline,
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
    fn runner(self, handling: Handling<P>) -> Runner<P> {
        // A handler's own layers see the delivery shared.
        let handler_layers = handling
            .core
            .upgrade()
            .is_some_and(|core| !core.handler_services.is_empty());
        if handler_layers {
            Runner(Box::new(Layered(handling)))
        } else {
            Runner::direct()
        }
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

//! Middleware: tower layers around a processor's handlers, one handler
//! and a producer's sends. Their order, a layer that refuses (the failure
//! policy decides), a timeout layer cancelling a handler, a rate limit
//! measured in messages per second, headers added on the way out and read
//! on the way in, and the layers listed in `info`.

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use postage::middleware::{
    ConcurrencyLimitLayer, Next, Outgoing, RateLimitLayer, TimeoutLayer, from_fn,
};
use postage::prelude::*;
use postage::processor::{HandlerError, Incoming, parking_queue};
use postage::remote::{Destination, Remote};
use postage::{Error, Stop};
use postage_tests::conformance::{TestBroker, delivered, probe, silent};
use postage_tests::{conformance, next_seen, quit_and_wait, unique};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

const MINUTE: &[Duration] = &[Duration::from_secs(60)];

/// A layer's outcome, boxed.
type Outcome = postage::BoxFuture<'static, Result<(), HandlerError>>;

/// What layers and handlers did, in order.
type Journal = Arc<Mutex<Vec<String>>>;

fn note(journal: &Journal, line: impl Into<String>) {
    journal.lock().unwrap().push(line.into());
}

struct Worker {
    journal: Journal,
    seen: mpsc::UnboundedSender<String>,
}

/// Says when it is dropped: a handler's future cancelled.
struct Cancelled(mpsc::UnboundedSender<String>);

impl Drop for Cancelled {
    fn drop(&mut self) {
        let _ = self.0.send("cancelled".to_owned());
    }
}

#[processor]
impl Worker {
    #[handler("command", "work")]
    async fn work(&self, Params(text): Params<String>) {
        note(&self.journal, format!("handler {text}"));
        let _ = self.seen.send(format!("work {text}"));
    }

    #[handler("command", "forbidden")]
    async fn forbidden(&self, Params(text): Params<String>) {
        let _ = self.seen.send(format!("forbidden {text}"));
    }

    #[handler("command", "slow")]
    async fn slow(&self, Params(text): Params<String>) {
        let guard = Cancelled(self.seen.clone());
        tokio::time::sleep(Duration::from_secs(30)).await;
        std::mem::forget(guard);
        let _ = self.seen.send(format!("slow {text}"));
    }

    #[rpc_handler("command", "echo")]
    async fn echo(&self, Params(text): Params<String>) -> String {
        text
    }

    #[rpc_handler("command", "slow_echo")]
    async fn slow_echo(&self, Params(text): Params<String>) -> String {
        tokio::time::sleep(Duration::from_secs(30)).await;
        text
    }
}

/// A layer that writes `<name> in` and `<name> out: <outcome>`.
fn journaling(
    name: &'static str,
    journal: Journal,
) -> postage::middleware::FromFnLayer<impl Fn(Incoming, Next<Incoming>) -> Outcome + Clone> {
    from_fn(move |incoming: Incoming, next: Next<Incoming>| {
        let journal = journal.clone();
        Box::pin(async move {
            note(&journal, format!("{name} in {}", incoming.message().name));
            let outcome = next.run(incoming).await;
            note(&journal, format!("{name} out {}", outcome.is_ok()));
            Ok(outcome?)
        }) as Outcome
    })
}

struct Setup {
    connection: Connection,
    queue: String,
    producer: Producer,
    seen: mpsc::UnboundedReceiver<String>,
    journal: Journal,
    control: Control,
    task: JoinHandle<postage::Result<Stop>>,
}

impl Setup {
    /// A `Worker` on a fresh queue, built by `build` from a builder
    /// bound to it, and a producer sending to it.
    async fn start<F, L>(broker: &TestBroker, build: F) -> Setup
    where
        F: FnOnce(
            postage::processor::ProcessorBuilder<Worker>,
            &Journal,
        ) -> postage::processor::ProcessorBuilder<Worker, L>,
        L: postage::processor::ProcessorLayers<Worker>,
    {
        let connection = broker.connect().await;
        let name = unique("middleware");
        let exchange = Exchange::new(name.clone(), ExchangeKind::Direct).auto_delete(true);
        let (tx, seen) = mpsc::unbounded_channel();
        let journal = Journal::default();
        let builder = Processor::builder(Worker {
            journal: journal.clone(),
            seen: tx,
        })
        .bind(
            exchange.clone(),
            [(Queue::new(name.clone()).auto_delete(true), name.as_str())],
        )
        .fingerprint(Fingerprint::new(name.clone(), "service"));
        let processor = build(builder, &journal)
            .connect(&connection)
            .await
            .expect("the processor connects");
        let control = processor.control();
        let task = tokio::spawn(processor.run());
        let producer = Producer::builder()
            .ek(exchange, name.as_str())
            .fingerprint(Fingerprint::new("sender", "test"))
            .connect(&connection)
            .await
            .expect("the producer connects");
        Setup {
            connection,
            queue: name,
            producer,
            seen,
            journal,
            control,
            task,
        }
    }

    fn journal(&self) -> Vec<String> {
        self.journal.lock().unwrap().clone()
    }

    async fn stop(self) {
        quit_and_wait(&self.control, self.task).await;
    }
}

/// A slow command's handler cancelled at the processor's time limit, a
/// slow RPC answered with a `TimeoutError`, and the processor going on.
async fn cancelled_at_the_time_limit(mut setup: Setup) {
    setup.producer.command("slow", "one").await.unwrap();
    assert_eq!(next_seen(&mut setup.seen).await, "cancelled");
    let reply = setup
        .producer
        .rpc("slow_echo", "two")
        .timeout(Duration::from_secs(10))
        .returning::<String>()
        .await;
    match reply {
        Err(Error::RpcException { name, message, .. }) => {
            assert_eq!(name, "TimeoutError");
            assert!(message.contains("time limit of 300ms"), "{message}");
        }
        other => panic!("expected a TimeoutError exception, got {other:?}"),
    }
    setup.producer.command("work", "three").await.unwrap();
    assert_eq!(next_seen(&mut setup.seen).await, "work three");
    setup.stop().await;
}

/// Refuses messages called `forbidden`, permanently.
async fn refuse_forbidden(incoming: Incoming, next: Next<Incoming>) -> Result<(), HandlerError> {
    if incoming.message().name == "forbidden" {
        return Err(HandlerError::permanent(
            "Unauthorized",
            format!("{} may not", incoming.sender()),
        ));
    }
    Ok(next.run(incoming).await?)
}

conformance! {
    /// Layers nest in the order added, the first outermost; a handler's
    /// own layers run inside the processor's; each layer sees the
    /// outcome on the way out.
    async fn layers_run_in_the_order_added_around_the_handlers(broker) {
        let mut setup = Setup::start(&broker, |builder, journal| {
            builder
                .layer(journaling("outer", journal.clone()))
                .layer(journaling("inner", journal.clone()))
                .layer_for("work", journaling("handler-layer", journal.clone()))
        })
        .await;
        setup.producer.command("work", "one").await.unwrap();
        assert_eq!(next_seen(&mut setup.seen).await, "work one");
        // The way out runs after the handler said it ran.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            setup.journal(),
            [
                "outer in work",
                "inner in work",
                "handler-layer in work",
                "handler one",
                "handler-layer out true",
                "inner out true",
                "outer out true",
            ]
        );
        // An RPC request reaches the layers whole, its name included.
        let reply = setup
            .producer
            .rpc("echo", "two")
            .timeout(Duration::from_secs(5))
            .returning::<String>()
            .await
            .unwrap();
        assert_eq!(reply, "two");
        assert!(setup.journal().contains(&"outer in echo".to_owned()), "{:?}", setup.journal());
        setup.stop().await;
    }

    /// A layer that refuses a message: its handler never runs, and the
    /// message goes the way the failure policy says (parked, with the
    /// layer's error in its headers); other messages go on.
    async fn a_layer_that_refuses_sends_the_message_the_way_of_the_failure_policy(broker) {
        let mut setup = Setup::start(&broker, |builder, _| {
            builder
                .on_error(OnError::retry(MINUTE))
                .layer(from_fn(refuse_forbidden))
        })
        .await;
        setup.producer.command("forbidden", "one").await.unwrap();
        setup.producer.command("work", "two").await.unwrap();
        assert_eq!(next_seen(&mut setup.seen).await, "work two");
        // Permanent: parked at once, never retried, the handler never ran.
        let probe = probe(&setup.connection).await;
        let parked = parking_queue(&setup.queue);
        let mut depth = None;
        for _ in 0..100 {
            depth = probe.depth(&parked).await.ok();
            if depth == Some(1) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(depth, Some(1), "the refused message is parked");
        let mut consumer = probe.consume(&parked).await.unwrap();
        let delivery = delivered(&mut consumer, 5_000).await;
        let body: Value = serde_json::from_slice(delivery.body()).unwrap();
        assert_eq!(body["name"], "forbidden");
        let error = delivery.headers()["postage-error"].as_str().unwrap().to_owned();
        assert!(error.contains("Unauthorized"), "{error}");
        delivery.ack().await.unwrap();
        assert!(silent(&mut consumer, 300).await);
        assert!(
            tokio::time::timeout(Duration::from_millis(300), setup.seen.recv()).await.is_err(),
            "the refused message's handler never ran"
        );
        setup.stop().await;
    }

    /// A timeout layer cancels a handler past its limit: the handler's
    /// future is dropped, an RPC caller gets a `TimeoutError` exception
    /// at once, and the processor goes on.
    async fn a_timeout_layer_cancels_a_handler(broker) {
        let mut setup = Setup::start(&broker, |builder, _| {
            builder.layer(TimeoutLayer::new(Duration::from_millis(300)))
        })
        .await;
        setup.producer.command("slow", "one").await.unwrap();
        assert_eq!(next_seen(&mut setup.seen).await, "cancelled");
        let called = Instant::now();
        let reply = setup
            .producer
            .rpc("slow_echo", "two")
            .timeout(Duration::from_secs(10))
            .returning::<String>()
            .await;
        match reply {
            Err(Error::RpcException { name, .. }) => assert_eq!(name, "TimeoutError"),
            other => panic!("expected a TimeoutError exception, got {other:?}"),
        }
        assert!(called.elapsed() < Duration::from_secs(10), "answered before the call's own timeout");
        setup.producer.command("work", "three").await.unwrap();
        assert_eq!(next_seen(&mut setup.seen).await, "work three");
        setup.stop().await;
    }

    /// The processor's own time limit for handlers cancels them alike
    /// with layers and without: the handler's future is dropped and an
    /// RPC caller gets a `TimeoutError` exception.
    async fn the_processors_time_limit_cancels_handlers_with_layers_and_without(broker) {
        let limit = Duration::from_millis(300);
        let direct = Setup::start(&broker, |builder, _| builder.handler_timeout(limit)).await;
        cancelled_at_the_time_limit(direct).await;
        let layered = Setup::start(&broker, |builder, journal| {
            builder
                .handler_timeout(limit)
                .layer(journaling("outer", journal.clone()))
        })
        .await;
        cancelled_at_the_time_limit(layered).await;
    }

    /// A rate limit of 20 messages a second holds across 8 concurrent
    /// deliveries: 30 messages sent at once are handled at that rate.
    async fn a_rate_limit_holds_across_concurrent_deliveries(broker) {
        const RATE: u32 = 20;
        let mut setup = Setup::start(&broker, |builder, _| {
            builder
                .concurrency(8)
                .layer(RateLimitLayer::per_second(NonZeroU32::new(RATE).unwrap()))
                .layer(ConcurrencyLimitLayer::new(8))
        })
        .await;
        for i in 0..30 {
            setup.producer.command("work", i.to_string()).await.unwrap();
        }
        let mut times = Vec::new();
        for _ in 0..30 {
            next_seen(&mut setup.seen).await;
            times.push(Instant::now());
        }
        let span = times[29] - times[0];
        let measured = 29.0 / span.as_secs_f64();
        eprintln!("rate limit {RATE}/s: 30 messages handled at {measured:.1} messages/s");
        // The limiter spaces messages 50 ms apart at least; a little slack
        // for timer granularity.
        assert!(measured <= f64::from(RATE) * 1.1, "{measured:.1} messages/s over a limit of {RATE}");
        setup.stop().await;
    }

    /// Headers a producer's layer adds reach the processor's layers; a
    /// producer's layer that refuses fails the send with its error.
    async fn producer_layers_add_headers_and_can_refuse_a_send(broker) {
        let tenants: Journal = Journal::default();
        let seen_tenants = tenants.clone();
        let mut setup = Setup::start(&broker, move |builder, _| {
            builder.layer(from_fn(move |incoming: Incoming, next: Next<Incoming>| {
                let tenants = seen_tenants.clone();
                async move {
                    let tenant = incoming.header_text("tenant");
                    note(&tenants, tenant.unwrap_or("none"));
                    Ok::<_, HandlerError>(next.run(incoming).await?)
                }
            }))
        })
        .await;
        let exchange = setup.producer.eks()[0].clone();
        let tagged = Producer::builder()
            .ek(exchange.0, exchange.1)
            .layer(from_fn(|mut outgoing: Outgoing, next: Next<Outgoing>| async move {
                if outgoing.name() == "forbidden" {
                    return Err(Error::NoDestination);
                }
                outgoing.headers_mut().insert("tenant".into(), "acme".into());
                Ok(next.run(outgoing).await?)
            }))
            .connect(&setup.connection)
            .await
            .unwrap();
        tagged.command("work", "one").await.unwrap();
        assert_eq!(next_seen(&mut setup.seen).await, "work one");
        let refused = tagged.command("forbidden", "two").await;
        assert!(matches!(refused, Err(Error::NoDestination)), "{refused:?}");
        setup.producer.command("work", "three").await.unwrap();
        assert_eq!(next_seen(&mut setup.seen).await, "work three");
        assert_eq!(*tenants.lock().unwrap(), ["acme", "none"]);
        setup.stop().await;
    }

    /// The `info` answer lists the layers; a layer for a handler the
    /// processor does not have is an error when it connects.
    async fn info_lists_the_layers(broker) {
        let setup = Setup::start(&broker, |builder, _| {
            builder
                .layer(TimeoutLayer::new(Duration::from_secs(5)))
                .layer(ConcurrencyLimitLayer::new(2))
                .layer_for("slow", TimeoutLayer::new(Duration::from_secs(1)))
        })
        .await;
        let mut remote = Remote::connect(&setup.connection, Fingerprint::new("ops", "tool"))
            .await
            .unwrap();
        let infos = remote
            .info(&Destination::new([setup.queue.as_str()]), Duration::from_secs(2))
            .await
            .unwrap();
        assert_eq!(infos.len(), 1, "{infos:?}");
        assert_eq!(infos[0].layers, ["TimeoutLayer", "ConcurrencyLimitLayer"]);
        let slow = infos[0].handlers.iter().find(|h| h.handler == "slow").unwrap();
        assert_eq!(slow.layers, ["TimeoutLayer"]);
        let work = infos[0].handlers.iter().find(|h| h.handler == "work").unwrap();
        assert!(work.layers.is_empty());

        let connection = broker.connect().await;
        let (tx, _seen) = mpsc::unbounded_channel();
        let error = Processor::builder(Worker { journal: Journal::default(), seen: tx })
            .bind(Exchange::direct("unused"), [(Queue::server_named(), "x")])
            .layer_for("nope", TimeoutLayer::new(Duration::from_secs(1)))
            .connect(&connection)
            .await
            .unwrap_err();
        assert!(matches!(error, Error::UnknownHandler { ref handler } if handler == "nope"), "{error:?}");
        setup.stop().await;
    }
}

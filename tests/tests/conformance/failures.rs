//! Failure policies and RPC deadlines: retries after delays through retry
//! queues, parking with the documented headers (classic and quorum
//! queues), permanent errors, replay of parked messages, poison input
//! unaffected; RPC handlers cancelled at their caller's deadline, expired
//! requests dropped, requests without a deadline served as before.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use postage::prelude::*;
use postage::processor::{HandlerError, failure_headers, parking_queue, replay_parked};
use postage::testing::Probe;
use postage::{Error, Stop};
use postage_tests::conformance::{TestBroker, delivered, probe, silent};
use postage_tests::{conformance, next_seen, quit_and_wait, unique};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

const SHORT: &[Duration] = &[Duration::from_millis(200), Duration::from_millis(300)];
const ONE_AND_TWO: &[Duration] = &[Duration::from_secs(1), Duration::from_secs(2)];

/// Handlers that fail in the ways the policies are about; each run is
/// reported as `<handler> <text>`.
struct Failing {
    seen: mpsc::UnboundedSender<String>,
    /// How many more times `flaky` fails.
    flaky_failures: AtomicU32,
    /// Whether `fragile` fails.
    broken: AtomicBool,
}

#[processor]
impl Failing {
    #[handler("command", "flaky", on_error = OnError::retry(ONE_AND_TWO))]
    async fn flaky(&self, Params(text): Params<String>) -> Result<(), HandlerError> {
        let _ = self.seen.send(format!("flaky {text}"));
        let left = self.flaky_failures.load(Ordering::SeqCst);
        if left > 0 {
            self.flaky_failures.store(left - 1, Ordering::SeqCst);
            return Err(HandlerError::new("Flaky", "not yet"));
        }
        Ok(())
    }

    #[handler("command", "doomed", on_error = OnError::retry(SHORT))]
    async fn doomed(&self, Params(text): Params<String>) -> Result<(), std::io::Error> {
        let _ = self.seen.send(format!("doomed {text}"));
        Err(std::io::Error::other("no luck"))
    }

    #[handler("command", "invalid", on_error = OnError::retry(SHORT))]
    async fn invalid(&self, Params(text): Params<String>) -> Result<(), HandlerError> {
        let _ = self.seen.send(format!("invalid {text}"));
        Err(HandlerError::permanent("Invalid", "cannot be done"))
    }

    #[handler("command", "fragile", on_error = OnError::Park)]
    async fn fragile(&self, Params(text): Params<String>) -> Result<(), HandlerError> {
        let _ = self.seen.send(format!("fragile {text}"));
        if self.broken.load(Ordering::SeqCst) {
            return Err(HandlerError::new("Broken", "try later"));
        }
        Ok(())
    }

    #[handler("command", "stubborn", on_error = OnError::requeue(2))]
    async fn stubborn(&self, Params(text): Params<String>) -> Result<(), HandlerError> {
        let _ = self.seen.send(format!("stubborn {text}"));
        Err(HandlerError::new("Stubborn", "no"))
    }

    #[handler("command", "dropped")]
    async fn dropped(&self, Params(text): Params<String>) -> Result<(), HandlerError> {
        let _ = self.seen.send(format!("dropped {text}"));
        Err(HandlerError::new("Dropped", "gone"))
    }
}

/// A `Failing` processor on `queue` (bound to a fresh exchange with the
/// queue's name as key), its producer, and what its handlers report.
struct Setup {
    connection: Connection,
    probe: Probe,
    queue: String,
    producer: Producer,
    seen: mpsc::UnboundedReceiver<String>,
    handlers: Arc<Failing>,
    control: Control,
    task: JoinHandle<postage::Result<Stop>>,
}

impl Setup {
    async fn start(broker: &TestBroker, queue: Queue, policy: OnError) -> Setup {
        let connection = broker.connect().await;
        let exchange = Exchange::new(unique("failures"), ExchangeKind::Direct).auto_delete(true);
        let name = queue.name().to_owned();
        let (tx, seen) = mpsc::unbounded_channel();
        let handlers = Arc::new(Failing {
            seen: tx,
            flaky_failures: AtomicU32::new(2),
            broken: AtomicBool::new(true),
        });
        let processor = Processor::builder_arc(handlers.clone())
            .bind(exchange.clone(), [(queue, name.as_str())])
            .fingerprint(Fingerprint::new("failing", "service"))
            .on_error(policy)
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
            probe: probe(&connection).await,
            connection,
            queue: name,
            producer,
            seen,
            handlers,
            control,
            task,
        }
    }

    async fn next_seen(&mut self) -> String {
        next_seen(&mut self.seen).await
    }

    /// Nothing more ran within `millis`.
    async fn quiet(&mut self, millis: u64) -> bool {
        tokio::time::timeout(Duration::from_millis(millis), self.seen.recv())
            .await
            .is_err()
    }

    /// Waits until `count` messages are parked from the queue (the
    /// parking queue is declared when the first one is parked).
    async fn wait_parked(&self, count: u32) {
        let parked = parking_queue(&self.queue);
        let mut depth = None;
        for _ in 0..100 {
            depth = probe(&self.connection).await.depth(&parked).await.ok();
            if depth == Some(count) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{count} parked in {parked}, found {depth:?}");
    }

    /// The messages parked from the queue, each settled.
    async fn parked(&self, count: usize) -> Vec<(Value, postage::Headers)> {
        self.wait_parked(u32::try_from(count).unwrap()).await;
        let mut consumer = self
            .probe
            .consume(&parking_queue(&self.queue))
            .await
            .expect("the parking queue exists");
        let mut parked = Vec::new();
        for _ in 0..count {
            let delivery = delivered(&mut consumer, 5_000).await;
            let body: Value = serde_json::from_slice(delivery.body()).unwrap();
            parked.push((body, delivery.headers()));
            delivery.ack().await.unwrap();
        }
        assert!(silent(&mut consumer, 300).await, "nothing else was parked");
        parked
    }

    /// Does `queue` not exist? Asked on a probe of its own: a passive
    /// declaration of a missing queue closes its channel.
    async fn missing(&self, queue: &str) -> bool {
        probe(&self.connection).await.depth(queue).await.is_err()
    }

    /// Quits the processor and deletes the queue and those the policies
    /// declared (`<queue>.<suffix>`).
    async fn finish(self, declared: &[&str]) {
        quit_and_wait(&self.control, self.task).await;
        for suffix in declared {
            let queue = format!("{}.{suffix}", self.queue);
            self.probe
                .delete_queue(&queue)
                .await
                .expect("delete a policy's queue");
        }
        // An auto-delete queue went with its consumer.
        let spare = probe(&self.connection).await;
        if spare.depth(&self.queue).await.is_ok() {
            spare
                .delete_queue(&self.queue)
                .await
                .expect("delete the queue");
        }
    }
}

fn text_of(headers: &postage::Headers, key: &str) -> String {
    headers
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no text header {key} in {headers:?}"))
        .to_owned()
}

/// The documented headers of a message parked from `queue` after
/// `attempts` failures of `handler` with `error`, for `reason`.
fn assert_parked(
    headers: &postage::Headers,
    queue: &str,
    (handler, error, attempts, reason): (&str, &str, u64, &str),
) {
    assert_eq!(
        headers.get(failure_headers::ATTEMPTS),
        Some(&json!(attempts)),
        "{headers:?}"
    );
    assert_eq!(text_of(headers, failure_headers::HANDLER), handler);
    assert_eq!(text_of(headers, failure_headers::ERROR), error);
    assert_eq!(text_of(headers, failure_headers::PARKED_REASON), reason);
    assert_eq!(text_of(headers, failure_headers::PARKED_FROM), queue);
    let first = text_of(headers, failure_headers::FIRST_FAILURE);
    let last = text_of(headers, failure_headers::LAST_FAILURE);
    for time in [&first, &last] {
        assert!(
            time.len() == 24 && time.ends_with('Z') && time.as_bytes()[10] == b'T',
            "an RFC 3339 time: {time}"
        );
    }
    // Same format, fixed width: the text order is the time order.
    assert!(first <= last, "{first} then {last}");
    if attempts == 1 {
        assert_eq!(first, last);
    }
}

// --- RPC deadlines --------------------------------------------------------

/// What the sleeping handler went through.
#[derive(Debug)]
enum Event {
    Started(Option<Instant>),
    Finished,
    /// Its future was dropped before it finished, at this time.
    Cancelled(Instant),
}

struct Sleeper {
    events: mpsc::UnboundedSender<Event>,
}

/// Reports the drop of a handler's future that did not finish.
struct DropGuard {
    events: mpsc::UnboundedSender<Event>,
    finished: bool,
}

impl Drop for DropGuard {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.events.send(Event::Cancelled(Instant::now()));
        }
    }
}

#[processor]
impl Sleeper {
    #[rpc_handler("command", "sleep")]
    async fn sleep(&self, Params(millis): Params<u64>, reply: Reply) -> postage::Result<()> {
        let mut guard = DropGuard {
            events: self.events.clone(),
            finished: false,
        };
        let _ = self.events.send(Event::Started(reply.deadline()));
        tokio::time::sleep(Duration::from_millis(millis)).await;
        guard.finished = true;
        let _ = self.events.send(Event::Finished);
        reply.success(millis).await
    }
}

/// An RPC request as Python Postage sends it: no correlation id, no
/// deadline header.
fn python_request(millis: u64) -> Vec<u8> {
    serde_json::to_vec(
        &json!({"type": "command", "name": "sleep", "category": "rpc",
        "version": "2", "fingerprint": {"name": "python_caller", "pid": "7"},
        "content": {"parameters": millis}, "_reserved": {}}),
    )
    .unwrap()
}

fn epoch_millis(time: SystemTime) -> u64 {
    u64::try_from(time.duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap()
}

async fn next_event(events: &mut mpsc::UnboundedReceiver<Event>) -> Event {
    next_seen(events).await
}

conformance! {
    /// A handler that fails twice, with retries after 1 s and 2 s, gets
    /// the message three times; the third run succeeds and the message
    /// is gone for good: nothing is left in the queue, its retry queues
    /// or its parking queue, and nothing runs again.
    async fn a_handler_failing_twice_succeeds_on_the_third_attempt(broker) {
        let queue = Queue::new(unique("flaky")).auto_delete(true);
        let mut setup = Setup::start(&broker, queue, OnError::Acknowledge).await;
        setup.producer.command("flaky", "one").await.unwrap();
        for _ in 0..3 {
            assert_eq!(setup.next_seen().await, "flaky one");
        }
        assert_eq!(setup.handlers.flaky_failures.load(Ordering::SeqCst), 0);
        // Past the longest delay: no copy was left behind to run again.
        assert!(setup.quiet(2_500).await, "the message ran a fourth time");
        for queue in [
            setup.queue.clone(),
            format!("{}.retry.1000", setup.queue),
            format!("{}.retry.2000", setup.queue),
        ] {
            assert_eq!(setup.probe.depth(&queue).await.unwrap(), 0, "{queue}");
        }
        assert!(setup.missing(&parking_queue(&setup.queue)).await, "nothing was parked");
        setup.finish(&["retry.1000", "retry.2000"]).await;
    }

    /// A handler that always fails is tried once per delay plus once,
    /// then its message is parked, body unchanged, with the headers that
    /// say why: on a classic queue and on a quorum queue.
    async fn a_handler_that_always_fails_is_parked_after_its_last_attempt(broker) {
        for quorum in [false, true] {
            let name = unique(if quorum { "doomed-quorum" } else { "doomed" });
            let queue = if quorum {
                Queue::quorum(name.as_str())
            } else {
                Queue::new(name.as_str()).durable(true)
            };
            let mut setup = Setup::start(&broker, queue, OnError::Acknowledge).await;
            setup.producer.command("doomed", "two").await.unwrap();
            for _ in 0..3 {
                assert_eq!(setup.next_seen().await, "doomed two");
            }
            let parked = setup.parked(1).await;
            let (body, headers) = &parked[0];
            assert_eq!(body["name"], "doomed");
            assert_eq!(body["content"]["parameters"], "two");
            assert_eq!(body["fingerprint"]["name"], "sender");
            assert_parked(headers, &name, ("doomed", "Error: no luck", 3, "retries exhausted"));
            assert!(setup.quiet(500).await, "{name}: a fourth run");
            setup.finish(&["retry.200", "retry.300", "parked"]).await;
        }
    }

    /// A permanent error parks the message at once, whatever retries the
    /// policy would make; a retry at once (`requeue`) is bounded too.
    async fn permanent_errors_park_at_once_and_requeues_are_bounded(broker) {
        let queue = Queue::new(unique("invalid")).durable(true);
        let mut setup = Setup::start(&broker, queue, OnError::Acknowledge).await;
        setup.producer.command("invalid", "three").await.unwrap();
        assert_eq!(setup.next_seen().await, "invalid three");
        setup.producer.command("stubborn", "four").await.unwrap();
        for _ in 0..3 {
            assert_eq!(setup.next_seen().await, "stubborn four");
        }
        let parked = setup.parked(2).await;
        let queue = setup.queue.clone();
        let by_name = |name: &str| {
            parked
                .iter()
                .find(|(body, _)| body["name"] == name)
                .map(|(_, headers)| headers)
                .unwrap_or_else(|| panic!("{name} was parked"))
        };
        assert_parked(by_name("invalid"), &queue, ("invalid", "Invalid: cannot be done", 1, "permanent"));
        assert_parked(by_name("stubborn"), &queue, ("stubborn", "Stubborn: no", 3, "retries exhausted"));
        assert!(setup.quiet(300).await);
        setup.finish(&["parked"]).await;
    }

    /// A parked message replayed goes back into its queue without its
    /// failure headers, and is handled; the parking queue is then empty.
    /// The processor's own policy applies to handlers without one: here
    /// dead-lettering, without a dead-letter exchange (dropped).
    async fn replay_brings_a_parked_message_back(broker) {
        let queue = Queue::new(unique("fragile")).durable(true);
        let mut setup = Setup::start(&broker, queue, OnError::DeadLetter).await;
        setup.producer.command("fragile", "five").await.unwrap();
        assert_eq!(setup.next_seen().await, "fragile five");
        let parked = parking_queue(&setup.queue);
        setup.wait_parked(1).await;
        setup.handlers.broken.store(false, Ordering::SeqCst);
        let moved = replay_parked(&setup.connection, &setup.queue).await.unwrap();
        assert_eq!(moved, 1);
        assert_eq!(setup.next_seen().await, "fragile five");
        assert_eq!(setup.probe.depth(&parked).await.unwrap(), 0);
        // Replaying nothing is fine.
        assert_eq!(replay_parked(&setup.connection, &setup.queue).await.unwrap(), 0);
        // The processor's policy for a handler without its own.
        setup.producer.command("dropped", "six").await.unwrap();
        assert_eq!(setup.next_seen().await, "dropped six");
        assert!(setup.quiet(300).await);
        assert_eq!(setup.probe.depth(&parked).await.unwrap(), 0);
        setup.finish(&["parked"]).await;
    }

    /// Undecodable input is rejected once to the dead-letter exchange, as
    /// before: failure policies are about handlers that ran.
    async fn poison_is_still_rejected_once_under_a_retry_policy(broker) {
        let connection = broker.connect().await;
        let probe = probe(&connection).await;
        let dlx = Exchange::new(unique("failures-dlx"), ExchangeKind::Fanout).auto_delete(true);
        probe.declare_exchange(&dlx).await.unwrap();
        let dead = unique("failures-dead");
        probe.declare_queue(&Queue::new(&dead).auto_delete(true)).await.unwrap();
        probe.bind(&dead, dlx.name(), "").await.unwrap();
        let mut dead_letters = probe.consume(&dead).await.unwrap();
        let queue = Queue::new(unique("poisoned"))
            .durable(true)
            .dead_letter_exchange(dlx.name());
        let mut setup = Setup::start(&broker, queue, OnError::retry(SHORT)).await;
        probe
            .publish("", &setup.queue, b"{not json".to_vec())
            .content_type("application/json")
            .await
            .unwrap();
        let dead_letter = delivered(&mut dead_letters, 5_000).await;
        assert_eq!(dead_letter.body(), b"{not json");
        dead_letter.ack().await.unwrap();
        assert!(silent(&mut dead_letters, 800).await, "rejected once");
        assert!(setup.quiet(100).await, "no handler ran");
        assert!(setup.missing(&parking_queue(&setup.queue)).await, "nothing was parked");
        assert!(setup.missing(&format!("{}.retry.200", setup.queue)).await, "nor retried");
        setup.finish(&[]).await;
    }

    /// A handler still running when its caller's 1 s timeout passes is
    /// cancelled (its future dropped, never finished), the caller gets
    /// `Error::RpcTimeout`, no late reply is sent, and the next request is
    /// served.
    async fn an_rpc_handler_is_cancelled_at_its_callers_deadline(broker) {
        let connection = broker.connect().await;
        let exchange = Exchange::new(unique("deadline"), ExchangeKind::Direct).auto_delete(true);
        let queue = unique("deadline");
        let (tx, mut events) = mpsc::unbounded_channel();
        let processor = Processor::builder(Sleeper { events: tx })
            .bind(exchange.clone(), [(Queue::new(queue.as_str()).auto_delete(true), queue.as_str())])
            .connect(&connection)
            .await
            .unwrap();
        let control = processor.control();
        let task = tokio::spawn(processor.run());
        let caller = Producer::builder()
            .ek(exchange.clone(), queue.as_str())
            .rpc_timeout(Duration::from_secs(1))
            .rpc_retries(0)
            .connect(&connection)
            .await
            .unwrap();
        let called = Instant::now();
        let error = caller.rpc("sleep", 5_000).await.unwrap_err();
        assert!(matches!(error, Error::RpcTimeout { .. }), "{error:?}");
        let Event::Started(Some(deadline)) = next_event(&mut events).await else {
            panic!("the handler saw no deadline");
        };
        assert!(deadline > called, "the deadline is the call's");
        let Event::Cancelled(at) = next_event(&mut events).await else {
            panic!("the handler was not cancelled");
        };
        let late = at.saturating_duration_since(deadline);
        eprintln!("cancelled {late:?} after the deadline");
        // Not before the deadline (the header has millisecond precision).
        assert!(at + Duration::from_millis(2) >= deadline, "cancelled early");
        // The next request is served.
        let reply = caller.rpc("sleep", 10).await.unwrap();
        assert_eq!(reply.outcome().unwrap().into_value().ok(), Some(json!(10)));
        assert!(matches!(next_event(&mut events).await, Event::Started(Some(_))));
        assert!(matches!(next_event(&mut events).await, Event::Finished));
        // No late reply: a request with a deadline, its replies watched.
        let probe = probe(&connection).await;
        let replies = unique("late-replies");
        probe.declare_queue(&Queue::new(&replies).auto_delete(true)).await.unwrap();
        let mut late = probe.consume(&replies).await.unwrap();
        let soon = epoch_millis(SystemTime::now() + Duration::from_millis(500));
        probe
            .publish(exchange.name(), &queue, python_request(2_000))
            .content_type("application/json")
            .reply_to(replies.as_str())
            .header(postage::rpc::DEADLINE_HEADER, soon)
            .await
            .unwrap();
        assert!(matches!(next_event(&mut events).await, Event::Started(Some(_))));
        assert!(matches!(next_event(&mut events).await, Event::Cancelled(_)));
        assert!(silent(&mut late, 2_500).await, "a reply after the deadline");
        quit_and_wait(&control, task).await;
        assert!(events.try_recv().is_err(), "nothing else ran");
    }

    /// A request without a deadline (as Python Postage sends it) is served
    /// to the end; one that arrives after its deadline is dropped without
    /// a reply, and the processor goes on.
    async fn requests_without_a_deadline_are_served_and_expired_ones_dropped(broker) {
        let connection = broker.connect().await;
        let probe = probe(&connection).await;
        let queue = unique("no-deadline");
        let (tx, mut events) = mpsc::unbounded_channel();
        let processor = Processor::builder(Sleeper { events: tx })
            .bind(Exchange::direct(""), [(Queue::new(queue.as_str()).auto_delete(true), queue.as_str())])
            .connect(&connection)
            .await
            .unwrap();
        let control = processor.control();
        let task = tokio::spawn(processor.run());
        let replies = unique("replies");
        probe.declare_queue(&Queue::new(&replies).auto_delete(true)).await.unwrap();
        let mut replies_consumer = probe.consume(&replies).await.unwrap();

        let expired = epoch_millis(SystemTime::now() - Duration::from_secs(1));
        probe
            .publish("", &queue, python_request(20))
            .content_type("application/json")
            .reply_to(replies.as_str())
            .header(postage::rpc::DEADLINE_HEADER, expired)
            .await
            .unwrap();
        probe
            .publish("", &queue, python_request(1_200))
            .content_type("application/json")
            .reply_to(replies.as_str())
            .await
            .unwrap();
        // Only the second ran, to its end, with no deadline.
        assert!(matches!(next_event(&mut events).await, Event::Started(None)));
        assert!(matches!(next_event(&mut events).await, Event::Finished));
        let reply = delivered(&mut replies_consumer, 5_000).await;
        let body: Value = serde_json::from_slice(reply.body()).unwrap();
        assert_eq!(body["content"]["value"], 1_200);
        reply.ack().await.unwrap();
        assert!(silent(&mut replies_consumer, 500).await, "no reply to the expired request");
        quit_and_wait(&control, task).await;
        assert!(events.try_recv().is_err(), "the expired request never ran");
    }
}

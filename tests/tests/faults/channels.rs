//! Faults of one channel while its connection stays up: the broker's
//! acknowledgement timeout (`consumer_timeout`, lowered on a private
//! node), a channel error mid-stream, a consumed queue deleted with
//! `rabbitmqctl`, a consumer channel that stops passing deliveries on
//! (its process suspended on the broker), and a single active consumer
//! standing by.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use postage::consumer::ConsumerHandle;
use postage::prelude::*;
use postage::{Health, Stop};
use postage_tests::node::PrivateNode;
use postage_tests::{Seen, unique};

use crate::{ONE_AT_A_TIME, base, connect, processor_bound, processor_on, wait_for};

/// A node that times out a delivery left unacknowledged for 2 s, looking
/// every 250 ms.
fn impatient_node() -> PrivateNode {
    PrivateNode::start_advanced(
        base(),
        "[{rabbit, [{consumer_timeout, 2000}, {channel_tick_interval, 250}]}].\n",
    )
}

/// Records each `job`; the first run of job 0 takes 4 s.
struct Patient {
    seen: Seen,
    redelivered: Mutex<Vec<u64>>,
    slow_once: AtomicBool,
}

#[processor]
impl Patient {
    #[context_handler("message", "command", "job")]
    async fn job(ctx: Context<Self>) {
        let id: u64 = ctx.message.content.parameters_as().unwrap_or(u64::MAX);
        let this = &ctx.processor;
        if ctx.redelivered {
            this.redelivered.lock().unwrap().push(id);
        }
        if id == 0 && this.slow_once.swap(false, Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_secs(4)).await;
        }
        this.seen.record(id);
    }
}

async fn patient_processor(
    connection: &Connection,
    configure: impl FnOnce(
        postage::processor::ProcessorBuilder<Patient>,
    ) -> postage::processor::ProcessorBuilder<Patient>,
) -> (
    Arc<Patient>,
    Producer,
    ConsumerHandle,
    Control,
    tokio::task::JoinHandle<postage::Result<Stop>>,
) {
    let exchange = Exchange::new(unique("patient"), ExchangeKind::Direct);
    let queue = unique("patient");
    let patient = Arc::new(Patient {
        seen: Seen::default(),
        redelivered: Mutex::new(Vec::new()),
        slow_once: AtomicBool::new(true),
    });
    let builder = Processor::builder_arc(patient.clone())
        .bind(
            exchange.clone(),
            [(Queue::new(queue.as_str()), queue.as_str())],
        )
        .prefetch(10);
    let processor = configure(builder).connect(connection).await.unwrap();
    let producer = Producer::builder()
        .ek(exchange, queue.as_str())
        .connect(connection)
        .await
        .unwrap();
    let consumer = processor.consumer();
    let control = processor.control();
    let running = tokio::spawn(processor.run());
    (patient, producer, consumer, control, running)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledgement_timeout_reopens_the_channel_and_the_message_comes_again() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let node = impatient_node();
    let connection = connect(&node.url()).await;
    let (patient, producer, consumer, control, running) =
        patient_processor(&connection, |b| b).await;
    let started = Instant::now();
    for id in 0..21_u64 {
        producer.command("job", id).await.unwrap();
    }
    wait_for("every job, job 0 twice", 30, || {
        patient.seen.unique() == 21 && patient.redelivered.lock().unwrap().contains(&0)
    })
    .await;
    let took = started.elapsed();
    // A little longer: a late acknowledgement sent on the new channel
    // would have it closed now.
    producer.command("job", 21_u64).await.unwrap();
    wait_for("a job after the timeout", 10, || patient.seen.has(21)).await;
    let log = node.log();
    assert!(
        log.contains("delivery acknowledgement on channel"),
        "the broker timed the delivery out (consumer_timeout)"
    );
    assert!(
        !log.contains("unknown delivery tag"),
        "the late acknowledgement was not sent on the new channel"
    );
    assert_eq!(connection.recoveries(), 0, "only the channel was reopened");
    assert_eq!(consumer.health(), Health::Consuming);
    assert!(!running.is_finished(), "the processor runs on");
    println!(
        "acknowledgement timeout: all 21 jobs handled in {took:?}, redelivered {:?}, \
         {} duplicates, 0 recoveries",
        patient.redelivered.lock().unwrap(),
        patient.seen.duplicates()
    );
    control.quit();
    assert_eq!(running.await.unwrap().unwrap(), Stop::Quit);
    connection.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_time_limit_below_consumer_timeout_keeps_the_channel() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let node = impatient_node();
    let connection = connect(&node.url()).await;
    let (patient, producer, consumer, control, running) = patient_processor(&connection, |b| {
        const AGAIN: &[Duration] = &[Duration::from_millis(500)];
        b.handler_timeout(Duration::from_secs(1))
            .on_error(OnError::retry(AGAIN))
    })
    .await;
    for id in 0..21_u64 {
        producer.command("job", id).await.unwrap();
    }
    // Job 0 is cancelled at 1 s, retried, and handled the second time.
    wait_for("every job", 30, || patient.seen.unique() == 21).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !node.log().contains("delivery acknowledgement on channel"),
        "no delivery stayed unacknowledged past consumer_timeout"
    );
    assert_eq!(consumer.health(), Health::Consuming);
    println!(
        "handler time limit 1 s under a 2 s consumer_timeout: all 21 jobs handled, \
         the channel kept"
    );
    control.quit();
    assert_eq!(running.await.unwrap().unwrap(), Stop::Quit);
    connection.close().await.unwrap();
}

/// Records `job`s; `bad` makes the broker close the consumer's channel
/// (an exchange of its own declared again with another type).
struct Declarer {
    seen: Seen,
    consumer: OnceLock<ConsumerHandle>,
    exchange: String,
    bad: AtomicUsize,
}

#[processor]
impl Declarer {
    #[handler("command", "job")]
    async fn job(&self, Params(id): Params<u64>) {
        self.seen.record(id);
    }

    /// Fails its first run only (a message that fails every time comes
    /// back every time: the channel opens again more and more slowly).
    #[handler("command", "bad")]
    async fn bad(&self) -> Result<(), postage::Error> {
        if self.bad.fetch_add(1, Ordering::Relaxed) > 0 {
            return Ok(());
        }
        let consumer = self.consumer.get().expect("set before the run");
        let wrong = Exchange::new(self.exchange.as_str(), ExchangeKind::Topic);
        consumer
            .queue_bind(&wrong, Queue::new(unique("never")), "x")
            .await
            .map(drop)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_error_mid_stream_leaves_other_consumers_alone_and_the_processor_resumes() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let node = PrivateNode::start(base(), None);
    let connection = connect(&node.url()).await;
    let exchange = Exchange::new(unique("declarer"), ExchangeKind::Direct);
    let queue = unique("declarer");
    let declarer = Arc::new(Declarer {
        seen: Seen::default(),
        consumer: OnceLock::new(),
        exchange: exchange.name().to_owned(),
        bad: AtomicUsize::new(0),
    });
    let processor = Processor::builder_arc(declarer.clone())
        .bind(
            exchange.clone(),
            [(Queue::new(queue.as_str()), queue.as_str())],
        )
        .connect(&connection)
        .await
        .unwrap();
    declarer.consumer.set(processor.consumer()).unwrap();
    let consumer = processor.consumer();
    let running = tokio::spawn(processor.run());
    // Another processor on the same connection.
    let other = processor_on(&connection, Queue::new(unique("bystander")), |b| b).await;
    let to_declarer = Producer::builder()
        .ek(exchange, queue.as_str())
        .connect(&connection)
        .await
        .unwrap();
    let to_other = Producer::builder()
        .ek(other.exchange.clone(), other.queue.as_str())
        .connect(&connection)
        .await
        .unwrap();
    let other_states = Arc::new(Mutex::new(Vec::new()));
    let watching = {
        let (consumer, states) = (other.consumer.clone(), other_states.clone());
        tokio::spawn(async move {
            loop {
                let health = consumer.health();
                {
                    let mut states = states.lock().unwrap();
                    if states.last() != Some(&health) {
                        states.push(health);
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    for id in 0..500_u64 {
        if id == 250 {
            to_declarer.command("bad", ()).await.unwrap();
        }
        to_declarer.command("job", id).await.unwrap();
        to_other.command("count", id).await.unwrap();
    }
    wait_for("every job, past the channel error", 30, || {
        declarer.seen.unique() == 500 && other.counter.seen.unique() == 500
    })
    .await;
    watching.abort();
    let log = node.log();
    assert!(
        log.contains("inequivalent arg 'type'"),
        "the bad declaration closed the processor's channel"
    );
    assert!(
        !log.contains("unknown delivery tag"),
        "no acknowledgement of the closed channel was sent on its replacement"
    );
    assert_eq!(
        *other_states.lock().unwrap(),
        [Health::Consuming],
        "the other processor on the connection went on untouched"
    );
    assert_eq!(connection.recoveries(), 0, "the connection stayed up");
    assert_eq!(consumer.health(), Health::Consuming);
    println!(
        "channel error mid-stream: the processor handled all 500 ({} duplicates) past it, \
         the other 500 ({} duplicates) without a pause",
        declarer.seen.duplicates(),
        other.counter.seen.duplicates()
    );
    other.control.quit();
    let _ = other.running.await;
    assert!(!running.is_finished());
    connection.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_deleted_with_rabbitmqctl_is_declared_again_within_10_s() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let node = PrivateNode::start(base(), None);
    let connection = connect(&node.url()).await;
    let fixture = processor_on(
        &connection,
        Queue::new(unique("deleted")).durable(true),
        |b| b,
    )
    .await;
    let producer = Producer::builder()
        .ek(fixture.exchange.clone(), fixture.queue.as_str())
        .connect(&connection)
        .await
        .unwrap();
    producer.command("count", 0_u64).await.unwrap();
    wait_for("the first message", 10, || fixture.counter.seen.has(0)).await;
    node.rabbitmqctl(&["delete_queue", fixture.queue.as_str()]);
    let deleted = Instant::now();
    let mut id = 1_u64;
    while !fixture.counter.seen.has(id - 1) || id == 1 {
        assert!(
            deleted.elapsed() < Duration::from_secs(10),
            "the processor did not consume again within 10 s of the deletion; health {:?}",
            fixture.consumer.health()
        );
        let _ = producer.command("count", id).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        if fixture.counter.seen.has(id) {
            break;
        }
        id += 1;
    }
    let resumed = deleted.elapsed();
    assert_eq!(fixture.consumer.health(), Health::Consuming);
    assert!(
        node.queue_depth(&fixture.queue).is_some(),
        "the queue was declared again"
    );
    println!("queue deleted with rabbitmqctl: consuming again after {resumed:?}");
    fixture.control.quit();
    assert_eq!(fixture.running.await.unwrap().unwrap(), Stop::Quit);
    connection.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_channel_that_passes_nothing_on_is_reported_stalled_and_replaced() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let node = PrivateNode::start(base(), None);
    let connection = connect(&node.url()).await;
    let period = Duration::from_secs(1);
    let fixture = processor_on(&connection, Queue::new(unique("stalled")), |b| {
        b.prefetch(5).watchdog(period)
    })
    .await;
    let producer = Producer::builder()
        .ek(fixture.exchange.clone(), fixture.queue.as_str())
        .connect(&connection)
        .await
        .unwrap();
    producer.command("count", 0_u64).await.unwrap();
    wait_for("the first message", 10, || fixture.counter.seen.has(0)).await;
    let channels = node.consumer_channels(&fixture.queue);
    assert_eq!(channels.len(), 1, "{channels:?}");
    node.suspend_process(&channels[0], true);
    let suspended = Instant::now();
    for id in 1..=50_u64 {
        producer.command("count", id).await.unwrap();
    }
    // The watchdog finds it (the health says `stalled` until deliveries
    // flow again, which on a new channel is at once).
    wait_for("the stall to be found", 10, || {
        fixture.consumer.stalls() >= 1
    })
    .await;
    let reported_after = suspended.elapsed();
    // The replacement channel takes the rest; the suspended one gives its
    // share back once it runs again.
    wait_for("deliveries after the replacement", 10, || {
        fixture.counter.seen.unique() >= 40
    })
    .await;
    let flowing_after = suspended.elapsed();
    node.suspend_process(&channels[0], false);
    wait_for("every message", 30, || fixture.counter.seen.unique() == 51).await;
    assert_eq!(fixture.consumer.health(), Health::Consuming);
    assert_eq!(fixture.consumer.stalls(), 1, "one new channel was enough");
    println!(
        "stalled consumer channel (watchdog every {period:?}): found after {reported_after:?}, \
         deliveries again after {flowing_after:?}, all 51 handled"
    );
    assert!(
        reported_after <= period * 3 + Duration::from_secs(2),
        "the stall was reported after {reported_after:?}, past three watchdog periods"
    );
    fixture.control.quit();
    assert_eq!(fixture.running.await.unwrap().unwrap(), Stop::Quit);
    connection.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_active_consumer_in_waiting_says_it_stands_by_and_takes_over() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let node = PrivateNode::start(base(), None);
    let connection = connect(&node.url()).await;
    let name = unique("single");
    let single = || {
        Queue::new(name.as_str())
            .durable(true)
            .single_active_consumer()
    };
    let period = Duration::from_secs(1);
    let active = processor_on(&connection, single(), |b| b.prefetch(1).watchdog(period)).await;
    active.counter.slow_down(Duration::from_millis(50));
    let waiting = processor_bound(&connection, active.exchange.clone(), single(), |b| {
        b.prefetch(1).watchdog(period)
    })
    .await;
    let producer = Producer::builder()
        .ek(active.exchange.clone(), name.as_str())
        .connect(&connection)
        .await
        .unwrap();
    for id in 0..200_u64 {
        producer.command("count", id).await.unwrap();
    }
    wait_for("the waiting consumer to stand by", 10, || {
        waiting.consumer.health() == Health::StandingBy
    })
    .await;
    assert_eq!(
        waiting.counter.seen.unique(),
        0,
        "the waiting one took nothing"
    );
    assert_eq!(active.consumer.health(), Health::Consuming);
    let quit = Instant::now();
    active.control.quit();
    let _ = active.running.await;
    wait_for("the waiting consumer to take over", 10, || {
        waiting.counter.seen.unique() > 0
    })
    .await;
    let took_over = quit.elapsed();
    wait_for("its health to say so", 5, || {
        waiting.consumer.health() == Health::Consuming
    })
    .await;
    println!(
        "single active consumer: the waiting one stood by, took over {took_over:?} after the \
         active one quit"
    );
    waiting.control.quit();
    let _ = waiting.running.await;
    connection.close().await.unwrap();
}

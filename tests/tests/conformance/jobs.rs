//! Periodic jobs on both brokers: two processors of one component, one
//! runs the job, the other stands by and takes over when the first
//! quits; `info` says which one runs it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use postage::jobs::Job;
use postage::prelude::*;
use postage::remote::{Destination, Remote};
use postage::{Error, Stop};
use postage_tests::conformance::probe;
use postage_tests::{conformance, quit_and_wait, unique};
use tokio::task::JoinHandle;

struct Worker;

#[processor]
impl Worker {
    #[handler("command", "noop")]
    async fn noop(&self) {}
}

/// Which processor ran each tick, in order.
type Ticks = Arc<Mutex<Vec<&'static str>>>;

async fn start(
    connection: &Connection,
    name: &str,
    who: &'static str,
    ticks: &Ticks,
) -> (Control, JoinHandle<postage::Result<Stop>>) {
    let ticks = ticks.clone();
    let exchange = Exchange::new(name.to_owned(), ExchangeKind::Direct).auto_delete(true);
    let processor = Processor::builder(Worker)
        .bind(
            exchange,
            [(Queue::new(format!("{name}.work")).auto_delete(true), name)],
        )
        .fingerprint(Fingerprint::new(name.to_owned(), "service"))
        .job(
            Job::every("tick", Duration::from_millis(200)).unwrap(),
            move |_| {
                let ticks = ticks.clone();
                async move { ticks.lock().unwrap().push(who) }
            },
        )
        .connect(connection)
        .await
        .expect("the processor connects");
    let control = processor.control();
    (control, tokio::spawn(processor.run()))
}

fn count(ticks: &Ticks, who: &str) -> usize {
    ticks.lock().unwrap().iter().filter(|&&w| w == who).count()
}

async fn wait_for(ticks: &Ticks, who: &str, at_least: usize) {
    for _ in 0..100 {
        if count(ticks, who) >= at_least {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{who} ran {} ticks, not {at_least}", count(ticks, who));
}

conformance! {
    /// One of two processors of a component runs its job; when it quits,
    /// it gives the baton back and the other runs the job from then on.
    async fn one_of_two_processors_runs_a_job_and_the_other_takes_over(broker) {
        let connection = broker.connect().await;
        let name = unique("jobs");
        let ticks = Ticks::default();
        let (first, first_task) = start(&connection, &name, "first", &ticks).await;
        wait_for(&ticks, "first", 2).await;
        let (second, second_task) = start(&connection, &name, "second", &ticks).await;
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert_eq!(count(&ticks, "second"), 0, "the second stands by: {:?}", ticks.lock().unwrap());

        let mut remote = Remote::connect(&connection, Fingerprint::new("ops", "tool")).await.unwrap();
        let infos = remote
            .info(&Destination::new([name.as_str()]), Duration::from_secs(2))
            .await
            .unwrap();
        assert_eq!(infos.len(), 2, "{infos:?}");
        assert_eq!(infos.iter().filter(|info| info.jobs[0].runner).count(), 1, "{infos:?}");
        assert!(infos.iter().all(|info| info.jobs[0].schedule == "every 200ms"), "{infos:?}");

        quit_and_wait(&first, first_task).await;
        let before = count(&ticks, "first");
        wait_for(&ticks, "second", 3).await;
        assert_eq!(count(&ticks, "first"), before, "the first ran nothing after it quit");
        quit_and_wait(&second, second_task).await;

        // Five ticks pass with nobody running them: the next runner runs
        // the job once for them, not five times.
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        let (third, third_task) = start(&connection, &name, "third", &ticks).await;
        wait_for(&ticks, "third", 1).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
        let burst = count(&ticks, "third");
        assert!(burst <= 2, "the missed ticks ran {burst} times within 150 ms of the first");
        quit_and_wait(&third, third_task).await;
        probe(&connection).await.delete_queue(&format!("{name}.jobs")).await.unwrap();
    }

    /// A job needs its processor's fingerprint name; two jobs of one name
    /// are an error.
    async fn jobs_without_a_component_name_or_with_one_name_twice_are_refused(broker) {
        let connection = broker.connect().await;
        let job = || Job::every("tick", Duration::from_secs(1)).unwrap();
        let exchange = Exchange::new(unique("jobs"), ExchangeKind::Direct).auto_delete(true);
        let error = Processor::builder(Worker)
            .bind(exchange.clone(), [(Queue::server_named(), "k")])
            .job(job(), |_| async {})
            .connect(&connection)
            .await
            .unwrap_err();
        assert!(matches!(error, Error::Schedule { .. }), "{error}");
        let error = Processor::builder(Worker)
            .bind(exchange, [(Queue::server_named(), "k")])
            .fingerprint(Fingerprint::new(unique("jobs"), "service"))
            .job(job(), |_| async {})
            .job(job(), |_| async {})
            .connect(&connection)
            .await
            .unwrap_err();
        assert!(matches!(error, Error::Schedule { .. }), "{error}");
        assert!(Job::every("zero", Duration::ZERO).is_err());
        assert!(matches!(Job::cron("bad", "every night"), Err(Error::Schedule { .. })));
    }
}

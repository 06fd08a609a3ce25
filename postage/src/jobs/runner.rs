//! The runner: waits for the baton, holds it while it is the runner, and
//! runs each job at its ticks (see the module docs).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};

use super::baton::Baton;
use super::{Job, JobFn};
use crate::consumer::{Consumer, Delivery};
use crate::error::Result;
use crate::telemetry::About;
use crate::topology::{Exchange, Queue};
use crate::transport::{Channel, Connection, OutgoingProperties, Role};

/// The exchange every component's jobs queue is bound to.
const JOBS_EXCHANGE: Exchange = Exchange::direct("postage-jobs");

/// The longest the runner holds one baton: it writes it again at least
/// this often (well under RabbitMQ's `consumer_timeout`).
const RENEW: Duration = Duration::from_secs(60);

/// How long the runner waits before it writes a baton again after the
/// broker did not take it.
const RETRY: Duration = Duration::from_secs(1);

/// One job and what runs it.
struct Entry {
    job: Job,
    run: JobFn,
    /// A run of it is under way.
    running: Arc<AtomicBool>,
}

/// What `info` says of a job.
#[derive(Debug, Clone)]
pub(crate) struct JobStatus {
    pub(crate) name: String,
    pub(crate) schedule: String,
    /// Its next tick, as this process knows it.
    pub(crate) next_run: Option<SystemTime>,
    /// Up to when it is covered, when this process is the runner.
    pub(crate) last_run: Option<SystemTime>,
    /// This process runs the component's jobs.
    pub(crate) runner: bool,
}

/// A processor's jobs, connected, not yet running.
pub(crate) struct Jobs {
    entries: Vec<Entry>,
    queue: String,
    consumer: Consumer,
    channel: Channel,
    status: Arc<Mutex<Vec<JobStatus>>>,
}

/// The jobs at work.
pub(crate) struct Running {
    stop: Arc<Notify>,
    task: JoinHandle<()>,
}

impl Jobs {
    /// Declares the component's jobs queue and waits for the baton on it;
    /// puts a first baton there when it has none and nobody holds one.
    pub(crate) async fn connect(
        connection: &Connection,
        component: &str,
        jobs: Vec<(Job, JobFn)>,
    ) -> Result<Jobs> {
        let name = format!("{component}.jobs");
        let queue = Queue::new(name.clone())
            .durable(true)
            .single_active_consumer();
        let channel = connection.open_channel(Role::Publish, true).await?;
        channel.declare_exchange(&JOBS_EXCHANGE).await?;
        let declared = channel.declare_queue_counted(&queue).await?;
        channel
            .bind(
                &name,
                false,
                JOBS_EXCHANGE.name(),
                &name,
                &Default::default(),
            )
            .await?;
        let now = SystemTime::now();
        let status = jobs
            .iter()
            .map(|(job, _)| JobStatus {
                name: job.name.clone(),
                schedule: job.schedule.to_string(),
                next_run: job.schedule.next_after(now),
                last_run: None,
                runner: false,
            })
            .collect();
        let jobs = Jobs {
            entries: jobs
                .into_iter()
                .map(|(job, run)| Entry {
                    job,
                    run,
                    running: Arc::new(AtomicBool::new(false)),
                })
                .collect(),
            consumer: Consumer::builder()
                .bind(JOBS_EXCHANGE, [(queue, name.as_str())])
                .prefetch(1)
                .name(name.clone())
                .watchdog(Duration::ZERO)
                .connect(connection)
                .await?,
            queue: name,
            channel,
            status: Arc::new(Mutex::new(status)),
        };
        if declared.messages == 0 && declared.consumers == 0 {
            jobs.publish(&Baton::default()).await?;
        }
        Ok(jobs)
    }

    /// The jobs' status, kept up to date while they run.
    pub(crate) fn status(&self) -> Arc<Mutex<Vec<JobStatus>>> {
        self.status.clone()
    }

    /// Runs until [`Running::stop`].
    pub(crate) fn start(self) -> Running {
        let stop = Arc::new(Notify::new());
        let task = tokio::spawn(self.run(stop.clone()));
        Running { stop, task }
    }

    async fn run(mut self, stop: Arc<Notify>) {
        let mut baton = Baton::default();
        let mut held: Option<Delivery> = None;
        // The runner holds the baton or has just written it again for
        // itself.
        let mut runner = false;
        let mut renewed = Instant::now();
        let mut launched = JoinSet::new();
        loop {
            let wake = held.as_ref().map(|_| self.wake_at(&baton, renewed));
            tokio::select! {
                () = stop.notified() => break,
                delivery = self.consumer.next() => {
                    let Some(delivery) = delivery else { break };
                    match serde_json::from_slice::<Baton>(delivery.body()) {
                        Ok(other) => baton.merge(other),
                        Err(error) => tracing::warn!(queue = %self.queue, %error, "a message that is not a jobs baton; dropped"),
                    }
                    // One held before came on a channel that is gone.
                    held = None;
                    if self.others_waiting().await {
                        let _ = delivery.ack().await;
                        continue;
                    }
                    if !runner {
                        tracing::info!(queue = %self.queue, "this process runs the component's jobs");
                        let now = SystemTime::now();
                        for entry in &self.entries {
                            if baton.covered(&entry.job.name).is_none() {
                                baton.cover(&entry.job.name, now);
                            }
                        }
                        runner = true;
                    }
                    held = Some(delivery);
                    renewed = Instant::now();
                    self.update_status(&baton, true);
                }
                () = sleep_until(wake), if wake.is_some() => {
                    let now = SystemTime::now();
                    let mut next = baton.clone();
                    let mut due = Vec::new();
                    for (i, entry) in self.entries.iter().enumerate() {
                        let covered = next.covered(&entry.job.name).unwrap_or(now);
                        if entry.job.schedule.next_after(covered).is_some_and(|tick| tick <= now) {
                            next.cover(&entry.job.name, now);
                            due.push(i);
                        }
                    }
                    // The ticks are claimed before they run: at most once.
                    if let Err(error) = self.publish(&next).await {
                        tracing::warn!(queue = %self.queue, error = %error.report(), "the jobs baton could not be written; trying again");
                        tokio::time::sleep(RETRY).await;
                        continue;
                    }
                    baton = next;
                    if let Some(old) = held.take() {
                        let _ = old.ack().await;
                    }
                    renewed = Instant::now();
                    for i in due {
                        self.launch(i, &mut launched);
                    }
                    self.update_status(&baton, true);
                }
            }
            while launched.try_join_next().is_some() {}
        }
        // The baton goes back for a process standing by.
        if let Some(held) = held {
            let _ = held.reject(true).await;
        }
        self.update_status(&baton, false);
        self.consumer.stop().await;
        while launched.join_next().await.is_some() {}
        self.consumer.close().await;
        self.channel.close().await;
    }

    /// Whether other batons wait in the queue (a new runner keeps what
    /// they all cover before it holds one).
    async fn others_waiting(&self) -> bool {
        let queue = Queue::new(self.queue.clone()).passive(true);
        self.channel
            .declare_queue_counted(&queue)
            .await
            .is_ok_and(|declared| declared.messages > 0)
    }

    /// When the runner next has work: the first tick due, or the baton's
    /// renewal.
    fn wake_at(&self, baton: &Baton, renewed: Instant) -> Instant {
        let now = SystemTime::now();
        let at = Instant::now();
        self.entries
            .iter()
            .filter_map(|entry| {
                let covered = baton.covered(&entry.job.name).unwrap_or(now);
                let tick = entry.job.schedule.next_after(covered)?;
                Some(at + tick.duration_since(now).unwrap_or_default())
            })
            .fold(renewed + RENEW, Instant::min)
    }

    /// Runs job `i` in a task of its own, unless a run of it is under way.
    fn launch(&self, i: usize, launched: &mut JoinSet<()>) {
        let entry = &self.entries[i];
        let name = entry.job.name.clone();
        if entry.running.swap(true, Ordering::AcqRel) {
            tracing::warn!(job = %name, "the job is still running; this tick is skipped");
            return;
        }
        let (run, running) = (entry.run.clone(), entry.running.clone());
        launched.spawn(async move {
            let started = Instant::now();
            match run().await {
                Ok(()) => tracing::debug!(job = %name, took = ?started.elapsed(), "job ran"),
                Err(error) => tracing::error!(job = %name, %error, "job failed"),
            }
            running.store(false, Ordering::Release);
        });
    }

    /// Writes `baton` to the queue, confirmed.
    async fn publish(&self, baton: &Baton) -> Result<()> {
        let body = serde_json::to_vec(baton).map_err(crate::encoding::EncodeError::new)?;
        let props = OutgoingProperties {
            content_type: Some("application/json"),
            persistent: true,
            ..OutgoingProperties::default()
        };
        self.channel
            .publish(
                JOBS_EXCHANGE.name(),
                &self.queue,
                &body,
                &props,
                &About::of("baton", "jobs"),
            )
            .await
    }

    fn update_status(&self, baton: &Baton, runner: bool) {
        let now = SystemTime::now();
        let mut status = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        for (entry, status) in self.entries.iter().zip(status.iter_mut()) {
            let covered = baton.covered(&entry.job.name).filter(|_| runner);
            status.next_run = entry.job.schedule.next_after(covered.unwrap_or(now));
            status.last_run = covered;
            status.runner = runner;
        }
    }
}

impl Running {
    /// Gives the baton back, waits for the jobs under way and stops.
    pub(crate) async fn stop(self) {
        self.stop.notify_one();
        if let Err(error) = self.task.await {
            tracing::warn!(%error, "the jobs' task failed");
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

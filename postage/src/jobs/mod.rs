//! Periodic jobs: work a processor runs every interval or on a cron
//! expression, with one runner across every process of its component.
//!
//! ```no_run
//! use std::time::Duration;
//! use postage::jobs::Job;
//! use postage::prelude::*;
//!
//! struct Billing;
//!
//! #[processor]
//! impl Billing {
//!     #[handler("command", "charge")]
//!     async fn charge(&self, Params(cents): Params<u64>) {}
//! }
//!
//! impl Billing {
//!     async fn sweep(&self) -> Result<(), std::io::Error> {
//!         Ok(())
//!     }
//! }
//!
//! # async fn run(connection: Connection) -> postage::Result<()> {
//! let processor = Processor::builder(Billing)
//!     .bind(Exchange::direct("billing"), [("billing", "charge")])
//!     .fingerprint(Fingerprint::new("billing", "service"))
//!     .job(Job::every("sweep", Duration::from_secs(60))?, |billing| async move {
//!         billing.sweep().await
//!     })
//!     .connect(&connection)
//!     .await?;
//! processor.run().await?;
//! # Ok(()) }
//! ```
//!
//! **One runner.** Every process of a component (its processors share a
//! fingerprint name) consumes the durable queue `<name>.jobs`, declared
//! with `x-single-active-consumer`, bound to the durable exchange
//! `postage-jobs`. The queue holds one persistent message, the *baton*:
//! what each job last covered. RabbitMQ delivers it to one consumer
//! only, which holds it unacknowledged and is the runner; the others
//! stand by. When the runner's connection goes (the process killed, its
//! node lost, its heartbeats missed) the broker puts the baton back and
//! gives it to a process standing by, at once for a killed process, within
//! two heartbeats for a silent one.
//!
//! **Ticks.** An interval ticks at its multiples since the Unix epoch
//! (`every 60 s` at each full minute), the same in every process; a cron
//! expression (`sec min hour day-of-month month day-of-week [year]`,
//! feature `cron`) ticks in UTC. When a tick is due the runner writes the
//! baton again with the tick covered (confirmed), acknowledges the old
//! one, and only then runs the job: a tick is run at most once, even by
//! a runner killed in the middle of the job. A runner that takes over
//! after ticks were missed runs each job once, not once per missed tick.
//! A job still running at its next tick skips that tick. The runner also
//! writes the baton every 60 s when nothing is due, so that it never
//! stays unacknowledged long enough for `consumer_timeout`.
//!
//! A new runner first reads every baton in the queue (two processes that
//! start together each put one there) and keeps what they cover together.
//! Deleting `<name>.jobs` resets what the jobs covered.
//!
//! `postage ps` and the `info` answer show each job's schedule, its next
//! run and whether this process is the runner.

mod baton;
mod runner;
mod schedule;

use std::fmt;
use std::sync::Arc;

pub(crate) use runner::{JobStatus, Jobs};
pub(crate) use schedule::Schedule;

use crate::BoxFuture;
use crate::error::Result;

/// A periodic job: a name (unique in its processor) and when it runs.
/// Give it to `ProcessorBuilder::job` with the function to run.
#[derive(Clone)]
pub struct Job {
    pub(crate) name: String,
    pub(crate) schedule: Schedule,
}

impl Job {
    /// Runs every `interval`, at its multiples since the Unix epoch. An
    /// interval under 1 ms is an error.
    pub fn every(name: impl Into<String>, interval: std::time::Duration) -> Result<Self> {
        Ok(Job {
            name: name.into(),
            schedule: Schedule::every(interval)?,
        })
    }

    /// Runs on a cron expression, in UTC: six or seven fields, seconds
    /// first (`"0 0 2 * * *"`: every day at 02:00). A bad expression is an
    /// error.
    #[cfg(feature = "cron")]
    pub fn cron(name: impl Into<String>, expression: &str) -> Result<Self> {
        Ok(Job {
            name: name.into(),
            schedule: Schedule::cron(expression)?,
        })
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Debug for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Job")
            .field("name", &self.name)
            .field("schedule", &self.schedule.to_string())
            .finish()
    }
}

/// A job's function, its failure as text.
pub(crate) type JobFn =
    Arc<dyn Fn() -> BoxFuture<'static, std::result::Result<(), String>> + Send + Sync>;

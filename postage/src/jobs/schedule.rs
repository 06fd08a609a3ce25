//! When a job runs: every interval (ticks aligned to the Unix epoch, so
//! that every process computes the same ones) or on a cron expression
//! (UTC, feature `cron`).

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};

/// When a [`Job`](super::Job) runs.
#[derive(Clone)]
pub(crate) enum Schedule {
    /// At every multiple of the interval since the Unix epoch.
    Every(Duration),
    /// On a cron expression, in UTC.
    #[cfg(feature = "cron")]
    Cron(Box<cron::Schedule>, String),
}

impl Schedule {
    pub(crate) fn every(interval: Duration) -> Result<Self> {
        if interval < Duration::from_millis(1) {
            return Err(Error::Schedule {
                schedule: format!("{interval:?}"),
                reason: "the interval must be 1 ms or more".into(),
            });
        }
        Ok(Schedule::Every(interval))
    }

    #[cfg(feature = "cron")]
    pub(crate) fn cron(expression: &str) -> Result<Self> {
        let parsed: cron::Schedule =
            expression
                .parse()
                .map_err(|e: cron::error::Error| Error::Schedule {
                    schedule: expression.to_owned(),
                    reason: e.to_string(),
                })?;
        Ok(Schedule::Cron(Box::new(parsed), expression.to_owned()))
    }

    /// The first tick strictly after `after`; `None` when there is none
    /// (a cron expression whose years are over).
    pub(crate) fn next_after(&self, after: SystemTime) -> Option<SystemTime> {
        match self {
            Schedule::Every(interval) => {
                let since = after.duration_since(UNIX_EPOCH).unwrap_or_default();
                let step = interval.as_nanos();
                let next = (since.as_nanos() / step + 1).checked_mul(step)?;
                let secs = u64::try_from(next / 1_000_000_000).ok()?;
                let nanos = u32::try_from(next % 1_000_000_000).ok()?;
                UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
            }
            #[cfg(feature = "cron")]
            Schedule::Cron(schedule, _) => {
                let after = chrono::DateTime::<chrono::Utc>::from(after);
                schedule.after(&after).next().map(SystemTime::from)
            }
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Every(interval) => write!(f, "every {interval:?}"),
            #[cfg(feature = "cron")]
            Schedule::Cron(_, expression) => write!(f, "cron {expression}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(ms)
    }

    #[test]
    fn intervals_tick_at_multiples_of_themselves_since_the_epoch() {
        let every = Schedule::every(Duration::from_secs(10)).unwrap();
        assert_eq!(every.next_after(at(0)), Some(at(10_000)));
        assert_eq!(every.next_after(at(9_999)), Some(at(10_000)));
        // Strictly after: a tick is not its own next.
        assert_eq!(every.next_after(at(10_000)), Some(at(20_000)));
        assert_eq!(every.next_after(at(10_001)), Some(at(20_000)));
        assert!(Schedule::every(Duration::ZERO).is_err());
    }

    #[cfg(feature = "cron")]
    #[test]
    fn cron_expressions_tick_in_utc_and_bad_ones_are_errors() {
        // Every day at 02:00:00.
        let nightly = Schedule::cron("0 0 2 * * *").unwrap();
        let day = 86_400_000;
        assert_eq!(nightly.next_after(at(0)), Some(at(2 * 3_600_000)));
        assert_eq!(
            nightly.next_after(at(2 * 3_600_000)),
            Some(at(day + 2 * 3_600_000))
        );
        assert_eq!(nightly.to_string(), "cron 0 0 2 * * *");
        let error = Schedule::cron("every night").err().unwrap();
        assert!(matches!(error, Error::Schedule { .. }), "{error}");
    }
}

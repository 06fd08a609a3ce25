//! The baton: the one message of a component's jobs queue, saying up to
//! when each job is covered (milliseconds since the Unix epoch).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// What the jobs covered, by job name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Baton {
    /// Up to when each job is covered: its last run (or the moment a
    /// runner started keeping it).
    #[serde(default)]
    pub(crate) covered: BTreeMap<String, u64>,
}

impl Baton {
    /// Keeps what `other` covers too: the later time of each job.
    pub(crate) fn merge(&mut self, other: Baton) {
        for (job, until) in other.covered {
            let entry = self.covered.entry(job).or_insert(until);
            *entry = (*entry).max(until);
        }
    }

    /// Up to when `job` is covered.
    pub(crate) fn covered(&self, job: &str) -> Option<SystemTime> {
        self.covered
            .get(job)
            .map(|&ms| UNIX_EPOCH + Duration::from_millis(ms))
    }

    /// Marks `job` covered up to `at`.
    pub(crate) fn cover(&mut self, job: &str, at: SystemTime) {
        let ms = at
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        self.covered
            .insert(job.to_owned(), u64::try_from(ms).unwrap_or(u64::MAX));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batons_merge_to_the_later_time_of_each_job() {
        let mut mine = Baton::default();
        mine.cover("sweep", UNIX_EPOCH + Duration::from_millis(2_000));
        mine.cover("mail", UNIX_EPOCH + Duration::from_millis(1_000));
        let mut theirs = Baton::default();
        theirs.cover("sweep", UNIX_EPOCH + Duration::from_millis(1_500));
        theirs.cover("mail", UNIX_EPOCH + Duration::from_millis(3_000));
        theirs.cover("report", UNIX_EPOCH + Duration::from_millis(5));
        mine.merge(theirs);
        assert_eq!(mine.covered["sweep"], 2_000);
        assert_eq!(mine.covered["mail"], 3_000);
        assert_eq!(mine.covered["report"], 5);
        let text = serde_json::to_string(&mine).unwrap();
        assert_eq!(serde_json::from_str::<Baton>(&text).unwrap(), mine);
        // An empty body of an older version reads as an empty baton.
        assert_eq!(
            serde_json::from_str::<Baton>("{}").unwrap(),
            Baton::default()
        );
    }
}

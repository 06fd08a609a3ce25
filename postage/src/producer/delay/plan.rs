//! The bucketing arithmetic of delayed sends: a delay in whole seconds,
//! and the levels whose bits make it up.
//!
//! Level `n` holds a message for exactly 2^n seconds (its queue's
//! `x-message-ttl`). A delay of `d` seconds is the sum of the levels of
//! its set bits: a message enters the level of its highest set bit and,
//! at each level below, waits there when that bit is set and skips it
//! when it is not.

use std::time::Duration;

/// How many levels there are: 0 to 21. The highest holds a message for
/// 2^21 s (about 24 days), within RabbitMQ's largest `x-message-ttl` and
/// `x-expires` (2^32 − 1 ms).
pub(crate) const LEVELS: u32 = 22;

/// The longest delay: every level's bit set, 2^22 − 1 s (about 48.5
/// days).
pub(crate) const MAX_DELAY: Duration = Duration::from_secs((1 << LEVELS) - 1);

/// A delay as the levels see it: whole seconds, rounded up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Plan {
    seconds: u64,
}

impl Plan {
    /// The plan of `delay`, rounded up to the next whole second; `None`
    /// when it is longer than [`MAX_DELAY`] once rounded.
    pub(crate) fn new(delay: Duration) -> Option<Plan> {
        let seconds = delay
            .as_secs()
            .checked_add(u64::from(delay.subsec_nanos() > 0))?;
        (seconds <= MAX_DELAY.as_secs()).then_some(Plan { seconds })
    }

    /// How long the message waits in the levels: the delay rounded up.
    pub(crate) fn waited(self) -> Duration {
        Duration::from_secs(self.seconds)
    }

    /// The level the message enters (its highest set bit), `None` for no
    /// delay at all.
    pub(crate) fn top(self) -> Option<u32> {
        self.seconds.checked_ilog2()
    }

    /// Whether the message waits in each level from its top one down to
    /// level 0 (`(level, waits)`), in the order it passes them.
    pub(crate) fn levels(self) -> impl Iterator<Item = (u32, bool)> {
        let top = self.top();
        let seconds = self.seconds;
        top.into_iter()
            .flat_map(|top| (0..=top).rev())
            .map(move |level| (level, seconds >> level & 1 == 1))
    }
}

/// How long level `level` holds a message, in milliseconds (its queue's
/// `x-message-ttl`).
pub(crate) fn level_ttl_ms(level: u32) -> u64 {
    1000u64 << level
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(delay: Duration) -> Plan {
        Plan::new(delay).unwrap_or_else(|| panic!("{delay:?} is within the maximum"))
    }

    #[test]
    fn a_delay_is_rounded_up_to_whole_seconds() {
        assert_eq!(plan(Duration::ZERO).waited(), Duration::ZERO);
        assert_eq!(
            plan(Duration::from_nanos(1)).waited(),
            Duration::from_secs(1)
        );
        assert_eq!(
            plan(Duration::from_millis(1000)).waited(),
            Duration::from_secs(1)
        );
        assert_eq!(
            plan(Duration::from_millis(1001)).waited(),
            Duration::from_secs(2)
        );
        assert_eq!(
            plan(Duration::from_secs(60)).waited(),
            Duration::from_secs(60)
        );
    }

    #[test]
    fn the_levels_waited_in_add_up_to_the_rounded_delay() {
        for seconds in 0..5000u64 {
            let plan = plan(Duration::from_secs(seconds));
            let waited: u64 = plan
                .levels()
                .filter(|(_, waits)| *waits)
                .map(|(level, _)| level_ttl_ms(level) / 1000)
                .sum();
            assert_eq!(waited, seconds, "{seconds} s");
        }
    }

    #[test]
    fn a_message_enters_at_its_highest_bit_and_passes_every_level_below() {
        let five = plan(Duration::from_secs(5));
        assert_eq!(five.top(), Some(2));
        assert_eq!(
            five.levels().collect::<Vec<_>>(),
            [(2, true), (1, false), (0, true)]
        );
        assert_eq!(
            plan(Duration::from_secs(1)).levels().collect::<Vec<_>>(),
            [(0, true)]
        );
        let sixty = plan(Duration::from_secs(60)); // 0b111100
        assert_eq!(
            sixty.levels().collect::<Vec<_>>(),
            [
                (5, true),
                (4, true),
                (3, true),
                (2, true),
                (1, false),
                (0, false)
            ]
        );
        assert_eq!(plan(Duration::ZERO).top(), None);
        assert_eq!(plan(Duration::ZERO).levels().count(), 0);
    }

    #[test]
    fn the_longest_delay_uses_every_level_and_one_second_more_is_refused() {
        let longest = plan(MAX_DELAY);
        assert_eq!(longest.top(), Some(LEVELS - 1));
        assert!(longest.levels().all(|(_, waits)| waits));
        assert_eq!(Plan::new(MAX_DELAY + Duration::from_millis(1)), None);
        assert_eq!(Plan::new(Duration::MAX), None);
        // Every level's TTL fits RabbitMQ's limit for x-message-ttl.
        assert!(level_ttl_ms(LEVELS - 1) <= u64::from(u32::MAX));
    }
}

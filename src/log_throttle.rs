//! Log lines that input can cause at any rate (a broken node sends 100 malformed frames a
//! second) are written once, then at most once per interval with how many were left out.

use std::time::{Duration, Instant};

/// How often a throttled line may be written again.
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The state of one throttled kind of log line.
#[derive(Debug, Default)]
pub struct LogThrottle {
    last: Option<Instant>,
    suppressed: u64,
}

impl LogThrottle {
    /// Called for every occurrence: `Some(n)` when the line is to be written now, `n` being how
    /// many occurrences were left out since the last one written; `None` to leave it out.
    pub fn hit(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.duration_since(last) < LOG_INTERVAL => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_is_written_then_one_per_interval_with_a_count() {
        let mut throttle = LogThrottle::default();
        let start = Instant::now();
        assert_eq!(throttle.hit(start), Some(0));
        for i in 1..100 {
            assert_eq!(throttle.hit(start + Duration::from_millis(i)), None);
        }
        assert_eq!(throttle.hit(start + LOG_INTERVAL), Some(99));
        assert_eq!(throttle.hit(start + LOG_INTERVAL), None);
    }
}

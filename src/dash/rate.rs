//! Events per second, counted in whole-second buckets as events arrive on the live stream.

use std::collections::VecDeque;

/// Counts per second of the last `keep` whole seconds, plus the second in progress.
#[derive(Debug, Clone)]
pub struct Rate {
    /// Completed seconds, oldest first.
    history: VecDeque<u64>,
    keep: usize,
    /// The second `current` counts (Unix seconds); `None` before the first roll.
    second: Option<i64>,
    current: u64,
}

impl Rate {
    pub fn new(keep: usize) -> Rate {
        Rate {
            history: VecDeque::with_capacity(keep),
            keep,
            second: None,
            current: 0,
        }
    }

    pub fn add(&mut self, now: i64, count: u64) {
        self.roll(now);
        self.current += count;
    }

    /// Closes the seconds before `now`, with zeros for those without events.
    pub fn roll(&mut self, now: i64) {
        let Some(second) = self.second else {
            self.second = Some(now);
            return;
        };
        // After a long gap only the last `keep` seconds matter.
        let passed = (now - second).clamp(0, self.keep as i64 + 1);
        for _ in 0..passed {
            self.history.push_back(std::mem::take(&mut self.current));
            if self.history.len() > self.keep {
                self.history.pop_front();
            }
        }
        self.second = Some(second.max(now));
    }

    /// The mean of the last `window` completed seconds (fewer at the start).
    pub fn per_second(&self, window: usize) -> f64 {
        let n = window.min(self.history.len());
        if n == 0 {
            return 0.0;
        }
        self.history.iter().rev().take(n).sum::<u64>() as f64 / n as f64
    }

    /// The last `n` completed seconds, oldest first.
    pub fn last(&self, n: usize) -> impl Iterator<Item = u64> + '_ {
        self.history
            .iter()
            .skip(self.history.len().saturating_sub(n))
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_whole_second_with_zeros_for_quiet_ones() {
        let mut rate = Rate::new(4);
        rate.add(100, 3);
        rate.add(100, 2);
        assert_eq!(
            rate.per_second(5),
            0.0,
            "the second in progress is not counted"
        );
        rate.add(101, 10);
        rate.roll(104);
        assert_eq!(rate.last(10).collect::<Vec<_>>(), [5, 10, 0, 0]);
        assert_eq!(rate.per_second(2), 0.0);
        assert_eq!(rate.per_second(4), 3.75);
        rate.roll(1000);
        assert_eq!(rate.last(10).collect::<Vec<_>>(), [0, 0, 0, 0]);
        rate.roll(990);
        assert_eq!(rate.last(10).count(), 4, "a clock going back adds nothing");
    }
}

//! Whether the writer may write now: retries with exponential backoff and jitter after a failed
//! write, and a circuit breaker that opens after `threshold` failures in a row (writes pause, the
//! database is probed) and closes when a probe answers. A plain struct, so its rules are tested
//! without a database or an actor; the writer schedules the timers and logs.

use std::time::{Duration, Instant};

/// What a failure did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    /// How long to wait before the next write.
    pub delay: Duration,
    /// Failures in a row, this one included.
    pub in_a_row: u32,
    /// This failure opened the circuit.
    pub opened: bool,
}

#[derive(Debug)]
pub struct WriteHealth {
    retry_base: Duration,
    retry_max: Duration,
    threshold: u32,
    in_a_row: u32,
    retry_at: Option<Instant>,
    open: bool,
}

impl WriteHealth {
    /// `retry_base` doubles per failure up to `retry_max`; `threshold` failures open the circuit.
    pub fn new(retry_base: Duration, retry_max: Duration, threshold: u32) -> Self {
        WriteHealth {
            retry_base,
            retry_max,
            threshold: threshold.max(1),
            in_a_row: 0,
            retry_at: None,
            open: false,
        }
    }

    pub fn is_open(&self) -> bool {
        self.open
    }

    /// When the next write may start, if it must wait.
    pub fn retry_at(&self) -> Option<Instant> {
        self.retry_at
    }

    pub fn succeeded(&mut self) {
        self.in_a_row = 0;
        self.retry_at = None;
    }

    /// Records a failed write at `now`. `jitter` in 0..=1 picks the delay in the upper half of
    /// the backoff ceiling (full jitter there spreads concurrent writers' retries apart).
    pub fn failed(&mut self, now: Instant, jitter: f64) -> Failure {
        self.in_a_row = self.in_a_row.saturating_add(1);
        let exponent = (self.in_a_row - 1).min(16);
        let ceiling = (self.retry_base * 2u32.pow(exponent)).min(self.retry_max);
        let delay = ceiling.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0));
        self.retry_at = Some(now + delay);
        let opened = !self.open && self.in_a_row >= self.threshold;
        self.open |= opened;
        Failure {
            delay,
            in_a_row: self.in_a_row,
            opened,
        }
    }

    /// A probe answered while the circuit was open: it closes and writes may start at once.
    pub fn probe_succeeded(&mut self) {
        self.open = false;
        self.succeeded();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_circuit_opens_after_threshold_failures_and_closes_on_a_probe() {
        let mut health = WriteHealth::new(100 * MS, 5000 * MS, 3);
        let now = Instant::now();
        assert!(!health.failed(now, 1.0).opened);
        assert!(!health.failed(now, 1.0).opened);
        let third = health.failed(now, 1.0);
        assert!(third.opened && health.is_open());
        assert_eq!(third.in_a_row, 3);
        assert!(!health.failed(now, 1.0).opened, "opens once");
        health.probe_succeeded();
        assert!(!health.is_open());
        assert_eq!(health.retry_at(), None);
        assert_eq!(health.failed(now, 1.0).in_a_row, 1, "counting starts again");
    }

    #[test]
    fn backoff_doubles_up_to_its_cap_with_jitter_in_the_upper_half() {
        let mut health = WriteHealth::new(100 * MS, 1000 * MS, 100);
        let now = Instant::now();
        let ceilings = [100, 200, 400, 800, 1000, 1000];
        for ceiling in ceilings {
            let ceiling = ceiling * MS;
            let mut probe = WriteHealth::new(100 * MS, 1000 * MS, 100);
            probe.in_a_row = health.in_a_row;
            assert_eq!(probe.failed(now, 0.0).delay, ceiling / 2, "lowest jitter");
            let failure = health.failed(now, 1.0);
            assert_eq!(failure.delay, ceiling, "highest jitter");
            assert_eq!(health.retry_at(), Some(now + ceiling));
        }
        for jitter in [0.0, 0.3, 0.7, 1.0, -5.0, 5.0] {
            let delay = health.failed(now, jitter).delay;
            assert!(
                (500 * MS..=1000 * MS).contains(&delay),
                "{delay:?} at {jitter}"
            );
        }
        health.succeeded();
        assert_eq!(health.retry_at(), None);
        assert_eq!(health.failed(now, 1.0).delay, 100 * MS, "back to the base");
    }
}

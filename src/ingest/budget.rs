//! The bound on what is held in memory between the node sockets and PostgreSQL, in events and
//! in bytes.
//!
//! A connection takes permits for a read's events before it hands them on and is suspended
//! (its socket unread) while none are free; the rate limiter gives back permits of events it
//! does not admit, the DB writer those of events it has written. So memory stays bounded however
//! hard the nodes push, and nothing that passed the rate limiter is dropped. The bytes bound is
//! what holds when events are large (a 1 MiB frame costs a few MB until it is written); the
//! events bound is what holds for the usual few hundred bytes each.

use prometheus::IntGauge;
use tokio::sync::Semaphore;

use crate::config::Config;
use crate::messages::{IngestEvent, Payload};
use crate::metrics::Metrics;

/// What holding some events costs against the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Charge {
    pub events: usize,
    pub bytes: usize,
}

/// The memory one pending event holds: the struct and its fields (the decoded event is not kept).
fn memory_cost(event: &IngestEvent) -> usize {
    std::mem::size_of::<IngestEvent>()
        + match &event.payload {
            Payload::Decoded { fields, .. } => fields.len(),
            Payload::Failed { raw, error } => raw.len() + error.len(),
        }
}

pub struct QueueBudget {
    events: Semaphore,
    bytes: Semaphore,
    capacity: Charge,
    pending_gauge: IntGauge,
    pending_bytes_gauge: IntGauge,
}

impl QueueBudget {
    /// `queue_capacity` events and `queue_bytes`, reported in the `telemetry_buffer_pending`
    /// gauges.
    pub fn from_config(config: &Config, metrics: &Metrics) -> Self {
        QueueBudget {
            events: Semaphore::new(config.queue_capacity),
            bytes: Semaphore::new(config.queue_bytes),
            capacity: Charge {
                events: config.queue_capacity,
                bytes: config.queue_bytes,
            },
            pending_gauge: metrics.buffer_pending.clone(),
            pending_bytes_gauge: metrics.buffer_pending_bytes.clone(),
        }
    }

    pub fn capacity(&self) -> Charge {
        self.capacity
    }

    /// What one event is charged in bytes: never more than the whole budget, so it always fits
    /// once the queue is empty.
    fn cost(&self, event: &IngestEvent) -> usize {
        memory_cost(event).min(self.capacity.bytes)
    }

    /// What `events` cost.
    pub fn charge(&self, events: &[IngestEvent]) -> Charge {
        Charge {
            events: events.len(),
            bytes: events.iter().map(|event| self.cost(event)).sum(),
        }
    }

    /// Waits until `events` fit. They must fit in the whole budget (see [`Self::fitting`]).
    pub async fn acquire(&self, events: &[IngestEvent]) {
        let charge = self.charge(events);
        assert!(
            charge.events <= self.capacity.events && charge.bytes <= self.capacity.bytes,
            "a batch larger than the whole queue"
        );
        // Always events first, then bytes: every connection takes them in the same order.
        self.events
            .acquire_many(charge.events as u32)
            .await
            .expect("the semaphore is never closed")
            .forget();
        self.bytes
            .acquire_many(charge.bytes as u32)
            .await
            .expect("the semaphore is never closed")
            .forget();
        self.update_gauges();
    }

    /// Takes room for `events` if there is room now, without waiting: the usual case, which
    /// then costs a connection no future and no suspension.
    pub fn try_acquire(&self, events: &[IngestEvent]) -> bool {
        let charge = self.charge(events);
        let Ok(events_permit) = self.events.try_acquire_many(charge.events as u32) else {
            return false;
        };
        let Ok(bytes_permit) = self.bytes.try_acquire_many(charge.bytes as u32) else {
            return false; // the events permit goes back as it drops
        };
        events_permit.forget();
        bytes_permit.forget();
        self.update_gauges();
        true
    }

    /// Gives back room for events that left the queue (written or not admitted).
    pub fn release(&self, events: &[IngestEvent]) {
        let charge = self.charge(events);
        if charge != Charge::default() {
            self.events.add_permits(charge.events);
            self.bytes.add_permits(charge.bytes);
            self.update_gauges();
        }
    }

    /// How many of `events`, from the front, fit in the whole budget at once (at least one:
    /// no single event is charged more than the budget, see [`Self::cost`]).
    pub fn fitting(&self, events: &[IngestEvent]) -> usize {
        let mut bytes = 0;
        let fit = events
            .iter()
            .take(self.capacity.events)
            .take_while(|event| {
                bytes += self.cost(event);
                bytes <= self.capacity.bytes
            })
            .count();
        fit.max(1).min(events.len())
    }

    /// What is accepted and not yet written or rejected.
    pub fn pending(&self) -> Charge {
        Charge {
            events: self.capacity.events - self.events.available_permits(),
            bytes: self.capacity.bytes - self.bytes.available_permits(),
        }
    }

    fn update_gauges(&self) {
        let pending = self.pending();
        self.pending_gauge.set(pending.events as i64);
        self.pending_bytes_gauge.set(pending.bytes as i64);
    }
}

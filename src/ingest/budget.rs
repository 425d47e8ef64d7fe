//! The bound on events held in memory between the node sockets and PostgreSQL.
//!
//! A connection takes permits for a read's events before it hands them on and is suspended
//! (its socket unread) while none are free; the rate limiter gives back permits of events it
//! does not admit, the DB writer those of events it has written. So memory stays bounded however
//! hard the nodes push, and nothing that passed the rate limiter is dropped.

use prometheus::IntGauge;
use tokio::sync::Semaphore;

pub struct QueueBudget {
    permits: Semaphore,
    capacity: usize,
    pending_gauge: IntGauge,
}

impl QueueBudget {
    pub fn new(capacity: usize, pending_gauge: IntGauge) -> Self {
        QueueBudget {
            permits: Semaphore::new(capacity),
            capacity,
            pending_gauge,
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Waits until `count` events fit. `count` must not exceed the capacity.
    pub async fn acquire(&self, count: usize) {
        assert!(
            count <= self.capacity,
            "a batch larger than the whole queue"
        );
        self.permits
            .acquire_many(count as u32)
            .await
            .expect("the semaphore is never closed")
            .forget();
        self.update_gauge();
    }

    /// Gives back room for `count` events that left the queue (written or not admitted).
    pub fn release(&self, count: usize) {
        if count > 0 {
            self.permits.add_permits(count);
            self.update_gauge();
        }
    }

    /// Events accepted and not yet written or rejected.
    pub fn pending(&self) -> usize {
        self.capacity - self.permits.available_permits()
    }

    fn update_gauge(&self) {
        self.pending_gauge.set(self.pending() as i64);
    }
}

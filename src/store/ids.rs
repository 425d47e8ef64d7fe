//! Row ids minted in the application: `(generation << 40) | counter`. Each server start takes a
//! new generation from a sequence, so ids are unique across restarts and increase over time, and
//! an event has its id before it reaches the database (the WebSocket shows it first; a retried
//! write carries it again and deduplicates).

use std::sync::atomic::{AtomicU64, Ordering};

use diesel::sql_types::BigInt;
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;

use super::{Pool, StoreError};

const COUNTER_BITS: u32 = 40;

#[derive(Debug)]
pub struct IdAllocator {
    base: i64,
    next: AtomicU64,
}

#[derive(QueryableByName)]
struct Generation {
    #[diesel(sql_type = BigInt)]
    generation: i64,
}

impl IdAllocator {
    /// Takes the next generation from the database.
    pub async fn from_database(pool: &Pool) -> Result<Self, StoreError> {
        let mut conn = pool.get().await?;
        let row: Generation = diesel::sql_query("SELECT nextval('id_generation') AS generation")
            .get_result(&mut conn)
            .await?;
        Ok(Self::with_generation(row.generation))
    }

    pub fn with_generation(generation: i64) -> Self {
        IdAllocator {
            base: generation << COUNTER_BITS,
            next: AtomicU64::new(0),
        }
    }

    /// Reserves `count` consecutive ids and returns the first.
    ///
    /// # Panics
    /// After 2^40 (about 10^12) ids in one run; a restart takes a fresh generation.
    pub fn reserve(&self, count: u64) -> i64 {
        let start = self.next.fetch_add(count, Ordering::Relaxed);
        assert!(
            start + count <= 1 << COUNTER_BITS,
            "row id space of this run is exhausted; restart TART to take a new generation"
        );
        self.base + start as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_do_not_overlap_and_generations_order() {
        let a = IdAllocator::with_generation(3);
        let first = a.reserve(10);
        assert_eq!(a.reserve(1), first + 10);
        let b = IdAllocator::with_generation(4);
        assert!(b.reserve(1) > first + (1 << 39));
    }
}

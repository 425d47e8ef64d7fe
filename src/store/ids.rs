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

/// The `events.node_key` of a node: the first 8 bytes of its 64-hex-digit id as a signed 64-bit
/// number, the same as SQL's `('x' || substr(node_id, 1, 16))::bit(64)::bigint`. The node index
/// is on this key because a 64-character text key made every insert about a fifth slower; it is
/// not unique, so readers filter on the full `node_id` as well.
pub fn node_key(node_id: &str) -> i64 {
    node_id
        .get(..16)
        .and_then(|prefix| u64::from_str_radix(prefix, 16).ok())
        .map_or(0, |key| key as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_key_is_the_first_eight_bytes_as_a_signed_number() {
        let id = |prefix: &str| format!("{prefix}{}", "ab".repeat(24));
        assert_eq!(node_key(&id("0000000000000001")), 1);
        assert_eq!(node_key(&id("ffffffffffffffff")), -1);
        assert_eq!(node_key(&id("8000000000000000")), i64::MIN);
        assert_eq!(node_key(&id("0123456789abcdef")), 0x0123_4567_89ab_cdef);
    }

    #[test]
    fn reservations_do_not_overlap_and_generations_order() {
        let a = IdAllocator::with_generation(3);
        let first = a.reserve(10);
        assert_eq!(a.reserve(1), first + 10);
        let b = IdAllocator::with_generation(4);
        assert!(b.reserve(1) > first + (1 << 39));
    }
}

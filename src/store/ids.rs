//! Row ids minted in the application: `(generation << 40) | counter`. Each server start takes a
//! new generation from a sequence, so ids are unique across restarts and increase over time, and
//! an event has its id before it reaches the database (the WebSocket shows it first; a retried
//! write carries it again and deduplicates).
//!
//! A run that uses up its generation's 2^40 ids (about 127 days at 100,000 events/s) moves on to
//! a spare generation taken ahead, and takes the next spare in the background: ingest never
//! waits for the database and never stops. Were the database unreachable for a whole generation,
//! so that no spare was taken, the run continues in the generation after its own and claims it in
//! the sequence (`setval`) as soon as the database is back, so no later start can take it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use diesel::sql_types::BigInt;
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;

use super::{Pool, StoreError};

const COUNTER_BITS: u32 = 40;
/// Ids per generation.
const GENERATION_IDS: u64 = 1 << COUNTER_BITS;
/// How long the background refill waits between attempts while the database is down.
const REFILL_RETRY: Duration = Duration::from_secs(5);

#[derive(Debug)]
struct State {
    generation: i64,
    next: u64,
    /// Taken from the sequence ahead of need; `None` while a refill is outstanding.
    spare: Option<i64>,
    /// A refill is running: at most one at a time, so no two can race to set `spare`.
    refilling: bool,
    /// A generation this run uses without having taken it from the sequence.
    unclaimed: Option<i64>,
}

#[derive(Debug)]
pub struct IdAllocator {
    state: Arc<Mutex<State>>,
    /// Where spares come from; `None` in tests without a database.
    pool: Option<Pool>,
}

#[derive(QueryableByName)]
struct Generation {
    #[diesel(sql_type = BigInt)]
    generation: i64,
}

/// Takes the next generation from the sequence, after making sure the sequence is past
/// `claim` (a generation in use that was not taken from it).
async fn take_generation(pool: &Pool, claim: Option<i64>) -> Result<i64, StoreError> {
    let mut conn = pool.get().await?;
    if let Some(claim) = claim {
        diesel::sql_query(
            "SELECT setval('id_generation', GREATEST($1, (SELECT last_value FROM id_generation))) \
             AS generation",
        )
        .bind::<BigInt, _>(claim)
        .get_result::<Generation>(&mut conn)
        .await?;
    }
    let row: Generation = diesel::sql_query("SELECT nextval('id_generation') AS generation")
        .get_result(&mut conn)
        .await?;
    Ok(row.generation)
}

impl IdAllocator {
    /// Takes this run's generation and a spare from the database.
    pub async fn from_database(pool: &Pool) -> Result<Self, StoreError> {
        let generation = take_generation(pool, None).await?;
        let spare = take_generation(pool, None).await?;
        Ok(IdAllocator {
            state: Arc::new(Mutex::new(State {
                generation,
                next: 0,
                spare: Some(spare),
                refilling: false,
                unclaimed: None,
            })),
            pool: Some(pool.clone()),
        })
    }

    /// An allocator without a database: `spare` is the only generation it can move on to.
    pub fn with_generation(generation: i64, spare: Option<i64>) -> Self {
        IdAllocator {
            state: Arc::new(Mutex::new(State {
                generation,
                next: 0,
                spare,
                refilling: false,
                unclaimed: None,
            })),
            pool: None,
        }
    }

    /// Starts the counter at `next` instead of 0, to see what happens near a generation's end.
    pub fn starting_at(self, next: u64) -> Self {
        self.state.lock().expect("not poisoned").next = next;
        self
    }

    /// The generation ids are minted from now.
    pub fn generation(&self) -> i64 {
        self.state.lock().expect("not poisoned").generation
    }

    /// Reserves `count` consecutive ids (at most one generation's worth) and returns the first.
    pub fn reserve(&self, count: u64) -> i64 {
        let count = count.min(GENERATION_IDS);
        let (first, refill) = {
            let mut state = self.state.lock().expect("not poisoned");
            let refill = state.next + count > GENERATION_IDS && Self::next_generation(&mut state);
            let start = state.next;
            state.next += count;
            ((state.generation << COUNTER_BITS) + start as i64, refill)
        };
        if refill {
            self.refill();
        }
        first
    }

    /// Moves on to the spare (or, without one, to the generation after this one). Returns
    /// whether a refill of the spare is to start.
    fn next_generation(state: &mut State) -> bool {
        let next = match state.spare.take() {
            Some(spare) => spare,
            None => {
                let next = state.generation + 1;
                log::error!(
                    "row id generation {} is used up and no spare could be taken (the database \
                     has been unreachable); continuing in generation {next}, claimed in the \
                     database when it is back",
                    state.generation
                );
                state.unclaimed = Some(next);
                next
            }
        };
        log::info!(
            "row id generation {} is used up; continuing in generation {next}",
            state.generation
        );
        state.generation = next;
        state.next = 0;
        !std::mem::replace(&mut state.refilling, true)
    }

    /// Takes a new spare in the background, retrying while the database is down.
    fn refill(&self) {
        let state = self.state.clone();
        let (Some(pool), Ok(runtime)) = (self.pool.clone(), tokio::runtime::Handle::try_current())
        else {
            // No database (tests) or no runtime to run on: the next roll-over takes the
            // generation after its own.
            state.lock().expect("not poisoned").refilling = false;
            return;
        };
        runtime.spawn(async move {
            loop {
                let claim = state.lock().expect("not poisoned").unclaimed;
                match take_generation(&pool, claim).await {
                    Ok(spare) => {
                        let mut state = state.lock().expect("not poisoned");
                        // A sequence value can only be newer than the generation in use, but a
                        // spare must never be one this run already minted from.
                        if spare > state.generation {
                            state.spare = Some(spare);
                        }
                        if state.unclaimed == claim {
                            state.unclaimed = None;
                        }
                        state.refilling = false;
                        return;
                    }
                    Err(e) => {
                        log::warn!("cannot take a spare row id generation yet: {e}");
                        tokio::time::sleep(REFILL_RETRY).await;
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_do_not_overlap_and_generations_order() {
        let a = IdAllocator::with_generation(3, None);
        let first = a.reserve(10);
        assert_eq!(a.reserve(1), first + 10);
        let b = IdAllocator::with_generation(4, None);
        assert!(b.reserve(1) > first + (1 << 39));
    }

    /// Near the end of a generation, reservations move on to the spare, then (with no spare
    /// left and no database) to the next generation: ids stay unique and increasing, a
    /// reservation never straddles two generations, and nothing panics.
    #[test]
    fn a_used_up_generation_rolls_over_and_ids_stay_unique() {
        let ids = IdAllocator::with_generation(3, Some(9)).starting_at(GENERATION_IDS - 25);
        let mut seen = Vec::new();
        for _ in 0..6 {
            let first = ids.reserve(10);
            seen.extend(first..first + 10);
        }
        assert_eq!(ids.generation(), 9);
        let ids = ids.starting_at(GENERATION_IDS - 5);
        let first = ids.reserve(10);
        seen.extend(first..first + 10);
        assert_eq!(ids.generation(), 10, "no spare: the generation after");
        let mut sorted = seen.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), seen.len(), "unique");
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "increasing");
        for w in seen.chunks(10) {
            assert_eq!(w[0] >> COUNTER_BITS, w[9] >> COUNTER_BITS, "one generation");
        }
        assert_eq!(seen[0] >> COUNTER_BITS, 3);
        assert_eq!(seen[59] >> COUNTER_BITS, 9);
    }
}

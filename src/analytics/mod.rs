//! Consumers of events that follow protocol objects across events and nodes (blocks,
//! work-packages with their guarantees, peer links),
//! fed by the writer as it accepts each batch (`persist::writer`) and flushed with its rollup
//! through the bookkeeping lane. Their state is bounded: what they remember of earlier events
//! is a window of recent rows, and what they hand to the rollup has a ceiling.
//!
//! Event IDs are per connection, so within a node stages chain through the row id the
//! connection resolved an Event ID field to (`messages::Reference`), never through Event ID
//! values; across nodes they join on what the protocol shares (slot and header hash,
//! work-package hash, work-report hash).

pub mod blocks;
pub mod network;
pub mod packages;
pub mod peers;

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// Keeps the earlier of `time` and `at`: trackers keep each stage's first time.
pub fn earliest(
    time: &mut Option<chrono::DateTime<chrono::Utc>>,
    at: chrono::DateTime<chrono::Utc>,
) {
    if time.is_none_or(|t| at < t) {
        *time = Some(at);
    }
}

/// Values keyed by event row (or by a protocol hash), forgetting the oldest past a capacity:
/// what a later event may refer to.
#[derive(Debug)]
pub struct RecentRows<K, V> {
    values: HashMap<K, V>,
    order: VecDeque<K>,
    capacity: usize,
}

impl<K: Hash + Eq + Copy, V> RecentRows<K, V> {
    pub fn new(capacity: usize) -> Self {
        RecentRows {
            values: HashMap::new(),
            order: VecDeque::new(),
            capacity,
        }
    }

    pub fn insert(&mut self, row: K, value: V) {
        if let Some(kept) = self.values.get_mut(&row) {
            *kept = value;
            return;
        }
        if self.order.len() == self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.values.remove(&oldest);
            }
        }
        self.values.insert(row, value);
        self.order.push_back(row);
    }

    pub fn get(&self, row: K) -> Option<&V> {
        self.values.get(&row)
    }

    pub fn get_mut(&mut self, row: K) -> Option<&mut V> {
        self.values.get_mut(&row)
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_rows_are_forgotten_past_the_capacity() {
        let mut rows = RecentRows::new(3);
        for row in 1..=5 {
            rows.insert(row, row * 10);
        }
        assert_eq!(rows.len(), 3);
        assert_eq!(rows.get(2), None);
        assert_eq!(rows.get(3), Some(&30));
        *rows.get_mut(5).unwrap() += 1;
        assert_eq!(rows.get(5), Some(&51));
    }
}

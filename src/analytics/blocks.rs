//! The block tracker: for every block, when each node first learned of it (announcement, import,
//! best block), imported and executed it or failed to, and finalized it; and who authored it.
//! Authored, Block verification failed, Block execution failed and Block executed name their
//! block only through the Authoring or Importing event they refer to, so those rows are
//! remembered for a while.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{earliest, RecentRows};
use crate::messages::{BlockStage, Fact, Reference};
use crate::store::blocks::{BlockChanges, Sighting};

/// Authoring and Importing rows remembered (~50 bytes each): two minutes of 1,024 nodes at one
/// block per 6 s slot, with room to spare.
const REMEMBERED_STARTS: usize = 65_536;
/// Sightings handed to one rollup at most (~200 bytes each, so ~20 MB). While the database is
/// down the rollup waits and keeps merging; past this, sightings it does not hold yet are left
/// out (counted in `telemetry_analytics_left_out_total`).
pub const MAX_SIGHTINGS: usize = 100_000;

const AUTHORING_FAILED: u8 = 41;
const VERIFICATION_FAILED: u8 = 44;
const EXECUTION_FAILED: u8 = 46;
const EXECUTED: u8 = 47;

/// An Authoring or Importing event: the slot, and the block once known.
#[derive(Debug, Clone, Copy)]
struct Start {
    slot: u32,
    header_hash: Option<[u8; 32]>,
}

/// One event as the tracker reads it.
pub struct Observed<'a> {
    pub node: &'a Arc<str>,
    pub row: i64,
    /// The node's own time of the event.
    pub at: DateTime<Utc>,
    pub discriminator: u8,
    pub reference: Reference,
    pub fact: Option<&'a Fact>,
}

pub struct BlockTracker {
    starts: RecentRows<i64, Start>,
    changes: BlockChanges,
    /// Sightings left out since the last [`BlockTracker::take`] because the changes were full.
    left_out: u64,
}

impl Default for BlockTracker {
    fn default() -> Self {
        BlockTracker {
            starts: RecentRows::new(REMEMBERED_STARTS),
            changes: BlockChanges::default(),
            left_out: 0,
        }
    }
}

impl BlockTracker {
    /// Folds one event in. `reason` gives a failure event's reason (decoded only when needed).
    pub fn observe(&mut self, event: &Observed<'_>, reason: impl FnOnce() -> Option<String>) {
        match event.fact {
            Some(Fact::Authoring { slot }) => self.starts.insert(
                event.row,
                Start {
                    slot: *slot,
                    header_hash: None,
                },
            ),
            Some(Fact::Block(block)) => {
                let slot = match (block.stage, block.slot) {
                    (_, Some(slot)) => slot,
                    (BlockStage::Authored, None) => {
                        let Some(start) = self.start_mut(event.reference) else {
                            return;
                        };
                        start.header_hash = Some(block.header_hash);
                        start.slot
                    }
                    _ => return,
                };
                if block.stage == BlockStage::Importing {
                    self.starts.insert(
                        event.row,
                        Start {
                            slot,
                            header_hash: Some(block.header_hash),
                        },
                    );
                }
                let at = event.at;
                self.sighting(slot, block.header_hash, event.node, at, |s| {
                    let time = match block.stage {
                        BlockStage::Announced => &mut s.announced_at,
                        BlockStage::Importing => &mut s.importing_at,
                        BlockStage::Authored => &mut s.authored_at,
                        BlockStage::Best => &mut s.best_at,
                        BlockStage::Finalized => &mut s.finalized_at,
                    };
                    earliest(time, at);
                });
            }
            None => self.observe_reply(event, reason),
            Some(_) => {}
        }
    }

    /// The events that name their block only by the event they refer to.
    fn observe_reply(&mut self, event: &Observed<'_>, reason: impl FnOnce() -> Option<String>) {
        let Reference::Row(row) = event.reference else {
            return;
        };
        if !matches!(
            event.discriminator,
            AUTHORING_FAILED | VERIFICATION_FAILED | EXECUTION_FAILED | EXECUTED
        ) {
            return;
        }
        let Some(&start) = self.starts.get(row) else {
            return;
        };
        let at = event.at;
        if event.discriminator == AUTHORING_FAILED {
            let reason = reason().unwrap_or_default();
            self.changes
                .authoring_failures
                .push((start.slot, event.node.clone(), at, reason));
            return;
        }
        let Some(hash) = start.header_hash else {
            return;
        };
        let discriminator = event.discriminator;
        self.sighting(start.slot, hash, event.node, at, |s| {
            if discriminator == EXECUTED {
                earliest(&mut s.executed_at, at);
            } else if s.failure.is_none() {
                s.failure = Some((discriminator, reason().unwrap_or_default()));
            }
        });
    }

    fn start_mut(&mut self, reference: Reference) -> Option<&mut Start> {
        match reference {
            Reference::Row(row) => self.starts.get_mut(row),
            _ => None,
        }
    }

    fn sighting(
        &mut self,
        slot: u32,
        header_hash: [u8; 32],
        node: &Arc<str>,
        at: DateTime<Utc>,
        update: impl FnOnce(&mut Sighting),
    ) {
        let key = (slot, header_hash, node.clone());
        let full = self.changes.sightings.len() >= MAX_SIGHTINGS;
        let sighting = match self.changes.sightings.get_mut(&key) {
            Some(sighting) => sighting,
            None if full => {
                self.left_out += 1;
                return;
            }
            None => self
                .changes
                .sightings
                .entry(key)
                .or_insert_with(|| Sighting::new(at)),
        };
        if at < sighting.first_at {
            sighting.first_at = at;
        }
        update(sighting);
    }

    /// What changed since the last call, and how many sightings were left out.
    pub fn take(&mut self) -> (BlockChanges, u64) {
        (
            std::mem::take(&mut self.changes),
            std::mem::take(&mut self.left_out),
        )
    }

    /// True if nothing changed since the last [`BlockTracker::take`].
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

//! Blocks: authoring or importing, execution, best and finalized block, announcements (UP 0)
//! and block requests (CE 128).

use rand::Rng;

use super::super::{Chain, Delay, Flow, Micros, HOP, NOW, WORK};
use crate::jip3::events::Slot;
use crate::jip3::types::*;
use crate::jip3::Event;

/// Finality trails the best block by this many slots.
const FINALITY_LAG: Slot = 2;
/// A node that does not author a block hears of it this far into the slot (the author has
/// authored it by 6%).
const ANNOUNCED: Delay = Delay(0.07, 0.15);
/// From this far into a slot, its block may be announced again by other neighbours.
const KNOWN_BY: f64 = 0.16;

impl Flow {
    /// Authoring (the slot's author) or importing (everyone else), execution, best and finalized
    /// block. An empty slot has only the author's failure. A node with late blocks planted
    /// starts importing that much later; in a forked slot the odd-numbered nodes import the
    /// second block.
    pub(in crate::sim::flow) fn plan_block(&mut self, slot: Slot, t0: Micros) {
        let (author, hash) = self.block_of(slot);
        let mut outline = self.world.block_outline(slot, &self.params);
        outline.header_hash = hash;
        let start_at = match author == self.index {
            true => t0,
            false => t0 + self.timing.faults.late_blocks_us,
        };
        let mut chain = Chain::at(start_at);
        let start = if author == self.index {
            let parent = self
                .world
                .block_hash(self.block_slot(slot.saturating_sub(1)));
            let authoring = chain.then(
                Delay(0.0, 0.01),
                Event::Authoring {
                    slot,
                    parent_header_hash: parent,
                },
            );
            if !self.world.has_block(slot) {
                let reason = self.reason(&["no parent", "missed the slot", "state root mismatch"]);
                chain.reply(
                    WORK,
                    authoring,
                    Event::AuthoringFailed {
                        authoring_event_id: 0,
                        reason,
                    },
                );
                return self.push(chain);
            }
            chain.reply(
                WORK,
                authoring,
                Event::Authored {
                    authoring_event_id: 0,
                    outline,
                },
            );
            authoring
        } else {
            if !self.world.has_block(slot) {
                return;
            }
            chain.then(
                ANNOUNCED,
                Event::BlockAnnounced {
                    peer_id: self.world.peer_id(author),
                    announcer: ConnectionSide::Remote,
                    slot,
                    header_hash: hash,
                },
            );
            let importing = chain.then(HOP, Event::Importing { slot, outline });
            if self.one_in(150) {
                let reason =
                    self.reason(&["bad seal signature", "unknown parent", "bad extrinsic"]);
                chain.reply(
                    WORK,
                    importing,
                    Event::BlockVerificationFailed {
                        importing_event_id: 0,
                        reason,
                    },
                );
                return self.push(chain);
            }
            chain.reply(
                WORK,
                importing,
                Event::BlockVerified {
                    importing_event_id: 0,
                },
            );
            importing
        };
        if self.one_in(300) {
            let reason = self.reason(&["state root mismatch", "out of gas in accumulate"]);
            chain.reply(
                WORK,
                start,
                Event::BlockExecutionFailed {
                    authoring_or_importing_event_id: 0,
                    reason,
                },
            );
            return self.push(chain);
        }
        let services = self.accumulate_costs();
        chain.reply(
            WORK,
            start,
            Event::BlockExecuted {
                authoring_or_importing_event_id: 0,
                services,
            },
        );
        chain.then(
            HOP,
            Event::BestBlockChanged {
                slot,
                header_hash: hash,
            },
        );
        let finalized = self.block_slot(slot.saturating_sub(FINALITY_LAG));
        chain.then(
            NOW,
            Event::FinalizedBlockChanged {
                slot: finalized,
                header_hash: self.world.block_hash(finalized),
            },
        );
        self.push(chain);
    }

    /// The author and hash of the block of `slot` this node follows.
    fn block_of(&self, slot: Slot) -> (usize, Hash) {
        let author = self.world.author(slot);
        let forked = self.world.nodes > 1
            && self.world.has_block(slot)
            && self
                .timing
                .faults
                .forks_every
                .is_some_and(|n| slot.is_multiple_of(n));
        if forked {
            let (hash, fork_author) = self.world.fork_block(slot);
            if self.index == fork_author || (self.index % 2 == 1 && self.index != author) {
                return (fork_author, hash);
            }
        }
        (author, self.world.block_hash(slot))
    }

    /// Another neighbour announces a block on its UP 0 stream at `at`: that of the newest slot
    /// whose block this node has learned of by then (never earlier than its own first sighting).
    pub(in crate::sim::flow) fn announcement(&mut self, at: Micros) -> Chain {
        let learned = self.slot_fraction(KNOWN_BY) + self.timing.faults.late_blocks_us;
        let k = at.saturating_sub(learned) / self.timing.slot;
        let slot = self.block_slot(self.timing.first_slot + k as Slot);
        let mut chain = Chain::at(at).optional();
        let peer_id = self.peer();
        chain.then(
            NOW,
            Event::BlockAnnounced {
                peer_id,
                announcer: ConnectionSide::Remote,
                slot,
                header_hash: self.world.block_hash(slot),
            },
        );
        chain
    }

    /// Blocks sent for a request, newest first, skipping empty slots.
    pub(in crate::sim::flow) fn transfer_blocks(
        &mut self,
        chain: &mut Chain,
        request: usize,
        from: Slot,
        count: u32,
    ) {
        let mut slot = from;
        for i in 0..count {
            slot = self.block_slot(slot);
            chain.reply(
                HOP,
                request,
                Event::BlockTransferred {
                    request_event_id: 0,
                    slot,
                    outline: self.world.block_outline(slot, &self.params),
                    last: i + 1 == count,
                },
            );
            slot = slot.saturating_sub(1);
        }
    }

    /// Fetching recent blocks from a peer (CE 128), as after a missed announcement.
    pub(in crate::sim::flow) fn block_request_out(&mut self, at: Micros, slot: Slot) -> Chain {
        let mut chain = Chain::at(at).optional();
        let from = self.block_slot(slot.saturating_sub(1));
        let max_blocks = self.g.rng.random_range(1..=4);
        let recipient = self.peer();
        let request = chain.then(
            NOW,
            Event::SendingBlockRequest {
                recipient,
                header_hash: self.world.block_hash(from),
                direction: BlockRequestDirection::DescendingInclusive,
                max_blocks,
            },
        );
        let failed = |reason| Event::BlockRequestFailed {
            request_event_id: 0,
            reason,
        };
        let sent = Event::BlockRequestSent {
            request_event_id: 0,
        };
        if self.outcome(&mut chain, request, 8, failed, sent) {
            self.transfer_blocks(&mut chain, request, from, max_blocks);
        }
        chain
    }
}

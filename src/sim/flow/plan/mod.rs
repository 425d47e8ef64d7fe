//! The JAM side of the flow: what a validator does in a slot, as chains of events. Timings are
//! fractions of a slot; probabilities are per slot unless said otherwise.
//!
//! One file per JAM sub-protocol; this one plans a slot and holds what they share.

mod availability;
mod blocks;
mod guaranteeing;
mod networking;
mod preimages;
mod tickets;

use rand::Rng;

use super::values::NETWORK_ERRORS;
use super::{Chain, Delay, Flow, Micros, HOP, NOW};
use crate::jip3::events::{Slot, Timestamp};
use crate::jip3::types::*;
use crate::jip3::Event;
use crate::sim::world::gp07_constant;

impl Flow {
    pub(super) fn plan_slot(&mut self, k: u64) {
        let t0 = k * self.timing.slot;
        let slot = self.timing.first_slot + k as Slot;
        // Status every third of a slot (2 s at 6 s slots), at a phase of its own per node.
        let phase = self.slot_fraction((self.index % 10) as f64 * 0.03);
        for third in 0..3 {
            let mut chain = Chain::at(t0 + phase + self.timing.slot * third / 3);
            let status = self.status();
            chain.then(NOW, status);
            self.push(chain);
        }
        self.plan_block(slot, t0);
        for _ in 1..self.neighbours() {
            let at = t0 + self.delay(Delay(0.05, 0.3));
            let chain = self.announcement(at);
            self.push(chain);
        }
        if self.chance(0.1) {
            let at = t0 + self.delay(Delay(0.1, 0.9));
            let chain = self.block_request_out(at, slot);
            self.push(chain);
        }
        self.plan_tickets(slot, t0);
        self.plan_guaranteeing(slot, t0);
        self.plan_availability(slot, t0);
        self.plan_peers(t0);
        self.plan_failing_outbound(t0);
        self.plan_flapping_link(slot, t0);
        // Each serving-side chain happens now and then; the pacer uses them as filler too.
        for _ in 0..self.upto(2) {
            let at = t0 + self.delay(Delay(0.0, 1.0));
            let kind = self.g.rng.random_range(0..3);
            let chain = self.serving(at, slot, kind);
            self.push(chain);
        }
        if self.chance(0.2) {
            let at = t0 + self.delay(Delay(0.2, 0.8));
            let chain = self.preimage_out(at);
            self.push(chain);
        }
        if let Some(num_dropped) = self.planted_drop.take() {
            // Planted: a range lost early in the run (in its first slot), said with Dropped.
            let at = t0 + self.delay(Delay(0.5, 0.6));
            let last_timestamp = self.timing.jam_start + at;
            self.push(dropped(at, last_timestamp, num_dropped));
        }
        if self.one_in(20) {
            let at = t0 + self.delay(Delay(0.0, 1.0));
            let last_timestamp = self.timing.jam_start + at + self.g.rng.random_range(100..5_000);
            let num_dropped = self.g.rng.random_range(1..=8);
            self.push(dropped(at, last_timestamp, num_dropped).optional());
        }
    }

    /// Answering a peer's request: blocks (CE 128), a shard (CE 137) or a preimage (CE 143).
    /// `kind` 0..3 picks one; the pacer's filler draws it at random.
    pub(super) fn serving(&mut self, at: Micros, slot: Slot, kind: u8) -> Chain {
        let mut chain = Chain::at(at).optional();
        let peer = self.peer();
        match kind {
            0 => {
                let request = chain.then(NOW, Event::ReceivingBlockRequest { sender: peer });
                let from = self.block_slot(slot.saturating_sub(1));
                let max_blocks = self.g.rng.random_range(1..=3);
                chain.reply(
                    HOP,
                    request,
                    Event::BlockRequestReceived {
                        request_event_id: 0,
                        header_hash: self.world.block_hash(from),
                        direction: BlockRequestDirection::DescendingInclusive,
                        max_blocks,
                    },
                );
                self.transfer_blocks(&mut chain, request, from, max_blocks);
            }
            1 => {
                let request = chain.then(NOW, Event::ReceivingShardRequest { assurer: peer });
                let (erasure_root, shard_index) = (
                    self.hash(),
                    self.g
                        .rng
                        .random_range(0..gp07_constant(self.params.validator_count)),
                );
                chain.reply(
                    HOP,
                    request,
                    Event::ShardRequestReceived {
                        request_event_id: 0,
                        erasure_root,
                        shard_index,
                    },
                );
                chain.reply(
                    HOP,
                    request,
                    Event::ShardsTransferred {
                        request_event_id: 0,
                    },
                );
            }
            _ => {
                let request = chain.then(NOW, Event::ReceivingPreimageRequest { sender: peer });
                let hash = self.hash();
                chain.reply(
                    HOP,
                    request,
                    Event::PreimageRequestReceived {
                        request_event_id: 0,
                        hash,
                    },
                );
                let length = self.g.rng.random_range(32..100_000);
                chain.reply(
                    HOP,
                    request,
                    Event::PreimageTransferred {
                        request_event_id: 0,
                        length,
                    },
                );
            }
        }
        chain
    }

    /// The answer to the event at `to`, a hop later: one time in `one_in` `failed` with a network
    /// error, else `ok`. Returns whether it went well.
    fn outcome(
        &mut self,
        chain: &mut Chain,
        to: usize,
        one_in: u32,
        failed: impl FnOnce(Reason) -> Event,
        ok: Event,
    ) -> bool {
        let fails = self.one_in(one_in);
        self.answer(chain, to, fails, failed, ok)
    }

    /// The answer to the event at `to`, a hop later: `failed` with a network error if `fails`,
    /// else `ok`. Returns whether it went well.
    fn answer(
        &mut self,
        chain: &mut Chain,
        to: usize,
        fails: bool,
        failed: impl FnOnce(Reason) -> Event,
        ok: Event,
    ) -> bool {
        if fails {
            let reason = self.reason(NETWORK_ERRORS);
            chain.reply(HOP, to, failed(reason));
        } else {
            chain.reply(HOP, to, ok);
        }
        !fails
    }

    /// A short chain of the kind that scales with network size, to pad towards the rate.
    pub(super) fn filler(&mut self, now: Micros) -> Chain {
        let slot = self.timing.first_slot + (now / self.timing.slot) as Slot;
        match self.g.rng.random_range(0..11) {
            0..=3 => self.announcement(now),
            4..=5 => self.assurance_in(now, slot),
            6 => self.guarantee_in(now, slot),
            7 => self.ticket_transfer(now, slot / self.params.epoch_length + 1),
            kind => self.serving(now, slot, kind - 8),
        }
    }
}

/// A chain of one `Dropped(num_dropped)` at `at`.
fn dropped(at: Micros, last_timestamp: Timestamp, num_dropped: u64) -> Chain {
    let mut chain = Chain::at(at);
    chain.then(
        NOW,
        Event::Dropped {
            last_timestamp,
            num_dropped,
        },
    );
    chain
}

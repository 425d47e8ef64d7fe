//! Randomness and plausible values for the flow: peers, costs near the JAM gas limits, outlines,
//! Status. Nothing here queues events.

use rand::seq::IndexedRandom;
use rand::Rng;

use super::{Delay, Flow, Micros};
use crate::jip3::events::{ServiceId, Slot};
use crate::jip3::generate::Generate;
use crate::jip3::types::*;
use crate::jip3::Event;
use crate::sim::world::gp07_constant;

/// Service IDs that accumulate, import and request preimages.
const SERVICES: &[ServiceId] = &[0, 1, 2, 7, 42, 1_000, 65_536];

pub(super) const NETWORK_ERRORS: &[&str] = &[
    "connection reset by peer",
    "timed out",
    "stream closed by peer",
    "peer sent a malformed message",
];

impl Flow {
    pub(super) fn slot_fraction(&self, fraction: f64) -> Micros {
        (fraction * self.timing.slot as f64) as Micros
    }

    pub(super) fn delay(&mut self, Delay(lo, hi): Delay) -> Micros {
        let fraction = if hi > lo {
            self.g.rng.random_range(lo..hi)
        } else {
            lo
        };
        self.slot_fraction(fraction)
    }

    pub(super) fn one_in(&mut self, n: u32) -> bool {
        self.g.rng.random_ratio(1, n)
    }

    pub(super) fn chance(&mut self, p: f64) -> bool {
        self.g.rng.random_bool(p)
    }

    pub(super) fn upto(&mut self, n: usize) -> usize {
        self.g.rng.random_range(0..=n)
    }

    pub(super) fn hash(&mut self) -> Hash {
        Hash::generate(&mut self.g)
    }

    pub(super) fn reason(&mut self, options: &[&str]) -> Reason {
        (*options.choose(&mut self.g.rng).expect("non-empty")).into()
    }

    pub(super) fn side(&mut self) -> ConnectionSide {
        ConnectionSide::generate(&mut self.g)
    }

    pub(super) fn service(&mut self) -> ServiceId {
        *SERVICES.choose(&mut self.g.rng).expect("non-empty")
    }

    /// Everyone this node may talk to: the simulated nodes and the rest of the validator set.
    pub(super) fn population(&self) -> usize {
        self.world
            .nodes
            .max(usize::from(gp07_constant(self.params.validator_count)))
    }

    /// Direct peers: about 2√n, as on the grid of a JAM validator set of n.
    pub(super) fn neighbours(&self) -> usize {
        let population = self.population();
        let grid = (2.0 * (population as f64).sqrt()).round() as usize;
        grid.clamp(1, population - 1)
    }

    pub(super) fn peer_index(&mut self) -> usize {
        let other = self.g.rng.random_range(0..self.population() - 1);
        if other >= self.index {
            other + 1
        } else {
            other
        }
    }

    pub(super) fn peer(&mut self) -> Hash {
        let index = self.peer_index();
        self.world.peer_id(index)
    }

    pub(super) fn validator_peer(&self, validator: u16) -> Hash {
        self.world.peer_id(usize::from(validator))
    }

    /// The newest slot at or before `slot` that has a block.
    pub(super) fn block_slot(&self, mut slot: Slot) -> Slot {
        while slot > 0 && !self.world.has_block(slot) {
            slot -= 1;
        }
        slot
    }

    pub(super) fn exec(&mut self, max_gas: u64) -> ExecCost {
        let gas = self.g.rng.random_range(max_gas / 50..=max_gas);
        // Roughly a nanosecond per gas, give or take a factor of two.
        let ns = gas * self.g.rng.random_range(50..200) / 100;
        ExecCost { gas, ns }
    }

    pub(super) fn load_ns(&mut self) -> u64 {
        self.g.rng.random_range(50_000..2_000_000)
    }

    pub(super) fn accumulate_costs(&mut self) -> Vec<ServiceAccumulateCost> {
        let count = self.g.rng.random_range(1..=4);
        let services: Vec<ServiceId> = SERVICES
            .choose_multiple(&mut self.g.rng, count)
            .copied()
            .collect();
        services
            .into_iter()
            .map(|service_id| {
                let total = self.exec(self.params.report_acc_gas);
                let part = total.gas / 8;
                let cost = AccumulateCost {
                    num_accumulate_calls: self.g.rng.random_range(1..=3),
                    num_transfers_processed: self.g.rng.random_range(0..=2),
                    num_items_accumulated: self.g.rng.random_range(1..=4),
                    total,
                    load_compile_ns: self.load_ns(),
                    read_write: self.exec(part),
                    lookup: self.exec(part),
                    query_solicit_forget_provide: self.exec(part / 4),
                    info_new_upgrade_eject: self.exec(part / 4),
                    transfer: self.exec(part / 2),
                    transfer_dest_gas: self.g.rng.random_range(0..=part),
                    other: self.exec(part),
                };
                ServiceAccumulateCost { service_id, cost }
            })
            .collect()
    }

    pub(super) fn refine_cost(&mut self) -> RefineCost {
        let total = self.exec(self.params.package_refine_gas / 10);
        let part = total.gas / 8;
        RefineCost {
            total,
            load_compile_ns: self.load_ns(),
            historical_lookup: self.exec(part / 4),
            machine_expunge: self.exec(part / 4),
            peek_poke_pages: self.exec(part),
            invoke: self.exec(part),
            other: self.exec(part),
        }
    }

    pub(super) fn work_package_outline(&mut self, hash: Hash, slot: Slot) -> WorkPackageOutline {
        let anchor = self
            .world
            .block_hash(self.block_slot(slot.saturating_sub(1)));
        let items = self.g.rng.random_range(1..=3);
        WorkPackageOutline {
            size: self.g.rng.random_range(1_000..200_000),
            hash,
            anchor,
            lookup_anchor_slot: slot.saturating_sub(self.g.rng.random_range(1..8)),
            prerequisites: if self.one_in(5) {
                vec![self.hash()]
            } else {
                Vec::new()
            },
            work_items: (0..items)
                .map(|_| {
                    let imports = if self.chance(0.3) {
                        self.g.rng.random_range(1..=6)
                    } else {
                        0
                    };
                    WorkItemOutline {
                        service_id: self.service(),
                        payload_size: self.g.rng.random_range(10..10_000),
                        refine_gas_limit: self.params.package_refine_gas
                            / self.g.rng.random_range(2..10),
                        accumulate_gas_limit: self.params.report_acc_gas
                            / self.g.rng.random_range(1..5),
                        extrinsic_length_sum: self.g.rng.random_range(0..50_000),
                        imports: (0..imports)
                            .map(|_| ImportSpec::generate(&mut self.g))
                            .collect(),
                        num_exported_segments: self.g.rng.random_range(0..=8),
                    }
                })
                .collect(),
        }
    }

    /// A guarantee as another guarantor would send it: 2 or 3 sorted signers.
    pub(super) fn guarantee_outline(&mut self, slot: Slot) -> GuaranteeOutline {
        let validators = gp07_constant(self.params.validator_count);
        let mut guarantors: Vec<u16> = (0..self.g.rng.random_range(2..=3))
            .map(|_| self.g.rng.random_range(0..validators))
            .collect();
        guarantors.sort_unstable();
        guarantors.dedup();
        GuaranteeOutline {
            work_report_hash: self.hash(),
            slot: slot.saturating_sub(self.g.rng.random_range(0..2)),
            guarantors,
        }
    }

    pub(super) fn status(&mut self) -> Event {
        let peers = self.neighbours() as u32;
        let cores = usize::from(self.params.core_count);
        // A failing core's guarantors have no guarantee to offer: every Status counts none.
        let failing_core = self
            .timing
            .faults
            .failing_core
            .map(|(core, _)| usize::from(core));
        let rng = &mut self.g.rng;
        let num_shards = rng.random_range(500..5_000);
        let num_preimages = rng.random_range(0..20);
        Event::Status {
            num_peers: peers + rng.random_range(0..4),
            num_validator_peers: peers,
            num_block_announcement_peers: peers,
            guarantees_by_core: CoreCounts(
                (0..cores)
                    .map(|core| match Some(core) == failing_core {
                        true => 0,
                        false => rng.random_range(0..=2),
                    })
                    .collect(),
            ),
            num_shards,
            shards_total_size: u64::from(num_shards) * rng.random_range(684..12_000),
            num_preimages,
            preimages_total_size: num_preimages * rng.random_range(100..50_000),
        }
    }
}

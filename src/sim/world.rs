//! What every simulated node agrees on without talking to the others: identities, block hashes,
//! who authors a slot, which work-packages exist. All of it derives from the run's seed, so the
//! nodes of one run tell one consistent story (the same block hash on every node) and a rerun with
//! the same seed shows the same nodes in TART.

use std::net::Ipv4Addr;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::jip3::events::{CoreIndex, Slot};
use crate::jip3::node_info::PROTOCOL_VERSION;
use crate::jip3::types::{BlockOutline, Hash, PeerAddress};
use crate::jip3::{JamParameters, NodeInformation};

/// Implementations a node may claim to be, with the minor version they are at.
const IMPLEMENTATIONS: &[(&str, u32)] = &[
    ("PolkaJam", 7),
    ("JamZig", 4),
    ("Jamixir", 3),
    ("TurboJam", 2),
    ("Boka", 1),
];
const GP_VERSION: &str = "0.7.2";
/// One slot in this many has no block: its author fails (Authoring failed) and nobody imports.
const EMPTY_SLOT_ONE_IN: u64 = 40;

/// Namespaces for derived values, so that e.g. a Peer ID never equals a block hash.
#[derive(Clone, Copy)]
enum Tag {
    PeerId = 1,
    Genesis,
    Block,
    WorkPackage,
}

/// The parameter set of each node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Params {
    Tiny,
    Full,
    /// Even nodes tiny, odd nodes full: one run exercises both core counts.
    Mixed,
}

impl Params {
    pub fn for_node(self, index: usize) -> JamParameters {
        match self {
            Params::Tiny => JamParameters::tiny(),
            Params::Full => JamParameters::full(),
            Params::Mixed if index.is_multiple_of(2) => JamParameters::tiny(),
            Params::Mixed => JamParameters::full(),
        }
    }
}

impl std::str::FromStr for Params {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "tiny" => Ok(Params::Tiny),
            "full" => Ok(Params::Full),
            "mixed" => Ok(Params::Mixed),
            _ => Err(format!("`{text}`: expected tiny, full or mixed")),
        }
    }
}

/// splitmix64: a cheap, well-mixed step; enough to derive reproducible values from a seed.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The facts of one run.
#[derive(Debug, Clone, Copy)]
pub struct World {
    pub seed: u64,
    /// Simulated nodes; slot authorship rotates through them.
    pub nodes: usize,
}

impl World {
    fn derive(&self, tag: Tag, n: u64) -> u64 {
        mix(self.seed ^ mix(((tag as u64) << 56) ^ n))
    }

    /// A seeded generator for a value all nodes must build alike (a block, a work-package).
    fn rng(&self, tag: Tag, n: u64) -> StdRng {
        StdRng::seed_from_u64(self.derive(tag, n))
    }

    fn hash(&self, tag: Tag, n: u64) -> Hash {
        Hash(self.rng(tag, n).random())
    }

    /// The Peer ID of node (or validator) `index`.
    pub fn peer_id(&self, index: usize) -> Hash {
        self.hash(Tag::PeerId, index as u64)
    }

    /// A private IPv4 address (as IPv4-mapped IPv6) and port per node.
    pub fn peer_address(&self, index: usize) -> PeerAddress {
        let i = index as u32;
        PeerAddress {
            ip: Ipv4Addr::from(0x0a00_0000 | (i & 0x00ff_ffff)).to_ipv6_mapped(),
            port: 40_000 + (index % 20_000) as u16,
        }
    }

    pub fn node_information(&self, index: usize, params: JamParameters) -> NodeInformation {
        let (name, minor) = IMPLEMENTATIONS[index % IMPLEMENTATIONS.len()];
        let patch = index / IMPLEMENTATIONS.len() % 3;
        NodeInformation {
            protocol_version: PROTOCOL_VERSION,
            params,
            genesis_header_hash: self.hash(Tag::Genesis, 0),
            peer_id: self.peer_id(index),
            peer_address: self.peer_address(index),
            // Half the nodes run the PVM recompiler (bit 0), half the interpreter.
            node_flags: (index % 2) as u32,
            implementation_name: name.into(),
            implementation_version: format!("0.{minor}.{patch}").as_str().into(),
            gp_version: GP_VERSION.into(),
            note: format!("tart-sim node {index} (seed {})", self.seed)
                .as_str()
                .into(),
        }
    }

    pub fn block_hash(&self, slot: Slot) -> Hash {
        self.hash(Tag::Block, u64::from(slot))
    }

    /// The node that authors `slot`.
    pub fn author(&self, slot: Slot) -> usize {
        slot as usize % self.nodes
    }

    /// True if `slot` gets a block (its author does not fail).
    pub fn has_block(&self, slot: Slot) -> bool {
        !self
            .derive(Tag::Block, u64::from(slot) << 1)
            .is_multiple_of(EMPTY_SLOT_ONE_IN)
    }

    /// The outline of the block of `slot`, the same on every node. Counts stay within `params`.
    pub fn block_outline(&self, slot: Slot, params: &JamParameters) -> BlockOutline {
        let mut rng = self.rng(Tag::Block, (u64::from(slot) << 1) | 1);
        let in_ticket_window = slot % params.epoch_length < params.epoch_tail_start;
        let num_preimages = rng.random_range(0..3);
        let validators = u32::from(params.validator_count);
        BlockOutline {
            size: rng.random_range(2_000..120_000),
            header_hash: self.block_hash(slot),
            num_tickets: if in_ticket_window {
                rng.random_range(0..=u32::from(params.max_block_tickets).min(4))
            } else {
                0
            },
            num_preimages,
            preimages_size: num_preimages * rng.random_range(100..20_000),
            num_guarantees: rng.random_range(0..=u32::from(params.core_count).min(8)),
            num_assurances: rng.random_range(validators * 2 / 3..=validators),
            num_dispute_verdicts: 0,
        }
    }

    /// The validator of each node: nodes beyond the validator count share indices.
    pub fn validator_index(index: usize, params: &JamParameters) -> u16 {
        (index % usize::from(params.validator_count)) as u16
    }

    /// The core a validator guarantees for in `slot`: groups of V/C validators (3 in both
    /// parameter sets), rotated every R slots.
    pub fn core_of(validator: u16, slot: Slot, params: &JamParameters) -> CoreIndex {
        let rotation = slot / u32::from(params.rotation_period);
        ((u32::from(validator) + rotation) % u32::from(params.core_count)) as CoreIndex
    }

    /// The work-package of `core` in `slot`, if a builder submits one (two slots in three), and
    /// which of the core's guarantors (0..3, by rank in the group) is its primary.
    pub fn work_package(&self, core: CoreIndex, slot: Slot) -> Option<(Hash, usize)> {
        let n = (u64::from(slot) << 16) | u64::from(core);
        let roll = self.derive(Tag::WorkPackage, n);
        (!roll.is_multiple_of(3)).then(|| (self.hash(Tag::WorkPackage, n), (roll / 3 % 3) as usize))
    }

    /// The validators guaranteeing `core` in `slot`, in rank order.
    pub fn guarantors(core: CoreIndex, slot: Slot, params: &JamParameters) -> Vec<u16> {
        let (cores, validators) = (
            u32::from(params.core_count),
            u32::from(params.validator_count),
        );
        let rotation = slot / u32::from(params.rotation_period);
        let first = (u32::from(core) + cores - rotation % cores) % cores;
        (first..validators)
            .step_by(cores as usize)
            .map(|v| v as u16)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guarantor_groups_match_the_core_assignment() {
        for params in [JamParameters::tiny(), JamParameters::full()] {
            for slot in [0, 7, 1234] {
                for core in [0, params.core_count - 1] {
                    let group = World::guarantors(core, slot, &params);
                    assert_eq!(group.len(), 3);
                    assert!(group
                        .iter()
                        .all(|&v| World::core_of(v, slot, &params) == core));
                }
            }
        }
    }

    #[test]
    fn identities_are_reproducible_and_distinct() {
        let world = World { seed: 7, nodes: 4 };
        let a = world.node_information(1, JamParameters::tiny());
        assert_eq!(a, world.node_information(1, JamParameters::tiny()));
        assert_ne!(a.peer_id, world.peer_id(2));
        assert_ne!(world.peer_id(1), World { seed: 8, nodes: 4 }.peer_id(1));
        let body = a.to_bytes();
        assert_eq!(NodeInformation::parse(&body).unwrap(), a);
    }
}

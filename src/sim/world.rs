//! What every simulated node agrees on without talking to the others: identities, block hashes,
//! who authors a slot, which work-packages exist. All of it derives from the run's seed, so the
//! nodes of one run tell one consistent story (the same block hash on every node) and a rerun with
//! the same seed shows the same nodes in TART.

use std::net::Ipv4Addr;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::jip3::events::{CoreIndex, Slot};
use crate::jip3::types::{BlockOutline, Hash, PeerAddress, WorkReportOutline};
use crate::jip3::{JamParameters, JamParams, NodeInformation, ParamsLayout, ProtocolVersion};

/// Implementations a node may claim to be, with the minor version they are at.
const IMPLEMENTATIONS: &[(&str, u32)] = &[
    ("PolkaJam", 7),
    ("JamZig", 4),
    ("Jamixir", 3),
    ("TurboJam", 2),
    ("Boka", 1),
];
/// The GP version a simulated node announces with each parameter layout.
pub fn gp_version(layout: ParamsLayout) -> &'static str {
    match layout {
        ParamsLayout::Gp08 => "0.8.0",
        _ => "0.7.2",
    }
}

/// A constant GP 0.8 dropped from NodeInformation. The simulated chain runs on GP 0.7's full
/// set whatever layout its nodes announce, so it always has them.
pub fn gp07_constant<T>(value: Option<T>) -> T {
    value.expect("the simulator's chain constants are GP 0.7's full set")
}
/// One slot in this many has no block: its author fails (Authoring failed) and nobody imports.
const EMPTY_SLOT_ONE_IN: u64 = 40;

/// Namespaces for derived values, so that e.g. a Peer ID never equals a block hash.
#[derive(Clone, Copy)]
enum Tag {
    PeerId = 1,
    Genesis,
    Block,
    WorkPackage,
    /// The second block of a forked slot.
    Fork,
    WorkReport,
    /// Whether a work-package fails, and whether a guarantee's sending does.
    Fate,
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

/// What a simulated node speaks: its telemetry protocol version and parameter layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeDialect {
    pub version: ProtocolVersion,
    pub layout: ParamsLayout,
}

impl NodeDialect {
    /// What the reference node sends today: version 1 with GP 0.7 parameters.
    pub const REFERENCE: NodeDialect = NodeDialect {
        version: ProtocolVersion::V1,
        layout: ParamsLayout::Gp07,
    };
}

/// Which protocol version and parameter layout the simulated nodes use; `None` mixes them.
/// Mixed, nodes take turns: the layout changes every two nodes and the version every four, so
/// with [`Params::Mixed`] (tiny and full alternating) eight nodes cover every combination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dialects {
    pub version: Option<ProtocolVersion>,
    pub layout: Option<ParamsLayout>,
}

impl Dialects {
    /// Every node as the reference node: version 1 with GP 0.7 parameters.
    pub const REFERENCE: Dialects = Dialects {
        version: Some(NodeDialect::REFERENCE.version),
        layout: Some(NodeDialect::REFERENCE.layout),
    };
    /// Both versions and both layouts side by side.
    pub const MIXED: Dialects = Dialects {
        version: None,
        layout: None,
    };

    pub fn for_node(self, index: usize) -> NodeDialect {
        NodeDialect {
            version: self
                .version
                .unwrap_or([ProtocolVersion::V1, ProtocolVersion::V0][index / 4 % 2]),
            layout: self.layout.unwrap_or(ParamsLayout::KNOWN[index / 2 % 2]),
        }
    }

    /// From the command line's `--protocol 0|1|mixed` and `--gp 0.7|0.8|mixed`.
    pub fn from_flags(protocol: &str, gp: &str) -> Result<Dialects, String> {
        let version = match protocol {
            "0" => Some(ProtocolVersion::V0),
            "1" => Some(ProtocolVersion::V1),
            "mixed" => None,
            other => return Err(format!("--protocol `{other}`: expected 0, 1 or mixed")),
        };
        let layout = match gp {
            "0.7" => Some(ParamsLayout::Gp07),
            "0.8" => Some(ParamsLayout::Gp08),
            "mixed" => None,
            other => return Err(format!("--gp `{other}`: expected 0.7, 0.8 or mixed")),
        };
        Ok(Dialects { version, layout })
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

    /// What node `index` announces: the chain's `params` in `dialect`'s layout and version.
    pub fn node_information(
        &self,
        index: usize,
        params: JamParameters,
        dialect: NodeDialect,
    ) -> NodeInformation {
        let (name, minor) = IMPLEMENTATIONS[index % IMPLEMENTATIONS.len()];
        let patch = index / IMPLEMENTATIONS.len() % 3;
        NodeInformation {
            protocol_version: dialect.version,
            params: JamParams::Known(params.in_layout(dialect.layout)),
            genesis_header_hash: self.hash(Tag::Genesis, 0),
            peer_id: self.peer_id(index),
            peer_address: self.peer_address(index),
            // Half the nodes run the PVM recompiler (bit 0), half the interpreter.
            node_flags: (index % 2) as u32,
            implementation_name: name.into(),
            implementation_version: format!("0.{minor}.{patch}").as_str().into(),
            gp_version: gp_version(dialect.layout).into(),
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

    /// The second block of `slot` when it is forked: its hash and its author (the next node).
    pub fn fork_block(&self, slot: Slot) -> (Hash, usize) {
        (
            self.hash(Tag::Fork, u64::from(slot)),
            (self.author(slot) + 1) % self.nodes,
        )
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
        let validators = u32::from(gp07_constant(params.validator_count));
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
        (index % usize::from(gp07_constant(params.validator_count))) as u16
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

    /// The work-report every guarantor of `package` builds.
    pub fn work_report(&self, package: &Hash) -> WorkReportOutline {
        let n = u64::from_le_bytes(package.0[..8].try_into().expect("8 bytes"));
        let mut rng = self.rng(Tag::WorkReport, n);
        WorkReportOutline {
            hash: Hash(rng.random()),
            bundle_size: rng.random_range(2_000..500_000),
            erasure_root: Hash(rng.random()),
            segments_root: Hash(rng.random()),
        }
    }

    /// A draw in [0, 1) about `package` that every node makes alike (`what` tells draws apart):
    /// whether it fails, whether a guarantee of it fails to reach a recipient.
    pub fn fate(&self, package: &Hash, what: u64) -> f64 {
        let n = u64::from_le_bytes(package.0[..8].try_into().expect("8 bytes"));
        (self.derive(Tag::Fate, n ^ what.rotate_left(32)) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// The validators guaranteeing `core` in `slot`, in rank order.
    pub fn guarantors(core: CoreIndex, slot: Slot, params: &JamParameters) -> Vec<u16> {
        let (cores, validators) = (
            u32::from(params.core_count),
            u32::from(gp07_constant(params.validator_count)),
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
        let dialect = NodeDialect::REFERENCE;
        let a = world.node_information(1, JamParameters::tiny(), dialect);
        assert_eq!(a, world.node_information(1, JamParameters::tiny(), dialect));
        assert_ne!(a.peer_id, world.peer_id(2));
        assert_ne!(world.peer_id(1), World { seed: 8, nodes: 4 }.peer_id(1));
        let body = a.to_bytes();
        assert_eq!(NodeInformation::parse(&body).unwrap(), a);
    }

    #[test]
    fn mixed_dialects_cover_all_four_combinations_and_announce_what_they_use() {
        let world = World { seed: 7, nodes: 4 };
        let mut seen = std::collections::HashSet::new();
        for index in 0..8 {
            let dialect = Dialects::MIXED.for_node(index);
            seen.insert((dialect.version, dialect.layout));
            let info = world.node_information(index, JamParameters::full(), dialect);
            let parsed = NodeInformation::parse(&info.to_bytes()).unwrap();
            assert_eq!(parsed.protocol_version, dialect.version);
            assert_eq!(parsed.params.layout(), dialect.layout);
            let gp08 = dialect.layout == ParamsLayout::Gp08;
            assert_eq!(parsed.gp_version.as_str().starts_with("0.8"), gp08);
        }
        assert_eq!(seen.len(), 4);
        assert_eq!(
            Dialects::from_flags("mixed", "0.8").unwrap().layout,
            Some(ParamsLayout::Gp08)
        );
        assert!(Dialects::from_flags("2", "0.7").is_err());
    }
}

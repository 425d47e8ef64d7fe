//! Faults planted in chosen nodes, so that what TART reports about them can be checked against
//! what the simulator really sent (the tests do) and seen in the demo: outbound connections that
//! fail at a known rate, a clock that is off, an implementation that leaves out some event types
//! and sends one JIP-3 does not define, a range of events lost and reported as Dropped, a node
//! that learns of blocks late, and forks.

use std::str::FromStr;

/// The implementation a sloppy node announces, so its conformance report is its own.
pub const SLOPPY_IMPLEMENTATION: &str = "sloppy-sim";
/// The types a sloppy node never sends: the preimage announcement events. No event refers to
/// them, so leaving them out makes no reference dangle.
pub const SLOPPY_SILENT_TYPES: &[u8] = &[190, 191, 192];
/// The discriminator a sloppy node sends that JIP-3 does not define...
pub const UNDEFINED_DISCRIMINATOR: u8 = 250;
/// ...after every this many events it sends.
pub const SLOPPY_UNDEFINED_EVERY: u64 = 50;

/// Faults by node index; a node may have several.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// (node, share): the node attempts an outbound connection every slot (besides its churn),
    /// and each of its outbound attempts fails with this probability.
    pub failing_outbound: Vec<(usize, f64)>,
    /// (node, ms): the node's clock is this far ahead of the true time (negative: behind).
    pub skewed_clocks: Vec<(usize, i64)>,
    /// Nodes of [`SLOPPY_IMPLEMENTATION`].
    pub sloppy: Vec<usize>,
    /// (node, N): once, early in its run, the node loses N events and says so with Dropped(N).
    pub dropped_ranges: Vec<(usize, u64)>,
    /// (node, ms): the node learns of every block it does not author this much later than it
    /// would (its propagation delays are ms plus 1–15% of a slot; other nodes' 1–15%).
    pub late_blocks: Vec<(usize, u64)>,
    /// Every slot whose number is a multiple of this (and that has a block) is forked: besides
    /// its author's block, the next node authors a second one, which the odd-numbered nodes
    /// import instead. The chain goes on from the first block.
    pub forks_every: Option<u32>,
    /// (core, share): this share of the core's work-packages fail once authorized (Work-package
    /// failed, reason [`PLANTED_PACKAGE_FAILURE`]), at every guarantor; other cores' packages
    /// fail one in 30.
    pub failing_core: Option<(u16, f64)>,
    /// A node that, as primary guarantor, builds its guarantees but never sends them.
    pub silent_guarantor: Option<usize>,
    /// (node, peer): the node connects out to the peer in even slots and loses the connection in
    /// odd ones.
    pub flapping_link: Option<(usize, usize)>,
}

/// The reason the work-packages of a failing core give.
pub const PLANTED_PACKAGE_FAILURE: &str = "refine panicked (planted)";

/// The faults of one node.
#[derive(Debug, Clone, Copy, Default)]
pub struct NodeFaults {
    pub outbound_failure_rate: Option<f64>,
    pub clock_skew_us: i64,
    pub sloppy: bool,
    pub dropped_range: Option<u64>,
    pub late_blocks_us: u64,
    pub forks_every: Option<u32>,
    pub failing_core: Option<(u16, f64)>,
    pub silent_guarantor: Option<usize>,
    /// The peer this node's link flaps with.
    pub flapping_peer: Option<usize>,
}

impl Faults {
    /// What `--demo` plants, so its analytics have something to find, in the nodes that exist:
    /// node 1 fails a quarter of its outbound connections, node 2 is sloppy, node 3's clock is
    /// 1.5 s ahead, node 0 reports 100 events lost, node 4 learns of blocks 2 s late, every
    /// 20th slot (two minutes) is forked, half the work-packages of core 1 fail, node 5 never
    /// sends the guarantees it builds, and node 6's link to node 7 flaps every slot.
    pub fn demo(nodes: usize) -> Faults {
        Faults {
            failing_outbound: vec![(1, 0.25)],
            skewed_clocks: vec![(3, 1500)],
            sloppy: vec![2],
            dropped_ranges: vec![(0, 100)],
            late_blocks: vec![(4, 2000)],
            forks_every: Some(20),
            failing_core: Some((1, 0.5)),
            silent_guarantor: Some(5),
            flapping_link: Some((6, 7)),
        }
        .within(nodes)
    }

    /// Only the faults of nodes below `nodes`.
    fn within(mut self, nodes: usize) -> Faults {
        self.failing_outbound.retain(|p| p.0 < nodes);
        self.skewed_clocks.retain(|p| p.0 < nodes);
        self.sloppy.retain(|&i| i < nodes);
        self.dropped_ranges.retain(|p| p.0 < nodes);
        self.late_blocks.retain(|p| p.0 < nodes);
        self.silent_guarantor = self.silent_guarantor.filter(|&i| i < nodes);
        self.flapping_link = self.flapping_link.filter(|&(a, b)| a < nodes && b < nodes);
        self
    }

    pub fn for_node(&self, index: usize) -> NodeFaults {
        NodeFaults {
            outbound_failure_rate: value_of(&self.failing_outbound, index),
            clock_skew_us: value_of(&self.skewed_clocks, index)
                .map_or(0, |ms| ms.saturating_mul(1000)),
            sloppy: self.sloppy.contains(&index),
            dropped_range: value_of(&self.dropped_ranges, index),
            late_blocks_us: value_of(&self.late_blocks, index).map_or(0, |ms| ms * 1000),
            forks_every: self.forks_every,
            failing_core: self.failing_core,
            silent_guarantor: self.silent_guarantor,
            flapping_peer: self
                .flapping_link
                .filter(|&(node, _)| node == index)
                .map(|(_, peer)| peer),
        }
    }

    /// The first fault naming a node that is not simulated, or a rate outside 0..=1.
    pub fn check(&self, nodes: usize) -> Result<(), String> {
        let indices = self
            .failing_outbound
            .iter()
            .map(|p| p.0)
            .chain(self.skewed_clocks.iter().map(|p| p.0))
            .chain(self.sloppy.iter().copied())
            .chain(self.dropped_ranges.iter().map(|p| p.0))
            .chain(self.late_blocks.iter().map(|p| p.0))
            .chain(self.silent_guarantor)
            .chain(self.flapping_link.into_iter().flat_map(|(a, b)| [a, b]));
        for index in indices {
            if index >= nodes {
                return Err(format!(
                    "a fault is planted in node {index}, but nodes are numbered 0 to {}",
                    nodes.saturating_sub(1)
                ));
            }
        }
        if self.forks_every == Some(0) {
            return Err("forks every 0 slots: give a number of slots of at least 1".into());
        }
        if let Some((core, share)) = self.failing_core {
            if !(0.0..=1.0).contains(&share) {
                return Err(format!(
                    "core {core}: a failure share must be between 0 and 1, not {share}"
                ));
            }
        }
        match self
            .failing_outbound
            .iter()
            .find(|(_, r)| !(0.0..=1.0).contains(r))
        {
            Some((index, rate)) => Err(format!(
                "node {index}: an outbound failure rate must be between 0 and 1, not {rate}"
            )),
            None => Ok(()),
        }
    }
}

/// The value planted in node `index`, if any.
fn value_of<T: Copy>(pairs: &[(usize, T)], index: usize) -> Option<T> {
    pairs.iter().find(|(i, _)| *i == index).map(|p| p.1)
}

/// Parses `NODE=VALUE` (a command-line fault).
pub fn parse_node_value<T: FromStr>(text: &str) -> Result<(usize, T), String> {
    let (node, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: expected NODE=VALUE"))?;
    let node = node
        .trim()
        .parse()
        .map_err(|_| format!("{node:?} is not a node number"))?;
    let value = value
        .trim()
        .parse()
        .map_err(|_| format!("{value:?} is not a valid value"))?;
    Ok((node, value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jip3::links::is_referable;
    use crate::jip3::Event;

    #[test]
    fn silent_types_are_defined_and_never_referred_to_and_the_undefined_one_is_not_defined() {
        for &d in SLOPPY_SILENT_TYPES {
            assert!(Event::name_of(d).is_some(), "{d}");
            assert!(!is_referable(d), "{d} is a reference target");
        }
        assert!(Event::name_of(UNDEFINED_DISCRIMINATOR).is_none());
    }

    #[test]
    fn faults_parse_and_are_checked() {
        assert_eq!(parse_node_value::<f64>("3=0.25"), Ok((3, 0.25)));
        assert_eq!(parse_node_value::<i64>("1=-2500"), Ok((1, -2500)));
        assert!(parse_node_value::<f64>("3").is_err());
        assert!(parse_node_value::<f64>("x=1").is_err());
        let faults = Faults {
            failing_outbound: vec![(1, 0.5)],
            skewed_clocks: vec![(2, -3)],
            sloppy: vec![3],
            dropped_ranges: vec![(0, 9)],
            late_blocks: vec![(2, 400)],
            forks_every: Some(5),
            failing_core: Some((1, 0.5)),
            silent_guarantor: Some(3),
            flapping_link: Some((0, 1)),
        };
        assert!(faults.check(4).is_ok());
        assert!(faults.check(3).unwrap_err().contains("node 3"));
        let node = faults.for_node(2);
        assert_eq!(node.clock_skew_us, -3000);
        assert_eq!(node.late_blocks_us, 400_000);
        assert_eq!(faults.for_node(1).forks_every, Some(5));
        assert_eq!(faults.for_node(0).flapping_peer, Some(1));
        assert_eq!(faults.for_node(1).flapping_peer, None);
        let never = Faults {
            forks_every: Some(0),
            ..Faults::default()
        };
        assert!(never.check(1).is_err());
        assert!(node.outbound_failure_rate.is_none() && !node.sloppy);
        let bad = Faults {
            failing_outbound: vec![(0, 1.5)],
            ..Faults::default()
        };
        assert!(bad.check(1).unwrap_err().contains("between 0 and 1"));
        assert!(Faults::demo(16).check(16).is_ok());
        assert!(Faults::demo(2).check(2).is_ok());
    }
}

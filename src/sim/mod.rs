//! The node simulator: N JAM validators reporting telemetry to a TART server over real TCP, for
//! trying TART without a JAM network and for load tests. `tart-sim` is its command line.
//!
//! Each node is a tokio task with its own connection, identity (Peer ID, implementation, JAM
//! parameters, all derived from the seed) and event ID sequence. Its [`flow`] plays, per slot:
//! Status every third of a slot; authoring (the rotating author: Authoring → Authored → Block
//! executed) or importing (Block announced → Importing → Block verified → Block executed); best
//! and finalized block (two slots behind); announcements from the other neighbours; block requests
//! both ways; Safrole tickets per epoch; the guaranteeing pipeline as primary (90 → 94 → 95 →
//! imports → 98/100 → 101 → 102 → 104 → 105 → 106/108 → 109) or secondary (91 → … → 103);
//! guarantees received; shard requests both ways; assurances sent and received; preimages; peer
//! churn; an occasional failure with a reason and an occasional Dropped. References between events
//! carry the IDs the spec defines. Every node agrees on block hashes, authors and work-packages.
//!
//! Use: `let sim = Simulation::new(config); let stats = sim.stats(); sim.run(stop).await` gives a
//! [`SimReport`]; `stats.events_sent()` reads the live total meanwhile.

mod faults;
mod flow;
mod node;
mod outbox;
mod world;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use faults::{
    parse_node_value, Faults, NodeFaults, PLANTED_PACKAGE_FAILURE, SLOPPY_IMPLEMENTATION,
    SLOPPY_SILENT_TYPES, UNDEFINED_DISCRIMINATOR,
};
pub use world::{gp_version, Dialects, NodeDialect, Params, World};

use crate::jip3::NodeInformation;
use flow::{Flow, FlowSettings};
use node::{Clock, Node};
use outbox::Outbox;

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The TART telemetry port.
    pub target: SocketAddr,
    pub nodes: usize,
    /// Events per second per node; `None` for the natural flow.
    pub rate: Option<f64>,
    pub params: Params,
    /// Protocol versions and parameter layouts the nodes announce.
    pub dialects: Dialects,
    /// Every node sends each of the 115 event types at least once on each connection (late in
    /// the first slot of it).
    pub all_types: bool,
    /// Stop by itself after this long.
    pub duration: Option<Duration>,
    pub seed: u64,
    /// JAM's is 6 s; tests shorten it to see many slots quickly.
    pub slot_duration: Duration,
    /// The longest wait between reconnection attempts.
    pub max_backoff: Duration,
    /// How the nodes write their frames.
    pub writes: Writes,
    /// Which events fill up to the rate.
    pub mix: Mix,
    /// Faults planted in some nodes.
    pub faults: Faults,
    /// What time each event carries.
    pub timestamps: Timestamps,
}

/// The JIP-3 timestamp a simulated node puts on its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Timestamps {
    /// When the node's flow has it happen, as a real node dates what it does: the delays the
    /// flow plans (and the faults plant) are what TART sees, to the microsecond. An event is
    /// sent at the next tick, up to 40 ms later.
    Planned,
    /// When the frame is written: what the benchmark measures ingest latency from, so that it
    /// leaves out the simulator's own wait for its tick.
    Sent,
}

/// How a simulated node writes its frames to the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Writes {
    /// The frames of a 40 ms tick in one write: cheap for the simulator at 1,024 nodes.
    Batched,
    /// Every frame in a write of its own, ticks of 10 ms: what a real node does when it sends
    /// each event as it happens (and what other load generators do).
    PerEvent,
}

/// Which events a node sends beyond its natural flow when a rate asks for more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mix {
    /// Announcements, assurances, guarantees, tickets and requests, as a validator's flow has.
    Natural,
    /// Status for half of all events, as another JAM telemetry server's load generator sends
    /// (with full parameters that is 341 per-core counts in every other event).
    HalfStatus,
}

impl SimConfig {
    pub fn new(target: SocketAddr) -> SimConfig {
        SimConfig {
            target,
            nodes: 16,
            rate: None,
            params: Params::Tiny,
            dialects: Dialects::REFERENCE,
            all_types: false,
            duration: None,
            seed: 0,
            slot_duration: Duration::from_secs(6),
            max_backoff: Duration::from_secs(5),
            writes: Writes::Batched,
            mix: Mix::Natural,
            faults: Faults::default(),
            timestamps: Timestamps::Planned,
        }
    }
}

/// Live counters of one node.
#[derive(Debug)]
pub struct NodeStats {
    pub node_id: String,
    pub implementation: String,
    pub core_count: u16,
    pub dialect: NodeDialect,
    events_sent: AtomicU64,
    connections: AtomicU64,
    events_lost: AtomicU64,
    /// Frames delivered per discriminator, and the IDs their Dropped frames stood for.
    delivered: Mutex<Delivered>,
}

/// What a node's writes delivered, by type.
#[derive(Debug)]
struct Delivered {
    by_type: [u64; 256],
    drops_reported: u64,
}

impl NodeStats {
    /// Counts the frames of a write that went out.
    fn sent(&self, out: &Outbox) {
        let (types, drops) = out.pending_types();
        self.events_sent
            .fetch_add(types.len() as u64, Ordering::Relaxed);
        let mut delivered = self.delivered.lock().expect("never poisoned");
        for &d in types {
            delivered.by_type[usize::from(d)] += 1;
        }
        delivered.drops_reported += drops;
    }

    fn connected(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    fn lost(&self, events: u64) {
        self.events_lost.fetch_add(events, Ordering::Relaxed);
    }

    fn report(&self) -> NodeReport {
        let delivered = self.delivered.lock().expect("never poisoned");
        NodeReport {
            node_id: self.node_id.clone(),
            implementation: self.implementation.clone(),
            core_count: self.core_count,
            dialect: self.dialect,
            events_sent: self.events_sent.load(Ordering::Relaxed),
            connections: self.connections.load(Ordering::Relaxed),
            events_lost: self.events_lost.load(Ordering::Relaxed),
            sent_by_type: (0..=u8::MAX)
                .filter(|&d| delivered.by_type[usize::from(d)] > 0)
                .map(|d| (d, delivered.by_type[usize::from(d)]))
                .collect(),
            drops_reported: delivered.drops_reported,
        }
    }
}

/// Live counters of a run, cheap to read while it goes (e.g. by a benchmark).
#[derive(Debug)]
pub struct SimStats {
    started: Instant,
    pub nodes: Vec<NodeStats>,
}

impl SimStats {
    /// Event frames written to the server so far, all nodes together.
    pub fn events_sent(&self) -> u64 {
        self.nodes
            .iter()
            .map(|n| n.events_sent.load(Ordering::Relaxed))
            .sum()
    }

    /// A snapshot of the counters.
    pub fn report(&self) -> SimReport {
        SimReport {
            elapsed: self.started.elapsed(),
            nodes: self.nodes.iter().map(NodeStats::report).collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeReport {
    pub node_id: String,
    pub implementation: String,
    pub core_count: u16,
    pub dialect: NodeDialect,
    /// Event frames written (a Dropped frame counts once).
    pub events_sent: u64,
    /// Successful connections; every one after the first is a reconnect.
    pub connections: u64,
    /// Event IDs a lost connection never delivered (reported as Dropped on the next).
    pub events_lost: u64,
    /// Frames delivered per discriminator (undefined ones included): ground truth for what
    /// TART counts.
    pub sent_by_type: BTreeMap<u8, u64>,
    /// The sum of N over the Dropped(N) frames delivered.
    pub drops_reported: u64,
}

impl NodeReport {
    /// Frames delivered of the type named (as JIP-3 names it).
    pub fn sent_of(&self, name: &str) -> u64 {
        let d = crate::jip3::Event::type_from_text(name).expect("a defined event type");
        self.sent_by_type.get(&d).copied().unwrap_or(0)
    }
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct SimReport {
    pub elapsed: Duration,
    pub nodes: Vec<NodeReport>,
}

impl SimReport {
    pub fn events_sent(&self) -> u64 {
        self.nodes.iter().map(|n| n.events_sent).sum()
    }

    pub fn connections(&self) -> u64 {
        self.nodes.iter().map(|n| n.connections).sum()
    }

    pub fn reconnects(&self) -> u64 {
        self.nodes
            .iter()
            .map(|n| n.connections.saturating_sub(1))
            .sum()
    }

    pub fn events_lost(&self) -> u64 {
        self.nodes.iter().map(|n| n.events_lost).sum()
    }
}

impl fmt::Display for SimReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.elapsed.as_secs_f64().max(1e-3);
        writeln!(
            f,
            "{} nodes, {:.1} s: {} events sent ({:.0}/s, {:.1}/s per node), {} connections, \
             {} reconnects, {} events lost",
            self.nodes.len(),
            secs,
            self.events_sent(),
            self.events_sent() as f64 / secs,
            self.events_sent() as f64 / secs / self.nodes.len().max(1) as f64,
            self.connections(),
            self.reconnects(),
            self.events_lost(),
        )?;
        for node in &self.nodes {
            writeln!(
                f,
                "  {}  {:<9} C={:<3} v{} {:<7} sent {:>8}  connections {:>3}  lost {}",
                &node.node_id[..16],
                node.implementation,
                node.core_count,
                node.dialect.version.as_u8(),
                node.dialect.layout.name(),
                node.events_sent,
                node.connections,
                node.events_lost
            )?;
        }
        Ok(())
    }
}

/// A run, set up: its live counters can be handed out before it starts.
pub struct Simulation {
    config: SimConfig,
    world: World,
    stats: Arc<SimStats>,
}

impl Simulation {
    pub fn new(config: SimConfig) -> Simulation {
        let world = World {
            seed: config.seed,
            nodes: config.nodes.max(1),
        };
        let nodes = (0..config.nodes)
            .map(|i| {
                let info = node_information(&config, world, i);
                let core_count = config.params.for_node(i).core_count;
                let dialect = config.dialects.for_node(i);
                NodeStats {
                    node_id: info.node_id(),
                    implementation: info.implementation_name.0.clone(),
                    core_count,
                    dialect,
                    events_sent: AtomicU64::new(0),
                    connections: AtomicU64::new(0),
                    events_lost: AtomicU64::new(0),
                    delivered: Mutex::new(Delivered {
                        by_type: [0; 256],
                        drops_reported: 0,
                    }),
                }
            })
            .collect();
        Simulation {
            config,
            world,
            stats: Arc::new(SimStats {
                started: Instant::now(),
                nodes,
            }),
        }
    }

    pub fn stats(&self) -> Arc<SimStats> {
        self.stats.clone()
    }

    /// Runs every node until `stop` is cancelled or the configured duration ends.
    pub async fn run(self, stop: CancellationToken) -> SimReport {
        let stop = stop.child_token();
        if let Some(duration) = self.config.duration {
            let timer = stop.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = tokio::time::sleep(duration) => timer.cancel(),
                    _ = timer.cancelled() => {}
                }
            });
        }
        let clock = Clock(Instant::now());
        let jam_start = crate::jip3::time::now();
        let mut tasks = JoinSet::new();
        for index in 0..self.config.nodes {
            let params = self.config.params.for_node(index);
            let dialect = self.config.dialects.for_node(index);
            let faults = self.config.faults.for_node(index);
            let settings = FlowSettings {
                slot: self.config.slot_duration.as_micros().max(1) as u64,
                // A skewed clock dates the node's own events, Dropped's included.
                jam_start: jam_start.saturating_add_signed(faults.clock_skew_us),
                first_slot: (jam_start / (u64::from(params.slot_seconds) * 1_000_000)) as u32,
                rate: self.config.rate,
                all_types: self.config.all_types,
                version: dialect.version,
                mix: self.config.mix,
                faults,
            };
            let node = Node {
                index,
                info: node_information(&self.config, self.world, index),
                flow: Flow::new(self.world, index, params, settings),
                target: self.config.target,
                max_backoff: self.config.max_backoff,
                writes: self.config.writes,
                timestamps: self.config.timestamps,
                clock_skew_us: faults.clock_skew_us,
                clock,
                stats: self.stats.clone(),
                out: Outbox::default(),
            };
            tasks.spawn(node.run(stop.clone()));
        }
        while let Some(done) = tasks.join_next().await {
            if let Err(e) = done {
                log::error!("a simulated node failed: {e}");
            }
        }
        self.stats.report()
    }
}

/// What node `index` announces: a sloppy node its own implementation.
fn node_information(config: &SimConfig, world: World, index: usize) -> NodeInformation {
    let (params, dialect) = (
        config.params.for_node(index),
        config.dialects.for_node(index),
    );
    let mut info = world.node_information(index, params, dialect);
    if config.faults.for_node(index).sloppy {
        info.implementation_name = SLOPPY_IMPLEMENTATION.into();
    }
    info
}

/// Runs `config` until `stop` or its duration: the one-call form of [`Simulation`].
pub async fn run(config: SimConfig, stop: CancellationToken) -> SimReport {
    Simulation::new(config).run(stop).await
}

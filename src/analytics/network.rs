//! What each node tells of the chain, for Prometheus (`GET /metrics/network`): its best and
//! finalized slot, its peers, counts of the events operators alert on, how long it has been
//! silent. Kept in memory by the writer as it accepts batches (a table lookup per event, a lock
//! per batch) and turned into metrics when scraped, so a scrape reads no database.
//!
//! Cardinality is bounded: a series per node and metric, for the nodes connected now and those
//! whose last connection ended less than `network_metrics_forget_secs` ago, at most
//! `max_connections` listed (past it, the node that left first is forgotten first). Labels: `node`
//! (the node id's first 16 characters), `implementation` and `version` (as the node named them,
//! cut at 64 characters). Counters start when the server does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus::{IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

use crate::jip3::events::STATUS;
use crate::messages::{BlockStage, EventBatch, Fact, Payload};
use crate::metrics::{register, render};

/// A node more than this many slots behind the network's best counts in `jam_network_nodes_behind`.
const BEHIND_SLOTS: u32 = 2;
const NODE_LABEL_CHARS: usize = 16;
const NAME_LABEL_CHARS: usize = 64;

/// The events counted per node: discriminator, metric name, help.
const COUNTED: [(u8, &str, &str); 10] = [
    (
        42,
        "jam_node_blocks_authored_total",
        "Blocks the node authored (Authored)",
    ),
    (
        45,
        "jam_node_blocks_imported_total",
        "Blocks the node imported and verified (Block verified)",
    ),
    (
        41,
        "jam_node_authoring_failures_total",
        "Blocks the node failed to author (Authoring failed)",
    ),
    (
        44,
        "jam_node_block_verification_failures_total",
        "Imported blocks that failed verification (Block verification failed)",
    ),
    (
        46,
        "jam_node_block_execution_failures_total",
        "Blocks whose execution failed (Block execution failed)",
    ),
    (
        94,
        "jam_node_work_packages_received_total",
        "Work-packages the node received (Work-package received)",
    ),
    (
        92,
        "jam_node_work_packages_failed_total",
        "Work-packages that failed at the node (Work-package failed)",
    ),
    (
        105,
        "jam_node_guarantees_built_total",
        "Guarantees the node built (Guarantee built)",
    ),
    (
        113,
        "jam_node_guarantees_discarded_total",
        "Guarantees the node discarded (Guarantee discarded)",
    ),
    (
        128,
        "jam_node_assurances_sent_total",
        "Assurances the node sent (Assurance sent)",
    ),
];

/// `COUNTED`'s index for each discriminator (`NOT_COUNTED` for the rest).
const NOT_COUNTED: u8 = u8::MAX;
const COUNTED_INDEX: [u8; 256] = {
    let mut index = [NOT_COUNTED; 256];
    let mut i = 0;
    while i < COUNTED.len() {
        index[COUNTED[i].0 as usize] = i as u8;
        i += 1;
    }
    index
};

#[derive(Debug, Default)]
struct NodeFigures {
    implementation: String,
    version: String,
    /// Connections open now (a node may reconnect before its old connection is seen to end).
    connections: u32,
    left_at: Option<Instant>,
    last_event_at: Option<Instant>,
    best_slot: Option<u32>,
    finalized_slot: Option<u32>,
    /// Total, validator and block-announcement peers of the latest Status.
    peers: Option<[u32; 3]>,
    counted: [u64; COUNTED.len()],
    decode_failures: u64,
    undefined_events: u64,
    reported_dropped: u64,
}

impl NodeFigures {
    fn label_values(&self, node_id: &str) -> [String; 3] {
        let cut = |text: &str, chars: usize| text.chars().take(chars).collect::<String>();
        [
            cut(node_id, NODE_LABEL_CHARS),
            cut(&self.implementation, NAME_LABEL_CHARS),
            cut(&self.version, NAME_LABEL_CHARS),
        ]
    }
}

/// The figures of every listed node, shared by the writer (which fills them) and the API.
pub struct NetworkBook {
    book: Mutex<Book>,
}

struct Book {
    nodes: HashMap<Arc<str>, NodeFigures>,
    forget_after: Duration,
    capacity: usize,
}

impl Default for NetworkBook {
    fn default() -> Self {
        let defaults = crate::config::Config::default();
        NetworkBook {
            book: Mutex::new(Book {
                nodes: HashMap::new(),
                forget_after: defaults.network_metrics_forget_after(),
                capacity: defaults.max_connections,
            }),
        }
    }
}

impl NetworkBook {
    /// How long a node that left stays listed, and how many nodes may be.
    pub fn configure(&self, forget_after: Duration, capacity: usize) {
        let mut book = self.book();
        book.forget_after = forget_after;
        book.capacity = capacity.max(1);
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        // The figures stay consistent however a holder panicked: each update is one assignment.
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A node completed its handshake.
    pub fn connected(&self, node_id: &str, implementation: &str, version: &str) {
        let mut book = self.book();
        let capacity = book.capacity;
        let nodes = &mut book.nodes;
        if !nodes.contains_key(node_id) && nodes.len() >= capacity {
            let gone_first = nodes
                .iter()
                .filter(|(_, figures)| figures.connections == 0)
                .min_by_key(|(_, figures)| figures.left_at)
                .map(|(id, _)| id.clone());
            if let Some(id) = gone_first {
                nodes.remove(&id);
            }
        }
        let figures = nodes.entry(Arc::from(node_id)).or_default();
        figures.connections += 1;
        figures.left_at = None;
        figures.implementation = implementation.to_owned();
        figures.version = version.to_owned();
    }

    /// One of the node's connections ended.
    pub fn disconnected(&self, node_id: &str) {
        if let Some(figures) = self.book().nodes.get_mut(node_id) {
            figures.connections = figures.connections.saturating_sub(1);
            if figures.connections == 0 {
                figures.left_at = Some(Instant::now());
            }
        }
    }

    /// Notes what a batch the writer accepted tells of its node.
    pub fn observe(&self, batch: &EventBatch) {
        let mut book = self.book();
        let Some(figures) = book.nodes.get_mut(&*batch.node_id) else {
            return;
        };
        let counts = &batch.counts;
        figures.decode_failures += counts.decode_failures.max(0) as u64;
        figures.reported_dropped = figures
            .reported_dropped
            .saturating_add(counts.dropped.max(0) as u64);
        figures.undefined_events += batch
            .undefined
            .iter()
            .map(|&(_, n)| n.max(0) as u64)
            .sum::<u64>();
        if counts.received > 0 {
            figures.last_event_at = Some(batch.read_at);
        }
        for event in &batch.events {
            let Payload::Decoded {
                discriminator,
                fields,
                fact,
                ..
            } = &event.payload
            else {
                continue;
            };
            let index = COUNTED_INDEX[*discriminator as usize];
            if index != NOT_COUNTED {
                figures.counted[index as usize] += 1;
            }
            if let Some(block) = fact.as_ref().and_then(Fact::block) {
                match (block.stage, block.slot) {
                    (BlockStage::Best, Some(slot)) => figures.best_slot = Some(slot),
                    (BlockStage::Finalized, Some(slot)) => figures.finalized_slot = Some(slot),
                    _ => {}
                }
            }
            if *discriminator == STATUS && fields.len() >= 12 {
                let u32_at =
                    |at: usize| u32::from_le_bytes(fields[at..at + 4].try_into().expect("4 bytes"));
                figures.peers = Some([u32_at(0), u32_at(4), u32_at(8)]);
            }
        }
    }

    /// The Prometheus text exposition of every listed node and of the network. Forgets the nodes
    /// that left more than `forget_after` ago first.
    pub fn render(&self) -> String {
        let mut book = self.book();
        let now = Instant::now();
        let forget_after = book.forget_after;
        book.nodes.retain(|_, figures| {
            figures
                .left_at
                .is_none_or(|left| now.duration_since(left) < forget_after)
        });
        let nodes = &book.nodes;
        let registry = Registry::new();
        let labels = ["node", "implementation", "version"];
        let node_gauge = |name: &str, help: &str| {
            register(
                &registry,
                IntGaugeVec::new(Opts::new(name, help), &labels).expect("valid metric"),
            )
        };
        let network_gauge = |name: &str, help: &str| {
            register(&registry, IntGauge::new(name, help).expect("valid metric"))
        };
        let connected = node_gauge(
            "jam_node_connected",
            "1 while the node has a telemetry connection open, 0 after it left",
        );
        let best = node_gauge("jam_node_best_slot", "Slot of the node's best block");
        let finalized = node_gauge(
            "jam_node_finalized_slot",
            "Slot of the node's latest finalized block",
        );
        let behind = node_gauge(
            "jam_node_slots_behind",
            "Slots between the network's best block and the node's",
        );
        let lag = node_gauge(
            "jam_node_finalization_lag_slots",
            "Slots between the node's best block and its finalized one",
        );
        let peer_gauges = [
            ("jam_node_peers", "Peers (the node's latest Status)"),
            (
                "jam_node_validator_peers",
                "Validator peers (the node's latest Status)",
            ),
            (
                "jam_node_block_announcement_peers",
                "Peers with a block announcement stream (the node's latest Status)",
            ),
        ]
        .map(|(name, help)| node_gauge(name, help));
        let age = node_gauge(
            "jam_node_last_event_age_seconds",
            "Seconds since TART last received an event from the node",
        );
        let node_counter = |name: &str, help: &str| {
            register(
                &registry,
                IntCounterVec::new(Opts::new(name, help), &labels).expect("valid metric"),
            )
        };
        let counted = COUNTED.map(|(_, name, help)| node_counter(name, help));
        let decode_failures = node_counter(
            "jam_node_decode_failures_total",
            "Frames from the node that failed to decode",
        );
        let undefined = node_counter(
            "jam_node_undefined_events_total",
            "Events from the node with a discriminator JIP-3 does not define",
        );
        let dropped = node_counter(
            "jam_node_reported_dropped_events_total",
            "Events the node reported dropped on its side (Dropped)",
        );

        let live = || nodes.values().filter(|figures| figures.connections > 0);
        let network_best = live().filter_map(|f| f.best_slot).max();
        let network_finalized = live().filter_map(|f| f.finalized_slot).max();
        let mut nodes_behind = 0;
        for (node_id, figures) in nodes.iter() {
            let values = figures.label_values(node_id);
            let values: Vec<&str> = values.iter().map(String::as_str).collect();
            connected
                .with_label_values(&values)
                .set(i64::from(figures.connections > 0));
            if let Some(slot) = figures.best_slot {
                best.with_label_values(&values).set(slot.into());
                if let Some(network) = network_best {
                    let gap = network.saturating_sub(slot);
                    behind.with_label_values(&values).set(gap.into());
                    if figures.connections > 0 && gap > BEHIND_SLOTS {
                        nodes_behind += 1;
                    }
                }
                if let Some(final_slot) = figures.finalized_slot {
                    lag.with_label_values(&values)
                        .set(slot.saturating_sub(final_slot).into());
                }
            }
            if let Some(slot) = figures.finalized_slot {
                finalized.with_label_values(&values).set(slot.into());
            }
            if let Some(peers) = figures.peers {
                for (gauge, value) in peer_gauges.iter().zip(peers) {
                    gauge.with_label_values(&values).set(value.into());
                }
            }
            if let Some(at) = figures.last_event_at {
                age.with_label_values(&values)
                    .set(now.duration_since(at).as_secs() as i64);
            }
            for (counter, &value) in counted.iter().zip(&figures.counted) {
                counter.with_label_values(&values).inc_by(value);
            }
            decode_failures
                .with_label_values(&values)
                .inc_by(figures.decode_failures);
            undefined
                .with_label_values(&values)
                .inc_by(figures.undefined_events);
            dropped
                .with_label_values(&values)
                .inc_by(figures.reported_dropped);
        }
        network_gauge(
            "jam_network_nodes",
            "Nodes with a telemetry connection open",
        )
        .set(live().count() as i64);
        network_gauge(
            "jam_network_nodes_behind",
            &format!(
                "Connected nodes more than {BEHIND_SLOTS} slots behind the network's best block"
            ),
        )
        .set(nodes_behind);
        if let Some(slot) = network_best {
            network_gauge(
                "jam_network_best_slot",
                "The highest best-block slot of the connected nodes",
            )
            .set(slot.into());
        }
        if let Some(slot) = network_finalized {
            network_gauge(
                "jam_network_finalized_slot",
                "The highest finalized slot of the connected nodes",
            )
            .set(slot.into());
            if let Some(best) = network_best {
                network_gauge(
                    "jam_network_finalization_lag_slots",
                    "Slots between the network's best block and its finalized one",
                )
                .set(best.saturating_sub(slot).into());
            }
        }
        drop(book);
        render(&registry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(book: &NetworkBook) -> Vec<String> {
        let mut ids: Vec<String> = book.book().nodes.keys().map(|id| id.to_string()).collect();
        ids.sort();
        ids
    }

    #[test]
    fn past_its_capacity_the_book_forgets_the_node_that_left_first_never_a_connected_one() {
        let book = NetworkBook::default();
        book.configure(Duration::from_secs(3600), 3);
        for id in ["a", "b", "c"] {
            book.connected(id, "sim", "1");
        }
        book.disconnected("b");
        std::thread::sleep(Duration::from_millis(2));
        book.disconnected("c");
        book.connected("d", "sim", "1");
        assert_eq!(listed(&book), ["a", "c", "d"]);
        book.connected("e", "sim", "1");
        assert_eq!(listed(&book), ["a", "d", "e"]);
        // All connected: a newcomer is listed beyond the capacity rather than a live node dropped.
        book.connected("f", "sim", "1");
        assert_eq!(listed(&book), ["a", "d", "e", "f"]);
        assert!(book.render().contains("jam_network_nodes 4"));
    }
}

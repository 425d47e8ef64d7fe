//! What crosses from one wing of the house to another, in one leaf module: each message says
//! who sends it to whom and when. Actor edges between wings go only through the [`WriterInbox`]
//! and [`LiveSessions`] bundles of `Recipient`s below, so each wing can be tested alone and
//! replaced.
//!
//! ```text
//! ingest (connection → rate_limiter) ──EventBatches, NodeConnected, HandshakeRefused, SessionEnded──▶ persist (writer)
//!        └── LiveFeed (live's own handle, bounded in bytes) ──▶ live (broadcaster)
//! api (ws_session) ──Join, SetFilter, Recent, Leave, GetStats──▶ live (broadcaster) ──LiveBatch──▶ api (ws_session)
//! server ──Drain──▶ persist;  server ──CloseAll──▶ live
//! ```
//!
//! docs/ARCHITECTURE.md walks one frame through all of it.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::jip3::{stored, Dialect, Event};
use crate::store::models::{NewSession, NodeConnection, RateLimitGap};
use crate::store::write::SessionCounts;

/// Bookkeeping per queued live event besides its fields and JSON, as the live stream's byte
/// budgets count it (small events' JSON is mostly names and keys, also covered by this).
const EVENT_OVERHEAD: usize = 128;

/// One event frame on its way from a connection to the database.
#[derive(Debug, Clone)]
pub struct IngestEvent {
    /// Row id, minted before the write (see `store::ids`).
    pub id: i64,
    /// The JIP-3 event ID on this connection.
    pub event_id: u64,
    /// When the frame was read: the row's `created_at` and partition key.
    pub received_at: DateTime<Utc>,
    pub payload: Payload,
}

#[derive(Debug, Clone)]
pub enum Payload {
    Decoded {
        /// The node's JIP-3 timestamp.
        timestamp: u64,
        discriminator: u8,
        /// The bytes after the discriminator as the node sent them: what is stored, and what the
        /// JSON is made from when somebody reads it.
        fields: Bytes,
        /// What the writer's consumers need of it, for the events they read.
        fact: Option<Fact>,
        /// Where its Event ID field points, resolved at ingest.
        reference: Reference,
    },
    Failed {
        raw: Bytes,
        error: String,
    },
}

/// Where an event's Event ID field points, resolved at ingest within its connection (JIP-3
/// defines the ID per connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reference {
    /// The event has no Event ID field (or one whose target JIP-3 leaves undefined).
    None,
    /// It points at nothing this connection sent of a type it may point at: an ID never sent,
    /// dropped, of the wrong type, or older than the events a connection remembers.
    Dangling,
    /// The row id of the event it points at.
    Row(i64),
}

impl Reference {
    /// As `event_rows.ref_id` keeps it: NULL, 0 for dangling, or the row id.
    pub fn column(self) -> Option<i64> {
        match self {
            Reference::None => None,
            Reference::Dangling => Some(0),
            Reference::Row(row) => Some(row),
        }
    }
}

/// What the writer's consumers need of an event beyond its discriminator and reference, taken
/// from the decoded event at ingest (the decoded event itself is not kept): the blocks table,
/// the node's latest slots and the trackers of blocks and work-packages (`analytics`). Events
/// that carry nothing more than a reference to an earlier one need no fact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fact {
    Block(BlockFacts),
    /// Authoring: the node starts authoring `slot` (Authored or Authoring failed refer to it).
    Authoring {
        slot: u32,
    },
    /// Work-package received, or a duplicate of one the node has: the package and its core.
    Package {
        core: u16,
        hash: [u8; 32],
        duplicate: bool,
    },
    /// Refined: the gas and time of all its work items.
    Refined {
        gas: u64,
        ns: u64,
    },
    /// Work-report built, or a guarantee built, received or discarded: the work-report's hash.
    Report {
        stage: ReportStage,
        report_hash: [u8; 32],
    },
    /// Connecting out to, connected in from, or disconnected from a peer.
    Peer {
        change: PeerChange,
        peer_id: [u8; 32],
    },
}

/// What an event says of a peer connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerChange {
    /// Connecting out: Connected out (which names no peer) refers to it.
    ConnectingOut,
    ConnectedIn,
    Disconnected,
}

/// What an event with a work-report hash says of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportStage {
    Built,
    GuaranteeBuilt,
    GuaranteeReceived,
    GuaranteeDiscarded,
}

impl Fact {
    pub fn of(event: &Event) -> Option<Fact> {
        let (stage, slot, hash) = match event {
            Event::Authoring { slot, .. } => return Some(Fact::Authoring { slot: *slot }),
            Event::ConnectingOut { peer_id, .. } => {
                return Some(Fact::peer(PeerChange::ConnectingOut, peer_id))
            }
            Event::ConnectedIn { peer_id, .. } => {
                return Some(Fact::peer(PeerChange::ConnectedIn, peer_id))
            }
            Event::Disconnected { peer_id, .. } => {
                return Some(Fact::peer(PeerChange::Disconnected, peer_id))
            }
            Event::WorkPackageReceived {
                core_index,
                outline,
                ..
            } => {
                return Some(Fact::Package {
                    core: *core_index,
                    hash: outline.hash.0,
                    duplicate: false,
                })
            }
            Event::DuplicateWorkPackage {
                core_index,
                work_package_hash,
                ..
            } => {
                return Some(Fact::Package {
                    core: *core_index,
                    hash: work_package_hash.0,
                    duplicate: true,
                })
            }
            Event::Refined { costs, .. } => {
                let sum = |f: fn(&crate::jip3::types::RefineCost) -> u64| {
                    costs.iter().map(f).fold(0u64, u64::saturating_add)
                };
                return Some(Fact::Refined {
                    gas: sum(|c| c.total.gas),
                    ns: sum(|c| c.total.ns),
                });
            }
            Event::WorkReportBuilt { outline, .. } => {
                return Some(Fact::report(ReportStage::Built, &outline.hash))
            }
            Event::GuaranteeBuilt { outline, .. } => {
                return Some(Fact::report(
                    ReportStage::GuaranteeBuilt,
                    &outline.work_report_hash,
                ))
            }
            Event::GuaranteeReceived { outline, .. } => {
                return Some(Fact::report(
                    ReportStage::GuaranteeReceived,
                    &outline.work_report_hash,
                ))
            }
            Event::GuaranteeDiscarded { outline, .. } => {
                return Some(Fact::report(
                    ReportStage::GuaranteeDiscarded,
                    &outline.work_report_hash,
                ))
            }
            Event::BestBlockChanged { slot, header_hash } => {
                (BlockStage::Best, Some(*slot), header_hash)
            }
            Event::FinalizedBlockChanged { slot, header_hash } => {
                (BlockStage::Finalized, Some(*slot), header_hash)
            }
            Event::Authored { outline, .. } => (BlockStage::Authored, None, &outline.header_hash),
            Event::Importing { slot, outline } => {
                (BlockStage::Importing, Some(*slot), &outline.header_hash)
            }
            Event::BlockAnnounced {
                slot, header_hash, ..
            } => (BlockStage::Announced, Some(*slot), header_hash),
            _ => return None,
        };
        Some(Fact::Block(BlockFacts {
            stage,
            slot,
            header_hash: hash.0,
        }))
    }

    fn peer(change: PeerChange, peer_id: &crate::jip3::types::Hash) -> Fact {
        Fact::Peer {
            change,
            peer_id: peer_id.0,
        }
    }

    fn report(stage: ReportStage, hash: &crate::jip3::types::Hash) -> Fact {
        Fact::Report {
            stage,
            report_hash: hash.0,
        }
    }

    pub fn block(&self) -> Option<&BlockFacts> {
        match self {
            Fact::Block(block) => Some(block),
            _ => None,
        }
    }
}

/// How an event names a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlockStage {
    /// A peer announced it (BlockAnnounced).
    Announced,
    /// The node starts importing it (Importing).
    Importing,
    /// The node authored it (Authored: no slot, the Authoring it refers to has it).
    Authored,
    Best,
    Finalized,
}

/// A block an event names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockFacts {
    pub stage: BlockStage,
    /// None for Authored, whose outline has no slot.
    pub slot: Option<u32>,
    pub header_hash: [u8; 32],
}

impl BlockFacts {
    /// As the `blocks.kind` column says, for the events that table keeps (best, finalized and
    /// authored blocks).
    pub fn stored_kind(&self) -> Option<&'static str> {
        match self.stage {
            BlockStage::Best => Some("best"),
            BlockStage::Finalized => Some("finalized"),
            BlockStage::Authored => Some("authored"),
            BlockStage::Announced | BlockStage::Importing => None,
        }
    }
}

impl IngestEvent {
    /// The node's JIP-3 timestamp, read from the first 8 bytes of a frame that failed to decode
    /// when it has them.
    pub fn jam_timestamp(&self) -> Option<u64> {
        match &self.payload {
            Payload::Decoded { timestamp, .. } => Some(*timestamp),
            Payload::Failed { raw, .. } => raw
                .get(..8)
                .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes"))),
        }
    }

    /// The event's own time, or the receive time when the frame carries none.
    pub fn event_time(&self) -> DateTime<Utc> {
        self.jam_timestamp()
            .map_or(self.received_at, crate::jip3::time::to_datetime)
    }
}

/// The events of one read on one node connection, with the session's counter changes.
///
/// Sent by `ingest::connection` to `ingest::rate_limiter` after each read (once the budget has
/// room), and on by the rate limiter to `persist::writer`, inside [`EventBatches`], with the
/// events it admitted and the gaps it closed.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct EventBatch {
    pub node_id: Arc<str>,
    pub session_id: i64,
    /// How the session's events are read (for JSON, made when somebody reads them).
    pub dialect: Dialect,
    /// When the read that produced these frames completed, for the ingest-latency histogram.
    pub read_at: Instant,
    /// How long the connection waited for queue room before handing the batch on: time the
    /// server held the node back, which the rate limiter does not charge to the node.
    pub held_back: Duration,
    pub events: Vec<IngestEvent>,
    pub counts: SessionCounts,
    /// Frames of discriminators JIP-3 does not define, per discriminator (empty, and so not
    /// allocated, for nearly every batch).
    pub undefined: Vec<(u8, i64)>,
    pub gaps: Vec<RateLimitGap>,
    /// The clock skew of the read (`jip3::skew` bucket of its last event), counted for each of
    /// its events: a read's events were sent together.
    pub skew: Option<(i8, u32)>,
}

impl EventBatch {
    /// Moves the events from `at` on into a batch of their own; the counts stay with this one.
    pub fn split_off(&mut self, at: usize) -> EventBatch {
        EventBatch {
            node_id: self.node_id.clone(),
            session_id: self.session_id,
            dialect: self.dialect,
            read_at: self.read_at,
            held_back: Duration::ZERO,
            events: self.events.split_off(at),
            counts: SessionCounts::default(),
            undefined: Vec::new(),
            gaps: Vec::new(),
            skew: None,
        }
    }
}

/// A node connection ended. Sent by `ingest::connection` when it stops, through the rate limiter
/// (which closes the session's open gap) to `persist::writer` (which records it in order after
/// the session's last batch).
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct SessionEnded {
    pub node_id: Arc<str>,
    pub session_id: i64,
    pub at: DateTime<Utc>,
    pub reason: String,
}

// ---- ingest → persist, and the server → persist ----

/// A node completed its handshake. Sent by `ingest::connection` to `persist::writer` when the
/// NodeInformation decoded; recorded in the writer's bookkeeping lane before the session's first
/// batch can arrive (that travels through the rate limiter).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct NodeConnected {
    pub node: NodeConnection,
    pub session: NewSession,
}

/// A node's handshake was refused: the session row records who tried and why. Sent by
/// `ingest::connection` to `persist::writer` when it refuses a NodeInformation (at most 10 a
/// second); recorded in the bookkeeping lane.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct HandshakeRefused(pub NewSession);

/// Write everything queued, then answer. Sent by the server to `persist::writer` on shutdown,
/// after the connections have closed and the rate limiter has handed on what it held.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Drain;

/// The batches the rate limiter admitted in one burst, in order. Sent by `ingest::rate_limiter`
/// to `persist::writer` at most every 2 ms (one cross-thread wake-up for many reads).
#[derive(Message)]
#[rtype(result = "()")]
pub struct EventBatches {
    pub batches: Vec<EventBatch>,
    /// When the rate limiter sent them: the writer's queue wait starts here.
    pub handed_at: Instant,
}

/// The writer's inbox as the other wings hold it.
#[derive(Clone)]
pub struct WriterInbox {
    pub batches: Recipient<EventBatches>,
    pub session_ends: Recipient<SessionEnded>,
    pub connects: Recipient<NodeConnected>,
    pub refusals: Recipient<HandshakeRefused>,
}

// ---- api (ws_session) ↔ live (broadcaster) ----

/// One decoded event as the live stream carries it. Its JSON is made when the broadcaster first
/// hands it to a session, once for every session: an event nobody watches is never turned into
/// JSON.
#[derive(Debug)]
pub struct LiveEvent {
    /// The row id: the same one the REST API returns for this event.
    pub id: i64,
    pub node_id: Arc<str>,
    pub event_id: u64,
    pub discriminator: u8,
    /// The node's JIP-3 timestamp.
    pub timestamp: u64,
    /// The bytes after the discriminator, shared with the DB writer's copy.
    pub fields: Bytes,
    pub dialect: Dialect,
    /// Made by [`LiveEvent::json`] on first use.
    pub(crate) json: OnceLock<String>,
    /// When the frame was read, for `latency_ms` and the broadcast-latency histogram.
    pub read_at: Instant,
}

impl LiveEvent {
    pub fn new(
        event: &IngestEvent,
        batch: &EventBatch,
        timestamp: u64,
        discriminator: u8,
        fields: &Bytes,
    ) -> LiveEvent {
        LiveEvent {
            id: event.id,
            node_id: batch.node_id.clone(),
            event_id: event.event_id,
            discriminator,
            timestamp,
            fields: fields.clone(),
            dialect: batch.dialect,
            json: OnceLock::new(),
            read_at: batch.read_at,
        }
    }

    /// The event's externally tagged JSON form, made on first use.
    pub fn json(&self) -> &str {
        self.json
            .get_or_init(|| stored::json(self.discriminator, &self.fields, self.dialect))
    }

    /// The bytes this event holds in a queue, as the budgets count them.
    pub fn cost(&self) -> usize {
        cost_of(&self.fields)
    }
}

/// The bytes an event of these fields holds in a live queue once its JSON is made: the fields,
/// and their JSON estimated at twice their size (hex is 2 characters a byte, small numbers
/// about that with their commas; the names and keys are in the overhead).
pub fn cost_of(fields: &[u8]) -> usize {
    3 * fields.len() + EVENT_OVERHEAD
}

/// Which events a session wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    All,
    Node(String),
}

impl Filter {
    pub fn matches(&self, event: &LiveEvent) -> bool {
        match self {
            Filter::All => true,
            Filter::Node(node_id) => *event.node_id == **node_id,
        }
    }
}

/// Events of one publish that match one session's filter, up to [`LIVE_BATCH_EVENTS`]: one queue
/// item, one wake-up of the session.
pub type LiveBatch = Vec<Arc<LiveEvent>>;

/// What a session and the broadcaster share.
pub struct SessionLink {
    /// Bytes in the session's queue.
    queued_bytes: AtomicUsize,
    /// Set by the broadcaster when it drops the session for being too slow.
    evicted: AtomicBool,
    /// Set by the session when its actor stops.
    stopped: AtomicBool,
    /// When the session's heartbeat last ran, in ms after `created`.
    alive_ms: AtomicU64,
    created: Instant,
    /// A duplicate of the connection's socket descriptor, to shut a frozen session's socket down.
    socket: Option<Arc<OwnedFd>>,
}

impl SessionLink {
    pub fn new(socket: Option<Arc<OwnedFd>>) -> Arc<SessionLink> {
        Arc::new(SessionLink {
            queued_bytes: AtomicUsize::new(0),
            evicted: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            alive_ms: AtomicU64::new(0),
            created: Instant::now(),
            socket,
        })
    }

    /// The session took `event` off its queue.
    pub fn took(&self, event: &LiveEvent) {
        self.queued_bytes.fetch_sub(event.cost(), Ordering::AcqRel);
    }

    /// The session's actor is running (called from its heartbeat).
    pub fn mark_alive(&self) {
        self.alive_ms
            .store(self.created.elapsed().as_millis() as u64, Ordering::Release);
    }

    pub fn mark_stopped(&self) {
        self.stopped.store(true, Ordering::Release);
    }

    pub fn was_evicted(&self) -> bool {
        self.evicted.load(Ordering::Acquire)
    }

    /// The broadcaster dropped the session for being too slow.
    pub fn mark_evicted(&self) {
        self.evicted.store(true, Ordering::Release);
    }

    pub fn has_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// Bytes in the session's queue.
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes.load(Ordering::Acquire)
    }

    /// The broadcaster queued `bytes` more for the session.
    pub fn queued(&self, bytes: usize) {
        self.queued_bytes.fetch_add(bytes, Ordering::AcqRel);
    }

    /// How long since the session's heartbeat last ran.
    pub fn since_alive(&self) -> Duration {
        let alive = Duration::from_millis(self.alive_ms.load(Ordering::Acquire));
        self.created.elapsed().saturating_sub(alive)
    }

    /// Shuts the connection's socket down: the HTTP dispatcher then fails its pending write,
    /// drops the connection, and the session actor stops.
    pub fn shut_down_socket(&self) {
        let Some(fd) = &self.socket else {
            log::warn!(
                "a frozen WebSocket session has no socket handle; it stays until its peer goes"
            );
            return;
        };
        // shutdown(2) acts on the socket, which this duplicate descriptor shares.
        match fd.try_clone().map(std::net::TcpStream::from) {
            Ok(socket) => {
                if let Err(e) = socket.shutdown(std::net::Shutdown::Both) {
                    log::debug!("shutting down a WebSocket socket: {e}");
                }
            }
            Err(e) => log::warn!("cannot shut down a frozen WebSocket session's socket: {e}"),
        }
    }
}

/// Counters shown in the WebSocket `connected` and `stats` messages and in the health check.
#[derive(Debug, Clone, Serialize, MessageResponse)]
pub struct BroadcasterStats {
    pub subscribers: usize,
    pub total_broadcast: u64,
    pub events_shed: u64,
    pub slow_clients_disconnected: u64,
    pub recent_events: usize,
}

/// A WebSocket session opened; it starts subscribed to all events. Sent by `api::ws_session` to
/// `live::broadcaster` when the client's upgrade is accepted; the answer carries its session
/// number.
#[derive(Message)]
#[rtype(result = "JoinAck")]
pub struct Join {
    pub queue: mpsc::UnboundedSender<LiveBatch>,
    pub link: Arc<SessionLink>,
}

#[derive(MessageResponse)]
pub struct JoinAck {
    pub session: u64,
    pub stats: BroadcasterStats,
}

/// A session's new filter (`None`: no live events). Sent by `api::ws_session` to the broadcaster
/// when its client subscribes or unsubscribes.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetFilter {
    pub session: u64,
    pub filter: Option<Filter>,
}

/// Up to `limit` of the most recent events, newest first; only one node's if the session
/// is subscribed to a node. Sent by `api::ws_session` to the broadcaster when its client asks
/// for recent events.
#[derive(Message)]
#[rtype(result = "Vec<Arc<LiveEvent>>")]
pub struct Recent {
    pub session: u64,
    pub limit: usize,
}

/// A session stopped. Sent by `api::ws_session` to the broadcaster when its actor stops.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Leave {
    pub session: u64,
}

/// Sent by a WebSocket session (and the health check) to the broadcaster for its counters.
#[derive(Message)]
#[rtype(result = "BroadcasterStats")]
pub struct GetStats;

/// Closes every session (each sends its client a "going away" close frame). Sent by the server
/// to the broadcaster on shutdown.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CloseAll;

/// The broadcaster as the API holds it: what a WebSocket session and the health check send it.
#[derive(Clone)]
pub struct LiveSessions {
    pub join: Recipient<Join>,
    pub set_filter: Recipient<SetFilter>,
    pub recent: Recipient<Recent>,
    pub leave: Recipient<Leave>,
    pub stats: Recipient<GetStats>,
}

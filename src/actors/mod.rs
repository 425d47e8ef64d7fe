//! The actors of the ingest path, one file each, and the values they pass along.
//!
//! ```text
//! listener ──starts──▶ connection (one per node) ──EventBatch──▶ rate_limiter ──▶ db_writer ──▶ store
//!                                                                       └──▶ broadcaster ──▶ ws_session
//! ```
//!
//! (one `ws_session` per WebSocket client of the HTTP API, on the HTTP worker threads; a batch is
//! the events of one socket read, and the rate limiter passes on each burst of batches as one
//! message, since the writer and the broadcaster run on threads of their own.)
//!
//! Each edge has a stated policy for a receiver that is behind: the connection *waits* for room in
//! the shared [`budget::QueueBudget`] before it hands a batch on (and so stops reading its socket:
//! TCP pushes back on the node); every later edge can hold no more than that budget by
//! construction, so its unbounded `do_send` cannot grow memory without limit. The live stream's
//! edges (rate_limiter → broadcaster → ws_session) are bounded in bytes and never wait: see
//! [`broadcaster`].

pub mod broadcaster;
pub mod budget;
pub mod connection;
pub mod db_writer;
pub mod listener;
pub mod rate_limiter;
pub mod ws_session;

use std::sync::Arc;
use std::time::Instant;

use actix::Message;
use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::config::Config;
use crate::jip3::Event;
use crate::metrics::Metrics;
use crate::store::ids::IdAllocator;
use crate::store::models::RateLimitGap;
use crate::store::write::SessionCounts;

/// What every node connection needs: settings, metrics, the id source, the queue budget, and
/// where to send what it reads.
pub struct IngestContext {
    pub config: Arc<Config>,
    pub metrics: Arc<Metrics>,
    pub ids: Arc<IdAllocator>,
    pub budget: Arc<budget::QueueBudget>,
    pub rate_limiter: actix::Addr<rate_limiter::RateLimiter>,
    pub db_writer: actix::Addr<db_writer::DbWriter>,
    /// How many refused handshakes may still be recorded as session rows this second.
    pub refusal_records: connection::RefusalRecords,
}

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
        event: Event,
        /// The event's JSON form, made once for storage and the live stream.
        json: Arc<str>,
    },
    Failed {
        raw: Bytes,
        error: String,
    },
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
/// Sent by `connection` to `rate_limiter` after each read (once the budget has room), and on by
/// `rate_limiter` to `db_writer` with the events it admitted and the gaps it closed.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct EventBatch {
    pub node_id: Arc<str>,
    pub session_id: i64,
    /// When the read that produced these frames completed, for the ingest-latency histogram.
    pub read_at: Instant,
    pub events: Vec<IngestEvent>,
    pub counts: SessionCounts,
    /// Frames of discriminators JIP-3 does not define, per discriminator (empty, and so not
    /// allocated, for nearly every batch).
    pub undefined: Vec<(u8, i64)>,
    pub gaps: Vec<RateLimitGap>,
}

/// A node connection ended. Sent by `connection` when it stops, through `rate_limiter` (which
/// closes the session's open gap) to `db_writer` (which records it in order after the session's
/// last batch).
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct SessionEnded {
    pub node_id: Arc<str>,
    pub session_id: i64,
    pub at: DateTime<Utc>,
    pub reason: String,
}

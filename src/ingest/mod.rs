//! The node side: one actor per TCP connection frames and decodes what a node sends, takes room
//! in the shared [`budget::QueueBudget`], and hands each read's events to the [`rate_limiter`],
//! which passes what it admits on to the database writer (persist) and the live stream (live).
//!
//! ```text
//! listener ──starts──▶ connection (one per node) ──EventBatch──▶ rate_limiter ──EventBatches──▶ persist
//!                                                                       └──LiveFeed──▶ live
//! ```
//!
//! Each edge has a stated policy for a receiver that is behind: the connection *waits* for room in
//! the budget before it hands a batch on (and so stops reading its socket: TCP pushes back on the
//! node); every later edge can hold no more than that budget by construction, so its unbounded
//! `do_send` cannot grow memory without limit. The live stream's edge is bounded in bytes and
//! never waits (see `live`).

pub mod access;
pub mod budget;
pub mod connection;
pub mod listener;
pub mod rate_limiter;
mod read_chunks;
pub mod references;

use std::sync::Arc;

use crate::config::Config;
use crate::messages::WriterInbox;
use crate::metrics::Metrics;
use crate::store::ids::IdAllocator;

/// What every node connection needs: settings, metrics, the id source, the queue budget, and
/// where to send what it reads.
pub struct IngestContext {
    pub config: Arc<Config>,
    pub metrics: Arc<Metrics>,
    pub ids: Arc<IdAllocator>,
    pub budget: Arc<budget::QueueBudget>,
    /// Same wing: the connection hands its batches and session ends to the rate limiter.
    pub rate_limiter: actix::Addr<rate_limiter::RateLimiter>,
    /// The other wing: node and refusal bookkeeping go straight to the writer.
    pub writer: WriterInbox,
    /// How many refused handshakes may still be recorded as session rows this second.
    pub refusal_records: connection::RefusalRecords,
    pub access: access::AccessRules,
    /// Which connection speaks for each node.
    pub claims: access::PeerClaims,
}

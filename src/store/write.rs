//! The writes of the ingest path. Event batches go in one statement (`unnest` of one array per
//! column: no bind-parameter ceiling, one round trip). Counters derived from what was really
//! inserted are rolled up separately and serially (see `Rollup`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::sql_types::{Array, BigInt, Bytea, Integer, Nullable, SmallInt, Text, Timestamptz};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use super::blocks::BlockChanges;
use super::models::{NewBlock, NewDecodeFailure, NewSession, NodeConnection, RateLimitGap};
use super::packages::PackageChanges;
use super::peers::PeerChanges;
use super::schema::{blocks, decode_failures, node_sessions, nodes, rate_limit_gaps};
use super::StoreError;
use crate::jip3::events::{Event, STATUS};
use crate::jip3::failures;
use crate::jip3::{stored, Dialect};
use crate::messages::{BlockFacts, BlockStage};
use crate::time::round_down;

/// Rows per multi-row INSERT for the small tables: far below the 32,767 bind-parameter ceiling.
const INSERT_CHUNK: usize = 1000;

/// The events of one batch, column by column, as the `unnest` insert takes them.
#[derive(Debug, Default)]
pub struct EventColumns<'a> {
    pub id: Vec<i64>,
    pub created_at: Vec<DateTime<Utc>>,
    pub timestamp: Vec<DateTime<Utc>>,
    pub session_id: Vec<i64>,
    pub event_id: Vec<i64>,
    pub node_key: Vec<i32>,
    pub event_type: Vec<i16>,
    /// The event's fields as the node sent them (see `jip3::stored`).
    pub body: Vec<&'a [u8]>,
    /// Where its Event ID field points (see `messages::Reference::column`).
    pub ref_id: Vec<Option<i64>>,
}

impl EventColumns<'_> {
    pub fn len(&self) -> usize {
        self.id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.id.is_empty()
    }
}

/// Everything one batch writes, in one transaction, so a retry after any failure is exact.
#[derive(Debug, Default)]
pub struct BatchWrite<'a> {
    pub events: EventColumns<'a>,
    pub failures: Vec<NewDecodeFailure>,
    pub gaps: Vec<RateLimitGap>,
    pub blocks: Vec<NewBlock>,
}

/// How many events of one session, type and hour were newly inserted (a retried write reports
/// only the rows it really added).
#[derive(Debug, Clone, QueryableByName)]
pub struct InsertedCount {
    #[diesel(sql_type = BigInt)]
    pub session_id: i64,
    #[diesel(sql_type = SmallInt)]
    pub event_type: i16,
    #[diesel(sql_type = Timestamptz)]
    pub minute: DateTime<Utc>,
    #[diesel(sql_type = BigInt)]
    pub inserted: i64,
}

/// The rows of a batch. `unnest` in the select list, not in FROM: the same rows (the arrays are
/// of equal length, so they unnest in step), but streamed instead of first collected in a
/// tuplestore, which made each insert about a sixth dearer for PostgreSQL.
macro_rules! event_rows {
    () => {
        "SELECT unnest($1::int8[]), unnest($2::timestamptz[]), unnest($3::timestamptz[]),
       unnest($4::int8[]), unnest($5::int8[]), unnest($6::int4[]), unnest($7::int2[]),
       unnest($8::bytea[]), unnest($9::int8[])"
    };
}

/// A first attempt: a plain insert. `ON CONFLICT` costs PostgreSQL about a fifth more per row,
/// and a batch that was never tried cannot conflict (its ids are fresh).
const INSERT_EVENTS: &str = concat!(
    "INSERT INTO event_rows (id, created_at, timestamp, session_id, event_id, node_key,
                        event_type, body, ref_id)\n",
    event_rows!()
);

/// A retry (the earlier attempt may have committed): skips rows already there and reports only
/// the rows it really added.
const INSERT_EVENTS_IDEMPOTENT: &str = concat!(
    "WITH ins AS (
    INSERT INTO event_rows (id, created_at, timestamp, session_id, event_id, node_key,
                            event_type, body, ref_id)\n",
    event_rows!(),
    "
    ON CONFLICT DO NOTHING
    RETURNING session_id, event_type, created_at
)
SELECT session_id, event_type, date_trunc('minute', created_at, 'UTC') AS minute,
       count(*) AS inserted
FROM ins GROUP BY 1, 2, 3"
);

impl<'a> EventColumns<'a> {
    /// The insert statement with every column bound.
    fn query(&'a self, sql: &'static str) -> BoxedSqlQuery<'a, Pg, SqlQuery> {
        diesel::sql_query(sql)
            .into_boxed()
            .bind::<Array<BigInt>, _>(&self.id)
            .bind::<Array<Timestamptz>, _>(&self.created_at)
            .bind::<Array<Timestamptz>, _>(&self.timestamp)
            .bind::<Array<BigInt>, _>(&self.session_id)
            .bind::<Array<BigInt>, _>(&self.event_id)
            .bind::<Array<Integer>, _>(&self.node_key)
            .bind::<Array<SmallInt>, _>(&self.event_type)
            .bind::<Array<Bytea>, _>(&self.body)
            .bind::<Array<Nullable<BigInt>>, _>(&self.ref_id)
    }

    /// Rows per session, type and minute: what a plain insert that succeeded added.
    fn counts(&self) -> Vec<InsertedCount> {
        let mut counts: HashMap<CountKey, i64> = HashMap::new();
        for i in 0..self.len() {
            let minute = round_down(self.created_at[i], chrono::TimeDelta::minutes(1));
            *counts
                .entry((self.session_id[i], self.event_type[i], minute))
                .or_default() += 1;
        }
        counts
            .into_iter()
            .map(
                |((session_id, event_type, minute), inserted)| InsertedCount {
                    session_id,
                    event_type,
                    minute,
                    inserted,
                },
            )
            .collect()
    }
}

/// Writes one batch in one transaction. With `idempotent` (a retry) every insert skips rows
/// already present, so writing the same batch twice stores each row once.
pub async fn write_batch(
    conn: &mut AsyncPgConnection,
    batch: &BatchWrite<'_>,
    idempotent: bool,
) -> Result<Vec<InsertedCount>, StoreError> {
    let counts = conn
        .transaction::<_, diesel::result::Error, _>(async |conn| {
            let events = &batch.events;
            let counts = if events.is_empty() {
                Vec::new()
            } else if idempotent {
                events
                    .query(INSERT_EVENTS_IDEMPOTENT)
                    .load::<InsertedCount>(conn)
                    .await?
            } else {
                events.query(INSERT_EVENTS).execute(conn).await?;
                events.counts()
            };
            for chunk in batch.failures.chunks(INSERT_CHUNK) {
                diesel::insert_into(decode_failures::table)
                    .values(chunk)
                    .on_conflict_do_nothing()
                    .execute(conn)
                    .await?;
            }
            for chunk in batch.gaps.chunks(INSERT_CHUNK) {
                diesel::insert_into(rate_limit_gaps::table)
                    .values(chunk)
                    .on_conflict_do_nothing()
                    .execute(conn)
                    .await?;
            }
            for chunk in batch.blocks.chunks(INSERT_CHUNK) {
                diesel::insert_into(blocks::table)
                    .values(chunk)
                    .on_conflict_do_nothing()
                    .execute(conn)
                    .await?;
            }
            Ok(counts)
        })
        .await?;
    Ok(counts)
}

/// Changes to one session's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionCounts {
    pub received: i64,
    pub stored: i64,
    pub rate_limited: i64,
    pub decode_failures: i64,
    pub dropped: i64,
    pub dangling_references: i64,
}

impl SessionCounts {
    /// Saturating: the dropped count comes from the node and can be anything up to i64::MAX.
    pub fn add(&mut self, other: &SessionCounts) {
        self.received = self.received.saturating_add(other.received);
        self.stored = self.stored.saturating_add(other.stored);
        self.rate_limited = self.rate_limited.saturating_add(other.rate_limited);
        self.decode_failures = self.decode_failures.saturating_add(other.decode_failures);
        self.dropped = self.dropped.saturating_add(other.dropped);
        self.dangling_references = self
            .dangling_references
            .saturating_add(other.dangling_references);
    }
}

/// The latest Status event of a node.
#[derive(Debug, Clone)]
pub struct LatestStatus {
    pub event_row: i64,
    pub timestamp: DateTime<Utc>,
    /// The Status event's fields as sent, and how its session reads them: its JSON is made when
    /// the rollup is written (the latest per node, not every Status that arrived).
    pub fields: Bytes,
    pub dialect: Dialect,
}

impl LatestStatus {
    /// Its JSON (for `node_status`) and the guarantees it counts per core, decoding it once.
    fn read(&self) -> (String, Option<Vec<u8>>) {
        match stored::decode(STATUS, &self.fields, self.dialect) {
            Ok(event) => {
                let cores = match &event {
                    Event::Status {
                        guarantees_by_core, ..
                    } => Some(guarantees_by_core.0.clone()),
                    _ => None,
                };
                let json = serde_json::to_string(&event).expect("events always serialise");
                (json, cores)
            }
            Err(_) => (stored::json(STATUS, &self.fields, self.dialect), None),
        }
    }
}

/// Sums each core's guarantees over the Status reports of one rollup, per minute of the
/// reports' own time: (minute, core) → (reports, guarantees).
fn core_status_sums(
    status: &[(&Arc<str>, &LatestStatus)],
    cores: &[Option<Vec<u8>>],
) -> BTreeMap<(DateTime<Utc>, i32), (i64, i64)> {
    let mut sums: BTreeMap<(DateTime<Utc>, i32), (i64, i64)> = BTreeMap::new();
    for ((_, latest), counts) in status.iter().zip(cores) {
        let minute = round_down(latest.timestamp, chrono::TimeDelta::minutes(1));
        for (core, &guarantees) in counts.iter().flatten().enumerate() {
            let sum = sums.entry((minute, core as i32)).or_default();
            sum.0 += 1;
            sum.1 += i64::from(guarantees);
        }
    }
    sums
}

/// (session, event type, minute) of the event counts.
pub type CountKey = (i64, i16, DateTime<Utc>);

/// Derived state that many batches touch (node and session counters, event counts per minute and
/// hour, latest status), accumulated in memory and written in one serial transaction about once
/// a second (the event counts less often, see `DbWriter::queue_rollup`). Writing it per batch would make the
/// parallel batch writes queue on the same rows.
///
/// Counts are kept per session (integer keys, no string copied or hashed per count: this runs for
/// nearly every stored event) and summed per node when written.
#[derive(Debug, Default)]
pub struct Rollup {
    /// session → (its node, the newest frame received on it)
    pub session_nodes: HashMap<i64, (Arc<str>, Option<DateTime<Utc>>)>,
    pub sessions: HashMap<i64, SessionCounts>,
    /// (session, event type, minute) → (the session's node, events stored): the minute and the
    /// hourly stats are both summed from it.
    pub counts: HashMap<CountKey, (Arc<str>, i64)>,
    pub status: HashMap<Arc<str>, LatestStatus>,
    /// (session, undefined discriminator) → (the session's node, frames received)
    pub undefined: HashMap<(i64, u8), (Arc<str>, i64)>,
    /// (node, failure event type, hour, reason) → events stored; written with the counts.
    pub reasons: HashMap<ReasonKey, i64>,
    /// (session, clock skew bucket) → (the session's node, events received); see `jip3::skew`.
    pub skew: HashMap<(i64, i8), (Arc<str>, i64)>,
    /// Each node's newest best and finalized block seen since the last rollup.
    pub slots: HashMap<Arc<str>, NodeSlots>,
    /// What the block tracker saw since the last rollup.
    pub blocks: BlockChanges,
    /// What the work-package tracker saw since the last rollup.
    pub packages: PackageChanges,
    /// What the peer tracker saw since the last rollup.
    pub peers: PeerChanges,
}

/// A node's newest best and finalized block: (event row, slot) of each.
#[derive(Debug, Default, Clone, Copy)]
pub struct NodeSlots {
    pub best: Option<(i64, i64)>,
    pub finalized: Option<(i64, i64)>,
}

/// (node, failure event type, hour, reason) of the failure reason counts.
pub type ReasonKey = (Arc<str>, i16, DateTime<Utc>, String);

impl Rollup {
    pub fn is_empty(&self) -> bool {
        self.session_nodes.is_empty()
            && self.sessions.is_empty()
            && self.counts.is_empty()
            && self.status.is_empty()
            && self.undefined.is_empty()
            && self.reasons.is_empty()
            && self.skew.is_empty()
            && self.slots.is_empty()
            && self.blocks.is_empty()
            && self.packages.is_empty()
            && self.peers.is_empty()
    }

    /// Notes a best or finalized block of `node_id` stored as row `event_row`.
    pub fn block(&mut self, node_id: &Arc<str>, event_row: i64, facts: &BlockFacts) {
        let Some(slot) = facts.slot else {
            return;
        };
        let slots = self.slots.entry(node_id.clone()).or_default();
        let newest = match facts.stage {
            BlockStage::Best => &mut slots.best,
            BlockStage::Finalized => &mut slots.finalized,
            _ => return,
        };
        if newest.is_none_or(|(row, _)| row < event_row) {
            *newest = Some((event_row, i64::from(slot)));
        }
    }

    /// Counts `events` received on a session with clock skew `bucket`.
    pub fn skew(&mut self, session_id: i64, node_id: &Arc<str>, bucket: i8, events: u32) {
        self.skew
            .entry((session_id, bucket))
            .or_insert_with(|| (node_id.clone(), 0))
            .1 += i64::from(events);
    }

    /// Counts a stored failure event's reason, in the hour it was received.
    pub fn reason(
        &mut self,
        node_id: &Arc<str>,
        event_type: u8,
        received_at: DateTime<Utc>,
        reason: String,
    ) {
        let hour = round_down(received_at, chrono::TimeDelta::hours(1));
        *self
            .reasons
            .entry((node_id.clone(), i16::from(event_type), hour, reason))
            .or_default() += 1;
    }

    /// Counts frames of a discriminator JIP-3 does not define.
    pub fn undefined(&mut self, session_id: i64, node_id: &Arc<str>, discriminator: u8, n: i64) {
        self.undefined
            .entry((session_id, discriminator))
            .or_insert_with(|| (node_id.clone(), 0))
            .1 += n;
    }

    /// Notes which node a session belongs to and, if frames were received, the newest one.
    pub fn session_seen(&mut self, session_id: i64, node_id: &Arc<str>, at: Option<DateTime<Utc>>) {
        let entry = self
            .session_nodes
            .entry(session_id)
            .or_insert_with(|| (node_id.clone(), None));
        entry.1 = entry.1.max(at);
    }

    pub fn session(&mut self, session_id: i64) -> &mut SessionCounts {
        self.sessions.entry(session_id).or_default()
    }

    /// Counts rows that a batch write of `node_id` really inserted.
    pub fn add_inserted(&mut self, node_id: &Arc<str>, count: &InsertedCount) {
        self.session_seen(count.session_id, node_id, None);
        self.session(count.session_id).stored += count.inserted;
        self.counts
            .entry((count.session_id, count.event_type, count.minute))
            .or_insert_with(|| (node_id.clone(), 0))
            .1 += count.inserted;
    }

    pub fn status(&mut self, node_id: &Arc<str>, status: LatestStatus) {
        match self.status.get(node_id) {
            Some(known) if known.event_row > status.event_row => {}
            _ => {
                self.status.insert(node_id.clone(), status);
            }
        }
    }

    /// Per node: (events stored, newest frame received), in node order.
    fn node_totals(&self) -> BTreeMap<&str, (i64, Option<DateTime<Utc>>)> {
        let mut nodes: BTreeMap<&str, (i64, Option<DateTime<Utc>>)> = BTreeMap::new();
        for (session_id, (node_id, seen)) in &self.session_nodes {
            let stored = self.sessions.get(session_id).map_or(0, |c| c.stored);
            let node = nodes.entry(node_id).or_default();
            node.0 += stored;
            node.1 = node.1.max(*seen);
        }
        nodes
    }

    /// Events per (node, type, the latest minute with any), in key order.
    fn type_totals(&self) -> BTreeMap<(&str, i16, DateTime<Utc>), i64> {
        let mut latest: BTreeMap<(&str, i16), (DateTime<Utc>, i64)> = BTreeMap::new();
        for ((_, event_type, minute), (node_id, stored)) in &self.counts {
            let entry = latest
                .entry((&**node_id, *event_type))
                .or_insert((*minute, 0));
            entry.0 = entry.0.max(*minute);
            entry.1 += stored;
        }
        latest
            .into_iter()
            .map(|((node, event_type), (minute, n))| ((node, event_type, minute), n))
            .collect()
    }

    /// Events per (node, type, time rounded down to `unit`), in key order (sessions of one node
    /// summed: an upsert may touch each row once).
    fn totals(&self, unit: chrono::TimeDelta) -> BTreeMap<(&str, i16, DateTime<Utc>), i64> {
        let mut totals = BTreeMap::new();
        for ((_, event_type, minute), (node_id, stored)) in &self.counts {
            *totals
                .entry((&**node_id, *event_type, round_down(*minute, unit)))
                .or_default() += stored;
        }
        totals
    }
}

const ROLLUP_NODES: &str = "\
UPDATE nodes SET event_count = nodes.event_count + v.n,
                 last_seen_at = GREATEST(nodes.last_seen_at, v.seen)
FROM unnest($1::text[], $2::int8[], $3::timestamptz[]) AS v(node_id, n, seen)
WHERE nodes.node_id = v.node_id";

/// The dropped count is the node's own word and saturates at the largest `bigint` instead of
/// failing the whole rollup (a hostile `Dropped` near 2^63 did that, for ever).
const ROLLUP_SESSIONS: &str = "\
UPDATE node_sessions s SET
    events_received = s.events_received + v.received,
    events_stored = s.events_stored + v.stored,
    events_rate_limited = s.events_rate_limited + v.rate_limited,
    decode_failures = s.decode_failures + v.failures,
    events_dropped = LEAST(s.events_dropped::numeric + v.dropped, 9223372036854775807)::bigint,
    dangling_references = s.dangling_references + v.dangling
FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::int8[], $5::int8[], $6::int8[], $7::int8[])
    AS v(session_id, received, stored, rate_limited, failures, dropped, dangling)
WHERE s.session_id = v.session_id";

const ROLLUP_HOURLY: &str = "\
INSERT INTO event_stats_hourly (node_id, event_type, hour, event_count)
SELECT * FROM unnest($1::text[], $2::int2[], $3::timestamptz[], $4::int8[])
ON CONFLICT (node_id, event_type, hour)
DO UPDATE SET event_count = event_stats_hourly.event_count + EXCLUDED.event_count";

/// Upserts counts per (event type, time) into `table` (`type_counts_minute`, `…_hourly`).
fn upsert_type_counts(table: &str, time: &str) -> String {
    format!(
        "INSERT INTO {table} ({time}, event_count, event_type) \
         SELECT v.t, v.n, v.event_type \
         FROM unnest($1::int2[], $2::timestamptz[], $3::int8[]) AS v(event_type, t, n) \
         ON CONFLICT ({time}, event_type) \
         DO UPDATE SET event_count = {table}.event_count + EXCLUDED.event_count"
    )
}

/// Upserts counts per (node, time) into `table`; nodes are named by their key there, as in
/// `event_rows` (every node with events has one).
fn upsert_node_counts(table: &str, time: &str) -> String {
    format!(
        "INSERT INTO {table} ({time}, event_count, node_key) \
         SELECT v.t, v.n, k.node_key \
         FROM unnest($1::text[], $2::timestamptz[], $3::int8[]) AS v(node_id, t, n) \
         JOIN node_keys k ON k.node_id = v.node_id \
         ON CONFLICT ({time}, node_key) \
         DO UPDATE SET event_count = {table}.event_count + EXCLUDED.event_count"
    )
}

const ROLLUP_NODE_TYPES: &str = "\
INSERT INTO node_event_types (last_minute, event_count, node_key, event_type)
SELECT v.last_minute, v.n, k.node_key, v.event_type
FROM unnest($1::text[], $2::int2[], $3::timestamptz[], $4::int8[])
    AS v(node_id, event_type, last_minute, n)
JOIN node_keys k ON k.node_id = v.node_id
ON CONFLICT (node_key, event_type)
DO UPDATE SET event_count = node_event_types.event_count + EXCLUDED.event_count,
    last_minute = GREATEST(node_event_types.last_minute, EXCLUDED.last_minute)";

const ROLLUP_FAILURE_COUNTS: &str = "\
INSERT INTO failure_counts_hourly (hour, event_type, node_key, event_count)
SELECT v.hour, v.event_type, k.node_key, v.n
FROM unnest($1::text[], $2::int2[], $3::timestamptz[], $4::int8[])
    AS v(node_id, event_type, hour, n)
JOIN node_keys k ON k.node_id = v.node_id
ON CONFLICT (hour, event_type, node_key)
DO UPDATE SET event_count = failure_counts_hourly.event_count + EXCLUDED.event_count";

const ROLLUP_REASONS: &str = "\
INSERT INTO failure_reasons (hour, event_count, node_key, event_type, reason)
SELECT v.hour, v.n, k.node_key, v.event_type, v.reason
FROM unnest($1::text[], $2::int2[], $3::timestamptz[], $4::text[], $5::int8[])
    AS v(node_id, event_type, hour, reason, n)
JOIN node_keys k ON k.node_id = v.node_id
ON CONFLICT (hour, event_type, node_key, reason)
DO UPDATE SET event_count = failure_reasons.event_count + EXCLUDED.event_count";

const ROLLUP_SKEW: &str = "\
INSERT INTO session_clock_skew (session_id, bucket, node_id, event_count)
SELECT * FROM unnest($1::int8[], $2::int2[], $3::text[], $4::int8[])
ON CONFLICT (session_id, bucket)
DO UPDATE SET event_count = session_clock_skew.event_count + EXCLUDED.event_count";

const ROLLUP_STATUS: &str = "\
INSERT INTO node_status (node_id, event_row, timestamp, data)
SELECT * FROM unnest($1::text[], $2::int8[], $3::timestamptz[], $4::text[]::jsonb[])
ON CONFLICT (node_id) DO UPDATE SET event_row = EXCLUDED.event_row,
    timestamp = EXCLUDED.timestamp, data = EXCLUDED.data
WHERE node_status.event_row < EXCLUDED.event_row";

const ROLLUP_CORE_STATUS: &str = "\
INSERT INTO core_status_minute (minute, core, samples, guarantees)
SELECT * FROM unnest($1::timestamptz[], $2::int4[], $3::int8[], $4::int8[])
ON CONFLICT (minute, core) DO UPDATE SET
    samples = core_status_minute.samples + EXCLUDED.samples,
    guarantees = core_status_minute.guarantees + EXCLUDED.guarantees";

/// Per kind, the newer row wins (GREATEST ignores a NULL).
const ROLLUP_SLOTS: &str = "\
INSERT INTO node_latest_slots AS t (node_id, best_row, best_slot, finalized_row, finalized_slot)
SELECT * FROM unnest($1::text[], $2::int8[], $3::int8[], $4::int8[], $5::int8[])
ON CONFLICT (node_id) DO UPDATE SET
    best_slot = CASE WHEN EXCLUDED.best_row > coalesce(t.best_row, -1)
        THEN EXCLUDED.best_slot ELSE t.best_slot END,
    best_row = GREATEST(t.best_row, EXCLUDED.best_row),
    finalized_slot = CASE WHEN EXCLUDED.finalized_row > coalesce(t.finalized_row, -1)
        THEN EXCLUDED.finalized_slot ELSE t.finalized_slot END,
    finalized_row = GREATEST(t.finalized_row, EXCLUDED.finalized_row)";

const ROLLUP_UNDEFINED: &str = "\
INSERT INTO session_undefined_events (session_id, discriminator, node_id, event_count)
SELECT * FROM unnest($1::int8[], $2::int2[], $3::text[], $4::int8[])
ON CONFLICT (session_id, discriminator)
DO UPDATE SET event_count = session_undefined_events.event_count + EXCLUDED.event_count";

/// Writes a rollup, rows in key order so concurrent writers lock alike. Call inside a transaction.
pub async fn write_rollup(
    conn: &mut AsyncPgConnection,
    rollup: &Rollup,
) -> Result<(), diesel::result::Error> {
    let nodes: Vec<_> = rollup.node_totals().into_iter().collect();
    let mut sessions: Vec<_> = rollup.sessions.iter().collect();
    sessions.sort_by_key(|(id, _)| **id);
    let hourly = rollup.totals(chrono::TimeDelta::hours(1));
    let failure_counts: BTreeMap<_, _> = hourly
        .iter()
        .filter(|((_, event_type, _), _)| u8::try_from(*event_type).is_ok_and(failures::is_counted))
        .map(|(k, n)| (*k, *n))
        .collect();
    let counts = [
        (ROLLUP_HOURLY, &hourly),
        (ROLLUP_NODE_TYPES, &rollup.type_totals()),
        (ROLLUP_FAILURE_COUNTS, &failure_counts),
    ];
    let minutely = rollup.totals(chrono::TimeDelta::minutes(1));
    let thin = [
        (
            &minutely,
            "type_counts_minute",
            "node_counts_minute",
            "minute",
        ),
        (&hourly, "type_counts_hourly", "node_counts_hourly", "hour"),
    ];
    let mut status: Vec<_> = rollup.status.iter().collect();
    status.sort_by(|a, b| a.0.cmp(b.0));
    let (status_json, status_cores): (Vec<String>, Vec<Option<Vec<u8>>>) =
        status.iter().map(|(_, s)| s.read()).unzip();
    let core_status = core_status_sums(&status, &status_cores);
    let mut reasons: Vec<_> = rollup.reasons.iter().collect();
    reasons.sort();
    let mut skew: Vec<_> = rollup.skew.iter().collect();
    skew.sort_by_key(|(key, _)| **key);
    let mut undefined: Vec<_> = rollup.undefined.iter().collect();
    undefined.sort_by_key(|(key, _)| **key);
    let mut slots: Vec<_> = rollup.slots.iter().collect();
    slots.sort_by(|a, b| a.0.cmp(b.0));

    {
        if !nodes.is_empty() {
            diesel::sql_query(ROLLUP_NODES)
                .bind::<Array<Text>, _>(nodes.iter().map(|n| n.0).collect::<Vec<_>>())
                .bind::<Array<BigInt>, _>(nodes.iter().map(|n| n.1 .0).collect::<Vec<_>>())
                .bind::<Array<Nullable<Timestamptz>>, _>(
                    nodes.iter().map(|n| n.1 .1).collect::<Vec<_>>(),
                )
                .execute(conn)
                .await?;
        }
        if !sessions.is_empty() {
            let column = |f: fn(&SessionCounts) -> i64| -> Vec<i64> {
                sessions.iter().map(|(_, c)| f(c)).collect()
            };
            diesel::sql_query(ROLLUP_SESSIONS)
                .bind::<Array<BigInt>, _>(sessions.iter().map(|(id, _)| **id).collect::<Vec<_>>())
                .bind::<Array<BigInt>, _>(column(|c| c.received))
                .bind::<Array<BigInt>, _>(column(|c| c.stored))
                .bind::<Array<BigInt>, _>(column(|c| c.rate_limited))
                .bind::<Array<BigInt>, _>(column(|c| c.decode_failures))
                .bind::<Array<BigInt>, _>(column(|c| c.dropped))
                .bind::<Array<BigInt>, _>(column(|c| c.dangling_references))
                .execute(conn)
                .await?;
        }
        for (totals, type_table, node_table, time) in thin {
            let mut by_type: BTreeMap<(i16, DateTime<Utc>), i64> = BTreeMap::new();
            let mut by_node: BTreeMap<(&str, DateTime<Utc>), i64> = BTreeMap::new();
            for ((node, event_type, at), n) in totals {
                *by_type.entry((*event_type, *at)).or_default() += n;
                *by_node.entry((node, *at)).or_default() += n;
            }
            if !by_type.is_empty() {
                diesel::sql_query(upsert_type_counts(type_table, time))
                    .bind::<Array<SmallInt>, _>(by_type.keys().map(|k| k.0).collect::<Vec<_>>())
                    .bind::<Array<Timestamptz>, _>(by_type.keys().map(|k| k.1).collect::<Vec<_>>())
                    .bind::<Array<BigInt>, _>(by_type.values().copied().collect::<Vec<_>>())
                    .execute(conn)
                    .await?;
                diesel::sql_query(upsert_node_counts(node_table, time))
                    .bind::<Array<Text>, _>(by_node.keys().map(|k| k.0).collect::<Vec<_>>())
                    .bind::<Array<Timestamptz>, _>(by_node.keys().map(|k| k.1).collect::<Vec<_>>())
                    .bind::<Array<BigInt>, _>(by_node.values().copied().collect::<Vec<_>>())
                    .execute(conn)
                    .await?;
            }
        }
        for (sql, totals) in counts.iter().filter(|(_, totals)| !totals.is_empty()) {
            diesel::sql_query(*sql)
                .bind::<Array<Text>, _>(totals.keys().map(|k| k.0).collect::<Vec<_>>())
                .bind::<Array<SmallInt>, _>(totals.keys().map(|k| k.1).collect::<Vec<_>>())
                .bind::<Array<Timestamptz>, _>(totals.keys().map(|k| k.2).collect::<Vec<_>>())
                .bind::<Array<BigInt>, _>(totals.values().copied().collect::<Vec<_>>())
                .execute(conn)
                .await?;
        }
        if !skew.is_empty() {
            diesel::sql_query(ROLLUP_SKEW)
                .bind::<Array<BigInt>, _>(skew.iter().map(|(k, _)| k.0).collect::<Vec<_>>())
                .bind::<Array<SmallInt>, _>(
                    skew.iter().map(|(k, _)| i16::from(k.1)).collect::<Vec<_>>(),
                )
                .bind::<Array<Text>, _>(skew.iter().map(|(_, v)| &*v.0).collect::<Vec<_>>())
                .bind::<Array<BigInt>, _>(skew.iter().map(|(_, v)| v.1).collect::<Vec<_>>())
                .execute(conn)
                .await?;
        }
        if !reasons.is_empty() {
            diesel::sql_query(ROLLUP_REASONS)
                .bind::<Array<Text>, _>(reasons.iter().map(|(k, _)| &*k.0).collect::<Vec<_>>())
                .bind::<Array<SmallInt>, _>(reasons.iter().map(|(k, _)| k.1).collect::<Vec<_>>())
                .bind::<Array<Timestamptz>, _>(reasons.iter().map(|(k, _)| k.2).collect::<Vec<_>>())
                .bind::<Array<Text>, _>(reasons.iter().map(|(k, _)| &k.3).collect::<Vec<_>>())
                .bind::<Array<BigInt>, _>(reasons.iter().map(|(_, n)| **n).collect::<Vec<_>>())
                .execute(conn)
                .await?;
        }
        if !status.is_empty() {
            diesel::sql_query(ROLLUP_STATUS)
                .bind::<Array<Text>, _>(status.iter().map(|s| &**s.0).collect::<Vec<_>>())
                .bind::<Array<BigInt>, _>(status.iter().map(|s| s.1.event_row).collect::<Vec<_>>())
                .bind::<Array<Timestamptz>, _>(
                    status.iter().map(|s| s.1.timestamp).collect::<Vec<_>>(),
                )
                .bind::<Array<Text>, _>(&status_json)
                .execute(conn)
                .await?;
        }
        if !core_status.is_empty() {
            diesel::sql_query(ROLLUP_CORE_STATUS)
                .bind::<Array<Timestamptz>, _>(core_status.keys().map(|k| k.0).collect::<Vec<_>>())
                .bind::<Array<Integer>, _>(core_status.keys().map(|k| k.1).collect::<Vec<_>>())
                .bind::<Array<BigInt>, _>(core_status.values().map(|v| v.0).collect::<Vec<_>>())
                .bind::<Array<BigInt>, _>(core_status.values().map(|v| v.1).collect::<Vec<_>>())
                .execute(conn)
                .await?;
        }
        if !slots.is_empty() {
            let column =
                |f: fn(&NodeSlots) -> Option<(i64, i64)>, slot: bool| -> Vec<Option<i64>> {
                    slots
                        .iter()
                        .map(|(_, s)| f(s).map(|(row, n)| if slot { n } else { row }))
                        .collect()
                };
            diesel::sql_query(ROLLUP_SLOTS)
                .bind::<Array<Text>, _>(slots.iter().map(|s| &**s.0).collect::<Vec<_>>())
                .bind::<Array<Nullable<BigInt>>, _>(column(|s| s.best, false))
                .bind::<Array<Nullable<BigInt>>, _>(column(|s| s.best, true))
                .bind::<Array<Nullable<BigInt>>, _>(column(|s| s.finalized, false))
                .bind::<Array<Nullable<BigInt>>, _>(column(|s| s.finalized, true))
                .execute(conn)
                .await?;
        }
        if !undefined.is_empty() {
            diesel::sql_query(ROLLUP_UNDEFINED)
                .bind::<Array<BigInt>, _>(undefined.iter().map(|u| u.0 .0).collect::<Vec<_>>())
                .bind::<Array<SmallInt>, _>(
                    undefined
                        .iter()
                        .map(|u| i16::from(u.0 .1))
                        .collect::<Vec<_>>(),
                )
                .bind::<Array<Text>, _>(undefined.iter().map(|u| &*u.1 .0).collect::<Vec<_>>())
                .bind::<Array<BigInt>, _>(undefined.iter().map(|u| u.1 .1).collect::<Vec<_>>())
                .execute(conn)
                .await?;
        }
        super::blocks::write(conn, &rollup.blocks).await?;
        super::packages::write(conn, &rollup.packages).await?;
        super::peers::write(conn, &rollup.peers).await?;
    }
    Ok(())
}

/// Records a session row: a connection's (inside [`record_connect`]) or a refused handshake's,
/// which has no node.
pub async fn record_session(
    conn: &mut AsyncPgConnection,
    session: &NewSession,
) -> Result<(), diesel::result::Error> {
    diesel::insert_into(node_sessions::table)
        .values(session)
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(())
}

/// Records a node's connection: its row (created, or refreshed with the new NodeInformation,
/// keeping counters and first-seen time) and a new session row. Call inside a transaction.
pub async fn record_connect(
    conn: &mut AsyncPgConnection,
    node: &NodeConnection,
    session: &NewSession,
) -> Result<(), diesel::result::Error> {
    let first_seen = node.connected_at.unwrap_or_else(Utc::now);
    diesel::insert_into(nodes::table)
        .values((node, nodes::first_seen_at.eq(first_seen)))
        .on_conflict(nodes::node_id)
        .do_update()
        .set(node)
        .execute(conn)
        .await?;
    record_session(conn, session).await
}

/// Records the end of a session. The node is marked disconnected only if this session is still
/// its current one: a newer connection of the same node may already have taken over. Call inside
/// a transaction.
pub async fn record_disconnect(
    conn: &mut AsyncPgConnection,
    node_id: &str,
    session_id: i64,
    at: DateTime<Utc>,
    reason: &str,
) -> Result<(), diesel::result::Error> {
    diesel::update(node_sessions::table.find(session_id))
        .set((
            node_sessions::disconnected_at.eq(at),
            node_sessions::disconnect_reason.eq(reason),
        ))
        .execute(conn)
        .await?;
    diesel::update(
        nodes::table
            .filter(nodes::node_id.eq(node_id))
            .filter(nodes::current_session_id.eq(session_id)),
    )
    .set((
        nodes::is_connected.eq(false),
        nodes::disconnected_at.eq(at),
        nodes::current_session_id.eq(None::<i64>),
    ))
    .execute(conn)
    .await?;
    Ok(())
}

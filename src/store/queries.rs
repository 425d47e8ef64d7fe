//! The reads of the REST API and the WebSocket stats, and the API's connection pools.
//!
//! Which index serves what (every `event_rows` read is a top-N by id, newest first; ids grow with
//! receive time, see `ids`):
//! - latest events of all nodes: each partition's primary key `(id, created_at)` scanned
//!   backwards, merged across partitions (Merge Append) and stopped after `limit` rows;
//! - latest events of one node: `event_rows_node_recent (node_key, id DESC)` the same way, the
//!   node's key found in `node_keys` first;
//! - latest events of some types: the primary key or the node's index the same way, filtered
//!   (no index per type: one cost PostgreSQL 40% more CPU per stored event);
//! - a cursor (`id < before`) starts each of these scans where the last page ended, and a time
//!   range (`created_at`) leaves out the partitions outside it;
//! - the node list: a sort of the node rows (a few thousand at most; an index on `last_seen_at`,
//!   updated every second, cost more than it saved);
//! - block stats: the node rows, then `node_latest_slots` per node.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::expression::SqlLiteral;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Nullable, SmallInt, Text, Timestamptz};
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use serde_json::value::RawValue;

use super::models::StoredEvent;
use super::schema::{node_status, nodes};
use super::{Pool, StoreError};
use crate::jip3::types::{to_hex, HexBytes};
use crate::jip3::{JamParams, ParamsLayout};
use crate::robust::lower_median;
use crate::time::rfc3339;

/// How long an API request waits for a pooled connection: a health check must answer promptly
/// when the database is down.
const API_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A pool for one HTTP worker thread. It connects lazily, so the API starts (and reports the
/// database unhealthy) while PostgreSQL is down. Call on the runtime that will use it.
pub fn api_pool(url: &str, size: u32) -> Pool {
    bb8::Pool::builder()
        .max_size(size)
        .connection_timeout(API_CONNECT_TIMEOUT)
        .build_unchecked(AsyncDieselConnectionManager::<AsyncPgConnection>::new(url))
}

/// A node as `GET /api/nodes` lists it.
#[derive(Debug, Queryable, Selectable, Serialize)]
#[diesel(table_name = nodes)]
pub struct NodeSummary {
    pub node_id: String,
    #[serde(serialize_with = "hex_bytes")]
    pub peer_id: Vec<u8>,
    pub implementation_name: String,
    pub implementation_version: String,
    /// The telemetry protocol version of its latest connection (0 or 1).
    pub protocol_version: i16,
    pub gp_version: String,
    /// `gp-0.7`, `gp-0.8` or `unknown`: which layout its JAM Parameters were read in.
    pub params_layout: String,
    pub is_connected: bool,
    pub event_count: i64,
    #[serde(serialize_with = "rfc3339::option")]
    pub connected_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "rfc3339::option")]
    pub last_seen_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "rfc3339::option")]
    pub disconnected_at: Option<DateTime<Utc>>,
    /// The slot of the node's latest BestBlockChanged (null before any).
    #[diesel(select_expression = latest_value(LATEST_BEST), select_expression_type = SqlLiteral<Nullable<BigInt>>)]
    pub best_slot: Option<i64>,
    /// The slot of the node's latest FinalizedBlockChanged (null before any).
    #[diesel(select_expression = latest_value(LATEST_FINALIZED), select_expression_type = SqlLiteral<Nullable<BigInt>>)]
    pub finalized_slot: Option<i64>,
    /// `num_peers` of the node's latest Status (null before any).
    #[diesel(select_expression = latest_value(LATEST_PEERS), select_expression_type = SqlLiteral<Nullable<BigInt>>)]
    pub peers: Option<i64>,
    /// Frames of its latest connection that did not decode (null before any connection).
    #[diesel(select_expression = latest_value(LATEST_DECODE_FAILURES), select_expression_type = SqlLiteral<Nullable<BigInt>>)]
    pub decode_failures: Option<i64>,
}

/// A primary-key probe of `node_latest_slots` per node (the rollup keeps it).
pub(super) const LATEST_BEST: &str =
    "(SELECT l.best_slot FROM node_latest_slots l WHERE l.node_id = nodes.node_id)";
pub(super) const LATEST_FINALIZED: &str =
    "(SELECT l.finalized_slot FROM node_latest_slots l WHERE l.node_id = nodes.node_id)";

const LATEST_PEERS: &str = "(SELECT (s.data->'Status'->>'num_peers')::int8 FROM node_status s \
     WHERE s.node_id = nodes.node_id)";
/// By `node_sessions_by_node`: one index probe per node.
const LATEST_DECODE_FAILURES: &str = "(SELECT s.decode_failures FROM node_sessions s \
     WHERE s.node_id = nodes.node_id ORDER BY s.connected_at DESC LIMIT 1)";

fn latest_value(subquery: &'static str) -> SqlLiteral<Nullable<BigInt>> {
    diesel::dsl::sql(subquery)
}

/// What the node said about itself in its NodeInformation.
#[derive(Debug, Queryable, Selectable, Serialize)]
#[diesel(table_name = nodes)]
pub struct NodeInfo {
    /// The JAM parameters' named constants (null where the layout lacks one, e.g. the
    /// validator count in GP 0.8); null for an unknown layout.
    #[diesel(column_name = jam_params)]
    pub params: Option<serde_json::Value>,
    #[diesel(embed)]
    #[serde(flatten)]
    pub params_blob: ParamsBlob,
    /// The genesis header hash, `0x`-prefixed hex.
    #[diesel(column_name = genesis_hash)]
    pub genesis: String,
    #[diesel(column_name = node_flags)]
    pub flags: i64,
    pub gp_version: String,
    pub note: String,
    /// The node's announced peer address (`ip`, `port`).
    #[diesel(column_name = peer_address)]
    pub address: serde_json::Value,
}

/// The JAM Parameters as the node sent them: `params_raw` (hex), and for an unknown layout a
/// `params_diagnosis` saying what was expected.
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = nodes)]
pub struct ParamsBlob {
    params_layout: String,
    jam_params_raw: Option<Vec<u8>>,
}

impl Serialize for ParamsBlob {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let raw = self.jam_params_raw.as_deref();
        let diagnosis = raw
            .filter(|_| self.params_layout == ParamsLayout::Unknown.name())
            .and_then(|raw| JamParams::Unknown(HexBytes(raw.to_vec())).diagnosis());
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("params_raw", &raw.map(to_hex))?;
        if let Some(diagnosis) = diagnosis {
            map.serialize_entry("params_diagnosis", &diagnosis)?;
        }
        map.end()
    }
}

/// A node as `GET /api/nodes/{node_id}` shows it.
#[derive(Debug, Queryable, Selectable, Serialize)]
#[diesel(table_name = nodes)]
pub struct NodeDetail {
    #[diesel(embed)]
    #[serde(flatten)]
    pub node: NodeSummary,
    #[diesel(embed)]
    pub node_info: NodeInfo,
    pub remote_address: Option<String>,
    #[serde(serialize_with = "rfc3339::serialize")]
    pub first_seen_at: DateTime<Utc>,
    /// Null before the node's first Status event.
    #[diesel(embed)]
    pub latest_status: Option<StatusReport>,
}

fn hex_bytes<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(bytes))
}

/// Every known node: connected first, then the most recently seen.
/// Which nodes `GET /api/nodes` lists.
#[derive(Debug, Default, Clone)]
pub struct NodeFilter {
    pub connected: Option<bool>,
    pub implementation: Option<String>,
    pub limit: i64,
    pub offset: i64,
}

/// One page of the nodes `filter` selects, in listing order, and how many it selects in all.
pub async fn list_nodes(
    conn: &mut AsyncPgConnection,
    filter: &NodeFilter,
) -> Result<(Vec<NodeSummary>, i64), StoreError> {
    let selected = || {
        let mut query = nodes::table.into_boxed();
        if let Some(connected) = filter.connected {
            query = query.filter(nodes::is_connected.eq(connected));
        }
        if let Some(name) = &filter.implementation {
            query = query.filter(nodes::implementation_name.eq(name.clone()));
        }
        query
    };
    let total = selected().count().get_result(conn).await?;
    let page = selected()
        .select(NodeSummary::as_select())
        .order((
            nodes::is_connected.desc(),
            nodes::last_seen_at.desc().nulls_last(),
            nodes::node_id,
        ))
        .limit(filter.limit)
        .offset(filter.offset)
        .load(conn)
        .await?;
    Ok((page, total))
}

/// A node's latest Status event: the node's time and the event's JSON form.
#[derive(Debug, Queryable, Selectable, Serialize)]
#[diesel(table_name = node_status)]
pub struct StatusReport {
    #[serde(serialize_with = "rfc3339::serialize")]
    pub timestamp: DateTime<Utc>,
    pub data: serde_json::Value,
}

pub async fn node(
    conn: &mut AsyncPgConnection,
    node_id: &str,
) -> Result<Option<NodeDetail>, StoreError> {
    Ok(nodes::table
        .left_join(node_status::table)
        .filter(nodes::node_id.eq(node_id))
        .select(NodeDetail::as_select())
        .first(conn)
        .await
        .optional()?)
}

pub async fn node_exists(conn: &mut AsyncPgConnection, node_id: &str) -> Result<bool, StoreError> {
    Ok(
        diesel::select(diesel::dsl::exists(nodes::table.find(node_id)))
            .get_result(conn)
            .await?,
    )
}

/// A stored event as the REST API shows it, its JSON made from its stored fields, with its
/// node's name and version.
#[derive(Debug, Serialize)]
pub struct EventRow {
    pub id: i64,
    pub node_id: String,
    pub event_id: i64,
    /// The JIP-3 discriminator.
    pub event_type: i16,
    /// The node's own time for the event.
    #[serde(serialize_with = "rfc3339::serialize")]
    pub timestamp: DateTime<Utc>,
    /// The event's JSON, as the codec writes it (the same bytes the WebSocket shows).
    pub data: Box<RawValue>,
    pub node_name: Option<String>,
    pub node_version: Option<String>,
    /// How many rows the top-N had before the page was cut to its byte bound.
    #[serde(skip)]
    pub available: i64,
}

/// A stored event with its node's names and the page's size before the cut.
#[derive(QueryableByName)]
struct StoredRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    node_id: String,
    #[diesel(sql_type = BigInt)]
    event_id: i64,
    #[diesel(sql_type = Timestamptz)]
    timestamp: DateTime<Utc>,
    #[diesel(embed)]
    stored: StoredEvent,
    #[diesel(sql_type = Nullable<Text>)]
    node_name: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    node_version: Option<String>,
    #[diesel(sql_type = BigInt)]
    available: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    ref_id: Option<i64>,
}

impl StoredRow {
    fn into_event(self) -> EventRow {
        EventRow {
            id: self.id,
            node_id: self.node_id,
            event_id: self.event_id,
            event_type: self.stored.event_type,
            timestamp: self.timestamp,
            data: RawValue::from_string(self.stored.json()).expect("the codec writes valid JSON"),
            node_name: self.node_name,
            node_version: self.node_version,
            available: self.available,
        }
    }
}

/// A page of events stops once its events' JSON passes this many bytes (the row that passes
/// it is the last one): a page of the largest events would otherwise be gigabytes. The JSON is
/// not made yet when the page is cut, so its size is taken as `messages::cost_of` estimates it.
pub const MAX_PAGE_BYTES: i64 = 8 << 20;

/// Which events a page holds: newest first, of one node or all, of some types or all, received
/// within `[from, to)`, with ids below `before` (the cursor: the last id of the previous page).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventFilter {
    pub node_id: Option<String>,
    /// Discriminators; empty = every type.
    pub types: Vec<u8>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub before: Option<i64>,
    pub limit: i64,
}

/// The newest events `filter` selects, cut to [`MAX_PAGE_BYTES`]. The inner query is the top-N
/// the indexes serve (see the module comment), bounded by the cursor and, through `created_at`,
/// to the partitions of the time range; the sizes are summed in the database, so rows past the
/// bound never leave it; the joins add the node's id and name and the session's dialect to the
/// rows kept, and each row's JSON is made here.
pub async fn recent_events(
    conn: &mut AsyncPgConnection,
    filter: &EventFilter,
) -> Result<Vec<EventRow>, StoreError> {
    let mut conditions = Vec::new();
    let mut next_bind = 2;
    let mut placeholder = || {
        next_bind += 1;
        format!("${}", next_bind - 1)
    };
    if filter.node_id.is_some() {
        conditions.push(format!(
            "node_key = (SELECT node_key FROM node_keys WHERE node_id = {})",
            placeholder()
        ));
    }
    if filter.from.is_some() {
        conditions.push(format!("created_at >= {}", placeholder()));
    }
    if filter.to.is_some() {
        conditions.push(format!("created_at < {}", placeholder()));
    }
    if filter.before.is_some() {
        conditions.push(format!("id < {}", placeholder()));
    }
    if !filter.types.is_empty() {
        conditions.push(format!("event_type = ANY({})", placeholder()));
    }
    let where_clause = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    let sql = event_page_sql(&format!(
        "SELECT * FROM event_rows {where_clause} ORDER BY id DESC LIMIT $1"
    ));
    let mut query = diesel::sql_query(sql)
        .into_boxed()
        .bind::<BigInt, _>(filter.limit);
    if let Some(node_id) = &filter.node_id {
        query = query.bind::<Text, _>(node_id.clone());
    }
    for time in [filter.from, filter.to].into_iter().flatten() {
        query = query.bind::<Timestamptz, _>(time);
    }
    if let Some(before) = filter.before {
        query = query.bind::<BigInt, _>(before);
    }
    if !filter.types.is_empty() {
        let types: Vec<i16> = filter.types.iter().map(|&t| i16::from(t)).collect();
        query = query.bind::<Array<SmallInt>, _>(types);
    }
    let rows: Vec<StoredRow> = query.load(conn).await?;
    Ok(rows.into_iter().map(StoredRow::into_event).collect())
}

/// Every event read: `inner` selects `event_rows` rows (newest first, at most `$1`); this cuts
/// them to [`MAX_PAGE_BYTES`] and adds the node's id and name and the session's dialect.
fn event_page_sql(inner: &str) -> String {
    format!(
        "SELECT e.id, k.node_id, e.event_id, e.event_type, e.timestamp, e.body, e.ref_id, \
         s.protocol_version, s.core_count, \
         n.implementation_name AS node_name, n.implementation_version AS node_version, \
         e.available \
         FROM (SELECT l.*, count(*) OVER () AS available, \
               sum({COST}) OVER (ORDER BY l.id DESC) - {COST} AS bytes_before \
               FROM ({inner}) l) e \
         JOIN node_keys k ON k.node_key = e.node_key \
         LEFT JOIN node_sessions s ON s.session_id = e.session_id \
         LEFT JOIN nodes n ON n.node_id = k.node_id \
         WHERE e.bytes_before < {MAX_PAGE_BYTES} ORDER BY e.id DESC"
    )
}

/// The events that refer to an event are looked for among this many next events of its node
/// (references point back seconds; an index on `ref_id` would cost every insert).
pub const REFERRERS_SEARCHED: i64 = 10_000;
/// At most this many of them are returned.
pub const MAX_REFERRERS: i64 = 100;

/// An event with the events it is linked with (`GET /api/events/{id}`).
pub struct Linked {
    pub event: EventRow,
    /// NULL: no Event ID field; 0: dangling; else the row it points at.
    pub ref_id: Option<i64>,
    /// The Event ID its field holds, if it has one.
    pub target_event_id: Option<u64>,
    pub refers_to: Option<EventRow>,
    pub referred_by: Vec<EventRow>,
}

async fn event_by_id(
    conn: &mut AsyncPgConnection,
    id: i64,
) -> Result<Option<StoredRow>, StoreError> {
    let sql = event_page_sql("SELECT * FROM event_rows WHERE id = $2 LIMIT $1");
    let mut rows: Vec<StoredRow> = diesel::sql_query(sql)
        .bind::<BigInt, _>(1)
        .bind::<BigInt, _>(id)
        .load(conn)
        .await?;
    Ok(rows.pop())
}

/// The event `id`, the event its Event ID field points at and the events that point at it;
/// `None` for an unknown id.
pub async fn linked_event(
    conn: &mut AsyncPgConnection,
    id: i64,
) -> Result<Option<Linked>, StoreError> {
    let Some(row) = event_by_id(conn, id).await? else {
        return Ok(None);
    };
    let ref_id = row.ref_id;
    let target_event_id = row.stored.reference_target();
    let refers_to = match ref_id {
        Some(target) if target > 0 => event_by_id(conn, target).await?.map(StoredRow::into_event),
        _ => None,
    };
    let sql = event_page_sql(&format!(
        "SELECT * FROM (SELECT * FROM event_rows WHERE node_key = \
             (SELECT node_key FROM node_keys WHERE node_id = $3) AND id > $2 \
             ORDER BY node_key, id LIMIT {REFERRERS_SEARCHED}) later \
         WHERE later.ref_id = $2 ORDER BY id DESC LIMIT $1"
    ));
    let referred_by: Vec<StoredRow> = diesel::sql_query(sql)
        .bind::<BigInt, _>(MAX_REFERRERS)
        .bind::<BigInt, _>(id)
        .bind::<Text, _>(&row.node_id)
        .load(conn)
        .await?;
    Ok(Some(Linked {
        event: row.into_event(),
        ref_id,
        target_event_id,
        refers_to,
        referred_by: referred_by.into_iter().map(StoredRow::into_event).collect(),
    }))
}

/// `messages::cost_of` in SQL, for a row `l`.
const COST: &str = "(3 * octet_length(l.body) + 128)";

/// `GET /api/stats`: blocks authored, and the network's best and finalized slots as most nodes
/// see them. One node (a forged or broken one) cannot move them: each is the median of the
/// nodes' latest reports, and nodes far ahead of it are listed as outliers.
#[derive(Debug, Clone, Serialize)]
pub struct BlockStats {
    pub total_blocks_authored: i64,
    /// The median of the nodes' latest best slots (the lower one of an even count; 0 before any).
    pub best_block: i64,
    /// The median of the nodes' latest finalized slots (0 before any).
    pub finalized_block: i64,
    /// The highest latest best slot any node reported, outliers included.
    pub best_block_highest: i64,
    /// How many nodes' latest best slots the median is taken over: the connected nodes, or
    /// while none is connected the most recently seen ones.
    pub reporting_nodes: usize,
    /// Nodes whose latest best slot is more than [`OUTLIER_SLOTS`] ahead of the median, highest
    /// first (at most [`MAX_OUTLIERS`]).
    pub outliers: Vec<Outlier>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Outlier {
    pub node_id: String,
    pub best_block: i64,
}

/// A node this far ahead of the median (a minute of 6 s slots) is not following the same chain.
pub const OUTLIER_SLOTS: i64 = 10;
pub const MAX_OUTLIERS: usize = 10;
/// The medians are taken over this many nodes at most (JAM's full validator set is 1,023), so
/// thousands of stale node rows cannot slow `/api/stats` down.
const MAX_REPORTING_NODES: usize = 1024;

/// A node's latest best and finalized slots (from [`LATEST_BEST`] and [`LATEST_FINALIZED`]).
#[derive(QueryableByName)]
pub(super) struct LatestSlots {
    #[diesel(sql_type = Text)]
    pub(super) node_id: String,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub(super) best: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub(super) finalized: Option<i64>,
}

impl BlockStats {
    fn from_latest(total_blocks_authored: i64, latest: Vec<LatestSlots>) -> Self {
        let best = lower_median(latest.iter().filter_map(|n| n.best).collect());
        let mut outliers: Vec<Outlier> = latest
            .iter()
            .filter_map(|n| Some((n, n.best?)))
            .filter(|(_, slot)| *slot > best.saturating_add(OUTLIER_SLOTS))
            .map(|(n, slot)| Outlier {
                node_id: n.node_id.clone(),
                best_block: slot,
            })
            .collect();
        outliers.sort_by_key(|o| std::cmp::Reverse(o.best_block));
        outliers.truncate(MAX_OUTLIERS);
        BlockStats {
            total_blocks_authored,
            best_block: best,
            finalized_block: lower_median(latest.iter().filter_map(|n| n.finalized).collect()),
            best_block_highest: latest.iter().filter_map(|n| n.best).max().unwrap_or(0),
            reporting_nodes: latest.iter().filter(|n| n.best.is_some()).count(),
            outliers,
        }
    }
}

pub async fn block_stats(conn: &mut AsyncPgConnection) -> Result<BlockStats, StoreError> {
    #[derive(QueryableByName)]
    struct Authored {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let authored: Authored =
        diesel::sql_query("SELECT count(*) AS n FROM blocks WHERE kind = 'authored'")
            .get_result(conn)
            .await?;
    // The nodes in order, then two `node_latest_slots` probes per node.
    let latest: Vec<LatestSlots> = diesel::sql_query(format!(
        "SELECT node_id, {LATEST_BEST} AS best, {LATEST_FINALIZED} AS finalized FROM nodes \
         WHERE is_connected OR NOT EXISTS (SELECT 1 FROM nodes WHERE is_connected) \
         ORDER BY is_connected DESC, last_seen_at DESC NULLS LAST LIMIT {MAX_REPORTING_NODES}"
    ))
    .load(conn)
    .await?;
    Ok(BlockStats::from_latest(authored.n, latest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, best: Option<i64>) -> LatestSlots {
        LatestSlots {
            node_id: id.into(),
            best,
            finalized: best.map(|b| b - 2),
        }
    }

    #[test]
    fn one_forged_node_cannot_set_the_network_best_block() {
        let stats = BlockStats::from_latest(
            3,
            vec![
                node("a", Some(100)),
                node("b", Some(101)),
                node("forged", Some(4_294_967_295)),
                node("silent", None),
            ],
        );
        assert_eq!(stats.best_block, 101);
        assert_eq!(stats.finalized_block, 99);
        assert_eq!(stats.best_block_highest, 4_294_967_295);
        assert_eq!(stats.reporting_nodes, 3);
        assert_eq!(
            stats.outliers,
            vec![Outlier {
                node_id: "forged".into(),
                best_block: 4_294_967_295
            }]
        );
        // Of two nodes the lower one counts; with none, 0.
        let two = BlockStats::from_latest(0, vec![node("a", Some(7)), node("b", Some(9_999))]);
        assert_eq!(two.best_block, 7);
        assert_eq!(BlockStats::from_latest(0, Vec::new()).best_block, 0);
    }
}

/// A node connected now, with what its handshake said.
#[derive(Debug, Queryable, Selectable, Serialize)]
#[diesel(table_name = nodes)]
pub struct ConnectedNode {
    pub node_id: String,
    pub protocol_version: i16,
    pub gp_version: String,
    pub params_layout: String,
}

/// The nodes connected now, by id.
pub async fn connected_nodes(
    conn: &mut AsyncPgConnection,
) -> Result<Vec<ConnectedNode>, StoreError> {
    Ok(nodes::table
        .filter(nodes::is_connected)
        .select(ConnectedNode::as_select())
        .order(nodes::node_id)
        .load(conn)
        .await?)
}

//! The reads of the REST API and the WebSocket stats, and the API's connection pools.
//!
//! Which index serves what (every `events` read is a top-N by id, newest first; ids grow with
//! receive time, see `ids`):
//! - latest events of all nodes: each partition's primary key `(id, created_at)` scanned
//!   backwards, merged across partitions (Merge Append) and stopped after `limit` rows;
//! - latest events of one node: `events_node_recent (node_key, id DESC)` the same way, the full
//!   `node_id` rechecked on those rows (the key is the id's first 8 bytes, see `ids::node_key`);
//! - the node list: `nodes_listing (is_connected DESC, last_seen_at DESC NULLS LAST)`;
//! - block stats: `blocks_by_kind (kind, slot DESC)`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::expression::SqlLiteral;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Json, Nullable, SmallInt, Text, Timestamptz};
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;

use super::schema::{node_status, nodes};
use super::{Pool, StoreError};
use crate::jip3::types::{to_hex, HexBytes};
use crate::jip3::{JamParams, ParamsLayout};
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
    #[diesel(select_expression = latest_slot(LATEST_BEST), select_expression_type = SqlLiteral<Nullable<BigInt>>)]
    pub best_slot: Option<i64>,
    /// The slot of the node's latest FinalizedBlockChanged (null before any).
    #[diesel(select_expression = latest_slot(LATEST_FINALIZED), select_expression_type = SqlLiteral<Nullable<BigInt>>)]
    pub finalized_slot: Option<i64>,
}

/// One index probe of `blocks_by_node` per node and kind: the newest row of that kind.
const LATEST_BEST: &str = "(SELECT b.slot FROM blocks b WHERE b.node_id = nodes.node_id \
     AND b.kind = 'best' ORDER BY b.event_row DESC LIMIT 1)";
const LATEST_FINALIZED: &str = "(SELECT b.slot FROM blocks b WHERE b.node_id = nodes.node_id \
     AND b.kind = 'finalized' ORDER BY b.event_row DESC LIMIT 1)";

fn latest_slot(subquery: &'static str) -> SqlLiteral<Nullable<BigInt>> {
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
pub async fn list_nodes(conn: &mut AsyncPgConnection) -> Result<Vec<NodeSummary>, StoreError> {
    Ok(nodes::table
        .select(NodeSummary::as_select())
        .order((
            nodes::is_connected.desc(),
            nodes::last_seen_at.desc().nulls_last(),
            nodes::node_id,
        ))
        .load(conn)
        .await?)
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

/// An event row as the REST API returns it, with its node's name and version.
#[derive(Debug, QueryableByName, Serialize)]
pub struct EventRow {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub node_id: String,
    #[diesel(sql_type = BigInt)]
    pub event_id: i64,
    /// The JIP-3 discriminator.
    #[diesel(sql_type = SmallInt)]
    pub event_type: i16,
    /// The node's own time for the event.
    #[diesel(sql_type = Timestamptz)]
    #[serde(serialize_with = "rfc3339::serialize")]
    pub timestamp: DateTime<Utc>,
    #[diesel(sql_type = Json)]
    pub data: serde_json::Value,
    #[diesel(sql_type = Nullable<Text>)]
    pub node_name: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub node_version: Option<String>,
}

/// The newest `limit` events, of one node or of all. The inner query is the top-N the indexes
/// serve (see the module comment); the join adds the node's name to those rows only.
pub async fn recent_events(
    conn: &mut AsyncPgConnection,
    node_id: Option<&str>,
    limit: i64,
) -> Result<Vec<EventRow>, StoreError> {
    let latest = match node_id {
        Some(_) => {
            "SELECT * FROM events WHERE node_key = $3 AND node_id = $2 ORDER BY id DESC LIMIT $1"
        }
        None => "SELECT * FROM events ORDER BY id DESC LIMIT $1",
    };
    let sql = format!(
        "SELECT e.id, e.node_id, e.event_id, e.event_type, e.timestamp, e.data, \
         n.implementation_name AS node_name, n.implementation_version AS node_version \
         FROM ({latest}) e LEFT JOIN nodes n ON n.node_id = e.node_id ORDER BY e.id DESC"
    );
    let query = diesel::sql_query(sql).bind::<BigInt, _>(limit);
    Ok(match node_id {
        Some(node_id) => {
            query
                .bind::<Text, _>(node_id)
                .bind::<BigInt, _>(super::ids::node_key(node_id))
                .load(conn)
                .await?
        }
        None => query.load(conn).await?,
    })
}

/// `GET /api/stats`: blocks authored, and the highest best and finalized slots any node
/// reported (0 before any).
#[derive(Debug, Clone, QueryableByName, Serialize)]
pub struct BlockStats {
    #[diesel(sql_type = BigInt)]
    pub total_blocks_authored: i64,
    #[diesel(sql_type = BigInt)]
    pub best_block: i64,
    #[diesel(sql_type = BigInt)]
    pub finalized_block: i64,
}

pub async fn block_stats(conn: &mut AsyncPgConnection) -> Result<BlockStats, StoreError> {
    Ok(diesel::sql_query(
        "SELECT (SELECT count(*) FROM blocks WHERE kind = 'authored') AS total_blocks_authored, \
         COALESCE((SELECT max(slot) FROM blocks WHERE kind = 'best'), 0) AS best_block, \
         COALESCE((SELECT max(slot) FROM blocks WHERE kind = 'finalized'), 0) AS finalized_block",
    )
    .get_result(conn)
    .await?)
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

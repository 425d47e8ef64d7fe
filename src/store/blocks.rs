//! Block propagation: the rows the block tracker (`analytics::blocks`) keeps — one per (slot,
//! header hash, node) in `block_sightings`, a summary per block in `slot_blocks` — and the
//! queries of `/api/slots`. No query here reads raw events.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use diesel::sql_types::{
    Array, BigInt, Bytea, Double, Integer, Nullable, SmallInt, Text, Timestamptz,
};
use diesel::QueryableByName;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;

use super::StoreError;

/// (slot, header hash, node) of a sighting.
pub type SightingKey = (u32, [u8; 32], Arc<str>);

/// What one node's events said about one block since the last rollup: each time is the earliest
/// the node reported, in its own clock. Merged into its row, the earliest time winning.
#[derive(Debug, Clone, PartialEq)]
pub struct Sighting {
    /// The earliest of every event about the block, failures included.
    pub first_at: DateTime<Utc>,
    pub announced_at: Option<DateTime<Utc>>,
    pub importing_at: Option<DateTime<Utc>>,
    pub executed_at: Option<DateTime<Utc>>,
    pub best_at: Option<DateTime<Utc>>,
    pub finalized_at: Option<DateTime<Utc>>,
    pub authored_at: Option<DateTime<Utc>>,
    /// The failure event's discriminator (44 verification, 46 execution) and reason.
    pub failure: Option<(u8, String)>,
}

impl Sighting {
    pub fn new(at: DateTime<Utc>) -> Sighting {
        Sighting {
            first_at: at,
            announced_at: None,
            importing_at: None,
            executed_at: None,
            best_at: None,
            finalized_at: None,
            authored_at: None,
            failure: None,
        }
    }
}

/// What the block tracker hands to the rollup.
#[derive(Debug, Default)]
pub struct BlockChanges {
    pub sightings: HashMap<SightingKey, Sighting>,
    /// (slot, node, when, reason) of each Authoring failed.
    pub authoring_failures: Vec<(u32, Arc<str>, DateTime<Utc>, String)>,
}

impl BlockChanges {
    pub fn is_empty(&self) -> bool {
        self.sightings.is_empty() && self.authoring_failures.is_empty()
    }
}

const UPSERT_SIGHTINGS: &str = "\
INSERT INTO block_sightings (slot, header_hash, node_key, first_at, announced_at, importing_at,
    executed_at, best_at, finalized_at, authored_at, failure, failure_reason)
SELECT v.slot, v.hash, k.node_key, v.first_at, v.announced_at, v.importing_at, v.executed_at,
    v.best_at, v.finalized_at, v.authored_at, v.failure, v.reason
FROM unnest($1::int8[], $2::bytea[], $3::text[], $4::timestamptz[], $5::timestamptz[],
    $6::timestamptz[], $7::timestamptz[], $8::timestamptz[], $9::timestamptz[], $10::timestamptz[],
    $11::int2[], $12::text[])
    AS v(slot, hash, node_id, first_at, announced_at, importing_at, executed_at, best_at,
         finalized_at, authored_at, failure, reason)
JOIN node_keys k ON k.node_id = v.node_id
ON CONFLICT (slot, header_hash, node_key) DO UPDATE SET
    first_at = LEAST(block_sightings.first_at, EXCLUDED.first_at),
    announced_at = LEAST(block_sightings.announced_at, EXCLUDED.announced_at),
    importing_at = LEAST(block_sightings.importing_at, EXCLUDED.importing_at),
    executed_at = LEAST(block_sightings.executed_at, EXCLUDED.executed_at),
    best_at = LEAST(block_sightings.best_at, EXCLUDED.best_at),
    finalized_at = LEAST(block_sightings.finalized_at, EXCLUDED.finalized_at),
    authored_at = LEAST(block_sightings.authored_at, EXCLUDED.authored_at),
    failure = COALESCE(block_sightings.failure, EXCLUDED.failure),
    failure_reason = COALESCE(block_sightings.failure_reason, EXCLUDED.failure_reason)";

/// Sums up the blocks named in $1/$2 from all their sightings (whoever wrote them), so the
/// summary is right however many servers contributed. A node's delay is from the block's
/// reference time (its author's Authored, else the first sighting) to its own first sighting.
const SUMMARISE_BLOCKS: &str = "\
WITH touched AS (SELECT * FROM unnest($1::int8[], $2::bytea[]) AS t(slot, header_hash)),
sightings AS (
    SELECT s.*, (extract(epoch FROM s.first_at - COALESCE(min(s.authored_at) OVER w,
               min(s.first_at) OVER w)) * 1000)::float8 AS delay_ms,
           (extract(epoch FROM s.finalized_at - COALESCE(min(s.authored_at) OVER w,
               min(s.first_at) OVER w)) * 1000)::float8 AS finalized_ms
    FROM block_sightings s JOIN touched t ON t.slot = s.slot AND t.header_hash = s.header_hash
    WINDOW w AS (PARTITION BY s.slot, s.header_hash))
INSERT INTO slot_blocks (slot, header_hash, first_at, authored_at, author_key, delay_p50_ms,
    delay_p90_ms, delay_max_ms, finalization_lag_ms, nodes_reached, nodes_imported,
    nodes_finalized, import_failures, execution_failures)
SELECT slot, header_hash, min(first_at), min(authored_at),
    min(node_key) FILTER (WHERE authored_at IS NOT NULL),
    percentile_cont(0.5) WITHIN GROUP (ORDER BY delay_ms) FILTER (WHERE authored_at IS NULL),
    percentile_cont(0.9) WITHIN GROUP (ORDER BY delay_ms) FILTER (WHERE authored_at IS NULL),
    max(delay_ms) FILTER (WHERE authored_at IS NULL),
    percentile_cont(0.5) WITHIN GROUP (ORDER BY finalized_ms),
    count(*) FILTER (WHERE authored_at IS NULL), count(importing_at), count(finalized_at),
    count(*) FILTER (WHERE failure = 44), count(*) FILTER (WHERE failure = 46)
FROM sightings GROUP BY slot, header_hash
ON CONFLICT (slot, header_hash) DO UPDATE SET
    first_at = EXCLUDED.first_at, authored_at = EXCLUDED.authored_at,
    author_key = EXCLUDED.author_key, delay_p50_ms = EXCLUDED.delay_p50_ms,
    delay_p90_ms = EXCLUDED.delay_p90_ms, delay_max_ms = EXCLUDED.delay_max_ms,
    finalization_lag_ms = EXCLUDED.finalization_lag_ms, nodes_reached = EXCLUDED.nodes_reached,
    nodes_imported = EXCLUDED.nodes_imported, nodes_finalized = EXCLUDED.nodes_finalized,
    import_failures = EXCLUDED.import_failures, execution_failures = EXCLUDED.execution_failures";

const INSERT_AUTHORING_FAILURES: &str = "\
INSERT INTO authoring_failures (slot, node_key, at, reason)
SELECT v.slot, k.node_key, v.at, v.reason
FROM unnest($1::int8[], $2::text[], $3::timestamptz[], $4::text[]) AS v(slot, node_id, at, reason)
JOIN node_keys k ON k.node_id = v.node_id
ON CONFLICT (slot, node_key) DO NOTHING";

/// Writes the sightings (in key order, so concurrent writers never deadlock), then sums up each
/// block they touched. Inside the rollup's transaction.
pub async fn write(
    conn: &mut AsyncPgConnection,
    changes: &BlockChanges,
) -> Result<(), diesel::result::Error> {
    if !changes.sightings.is_empty() {
        let sorted: BTreeMap<_, _> = changes.sightings.iter().collect();
        let time = |f: fn(&Sighting) -> Option<DateTime<Utc>>| -> Vec<Option<DateTime<Utc>>> {
            sorted.values().map(|s| f(s)).collect()
        };
        diesel::sql_query(UPSERT_SIGHTINGS)
            .bind::<Array<BigInt>, _>(sorted.keys().map(|k| i64::from(k.0)).collect::<Vec<_>>())
            .bind::<Array<Bytea>, _>(sorted.keys().map(|k| k.1.to_vec()).collect::<Vec<_>>())
            .bind::<Array<Text>, _>(sorted.keys().map(|k| &*k.2).collect::<Vec<_>>())
            .bind::<Array<Timestamptz>, _>(sorted.values().map(|s| s.first_at).collect::<Vec<_>>())
            .bind::<Array<Nullable<Timestamptz>>, _>(time(|s| s.announced_at))
            .bind::<Array<Nullable<Timestamptz>>, _>(time(|s| s.importing_at))
            .bind::<Array<Nullable<Timestamptz>>, _>(time(|s| s.executed_at))
            .bind::<Array<Nullable<Timestamptz>>, _>(time(|s| s.best_at))
            .bind::<Array<Nullable<Timestamptz>>, _>(time(|s| s.finalized_at))
            .bind::<Array<Nullable<Timestamptz>>, _>(time(|s| s.authored_at))
            .bind::<Array<Nullable<SmallInt>>, _>(
                sorted
                    .values()
                    .map(|s| s.failure.as_ref().map(|f| i16::from(f.0)))
                    .collect::<Vec<_>>(),
            )
            .bind::<Array<Nullable<Text>>, _>(
                sorted
                    .values()
                    .map(|s| s.failure.as_ref().map(|f| f.1.as_str()))
                    .collect::<Vec<_>>(),
            )
            .execute(conn)
            .await?;
        let mut blocks: Vec<(i64, Vec<u8>)> = sorted
            .keys()
            .map(|k| (i64::from(k.0), k.1.to_vec()))
            .collect();
        blocks.dedup();
        diesel::sql_query(SUMMARISE_BLOCKS)
            .bind::<Array<BigInt>, _>(blocks.iter().map(|b| b.0).collect::<Vec<_>>())
            .bind::<Array<Bytea>, _>(blocks.into_iter().map(|b| b.1).collect::<Vec<_>>())
            .execute(conn)
            .await?;
    }
    if !changes.authoring_failures.is_empty() {
        let mut failures: Vec<_> = changes.authoring_failures.iter().collect();
        failures.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        diesel::sql_query(INSERT_AUTHORING_FAILURES)
            .bind::<Array<BigInt>, _>(failures.iter().map(|f| i64::from(f.0)).collect::<Vec<_>>())
            .bind::<Array<Text>, _>(failures.iter().map(|f| &*f.1).collect::<Vec<_>>())
            .bind::<Array<Timestamptz>, _>(failures.iter().map(|f| f.2).collect::<Vec<_>>())
            .bind::<Array<Text>, _>(failures.iter().map(|f| f.3.as_str()).collect::<Vec<_>>())
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// Deletes sightings older than `sighting_days` and block summaries and authoring failures
/// older than `summary_days`; returns how many rows went.
pub async fn prune(
    conn: &mut AsyncPgConnection,
    sighting_days: u32,
    summary_days: u32,
) -> Result<usize, StoreError> {
    super::delete_older_than(
        conn,
        &[
            ("block_sightings", "first_at", sighting_days),
            ("slot_blocks", "first_at", summary_days),
            ("authoring_failures", "at", summary_days),
        ],
    )
    .await
}

/// A block of a slot, summed up from every node's sightings.
#[derive(Debug, Clone, Serialize, QueryableByName)]
pub struct BlockSummary {
    #[diesel(sql_type = BigInt)]
    pub slot: i64,
    #[diesel(sql_type = Text)]
    pub header_hash: String,
    /// The node that authored it, if it is connected to TART (its Authored event).
    #[diesel(sql_type = Nullable<Text>)]
    pub author: Option<String>,
    #[serde(serialize_with = "crate::time::rfc3339::option")]
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub authored_at: Option<DateTime<Utc>>,
    /// The earliest any node reported it.
    #[serde(with = "crate::time::rfc3339")]
    #[diesel(sql_type = Timestamptz)]
    pub first_seen_at: DateTime<Utc>,
    /// Nodes other than the author that reported it.
    #[diesel(sql_type = Integer)]
    pub nodes_reached: i32,
    #[diesel(sql_type = Integer)]
    pub nodes_imported: i32,
    #[diesel(sql_type = Integer)]
    pub nodes_finalized: i32,
    #[diesel(sql_type = Nullable<Double>)]
    pub delay_p50_ms: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub delay_p90_ms: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub delay_max_ms: Option<f64>,
    /// Median over the nodes that reported it finalized, from its reference time.
    #[diesel(sql_type = Nullable<Double>)]
    pub finalization_lag_ms: Option<f64>,
    #[diesel(sql_type = Integer)]
    pub import_failures: i32,
    #[diesel(sql_type = Integer)]
    pub execution_failures: i32,
}

const SUMMARY_COLUMNS: &str = "b.slot, '0x' || encode(b.header_hash, 'hex') AS header_hash, \
     k.node_id AS author, b.authored_at, b.first_at AS first_seen_at, b.nodes_reached, \
     b.nodes_imported, b.nodes_finalized, b.delay_p50_ms, b.delay_p90_ms, b.delay_max_ms, \
     b.finalization_lag_ms, b.import_failures, b.execution_failures \
     FROM slot_blocks b LEFT JOIN node_keys k ON k.node_key = b.author_key";

/// The blocks of slots `[from, to]`, newest slot first.
pub async fn blocks_of_slots(
    conn: &mut AsyncPgConnection,
    from: i64,
    to: i64,
) -> Result<Vec<BlockSummary>, StoreError> {
    Ok(diesel::sql_query(format!(
        "SELECT {SUMMARY_COLUMNS} WHERE b.slot BETWEEN $1 AND $2 \
         ORDER BY b.slot DESC, b.first_at"
    ))
    .bind::<BigInt, _>(from)
    .bind::<BigInt, _>(to)
    .load(conn)
    .await?)
}

/// The blocks first seen in `[from, to)`, oldest first: the propagation series.
pub async fn blocks_seen_between(
    conn: &mut AsyncPgConnection,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<BlockSummary>, StoreError> {
    Ok(diesel::sql_query(format!(
        "SELECT {SUMMARY_COLUMNS} WHERE b.first_at >= $1 AND b.first_at < $2 ORDER BY b.first_at"
    ))
    .bind::<Timestamptz, _>(from)
    .bind::<Timestamptz, _>(to)
    .load(conn)
    .await?)
}

/// The newest slot any block was seen for.
pub async fn newest_slot(conn: &mut AsyncPgConnection) -> Result<Option<i64>, StoreError> {
    #[derive(QueryableByName)]
    struct Newest {
        #[diesel(sql_type = Nullable<BigInt>)]
        slot: Option<i64>,
    }
    let newest: Newest = diesel::sql_query("SELECT max(slot) AS slot FROM slot_blocks")
        .get_result(conn)
        .await?;
    Ok(newest.slot)
}

/// A slot whose author said Authoring failed.
#[derive(Debug, Clone, Serialize, QueryableByName)]
pub struct AuthoringFailure {
    #[diesel(sql_type = BigInt)]
    pub slot: i64,
    #[diesel(sql_type = Text)]
    pub node_id: String,
    #[serde(with = "crate::time::rfc3339")]
    #[diesel(sql_type = Timestamptz)]
    pub at: DateTime<Utc>,
    #[diesel(sql_type = Text)]
    pub reason: String,
}

/// The authoring failures of slots `[from, to]`.
pub async fn authoring_failures(
    conn: &mut AsyncPgConnection,
    from: i64,
    to: i64,
) -> Result<Vec<AuthoringFailure>, StoreError> {
    Ok(diesel::sql_query(
        "SELECT f.slot, k.node_id, f.at, f.reason FROM authoring_failures f \
         JOIN node_keys k ON k.node_key = f.node_key WHERE f.slot BETWEEN $1 AND $2 \
         ORDER BY f.slot DESC",
    )
    .bind::<BigInt, _>(from)
    .bind::<BigInt, _>(to)
    .load(conn)
    .await?)
}

/// One node's sighting of one block, times in milliseconds from the block's reference time.
#[derive(Debug, Clone, Serialize, QueryableByName)]
pub struct NodeSighting {
    #[diesel(sql_type = Text)]
    pub header_hash: String,
    #[diesel(sql_type = Text)]
    pub node_id: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub implementation: Option<String>,
    /// True for the node that authored it.
    #[diesel(sql_type = diesel::sql_types::Bool)]
    pub author: bool,
    /// When the node first learned of it: its earliest event about the block.
    #[diesel(sql_type = Double)]
    pub delay_ms: f64,
    #[diesel(sql_type = Nullable<Double>)]
    pub announced_ms: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub importing_ms: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub executed_ms: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub best_ms: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub finalized_ms: Option<f64>,
    /// `verification` or `execution`, with the node's reason.
    #[diesel(sql_type = Nullable<Text>)]
    pub failure: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub failure_reason: Option<String>,
}

/// Every node's sighting of the blocks of `slot`, earliest first.
pub async fn sightings_of_slot(
    conn: &mut AsyncPgConnection,
    slot: i64,
) -> Result<Vec<NodeSighting>, StoreError> {
    let ms = |column: &str, name: &str| {
        format!("(extract(epoch FROM s.{column} - r.reference) * 1000)::float8 AS {name}")
    };
    let sql = format!(
        "WITH r AS (SELECT header_hash, COALESCE(min(authored_at), min(first_at)) AS reference \
             FROM block_sightings WHERE slot = $1 GROUP BY header_hash) \
         SELECT '0x' || encode(s.header_hash, 'hex') AS header_hash, k.node_id, \
             n.implementation_name AS implementation, s.authored_at IS NOT NULL AS author, \
             (extract(epoch FROM s.first_at - r.reference) * 1000)::float8 AS delay_ms, \
             {}, {}, {}, {}, {}, \
             CASE s.failure WHEN 44 THEN 'verification' WHEN 46 THEN 'execution' END AS failure, \
             s.failure_reason \
         FROM block_sightings s JOIN r ON r.header_hash = s.header_hash \
         JOIN node_keys k ON k.node_key = s.node_key LEFT JOIN nodes n ON n.node_id = k.node_id \
         WHERE s.slot = $1 ORDER BY s.first_at, k.node_id",
        ms("announced_at", "announced_ms"),
        ms("importing_at", "importing_ms"),
        ms("executed_at", "executed_ms"),
        ms("best_at", "best_ms"),
        ms("finalized_at", "finalized_ms"),
    );
    Ok(diesel::sql_query(sql)
        .bind::<BigInt, _>(slot)
        .load(conn)
        .await?)
}

/// Nodes that reported blocks of the slots around `slot` (within `around`) but none of `slot`:
/// the nodes a block of it never reached.
pub async fn nodes_without_slot(
    conn: &mut AsyncPgConnection,
    slot: i64,
    around: i64,
) -> Result<Vec<String>, StoreError> {
    #[derive(QueryableByName)]
    struct Node {
        #[diesel(sql_type = Text)]
        node_id: String,
    }
    let nodes: Vec<Node> = diesel::sql_query(
        "SELECT k.node_id FROM (SELECT DISTINCT node_key FROM block_sightings \
             WHERE slot BETWEEN $1 - $2 AND $1 + $2 AND slot <> $1 \
             EXCEPT SELECT node_key FROM block_sightings WHERE slot = $1) m \
         JOIN node_keys k ON k.node_key = m.node_key ORDER BY k.node_id",
    )
    .bind::<BigInt, _>(slot)
    .bind::<BigInt, _>(around)
    .load(conn)
    .await?;
    Ok(nodes.into_iter().map(|n| n.node_id).collect())
}

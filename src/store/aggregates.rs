//! The event counts kept as events arrive (events stored per minute and per hour, by type in
//! `type_counts_*` and by node in `node_counts_*`; per hour by node and type in
//! `event_stats_hourly`): their retention, and the time series read from them. No query here
//! reads raw events.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};
use diesel::sql_types::{Array, BigInt, Integer, Nullable, SmallInt, Text, Timestamptz};
use diesel::QueryableByName;
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use serde::Serialize;

use super::StoreError;
use crate::jip3::Event;

/// Deletes minute counts older than `minute_days`, and hourly counts and failure reasons older
/// than `hour_days`; returns how many rows of each tier went.
pub async fn prune(
    conn: &mut AsyncPgConnection,
    minute_days: u32,
    hour_days: u32,
) -> Result<(usize, usize), StoreError> {
    let minutes = super::delete_older_than(
        conn,
        &["type_counts_minute", "node_counts_minute"].map(|t| (t, "minute", minute_days)),
    )
    .await?;
    let hours = super::delete_older_than(
        conn,
        &[
            "type_counts_hourly",
            "node_counts_hourly",
            "event_stats_hourly",
            "failure_counts_hourly",
            "failure_reasons",
        ]
        .map(|t| (t, "hour", hour_days)),
    )
    .await?;
    Ok((minutes, hours))
}

/// Which table a series is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Minute,
    Hour,
}

impl Tier {
    pub fn unit(self) -> TimeDelta {
        match self {
            Tier::Minute => TimeDelta::minutes(1),
            Tier::Hour => TimeDelta::hours(1),
        }
    }

    /// The time column of the tier's tables.
    fn time(self) -> &'static str {
        match self {
            Tier::Minute => "minute",
            Tier::Hour => "hour",
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            Tier::Minute => "minute",
            Tier::Hour => "hourly",
        }
    }
}

/// What the series are split by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    Type,
    Node,
    /// The node's implementation name as it last reported it.
    Implementation,
}

/// Buckets of `step` from `from` (inclusive) to `to` (exclusive), both whole units of `tier`.
#[derive(Debug, Clone)]
pub struct SeriesRange {
    pub tier: Tier,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub step: TimeDelta,
}

impl SeriesRange {
    pub fn buckets(&self) -> usize {
        let span = (self.to - self.from).num_seconds();
        let step = self.step.num_seconds().max(1);
        ((span + step - 1) / step).max(0) as usize
    }
}

/// One series: events stored per bucket (as counted by the nodes that reported them).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Series {
    /// The event type's number, the node's id, or the implementation's name.
    pub key: String,
    /// For event types, the type's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'static str>,
    pub total: i64,
    /// One count per bucket, oldest first.
    pub values: Vec<i64>,
}

#[derive(QueryableByName)]
struct Cell {
    #[diesel(sql_type = BigInt)]
    bucket: i64,
    #[diesel(sql_type = Nullable<Text>)]
    key: Option<String>,
    #[diesel(sql_type = BigInt)]
    events: i64,
}

/// Events stored per bucket of `range`, one series per `group_by` key, largest total first.
pub async fn event_series(
    conn: &mut AsyncPgConnection,
    group_by: GroupBy,
    range: &SeriesRange,
) -> Result<Vec<Series>, StoreError> {
    let (time, suffix) = (range.tier.time(), range.tier.suffix());
    let (table, key) = match group_by {
        GroupBy::Type => (format!("type_counts_{suffix} c"), "c.event_type::text"),
        GroupBy::Node => (
            format!("node_counts_{suffix} c JOIN node_keys k ON k.node_key = c.node_key"),
            "k.node_id",
        ),
        GroupBy::Implementation => (
            format!(
                "node_counts_{suffix} c JOIN node_keys k ON k.node_key = c.node_key \
                 LEFT JOIN nodes n ON n.node_id = k.node_id"
            ),
            "n.implementation_name",
        ),
    };
    let sql = format!(
        "SELECT (extract(epoch FROM c.{time} - $1) / $3)::int8 AS bucket, {key} AS key, \
         sum(c.event_count)::int8 AS events \
         FROM {table} WHERE c.{time} >= $1 AND c.{time} < $2 GROUP BY 1, 2"
    );
    let cells: Vec<Cell> = diesel::sql_query(sql)
        .bind::<Timestamptz, _>(range.from)
        .bind::<Timestamptz, _>(range.to)
        .bind::<BigInt, _>(range.step.num_seconds())
        .load(conn)
        .await?;
    let buckets = range.buckets();
    let mut series: Vec<Series> = Vec::new();
    let mut index_of: HashMap<String, usize> = HashMap::new();
    for cell in cells {
        let key = cell.key.unwrap_or_else(|| "unknown".to_owned());
        let index = match index_of.get(&key) {
            Some(&i) => i,
            None => {
                index_of.insert(key.clone(), series.len());
                let name = match group_by {
                    GroupBy::Type => key.parse::<u8>().ok().map(Event::type_name),
                    _ => None,
                };
                series.push(Series {
                    key,
                    name,
                    total: 0,
                    values: vec![0; buckets],
                });
                series.len() - 1
            }
        };
        let s = &mut series[index];
        if let Some(value) = usize::try_from(cell.bucket)
            .ok()
            .and_then(|b| s.values.get_mut(b))
        {
            *value += cell.events;
            s.total += cell.events;
        }
    }
    series.sort_by(|a, b| b.total.cmp(&a.total).then_with(|| a.key.cmp(&b.key)));
    Ok(series)
}

/// Events stored per (event type, node) of `types` within `[from, to)` (whole hours), from the
/// hourly counts of the failure and attempt types by node (its key).
#[derive(Debug, QueryableByName)]
pub struct TypeNodeCount {
    #[diesel(sql_type = SmallInt)]
    pub event_type: i16,
    #[diesel(sql_type = Integer)]
    pub node_key: i32,
    #[diesel(sql_type = BigInt)]
    pub events: i64,
}

/// Events of `types` (some of `jip3::failures::COUNTED_TYPES`) per hour, type and node in the
/// hours `[from, to)`, of every node or of the `nodes` given, from `failure_counts_hourly` (its
/// primary key). Not summed over the hours: the caller sums (see [`failure_reasons`] for why).
pub async fn failure_counts(
    conn: &mut AsyncPgConnection,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    types: &[i16],
    nodes: Option<&[i32]>,
) -> Result<Vec<TypeNodeCount>, StoreError> {
    const SELECT: &str = "SELECT event_type, node_key, event_count AS events \
         FROM failure_counts_hourly WHERE hour >= $1 AND hour < $2 AND event_type = ANY($3)";
    let query = diesel::sql_query(match nodes {
        None => SELECT.to_owned(),
        Some(_) => format!("{SELECT} AND node_key = ANY($4)"),
    })
    .into_boxed()
    .bind::<Timestamptz, _>(from)
    .bind::<Timestamptz, _>(to)
    .bind::<Array<SmallInt>, _>(types);
    Ok(match nodes {
        None => query.load(conn).await?,
        Some(nodes) => query.bind::<Array<Integer>, _>(nodes).load(conn).await?,
    })
}

#[derive(Debug, QueryableByName)]
struct TypeCount {
    #[diesel(sql_type = SmallInt)]
    event_type: i16,
    #[diesel(sql_type = BigInt)]
    events: i64,
}

/// Events of `types` stored in the hours `[from, to)`, all nodes together, per type (from
/// `type_counts_hourly`).
pub async fn type_totals(
    conn: &mut AsyncPgConnection,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    types: &[i16],
) -> Result<HashMap<i16, i64>, StoreError> {
    let rows: Vec<TypeCount> = diesel::sql_query(
        "SELECT event_type, event_count AS events FROM type_counts_hourly \
         WHERE hour >= $1 AND hour < $2 AND event_type = ANY($3)",
    )
    .bind::<Timestamptz, _>(from)
    .bind::<Timestamptz, _>(to)
    .bind::<Array<SmallInt>, _>(types)
    .load(conn)
    .await?;
    let mut totals = HashMap::new();
    for row in rows {
        *totals.entry(row.event_type).or_default() += row.events;
    }
    Ok(totals)
}

#[derive(Debug, QueryableByName)]
struct KeyedNode {
    #[diesel(sql_type = Integer)]
    node_key: i32,
    #[diesel(sql_type = Text)]
    node_id: String,
}

/// The node ids of `keys`.
pub async fn node_ids(
    conn: &mut AsyncPgConnection,
    keys: &[i32],
) -> Result<HashMap<i32, String>, StoreError> {
    let rows: Vec<KeyedNode> =
        diesel::sql_query("SELECT node_key, node_id FROM node_keys WHERE node_key = ANY($1)")
            .bind::<Array<Integer>, _>(keys)
            .load(conn)
            .await?;
    Ok(rows.into_iter().map(|r| (r.node_key, r.node_id)).collect())
}

/// How often a failure type gave one reason.
#[derive(Debug, QueryableByName)]
pub struct ReasonCount {
    #[diesel(sql_type = SmallInt)]
    pub event_type: i16,
    #[diesel(sql_type = Text)]
    pub reason: String,
    #[diesel(sql_type = BigInt)]
    pub events: i64,
}

/// Failure reasons counted in the hours `[from, to)` (whole hours), most frequent first. The rows
/// (per hour and node) are summed here: PostgreSQL's `sum` of a bigint is a numeric, and
/// grouping ~20,000 rows with it took three times as long as reading them.
pub async fn failure_reasons(
    conn: &mut AsyncPgConnection,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<ReasonCount>, StoreError> {
    let rows: Vec<ReasonCount> = diesel::sql_query(
        "SELECT event_type, reason, event_count AS events FROM failure_reasons \
         WHERE hour >= $1 AND hour < $2",
    )
    .bind::<Timestamptz, _>(from)
    .bind::<Timestamptz, _>(to)
    .load(conn)
    .await?;
    let mut sums: HashMap<(i16, String), i64> = HashMap::new();
    for row in rows {
        *sums.entry((row.event_type, row.reason)).or_default() += row.events;
    }
    let mut reasons: Vec<ReasonCount> = sums
        .into_iter()
        .map(|((event_type, reason), events)| ReasonCount {
            event_type,
            reason,
            events,
        })
        .collect();
    reasons.sort_by(|a, b| {
        b.events
            .cmp(&a.events)
            .then_with(|| a.reason.cmp(&b.reason))
    });
    Ok(reasons)
}

/// The tables every rollup rewrites (each node's row every second): vacuumed by TART itself, so
/// that dead rows cannot pile up when autovacuum is off or busy with the event partitions.
const BOOKKEEPING_TABLES: &str = "nodes, node_sessions, node_status, node_latest_slots, \
     node_event_types, event_stats_hourly, failure_counts_hourly, session_clock_skew, session_undefined_events, \
     type_counts_minute, node_counts_minute, type_counts_hourly, node_counts_hourly, \
     failure_reasons, block_sightings, slot_blocks, work_package_sightings, work_packages, \
     guarantee_receipts, work_package_funnel_minute, guarantee_counts_hourly, \
     guarantee_receiver_counts_hourly, peer_links, peer_churn_minute, \
     core_status_minute";

/// Vacuums (and analyzes) the bookkeeping tables; a few milliseconds each at 1,024 nodes.
pub async fn vacuum_bookkeeping(conn: &mut AsyncPgConnection) -> Result<(), StoreError> {
    // VACUUM may not run in a transaction: the simple protocol sends it on its own.
    conn.batch_execute(&format!("VACUUM (ANALYZE) {BOOKKEEPING_TABLES}"))
        .await?;
    Ok(())
}

//! The event counts kept as events arrive (events stored per minute and per hour, by type in
//! `type_counts_*` and by node in `node_counts_*`; per hour by node and type in
//! `event_stats_hourly`): their retention, and the time series read from them. No query here
//! reads raw events.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};
use diesel::sql_types::{Array, BigInt, Integer, Nullable, SmallInt, Text, Timestamptz};
use diesel::QueryableByName;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
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
    let mut minutes = 0;
    for table in ["type_counts_minute", "node_counts_minute"] {
        minutes += diesel::sql_query(format!(
            "DELETE FROM {table} WHERE minute < now() - make_interval(days => $1)"
        ))
        .bind::<Integer, _>(minute_days as i32)
        .execute(conn)
        .await?;
    }
    let mut hours = 0;
    for table in [
        "type_counts_hourly",
        "node_counts_hourly",
        "event_stats_hourly",
        "failure_reasons",
    ] {
        hours += diesel::sql_query(format!(
            "DELETE FROM {table} WHERE hour < now() - make_interval(days => $1)"
        ))
        .bind::<Integer, _>(hour_days as i32)
        .execute(conn)
        .await?;
    }
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
/// hourly counts by node and type.
#[derive(Debug, QueryableByName)]
pub struct TypeNodeCount {
    #[diesel(sql_type = SmallInt)]
    pub event_type: i16,
    #[diesel(sql_type = Text)]
    pub node_id: String,
    #[diesel(sql_type = BigInt)]
    pub events: i64,
}

pub async fn type_node_counts(
    conn: &mut AsyncPgConnection,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    types: &[i16],
) -> Result<Vec<TypeNodeCount>, StoreError> {
    Ok(diesel::sql_query(
        "SELECT event_type, node_id, sum(event_count)::int8 AS events FROM event_stats_hourly \
         WHERE hour >= $1 AND hour < $2 AND event_type = ANY($3) GROUP BY 1, 2",
    )
    .bind::<Timestamptz, _>(from)
    .bind::<Timestamptz, _>(to)
    .bind::<Array<SmallInt>, _>(types)
    .load(conn)
    .await?)
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

/// Failure reasons counted in the hours `[from, to)` (whole hours), most frequent first.
pub async fn failure_reasons(
    conn: &mut AsyncPgConnection,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<ReasonCount>, StoreError> {
    Ok(diesel::sql_query(
        "SELECT event_type, reason, sum(event_count)::int8 AS events FROM failure_reasons \
         WHERE hour >= $1 AND hour < $2 GROUP BY 1, 2 ORDER BY 3 DESC, 2",
    )
    .bind::<Timestamptz, _>(from)
    .bind::<Timestamptz, _>(to)
    .load(conn)
    .await?)
}

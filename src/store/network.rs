//! The network at a glance (`GET /api/network`): who is connected, running what, how far the
//! chain has got and who is behind, how busy it is and what is going wrong. Read from the nodes
//! and sessions tables, the nodes' latest blocks and the minute counts; never from raw events.

use diesel::sql_types::{BigInt, Text};
use diesel::QueryableByName;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;

use super::queries::{LatestSlots as Slots, LATEST_BEST, LATEST_FINALIZED};
use super::StoreError;
use crate::robust::lower_median;

/// A connected node whose best slot is more than this many below the median is behind.
pub const BEHIND_SLOTS: i64 = 5;
/// At most this many nodes behind are listed (the most behind first); `count` has them all.
pub const MAX_BEHIND_LISTED: usize = 50;
/// Events per second are averaged over this many whole minutes before the current one.
pub const RATE_MINUTES: i64 = 5;
/// The problem counters cover sessions active within this many hours.
pub const PROBLEM_HOURS: i64 = 24;

/// Nodes with one value of a property: connected now, and known at all.
#[derive(Debug, QueryableByName, Serialize)]
pub struct Share {
    #[diesel(sql_type = Text)]
    pub value: String,
    #[diesel(sql_type = BigInt)]
    pub connected: i64,
    #[diesel(sql_type = BigInt)]
    pub known: i64,
}

#[derive(Debug, QueryableByName, Serialize)]
pub struct ImplementationShare {
    #[diesel(sql_type = Text)]
    pub name: String,
    #[diesel(sql_type = Text)]
    pub version: String,
    #[diesel(sql_type = BigInt)]
    pub connected: i64,
    #[diesel(sql_type = BigInt)]
    pub known: i64,
}

/// The spread of one slot (best or finalized) over the connected nodes that reported one.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct SlotSpread {
    pub highest: Option<i64>,
    /// The lower median.
    pub median: Option<i64>,
    pub lowest: Option<i64>,
    /// highest − lowest.
    pub spread: Option<i64>,
    pub reporting_nodes: usize,
}

impl SlotSpread {
    fn of(slots: Vec<i64>) -> SlotSpread {
        if slots.is_empty() {
            return SlotSpread::default();
        }
        let (highest, lowest) = (slots.iter().max().copied(), slots.iter().min().copied());
        SlotSpread {
            highest,
            lowest,
            spread: highest.zip(lowest).map(|(h, l)| h - l),
            reporting_nodes: slots.len(),
            median: Some(lower_median(slots)),
        }
    }
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct BehindNode {
    pub node_id: String,
    pub best_slot: i64,
    pub behind_median_by: i64,
}

#[derive(Debug, Serialize)]
pub struct Behind {
    pub threshold_slots: i64,
    pub count: usize,
    pub nodes: Vec<BehindNode>,
}

#[derive(Debug, QueryableByName, Serialize)]
pub struct Problems {
    #[diesel(sql_type = BigInt)]
    pub decode_failures: i64,
    #[diesel(sql_type = BigInt)]
    pub undefined_events: i64,
    /// Events the nodes themselves reported dropping (`Dropped`).
    #[diesel(sql_type = BigInt)]
    pub events_dropped_by_nodes: i64,
    #[diesel(sql_type = BigInt)]
    pub events_rate_limited: i64,
    #[diesel(sql_type = BigInt)]
    pub refused_handshakes: i64,
}

#[derive(Debug, Serialize)]
pub struct Overview {
    pub connected_nodes: i64,
    pub known_nodes: i64,
    pub implementations: Vec<ImplementationShare>,
    pub protocol_versions: Vec<Share>,
    pub gp_versions: Vec<Share>,
    pub best_slot: SlotSpread,
    pub finalized_slot: SlotSpread,
    pub behind: Behind,
    /// Events stored per second over the last [`RATE_MINUTES`] whole minutes, as counted per
    /// reporting node.
    pub events_per_second: f64,
    pub events_per_second_window_minutes: i64,
    /// Over the sessions active within the last `problems_window_hours`.
    pub problems: Problems,
    pub problems_window_hours: i64,
}

#[derive(QueryableByName)]
struct Events {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Nodes per value of `column` (a column of `nodes`, cast to text).
async fn shares(conn: &mut AsyncPgConnection, column: &str) -> Result<Vec<Share>, StoreError> {
    Ok(diesel::sql_query(format!(
        "SELECT {column}::text AS value, count(*) FILTER (WHERE is_connected) AS connected, \
         count(*) AS known FROM nodes GROUP BY 1 ORDER BY 2 DESC, 3 DESC, 1"
    ))
    .load(conn)
    .await?)
}

pub async fn overview(conn: &mut AsyncPgConnection) -> Result<Overview, StoreError> {
    let implementations: Vec<ImplementationShare> = diesel::sql_query(
        "SELECT implementation_name AS name, implementation_version AS version, \
         count(*) FILTER (WHERE is_connected) AS connected, count(*) AS known \
         FROM nodes GROUP BY 1, 2 ORDER BY 3 DESC, 4 DESC, 1, 2",
    )
    .load(conn)
    .await?;
    let protocol_versions = shares(conn, "protocol_version").await?;
    let gp_versions = shares(conn, "gp_version").await?;
    let slots: Vec<Slots> = diesel::sql_query(format!(
        "SELECT node_id, {LATEST_BEST} AS best, {LATEST_FINALIZED} AS finalized \
         FROM nodes WHERE is_connected"
    ))
    .load(conn)
    .await?;
    let events: Events = diesel::sql_query(format!(
        "SELECT coalesce(sum(event_count), 0)::int8 AS n FROM type_counts_minute \
         WHERE minute >= date_trunc('minute', now()) - interval '{RATE_MINUTES} minutes' \
           AND minute < date_trunc('minute', now())"
    ))
    .get_result(conn)
    .await?;
    let problems: Problems = diesel::sql_query(format!(
        "WITH recent AS (SELECT * FROM node_sessions \
             WHERE disconnected_at IS NULL \
                OR disconnected_at > now() - interval '{PROBLEM_HOURS} hours') \
         SELECT coalesce(sum(decode_failures), 0)::int8 AS decode_failures, \
             (SELECT coalesce(sum(u.event_count), 0)::int8 FROM session_undefined_events u \
              WHERE u.session_id IN (SELECT session_id FROM recent)) AS undefined_events, \
             LEAST(coalesce(sum(events_dropped), 0), 9223372036854775807)::int8 \
                 AS events_dropped_by_nodes, \
             coalesce(sum(events_rate_limited), 0)::int8 AS events_rate_limited, \
             count(*) FILTER (WHERE refusal IS NOT NULL) AS refused_handshakes \
         FROM recent"
    ))
    .get_result(conn)
    .await?;

    let connected_nodes = protocol_versions.iter().map(|s| s.connected).sum();
    let known_nodes = protocol_versions.iter().map(|s| s.known).sum();
    let best_slot = SlotSpread::of(slots.iter().filter_map(|s| s.best).collect());
    let finalized_slot = SlotSpread::of(slots.iter().filter_map(|s| s.finalized).collect());
    let behind = behind(&slots, best_slot.median);
    Ok(Overview {
        connected_nodes,
        known_nodes,
        implementations,
        protocol_versions,
        gp_versions,
        best_slot,
        finalized_slot,
        behind,
        events_per_second: events.n as f64 / (RATE_MINUTES * 60) as f64,
        events_per_second_window_minutes: RATE_MINUTES,
        problems,
        problems_window_hours: PROBLEM_HOURS,
    })
}

/// The connected nodes more than [`BEHIND_SLOTS`] below the median best slot, most behind first.
fn behind(slots: &[Slots], median: Option<i64>) -> Behind {
    let mut nodes: Vec<BehindNode> = match median {
        None => Vec::new(),
        Some(median) => slots
            .iter()
            .filter_map(|s| Some((s, s.best?)))
            .filter(|(_, best)| *best < median - BEHIND_SLOTS)
            .map(|(s, best)| BehindNode {
                node_id: s.node_id.clone(),
                best_slot: best,
                behind_median_by: median - best,
            })
            .collect(),
    };
    nodes.sort_by(|a, b| {
        b.behind_median_by
            .cmp(&a.behind_median_by)
            .then_with(|| a.node_id.cmp(&b.node_id))
    });
    let count = nodes.len();
    nodes.truncate(MAX_BEHIND_LISTED);
    Behind {
        threshold_slots: BEHIND_SLOTS,
        count,
        nodes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_median_and_the_nodes_behind() {
        let slots: Vec<Slots> = [
            ("a", Some(100)),
            ("b", Some(98)),
            ("c", Some(90)),
            ("d", None),
        ]
        .into_iter()
        .map(|(id, best)| Slots {
            node_id: id.into(),
            best,
            finalized: None,
        })
        .collect();
        let spread = SlotSpread::of(slots.iter().filter_map(|s| s.best).collect());
        assert_eq!(spread.median, Some(98));
        assert_eq!(spread.spread, Some(10));
        assert_eq!(spread.reporting_nodes, 3);
        let behind = behind(&slots, spread.median);
        assert_eq!(behind.count, 1);
        assert_eq!(
            behind.nodes,
            vec![BehindNode {
                node_id: "c".into(),
                best_slot: 90,
                behind_median_by: 8
            }]
        );
        assert_eq!(SlotSpread::of(Vec::new()), SlotSpread::default());
    }
}

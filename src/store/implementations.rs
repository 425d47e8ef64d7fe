//! A conformance report per implementation and version: how its nodes connect, which of the
//! event types JIP-3 defines they send and which never, and what they get wrong (frames that do
//! not decode, by error and by the type each claimed; undefined discriminators; dangling
//! references; refused handshakes by reason; drops they reported; clock skew). Read from the nodes and sessions tables, the
//! decode failures and the per-node type counts kept as events arrive; never from raw events.
//!
//! A node's sessions and failures count for the implementation and version it last reported.

use diesel::sql_types::{BigInt, SmallInt, Text};
use diesel::QueryableByName;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;

use super::StoreError;
use crate::jip3::{skew, Event};

/// One implementation and version, in figures.
#[derive(Debug, QueryableByName, Serialize)]
pub struct Summary {
    #[diesel(sql_type = Text)]
    pub name: String,
    #[diesel(sql_type = Text)]
    pub version: String,
    #[diesel(sql_type = BigInt)]
    pub nodes_known: i64,
    #[diesel(sql_type = BigInt)]
    pub nodes_connected: i64,
    #[diesel(sql_type = BigInt)]
    pub sessions: i64,
    /// Sessions beyond each node's first.
    #[diesel(sql_type = BigInt)]
    pub reconnects: i64,
    #[diesel(sql_type = BigInt)]
    pub events_stored: i64,
    #[diesel(sql_type = BigInt)]
    pub decode_failures: i64,
    #[diesel(sql_type = BigInt)]
    pub undefined_events: i64,
    /// What its nodes reported dropping (`Dropped`).
    #[diesel(sql_type = BigInt)]
    pub events_dropped: i64,
    /// Events whose Event ID field pointed at nothing their connection sent that it may point at.
    #[diesel(sql_type = BigInt)]
    pub dangling_references: i64,
    /// Handshakes refused that claimed this implementation and version.
    #[diesel(sql_type = BigInt)]
    pub refused_handshakes: i64,
}

/// Every implementation and version with its figures, most nodes first. `name` limits it to one
/// implementation.
pub async fn summaries(
    conn: &mut AsyncPgConnection,
    name: Option<&str>,
) -> Result<Vec<Summary>, StoreError> {
    let filter = if name.is_some() {
        "WHERE implementation_name = $1"
    } else {
        "WHERE $1::text IS NULL"
    };
    Ok(diesel::sql_query(format!(
        "WITH i AS (SELECT implementation_name AS name, implementation_version AS version, \
                 count(*) AS nodes_known, count(*) FILTER (WHERE is_connected) AS nodes_connected, \
                 coalesce(sum(event_count), 0)::int8 AS events_stored \
             FROM nodes {filter} GROUP BY 1, 2), \
         s AS (SELECT n.implementation_name AS name, n.implementation_version AS version, \
                 count(*) AS sessions, count(DISTINCT s.node_id) AS distinct_nodes, \
                 coalesce(sum(s.decode_failures), 0)::int8 AS decode_failures, \
                 LEAST(coalesce(sum(s.events_dropped), 0), 9223372036854775807)::int8 \
                     AS events_dropped, \
                 coalesce(sum(s.dangling_references), 0)::int8 AS dangling_references \
             FROM node_sessions s JOIN nodes n ON n.node_id = s.node_id \
             WHERE s.refusal IS NULL GROUP BY 1, 2), \
         u AS (SELECT n.implementation_name AS name, n.implementation_version AS version, \
                 sum(u.event_count)::int8 AS undefined_events \
             FROM session_undefined_events u JOIN nodes n ON n.node_id = u.node_id GROUP BY 1, 2), \
         r AS (SELECT claimed_implementation, count(*) AS refused FROM node_sessions \
             WHERE refusal IS NOT NULL GROUP BY 1) \
         SELECT i.name, i.version, i.nodes_known, i.nodes_connected, \
             coalesce(s.sessions, 0) AS sessions, \
             coalesce(s.sessions - s.distinct_nodes, 0) AS reconnects, i.events_stored, \
             coalesce(s.decode_failures, 0) AS decode_failures, \
             coalesce(u.undefined_events, 0) AS undefined_events, \
             coalesce(s.events_dropped, 0) AS events_dropped, \
             coalesce(s.dangling_references, 0) AS dangling_references, \
             coalesce(r.refused, 0) AS refused_handshakes \
         FROM i LEFT JOIN s USING (name, version) LEFT JOIN u USING (name, version) \
         LEFT JOIN r ON r.claimed_implementation = i.name || ' ' || i.version \
         ORDER BY i.nodes_known DESC, i.name, i.version"
    ))
    .bind::<diesel::sql_types::Nullable<Text>, _>(name)
    .load(conn)
    .await?)
}

/// How often something of one kind happened.
#[derive(Debug, QueryableByName, Serialize)]
pub struct Tally {
    #[diesel(sql_type = Text)]
    pub what: String,
    #[diesel(sql_type = BigInt)]
    pub count: i64,
}

#[derive(Debug, QueryableByName)]
struct TypeCount {
    #[diesel(sql_type = SmallInt)]
    event_type: i16,
    #[diesel(sql_type = BigInt)]
    count: i64,
}

/// An event type with how many events of it were stored.
#[derive(Debug, Serialize)]
pub struct TypeSent {
    pub event_type: u8,
    pub name: &'static str,
    pub count: i64,
}

/// An implementation version's report.
#[derive(Debug, Serialize)]
pub struct Report {
    #[serde(flatten)]
    pub summary: Summary,
    /// The event types JIP-3 defines that its nodes sent, with how many of each were stored.
    pub types_sent: Vec<TypeSent>,
    /// The event types JIP-3 defines that none of its nodes ever sent (names).
    pub types_never_sent: Vec<&'static str>,
    /// Frames that did not decode, by error (numbers in the message replaced by `N`).
    pub decode_failures_by_error: Vec<Tally>,
    /// Frames that did not decode, by the event type each claimed (its discriminator byte).
    pub decode_failures_by_claimed_type: Vec<Tally>,
    /// Frames with a discriminator JIP-3 does not define, per discriminator.
    pub undefined_discriminators: Vec<Tally>,
    /// Handshakes refused that claimed this implementation and version, per reason.
    pub refused_handshakes_by_reason: Vec<Tally>,
    pub clock_skew: ClockSkew,
}

/// How far its nodes' event times are from when TART received them (receive time − event
/// time; positive: events dated in the past), by power-of-two buckets: each percentile is the
/// range of its bucket, in milliseconds.
#[derive(Debug, Serialize)]
pub struct ClockSkew {
    pub events: i64,
    pub p50_ms: Option<(f64, f64)>,
    pub p99_ms: Option<(f64, f64)>,
    /// The median is more than an hour off: a clock or epoch that is wrong, not network delay.
    pub absurd: bool,
}

impl ClockSkew {
    /// From (bucket, events) counts.
    pub fn of(buckets: &[(i8, i64)]) -> ClockSkew {
        let p50 = skew::percentile(buckets, 0.5);
        ClockSkew {
            events: buckets.iter().map(|(_, n)| n).sum(),
            p50_ms: p50.map(skew::bounds_ms),
            p99_ms: skew::percentile(buckets, 0.99).map(skew::bounds_ms),
            absurd: p50.is_some_and(|b| skew::bounds_ms(b).0.abs() > skew::ABSURD_MS),
        }
    }
}

#[derive(Debug, QueryableByName)]
struct SkewCount {
    #[diesel(sql_type = SmallInt)]
    bucket: i16,
    #[diesel(sql_type = BigInt)]
    count: i64,
}

/// The nodes of one implementation version, as a subquery.
const NODES_OF: &str = "(SELECT node_id FROM nodes WHERE implementation_name = $1 \
     AND implementation_version = $2)";

async fn tallies(
    conn: &mut AsyncPgConnection,
    sql: String,
    name: &str,
    version: &str,
) -> Result<Vec<Tally>, StoreError> {
    Ok(diesel::sql_query(sql)
        .bind::<Text, _>(name)
        .bind::<Text, _>(version)
        .load(conn)
        .await?)
}

/// The reports of every version of `name` (none for an unknown implementation).
pub async fn reports(conn: &mut AsyncPgConnection, name: &str) -> Result<Vec<Report>, StoreError> {
    let mut reports = Vec::new();
    for summary in summaries(conn, Some(name)).await? {
        let version = summary.version.clone();
        let counts: Vec<TypeCount> = diesel::sql_query(format!(
            "SELECT t.event_type, sum(t.event_count)::int8 AS count FROM node_event_types t \
             JOIN node_keys k ON k.node_key = t.node_key WHERE k.node_id IN {NODES_OF} \
             GROUP BY 1 ORDER BY 1"
        ))
        .bind::<Text, _>(name)
        .bind::<Text, _>(&version)
        .load(conn)
        .await?;
        let types_sent: Vec<TypeSent> = counts
            .iter()
            .filter_map(|c| {
                let event_type = u8::try_from(c.event_type).ok()?;
                Some(TypeSent {
                    event_type,
                    name: Event::name_of(event_type)?,
                    count: c.count,
                })
            })
            .collect();
        let types_never_sent = (0..=u8::MAX)
            .filter(|t| !types_sent.iter().any(|s| s.event_type == *t))
            .filter_map(Event::name_of)
            .collect();
        let by_error = tallies(
            conn,
            format!(
                "SELECT regexp_replace(error, '[0-9]+', 'N', 'g') AS what, count(*) AS count \
                 FROM decode_failures WHERE node_id IN {NODES_OF} GROUP BY 1 ORDER BY 2 DESC, 1 \
                 LIMIT 50"
            ),
            name,
            &version,
        )
        .await?;
        let by_claimed_type: Vec<Tally> = tallies(
            conn,
            format!(
                "SELECT CASE WHEN length(raw) > 8 THEN get_byte(raw, 8)::text ELSE 'none' END \
                 AS what, count(*) AS count FROM decode_failures WHERE node_id IN {NODES_OF} \
                 GROUP BY 1 ORDER BY 2 DESC, 1"
            ),
            name,
            &version,
        )
        .await?
        .into_iter()
        .map(|t| Tally {
            what: match t.what.parse::<u8>() {
                Ok(d) => Event::name_of(d).map_or_else(|| format!("undefined {d}"), str::to_owned),
                Err(_) => "no discriminator (frame under 9 bytes)".to_owned(),
            },
            count: t.count,
        })
        .collect();
        let undefined = tallies(
            conn,
            format!(
                "SELECT discriminator::text AS what, sum(event_count)::int8 AS count \
                 FROM session_undefined_events WHERE node_id IN {NODES_OF} \
                 GROUP BY 1 ORDER BY 2 DESC, 1"
            ),
            name,
            &version,
        )
        .await?;
        let refused = tallies(
            conn,
            "SELECT refusal AS what, count(*) AS count FROM node_sessions \
             WHERE refusal IS NOT NULL AND claimed_implementation = $1 || ' ' || $2 \
             GROUP BY 1 ORDER BY 2 DESC, 1"
                .to_owned(),
            name,
            &version,
        )
        .await?;
        let skew: Vec<SkewCount> = diesel::sql_query(format!(
            "SELECT bucket, sum(event_count)::int8 AS count FROM session_clock_skew \
             WHERE node_id IN {NODES_OF} GROUP BY 1"
        ))
        .bind::<Text, _>(name)
        .bind::<Text, _>(&version)
        .load(conn)
        .await?;
        let skew: Vec<(i8, i64)> = skew
            .iter()
            .filter_map(|s| Some((i8::try_from(s.bucket).ok()?, s.count)))
            .collect();
        reports.push(Report {
            summary,
            types_sent,
            types_never_sent,
            decode_failures_by_error: by_error,
            decode_failures_by_claimed_type: by_claimed_type,
            undefined_discriminators: undefined,
            refused_handshakes_by_reason: refused,
            clock_skew: ClockSkew::of(&skew),
        });
    }
    Ok(reports)
}

//! What went wrong with a node, as its implementer wants to read it: its sessions (connected,
//! refused, disconnected, and why) and the frames of it that did not decode.

use chrono::{DateTime, Utc};
use diesel::sql_types::{Array, BigInt, Integer, Nullable, SmallInt, Text, Timestamptz};
use diesel::QueryableByName;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;

use super::implementations::ClockSkew;
use super::StoreError;
use crate::jip3::types::to_hex;
use crate::jip3::Event;
use crate::time::rfc3339;

/// A failed frame's bytes shown in a listing are cut to this many (the frame may be 1 MiB).
pub const RAW_SHOWN: i32 = 4096;

/// One connection of a node, or one refused handshake that claimed to be it.
#[derive(Debug, QueryableByName, Serialize)]
pub struct SessionRow {
    #[diesel(sql_type = BigInt)]
    pub session_id: i64,
    /// `connected`, `disconnected` or `refused`.
    #[diesel(sql_type = Text)]
    pub state: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub remote_address: Option<String>,
    #[diesel(sql_type = Timestamptz)]
    #[serde(serialize_with = "rfc3339::serialize")]
    pub connected_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    #[serde(serialize_with = "rfc3339::option")]
    pub disconnected_at: Option<DateTime<Utc>>,
    /// Why it ended (as the server saw it), when it has.
    #[diesel(sql_type = Nullable<Text>)]
    pub disconnect_reason: Option<String>,
    /// Why the handshake was refused, for a refused one.
    #[diesel(sql_type = Nullable<Text>)]
    pub refusal: Option<String>,
    #[diesel(sql_type = Nullable<SmallInt>)]
    pub protocol_version: Option<i16>,
    #[diesel(sql_type = Nullable<Text>)]
    pub gp_version: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub params_layout: Option<String>,
    #[diesel(sql_type = Nullable<Integer>)]
    pub core_count: Option<i32>,
    #[diesel(sql_type = BigInt)]
    pub events_received: i64,
    #[diesel(sql_type = BigInt)]
    pub events_stored: i64,
    #[diesel(sql_type = BigInt)]
    pub events_rate_limited: i64,
    #[diesel(sql_type = BigInt)]
    pub decode_failures: i64,
    /// What the node itself reported dropping (`Dropped` events).
    #[diesel(sql_type = BigInt)]
    pub events_dropped: i64,
    /// Frames with a discriminator JIP-3 does not define, on this session.
    #[diesel(sql_type = BigInt)]
    pub undefined_events: i64,
    /// Events whose Event ID field pointed at nothing this session sent that it may point at.
    #[diesel(sql_type = BigInt)]
    pub dangling_references: i64,
}

/// A session with how far its event times were from when they arrived.
#[derive(Debug, Serialize)]
pub struct Session {
    #[serde(flatten)]
    pub row: SessionRow,
    pub clock_skew: ClockSkew,
}

#[derive(Debug, QueryableByName)]
struct SessionSkew {
    #[diesel(sql_type = BigInt)]
    session_id: i64,
    #[diesel(sql_type = SmallInt)]
    bucket: i16,
    #[diesel(sql_type = BigInt)]
    event_count: i64,
}

/// The node's sessions, newest first, `limit` of them with ids below `before`. Served by
/// `node_sessions_by_node` and, for refused handshakes, `node_sessions_refused_by_claim`; their
/// clock skew by the primary key of `session_clock_skew`.
pub async fn sessions(
    conn: &mut AsyncPgConnection,
    node_id: &str,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<Session>, StoreError> {
    let rows: Vec<SessionRow> = diesel::sql_query(
        "SELECT s.session_id, \
             CASE WHEN s.refusal IS NOT NULL THEN 'refused' \
                  WHEN s.disconnected_at IS NULL THEN 'connected' ELSE 'disconnected' END AS state, \
             s.remote_address, s.connected_at, s.disconnected_at, s.disconnect_reason, s.refusal, \
             s.protocol_version, s.gp_version, s.params_layout, s.core_count, s.events_received, \
             s.events_stored, s.events_rate_limited, s.decode_failures, s.events_dropped, s.dangling_references, \
             coalesce((SELECT sum(u.event_count) FROM session_undefined_events u \
                       WHERE u.session_id = s.session_id), 0)::int8 AS undefined_events \
         FROM node_sessions s \
         WHERE (s.node_id = $1 OR (s.refusal IS NOT NULL AND s.claimed_node_id = $1)) \
           AND s.session_id < $2 \
         ORDER BY s.session_id DESC LIMIT $3",
    )
    .bind::<Text, _>(node_id)
    .bind::<BigInt, _>(before.unwrap_or(i64::MAX))
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await?;
    let ids: Vec<i64> = rows.iter().map(|r| r.session_id).collect();
    let skews: Vec<SessionSkew> = diesel::sql_query(
        "SELECT session_id, bucket, event_count FROM session_clock_skew \
         WHERE session_id = ANY($1)",
    )
    .bind::<Array<BigInt>, _>(&ids)
    .load(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let buckets: Vec<(i8, i64)> = skews
                .iter()
                .filter(|s| s.session_id == row.session_id)
                .filter_map(|s| Some((i8::try_from(s.bucket).ok()?, s.event_count)))
                .collect();
            Session {
                clock_skew: ClockSkew::of(&buckets),
                row,
            }
        })
        .collect())
}

/// A frame of the node that did not decode.
#[derive(Debug, QueryableByName, Serialize)]
pub struct FailureRow {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = BigInt)]
    pub session_id: i64,
    #[diesel(sql_type = BigInt)]
    pub event_id: i64,
    #[diesel(sql_type = Timestamptz)]
    #[serde(serialize_with = "rfc3339::serialize")]
    pub created_at: DateTime<Utc>,
    #[diesel(sql_type = Text)]
    pub error: String,
    /// The discriminator the frame claimed (its ninth byte, after the timestamp), if it had one.
    #[diesel(sql_type = Nullable<SmallInt>)]
    pub claimed_type: Option<i16>,
    #[diesel(sql_type = Integer)]
    pub raw_bytes: i32,
    #[diesel(sql_type = diesel::sql_types::Bytea)]
    #[serde(skip)]
    pub raw_head: Vec<u8>,
}

/// A failed frame as the API shows it: the claimed type's name and the bytes as hex.
#[derive(Debug, Serialize)]
pub struct Failure {
    #[serde(flatten)]
    pub row: FailureRow,
    pub claimed_name: Option<&'static str>,
    /// The frame's bytes (timestamp, discriminator, fields) as `0x` hex, the first
    /// [`RAW_SHOWN`] of them.
    pub raw: String,
    pub raw_truncated: bool,
}

/// The node's decode failures, newest first, `limit` of them with ids below `before`
/// (`decode_failures_by_node`).
pub async fn failures(
    conn: &mut AsyncPgConnection,
    node_id: &str,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<Failure>, StoreError> {
    let rows: Vec<FailureRow> = diesel::sql_query(
        "SELECT id, session_id, event_id, created_at, error, \
             CASE WHEN length(raw) > 8 THEN get_byte(raw, 8)::int2 END AS claimed_type, \
             length(raw) AS raw_bytes, substring(raw FROM 1 FOR $4) AS raw_head \
         FROM decode_failures WHERE node_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
    )
    .bind::<Text, _>(node_id)
    .bind::<BigInt, _>(before.unwrap_or(i64::MAX))
    .bind::<BigInt, _>(limit)
    .bind::<Integer, _>(RAW_SHOWN)
    .load(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| Failure {
            claimed_name: row
                .claimed_type
                .and_then(|t| u8::try_from(t).ok())
                .map(Event::type_name),
            raw: to_hex(&row.raw_head),
            raw_truncated: row.raw_head.len() < row.raw_bytes as usize,
            row,
        })
        .collect())
}

/// A node's failure counters over all its sessions.
#[derive(Debug, QueryableByName, Serialize)]
pub struct FailureCounters {
    #[diesel(sql_type = BigInt)]
    pub sessions: i64,
    #[diesel(sql_type = BigInt)]
    pub refused_handshakes: i64,
    #[diesel(sql_type = BigInt)]
    pub decode_failures: i64,
    #[diesel(sql_type = BigInt)]
    pub undefined_events: i64,
    #[diesel(sql_type = BigInt)]
    pub events_rate_limited: i64,
    #[diesel(sql_type = BigInt)]
    pub events_dropped: i64,
    #[diesel(sql_type = BigInt)]
    pub dangling_references: i64,
}

pub async fn failure_counters(
    conn: &mut AsyncPgConnection,
    node_id: &str,
) -> Result<FailureCounters, StoreError> {
    Ok(diesel::sql_query(
        "SELECT count(*) FILTER (WHERE s.refusal IS NULL) AS sessions, \
             count(*) FILTER (WHERE s.refusal IS NOT NULL) AS refused_handshakes, \
             coalesce(sum(s.decode_failures), 0)::int8 AS decode_failures, \
             (SELECT coalesce(sum(u.event_count), 0)::int8 FROM session_undefined_events u \
              WHERE u.node_id = $1) AS undefined_events, \
             coalesce(sum(s.events_rate_limited), 0)::int8 AS events_rate_limited, \
             LEAST(coalesce(sum(s.events_dropped), 0), 9223372036854775807)::int8 AS events_dropped, \
             coalesce(sum(s.dangling_references), 0)::int8 AS dangling_references \
         FROM node_sessions s \
         WHERE s.node_id = $1 OR (s.refusal IS NOT NULL AND s.claimed_node_id = $1)",
    )
    .bind::<Text, _>(node_id)
    .get_result(conn)
    .await?)
}

//! `decoded_events`: events decoded to JSON on request, so their fields can be read in SQL
//! (`data->'BestBlockChanged'->>'slot'`). Events are kept in wire form, which SQL cannot read;
//! `tart-backend decode-events` fills this table for the range an operator asks for. Rows already
//! there are kept, so filling overlapping ranges is harmless; `TRUNCATE decoded_events` empties it.

use chrono::{DateTime, Utc};
use diesel::sql_types::{Array, BigInt, Nullable, SmallInt, Text, Timestamptz};
use diesel::QueryableByName;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::models::StoredEvent;
use super::StoreError;

/// Rows per round trip.
const CHUNK: i64 = 5_000;

/// Which events to decode; `None` and empty lists mean no bound.
#[derive(Debug, Default, Clone)]
pub struct Range {
    /// Receive time, inclusive.
    pub from: Option<DateTime<Utc>>,
    /// Receive time, exclusive.
    pub to: Option<DateTime<Utc>>,
    pub node_id: Option<String>,
    pub event_types: Vec<i16>,
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    node_id: String,
    #[diesel(sql_type = BigInt)]
    session_id: i64,
    #[diesel(sql_type = BigInt)]
    event_id: i64,
    #[diesel(sql_type = Timestamptz)]
    timestamp: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    created_at: DateTime<Utc>,
    #[diesel(embed)]
    stored: StoredEvent,
}

/// Decodes the events of `range` into `decoded_events`; returns how many rows it added.
pub async fn fill(conn: &mut AsyncPgConnection, range: &Range) -> Result<u64, StoreError> {
    let (mut after, mut added) = (i64::MIN, 0u64);
    loop {
        let rows: Vec<Row> = diesel::sql_query(
            "SELECT e.id, k.node_id, e.session_id, e.event_id, e.event_type, e.timestamp, \
             e.created_at, e.body, s.protocol_version, s.core_count \
             FROM event_rows e JOIN node_keys k ON k.node_key = e.node_key \
             LEFT JOIN node_sessions s ON s.session_id = e.session_id \
             WHERE e.id > $1 \
               AND ($2::timestamptz IS NULL OR e.created_at >= $2) \
               AND ($3::timestamptz IS NULL OR e.created_at < $3) \
               AND ($4::text IS NULL OR k.node_id = $4) \
               AND (cardinality($5::int2[]) = 0 OR e.event_type = ANY($5)) \
             ORDER BY e.id LIMIT $6",
        )
        .bind::<BigInt, _>(after)
        .bind::<Nullable<Timestamptz>, _>(range.from)
        .bind::<Nullable<Timestamptz>, _>(range.to)
        .bind::<Nullable<Text>, _>(range.node_id.as_deref())
        .bind::<Array<SmallInt>, _>(&range.event_types)
        .bind::<BigInt, _>(CHUNK)
        .load(conn)
        .await?;
        let Some(last) = rows.last() else {
            return Ok(added);
        };
        after = last.id;
        let data: Vec<String> = rows.iter().map(|r| r.stored.json()).collect();
        added += diesel::sql_query(
            "INSERT INTO decoded_events (id, node_id, session_id, event_id, event_type, \
             timestamp, created_at, data) \
             SELECT * FROM unnest($1::int8[], $2::text[], $3::int8[], $4::int8[], $5::int2[], \
             $6::timestamptz[], $7::timestamptz[], $8::text[]::json[]) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind::<Array<BigInt>, _>(rows.iter().map(|r| r.id).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(rows.iter().map(|r| r.node_id.as_str()).collect::<Vec<_>>())
        .bind::<Array<BigInt>, _>(rows.iter().map(|r| r.session_id).collect::<Vec<_>>())
        .bind::<Array<BigInt>, _>(rows.iter().map(|r| r.event_id).collect::<Vec<_>>())
        .bind::<Array<SmallInt>, _>(rows.iter().map(|r| r.stored.event_type).collect::<Vec<_>>())
        .bind::<Array<Timestamptz>, _>(rows.iter().map(|r| r.timestamp).collect::<Vec<_>>())
        .bind::<Array<Timestamptz>, _>(rows.iter().map(|r| r.created_at).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(&data)
        .execute(conn)
        .await? as u64;
    }
}

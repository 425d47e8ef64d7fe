//! The in-place upgrade of events kept as JSON (before the `wire_events` migration, which kept
//! them as `legacy_events`): after the server starts, their rows are turned into wire-form
//! `event_rows` a chunk at a time, each chunk written and deleted in one transaction, so an
//! interrupted conversion goes on where it stopped at the next start. Then the old table is
//! dropped. A row whose JSON does not read back as the same event in its session's dialect is
//! kept in `decode_failures` (its JSON as `raw`), never dropped.

use chrono::{DateTime, Utc};
use diesel::sql_types::{
    Array, BigInt, Bool, Bytea, Integer, Nullable, SmallInt, Text, Timestamptz,
};
use diesel::QueryableByName;
use diesel_async::{AsyncConnection, RunQueryDsl};

use super::models::session_dialect;
use super::{Pool, StoreError};
use crate::jip3::stored;

/// Rows per transaction: small enough that the ingest path's writes barely notice.
const CHUNK: i64 = 5_000;

#[derive(QueryableByName)]
struct Present {
    #[diesel(sql_type = Bool)]
    present: bool,
}

#[derive(QueryableByName)]
struct LegacyRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Timestamptz)]
    created_at: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    timestamp: DateTime<Utc>,
    #[diesel(sql_type = BigInt)]
    session_id: i64,
    #[diesel(sql_type = BigInt)]
    event_id: i64,
    #[diesel(sql_type = Integer)]
    node_key: i32,
    #[diesel(sql_type = SmallInt)]
    event_type: i16,
    #[diesel(sql_type = Text)]
    data: String,
    #[diesel(sql_type = Nullable<SmallInt>)]
    protocol_version: Option<i16>,
    #[diesel(sql_type = Nullable<Integer>)]
    core_count: Option<i32>,
}

/// What a conversion did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Converted {
    pub events: u64,
    /// Rows kept in `decode_failures` because their JSON did not read back as the same event.
    pub kept_as_failures: u64,
}

/// Converts every row of `legacy_events`, if there is such a table, and drops it.
pub async fn convert(pool: &Pool) -> Result<Converted, StoreError> {
    let mut conn = pool.get().await?;
    let found: Present =
        diesel::sql_query("SELECT to_regclass('legacy_events') IS NOT NULL AS present")
            .get_result(&mut *conn)
            .await?;
    if !found.present {
        return Ok(Converted::default());
    }
    diesel::sql_query(
        "INSERT INTO node_keys (node_id) SELECT DISTINCT node_id FROM legacy_events \
         ON CONFLICT (node_id) DO NOTHING",
    )
    .execute(&mut *conn)
    .await?;
    let mut done = Converted::default();
    loop {
        let rows: Vec<LegacyRow> = diesel::sql_query(
            "SELECT l.id, l.created_at, l.timestamp, l.session_id, l.event_id, k.node_key, \
             l.event_type, l.data::text AS data, s.protocol_version, s.core_count \
             FROM legacy_events l JOIN node_keys k ON k.node_id = l.node_id \
             LEFT JOIN node_sessions s ON s.session_id = l.session_id \
             ORDER BY l.id LIMIT $1",
        )
        .bind::<BigInt, _>(CHUNK)
        .load(&mut *conn)
        .await?;
        if rows.is_empty() {
            break;
        }
        let chunk = convert_chunk(&rows);
        done.events += chunk.events.len() as u64;
        done.kept_as_failures += chunk.failures.len() as u64;
        conn.transaction::<_, diesel::result::Error, _>(async |conn| {
            let e = &chunk.events;
            diesel::sql_query(
                "INSERT INTO event_rows (id, created_at, timestamp, session_id, event_id, \
                 node_key, event_type, body) \
                 SELECT * FROM unnest($1::int8[], $2::timestamptz[], $3::timestamptz[], \
                 $4::int8[], $5::int8[], $6::int4[], $7::int2[], $8::bytea[]) \
                 ON CONFLICT DO NOTHING",
            )
            .bind::<Array<BigInt>, _>(e.iter().map(|r| r.id).collect::<Vec<_>>())
            .bind::<Array<Timestamptz>, _>(e.iter().map(|r| r.created_at).collect::<Vec<_>>())
            .bind::<Array<Timestamptz>, _>(e.iter().map(|r| r.timestamp).collect::<Vec<_>>())
            .bind::<Array<BigInt>, _>(e.iter().map(|r| r.session_id).collect::<Vec<_>>())
            .bind::<Array<BigInt>, _>(e.iter().map(|r| r.event_id).collect::<Vec<_>>())
            .bind::<Array<Integer>, _>(e.iter().map(|r| r.node_key).collect::<Vec<_>>())
            .bind::<Array<SmallInt>, _>(e.iter().map(|r| r.event_type).collect::<Vec<_>>())
            .bind::<Array<Bytea>, _>(&chunk.bodies)
            .execute(conn)
            .await?;
            let f = &chunk.failures;
            diesel::sql_query(
                "INSERT INTO decode_failures (id, node_id, session_id, event_id, created_at, \
                 error, raw) \
                 SELECT r.id, r.node_id, r.session_id, r.event_id, r.created_at, $1, \
                 convert_to(r.data::text, 'UTF8') FROM legacy_events r WHERE r.id = ANY($2) \
                 ON CONFLICT DO NOTHING",
            )
            .bind::<Text, _>(
                "kept as JSON before the wire-form upgrade, and that JSON does not read back \
                 as the same event in its session's dialect",
            )
            .bind::<Array<BigInt>, _>(f.iter().map(|r| r.id).collect::<Vec<_>>())
            .execute(conn)
            .await?;
            diesel::sql_query("DELETE FROM legacy_events WHERE id = ANY($1)")
                .bind::<Array<BigInt>, _>(rows.iter().map(|r| r.id).collect::<Vec<_>>())
                .execute(conn)
                .await?;
            Ok(())
        })
        .await?;
        log::info!(
            "converting JSON events to wire form: {} done, {} kept as decode failures",
            done.events,
            done.kept_as_failures
        );
    }
    diesel::sql_query("DROP TABLE legacy_events")
        .execute(&mut *conn)
        .await?;
    Ok(done)
}

/// One chunk's rows, split into those converted (with their bodies) and those kept as failures.
struct Chunk<'a> {
    events: Vec<&'a LegacyRow>,
    bodies: Vec<Vec<u8>>,
    failures: Vec<&'a LegacyRow>,
}

fn convert_chunk(rows: &[LegacyRow]) -> Chunk<'_> {
    let mut chunk = Chunk {
        events: Vec::new(),
        bodies: Vec::new(),
        failures: Vec::new(),
    };
    for row in rows {
        let dialect = session_dialect(row.protocol_version, row.core_count);
        match stored::from_json(&row.data, dialect) {
            Some((discriminator, fields)) if i16::from(discriminator) == row.event_type => {
                chunk.events.push(row);
                chunk.bodies.push(fields);
            }
            _ => chunk.failures.push(row),
        }
    }
    chunk
}

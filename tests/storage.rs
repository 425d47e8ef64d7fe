//! Storage in wire form: a database written by a TART that kept events as JSON upgrades in place
//! (the server converts its rows after it starts and loses none), and `tart-backend
//! decode-events` makes a range of events readable in SQL. Real PostgreSQL, real server, real
//! binary.

mod harness;

use std::time::Duration;

use diesel::sql_types::{BigInt, Json, SmallInt, Text};
use diesel::QueryableByName;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use diesel_migrations::{FileBasedMigrations, MigrationHarness};
use harness::*;
use serde_json::Value;
use tart_backend::jip3::generate::Generator;
use tart_backend::jip3::{Event, ProtocolVersion};

/// The last migration of the JSON-storing schema.
const LAST_JSON_MIGRATION: &str = "2026-12-01-000003";

/// Migrates a new database only as far as the schema that kept events as JSON.
async fn json_schema_database(db: &TestDb) {
    tart_backend::store::create_database_if_missing(&db.url)
        .await
        .unwrap();
    let url = db.url.clone();
    tokio::task::spawn_blocking(move || {
        use diesel::Connection;
        let mut conn = AsyncConnectionWrapper::<AsyncPgConnection>::establish(&url).unwrap();
        let source =
            FileBasedMigrations::from_path(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
                .unwrap();
        for migration in conn.pending_migrations(source).unwrap() {
            let name = migration.name().to_string();
            if name.as_str() > LAST_JSON_MIGRATION && !name.starts_with(LAST_JSON_MIGRATION) {
                break;
            }
            conn.run_migration(&migration).unwrap();
        }
    })
    .await
    .unwrap();
}

/// What the older TART wrote for one node and session: its rows, with `data` as JSON.
async fn write_json_events(conn: &mut AsyncPgConnection, node_id: &str, events: &[Event]) {
    diesel::sql_query(
        "INSERT INTO nodes (node_id, peer_id, implementation_name, implementation_version, \
         gp_version, node_flags, note, genesis_hash, jam_params, core_count, validator_count, \
         peer_address, first_seen_at, protocol_version, params_layout) \
         VALUES ($1, '\\x00', 'old', '1', '0.7.0', 0, '', '0x00', '{}', 2, 6, '{}', now(), 1, \
         'gp-0.7')",
    )
    .bind::<Text, _>(node_id)
    .execute(conn)
    .await
    .unwrap();
    diesel::sql_query(
        "INSERT INTO node_sessions (session_id, node_id, connected_at, protocol_version, \
         params_layout) VALUES (7, $1, now(), 1, 'gp-0.7')",
    )
    .bind::<Text, _>(node_id)
    .execute(conn)
    .await
    .unwrap();
    for (i, event) in events.iter().enumerate() {
        insert_json_row(
            conn,
            node_id,
            i as i64,
            event.discriminator().into(),
            &json(event),
        )
        .await;
    }
}

async fn insert_json_row(
    conn: &mut AsyncPgConnection,
    node_id: &str,
    i: i64,
    event_type: i16,
    data: &str,
) {
    diesel::sql_query(
        "INSERT INTO events (id, node_id, session_id, event_id, event_type, timestamp, \
         created_at, data, node_key) \
         VALUES (1000 + $1, $2, 7, $1, $3, now(), now(), $4::json, \
         ('x' || substr($2, 1, 16))::bit(64)::bigint)",
    )
    .bind::<BigInt, _>(i)
    .bind::<Text, _>(node_id)
    .bind::<SmallInt, _>(event_type)
    .bind::<Text, _>(data)
    .execute(conn)
    .await
    .unwrap();
}

fn json(event: &Event) -> String {
    serde_json::to_string(event).unwrap()
}

#[derive(QueryableByName)]
struct Decoded {
    #[diesel(sql_type = BigInt)]
    event_id: i64,
    #[diesel(sql_type = Json)]
    data: Value,
}

/// Every event type an older TART stored as JSON comes back, after the upgrade, with the same
/// JSON from the REST API and from `decoded_events`; a row whose JSON is not an event is kept as
/// a decode failure, not dropped; the old table is gone.
#[actix_web::test]
async fn events_kept_as_json_are_converted_to_wire_form_in_place() {
    let db = TestDb::new();
    json_schema_database(&db).await;
    let node_id = "cd".repeat(32);
    let mut g = Generator::new(3, 2).with_version(ProtocolVersion::V1);
    let events: Vec<Event> = Event::DISCRIMINATORS
        .iter()
        .map(|&d| Event::generate(d, &mut g).unwrap())
        .collect();
    {
        let conn = &mut db.connect().await;
        write_json_events(conn, &node_id, &events).await;
        // JSON that is no event (e.g. written by hand): kept, as a decode failure.
        insert_json_row(conn, &node_id, 500, 11, r#"{"NotAnEvent":{}}"#).await;
    }

    let server = TestServer::start(test_config(&db)).await;
    assert!(
        eventually(Duration::from_secs(30), || async {
            count(
                &mut db.connect().await,
                "SELECT (to_regclass($1) IS NULL)::int::int8 AS n",
                "legacy_events",
            )
            .await
                == 1
        })
        .await,
        "the old table is converted and dropped"
    );
    let (status, page) = get_json(
        server.api_addr,
        &format!("/api/nodes/{node_id}/events?limit=200"),
    )
    .await;
    assert_eq!(status, 200);
    let shown = page["events"].as_array().unwrap();
    assert_eq!(shown.len(), events.len());
    for row in shown {
        let event = &events[row["event_id"].as_u64().unwrap() as usize];
        let sent: Value = serde_json::from_str(&json(event)).unwrap();
        assert_eq!(row["data"], sent, "{}", event.name());
        assert_eq!(row["event_name"], event.name());
    }
    let conn = &mut db.connect().await;
    assert_eq!(
        count(
            conn,
            "SELECT count(*) AS n FROM decode_failures WHERE node_id = $1 AND event_id = 500 \
             AND error LIKE 'kept as JSON%' AND convert_from(raw, 'UTF8') LIKE '%NotAnEvent%'",
            &node_id,
        )
        .await,
        1
    );

    // Direct SQL: the `events` view has the old names; fields come from `decoded_events`.
    assert_eq!(
        count(
            conn,
            "SELECT count(*) AS n FROM events WHERE node_id = $1 AND event_type = 11",
            &node_id
        )
        .await,
        1
    );
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tart-backend"))
        .args([
            "decode-events",
            "--type",
            "BestBlockChanged",
            "--type",
            "10",
        ])
        .args(["--node", &node_id])
        .env("DATABASE_URL", &db.url)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "decoded 2 events into decoded_events"
    );
    let decoded: Vec<Decoded> = diesel::sql_query(
        "SELECT event_id, data FROM decoded_events WHERE node_id = $1 ORDER BY event_id",
    )
    .bind::<Text, _>(&node_id)
    .load(conn)
    .await
    .unwrap();
    assert_eq!(decoded.len(), 2);
    for row in decoded {
        let sent: Value = serde_json::from_str(&json(&events[row.event_id as usize])).unwrap();
        assert_eq!(row.data, sent);
    }
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_tart-backend"))
        .args(["decode-events", "--type", "NoSuchEvent"])
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("NoSuchEvent"));
    drop(server);
}

/// The bookkeeping tables are rewritten every second; the server vacuums them itself (a
/// database with autovacuum off would otherwise pile up their dead rows), so each shows a
/// manual vacuum after the interval.
#[actix_web::test]
async fn the_server_vacuums_its_bookkeeping_tables() {
    let db = TestDb::new();
    let server = TestServer::start(tart_backend::config::Config {
        vacuum_interval_secs: 1,
        ..test_config(&db)
    })
    .await;
    let mut node = FakeNode::connect(server.telemetry_addr, node_info(3, 2)).await;
    node.send_events(&[tart_backend::jip3::TimedEvent {
        timestamp: jam_now(0),
        event: Event::BestBlockChanged {
            slot: 7,
            header_hash: tart_backend::jip3::types::Hash([7; 32]),
        },
    }])
    .await;
    assert!(
        eventually_count(
            &db,
            WAIT,
            "SELECT count(*) AS n FROM pg_stat_user_tables \
             WHERE relname = ANY(string_to_array($1, ',')) AND last_vacuum IS NOT NULL",
            "nodes,node_sessions,node_latest_slots,failure_counts_hourly",
            4,
        )
        .await,
        "the bookkeeping tables were vacuumed"
    );
    // And the rollup kept the node's newest slot in its row.
    assert!(
        eventually_count(
            &db,
            WAIT,
            "SELECT best_slot AS n FROM node_latest_slots WHERE node_id = $1",
            &node.node_id(),
            7,
        )
        .await
    );
}

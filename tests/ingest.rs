//! The ingest path end to end: real TCP node connections into a real server writing to a real
//! PostgreSQL database.

mod harness;

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::sql_types::{BigInt, Json, SmallInt, Text, Timestamptz};
use diesel::QueryableByName;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use harness::*;
use tart_backend::config::Config;
use tart_backend::jip3::codec::frame;
use tart_backend::jip3::generate::Generator;
use tart_backend::jip3::types::HexBytes;
use tart_backend::jip3::{Event, TimedEvent};

#[derive(QueryableByName, Debug)]
struct StoredEvent {
    #[diesel(sql_type = BigInt)]
    event_id: i64,
    #[diesel(sql_type = SmallInt)]
    event_type: i16,
    #[diesel(sql_type = Timestamptz)]
    timestamp: DateTime<Utc>,
    #[diesel(sql_type = Json)]
    data: serde_json::Value,
}

async fn stored_events(conn: &mut AsyncPgConnection, node_id: &str) -> Vec<StoredEvent> {
    decode_stored(conn).await;
    diesel::sql_query(
        "SELECT event_id, event_type, timestamp, data FROM decoded_events WHERE node_id = $1 \
         ORDER BY event_id, event_type",
    )
    .bind::<Text, _>(node_id)
    .load(conn)
    .await
    .unwrap()
}

async fn events_of(db: &TestDb, node_id: &str) -> i64 {
    count(
        &mut db.connect().await,
        "SELECT count(*) AS n FROM events WHERE node_id = $1",
        node_id,
    )
    .await
}

/// One event of every type, timestamped 1 ms apart.
fn every_event_type(seed: u64, cores: u16) -> Vec<TimedEvent> {
    let mut generator = Generator::new(seed, cores);
    Event::DISCRIMINATORS
        .iter()
        .enumerate()
        .map(|(i, &d)| {
            let mut event = Event::generate(d, &mut generator).unwrap();
            if let Event::Dropped { num_dropped, .. } = &mut event {
                *num_dropped = 1; // keep IDs simple: Dropped(1) advances like any event
            }
            TimedEvent {
                timestamp: jam_now(i as u64 * 1000),
                event,
            }
        })
        .collect()
}

#[tokio::test]
async fn every_event_type_is_stored_exactly_for_nodes_with_different_core_counts() {
    let db = TestDb::new();
    let mut config = test_config(&db);
    config.rate_limit_per_sec = 0;
    let server = TestServer::start(config).await;

    let mut small = FakeNode::connect(server.telemetry_addr, node_info(2, 2)).await;
    let mut large = FakeNode::connect(server.telemetry_addr, node_info(3, 341)).await;
    let small_events = every_event_type(7, 2);
    let large_events = every_event_type(8, 341);
    small.send_events(&small_events).await;
    large.send_events(&large_events).await;

    for (node, sent) in [(&small, &small_events), (&large, &large_events)] {
        assert!(
            eventually(WAIT, || async {
                events_of(&db, &node.node_id()).await == 115
            })
            .await,
            "all 115 events of node {} stored",
            node.node_id()
        );
        let stored = stored_events(&mut db.connect().await, &node.node_id()).await;
        for (i, (row, event)) in stored.iter().zip(sent.iter()).enumerate() {
            assert_eq!(row.event_id, i as i64, "event IDs count from 0");
            assert_eq!(row.event_type, i16::from(event.event.discriminator()));
            assert_eq!(
                row.timestamp,
                tart_backend::jip3::time::to_datetime(event.timestamp)
            );
            assert_eq!(row.data, serde_json::to_value(&event.event).unwrap());
        }
    }
    let conn = &mut db.connect().await;
    let node_row = count(
        conn,
        "SELECT core_count::int8 AS n FROM nodes WHERE node_id = $1",
        &large.node_id(),
    )
    .await;
    assert_eq!(node_row, 341);
    // Each node's rows carry the one key `node_keys` maps to its id, so the node index finds
    // them all and no other node's.
    for node in [&small, &large] {
        let keyed = count(
            conn,
            "SELECT count(*) AS n FROM event_rows e JOIN node_keys k ON k.node_key = e.node_key \
             WHERE k.node_id = $1",
            &node.node_id(),
        )
        .await;
        assert_eq!(keyed, 115, "node_key of node {}", node.node_id());
    }

    drop(server);
}

/// Events per node, type and hour add up between writes (each write is thousands of rows at
/// scale) and are written every `hourly_stats_interval_ms`, and at shutdown whatever is due.
#[tokio::test]
async fn hourly_stats_add_up_between_writes_and_are_written_at_shutdown() {
    let db = TestDb::new();
    let config = Config {
        hourly_stats_interval_ms: 3_600_000,
        ..unlimited_config(&db)
    };
    let server = TestServer::start(config).await;
    let mut node = FakeNode::connect(server.telemetry_addr, node_info(4, 2)).await;
    node.send_events(&every_event_type(4, 2)).await;
    let stored = "SELECT coalesce(sum(event_count), 0)::int8 AS n FROM nodes WHERE node_id = $1";
    assert!(eventually_count(&db, WAIT, stored, &node.node_id(), 115).await);
    let hourly = "SELECT coalesce(sum(event_count), 0)::int8 AS n FROM event_stats_hourly \
                  WHERE node_id = $1";
    let conn = &mut db.connect().await;
    assert_eq!(count(conn, hourly, &node.node_id()).await, 0, "not due yet");

    server.shutdown().await.expect("graceful shutdown");
    assert_eq!(count(conn, hourly, &node.node_id()).await, 115);
    let types = "SELECT count(DISTINCT event_type) AS n FROM event_stats_hourly WHERE node_id = $1";
    assert_eq!(
        count(conn, types, &node.node_id()).await,
        115,
        "every type counted"
    );
}

#[tokio::test]
async fn reconnecting_node_keeps_its_row_and_gets_a_new_session() {
    let db = TestDb::new();
    let server = TestServer::start(test_config(&db)).await;
    let info = node_info(9, 2);
    let events = every_event_type(1, 2)[..10].to_vec();

    let mut first = FakeNode::connect(server.telemetry_addr, info.clone()).await;
    first.send_events(&events).await;
    assert!(
        eventually(WAIT, || async {
            events_of(&db, &info.node_id()).await == 10
        })
        .await
    );
    drop(first);

    let mut second = FakeNode::connect(server.telemetry_addr, info.clone()).await;
    second.send_events(&events).await;
    assert!(
        eventually(WAIT, || async {
            events_of(&db, &info.node_id()).await == 20
        })
        .await
    );

    let conn = &mut db.connect().await;
    let id = info.node_id();
    assert_eq!(
        count(
            conn,
            "SELECT count(*) AS n FROM nodes WHERE node_id = $1",
            &id
        )
        .await,
        1
    );
    assert_eq!(
        count(
            conn,
            "SELECT count(*) AS n FROM node_sessions WHERE node_id = $1",
            &id
        )
        .await,
        2
    );
    // Both sessions numbered their events from 0.
    assert_eq!(
        count(
            conn,
            "SELECT count(*) AS n FROM events WHERE node_id = $1 AND event_id = 0",
            &id
        )
        .await,
        2
    );
    assert!(
        eventually_count(
            &db,
            WAIT,
            "SELECT coalesce(sum(event_count), 0)::int8 AS n FROM nodes WHERE node_id = $1 AND is_connected",
            &id,
            20
        )
        .await,
        "event_count spans sessions and the node shows connected"
    );
    drop(server);
}

#[tokio::test]
async fn a_second_connection_of_the_same_node_replaces_the_first() {
    let db = TestDb::new();
    let server = TestServer::start(test_config(&db)).await;
    let info = node_info(10, 2);
    let mut old = FakeNode::connect(server.telemetry_addr, info.clone()).await;
    let mut new = FakeNode::connect(server.telemetry_addr, info.clone()).await;
    assert!(old.closed_by_server(WAIT).await, "old connection is closed");
    assert!(!new.closed_by_server(Duration::from_millis(300)).await);
    new.send_events(&every_event_type(2, 2)[..3]).await;
    assert!(
        eventually(WAIT, || async {
            events_of(&db, &info.node_id()).await == 3
        })
        .await
    );
    let id = info.node_id();
    // The old session's end must not mark the node disconnected.
    assert!(
        eventually(WAIT, || async {
            let conn = &mut db.connect().await;
            count(
                conn,
                "SELECT count(*) AS n FROM node_sessions WHERE node_id = $1 \
                 AND disconnect_reason LIKE 'replaced%'",
                &id,
            )
            .await
                == 1
        })
        .await
    );
    let conn = &mut db.connect().await;
    assert_eq!(
        count(
            conn,
            "SELECT count(*) AS n FROM nodes WHERE node_id = $1 AND is_connected",
            &id
        )
        .await,
        1
    );
    assert_eq!(
        server.metric("telemetry_connections_closed{reason=\"replaced\"}"),
        1.0
    );
}

#[tokio::test]
async fn the_connection_over_the_cap_is_closed_at_once_and_counted() {
    let db = TestDb::new();
    let config = test_config(&db);
    assert_eq!(config.max_connections, 1024);
    let server = TestServer::start(config).await;
    let mut open = Vec::new();
    for _ in 0..1024 {
        open.push(
            tokio::net::TcpStream::connect(server.telemetry_addr)
                .await
                .unwrap(),
        );
    }
    assert!(
        eventually(WAIT, || async {
            server.metric("telemetry_active_connections") == 1024.0
        })
        .await
    );
    let mut extra = FakeNode::connect(server.telemetry_addr, node_info(11, 2)).await;
    assert!(extra.closed_by_server(WAIT).await);
    assert_eq!(server.metric("telemetry_connections_rejected"), 1.0);
    drop(open);
    assert!(
        eventually(WAIT, || async {
            server.metric("telemetry_active_connections") == 0.0
        })
        .await
    );
}

#[tokio::test]
async fn a_node_that_sends_no_node_information_is_closed_after_the_timeout() {
    let db = TestDb::new();
    let mut config = test_config(&db);
    config.handshake_timeout_ms = 300;
    let server = TestServer::start(config).await;
    let mut silent = FakeNode {
        socket: tokio::net::TcpStream::connect(server.telemetry_addr)
            .await
            .unwrap(),
        info: node_info(12, 2),
    };
    assert!(silent.closed_by_server(WAIT).await);
    assert_eq!(
        server.metric("telemetry_connections_closed{reason=\"handshake_timeout\"}"),
        1.0
    );
}

#[tokio::test]
async fn an_oversized_length_prefix_ends_the_connection_but_keeps_what_came_before() {
    let db = TestDb::new();
    let mut config = test_config(&db);
    config.max_frame_bytes = 4096;
    let server = TestServer::start(config).await;
    // NodeInformation, five events and the bad prefix in one write, so they arrive in one read:
    // the events of that read must still be stored before the connection closes.
    let info = node_info(14, 2);
    let mut bytes = frame(&info.to_bytes());
    for event in &every_event_type(3, 2)[..5] {
        bytes.extend(frame(&event.to_bytes()));
    }
    bytes.extend(4097u32.to_le_bytes());
    let mut node = FakeNode {
        socket: tokio::net::TcpStream::connect(server.telemetry_addr)
            .await
            .unwrap(),
        info,
    };
    use tokio::io::AsyncWriteExt;
    node.socket.write_all(&bytes).await.unwrap();
    assert!(node.closed_by_server(WAIT).await);
    assert!(
        eventually(WAIT, || async {
            events_of(&db, &node.node_id()).await == 5
        })
        .await
    );
    assert_eq!(
        server.metric("telemetry_connections_closed{reason=\"oversized_frame\"}"),
        1.0
    );
}

#[tokio::test]
async fn malformed_and_unknown_events_are_kept_and_still_take_an_event_id() {
    let db = TestDb::new();
    let server = TestServer::start(test_config(&db)).await;
    let mut node = FakeNode::connect(server.telemetry_addr, node_info(15, 2)).await;
    let good = every_event_type(4, 2);
    // ID 0: good; ID 1: SyncStatusChanged with bool byte 2; ID 2: unknown discriminator 250;
    // ID 3: good again.
    node.send_events(&good[..1]).await;
    let mut bad = TimedEvent {
        timestamp: jam_now(0),
        event: Event::SyncStatusChanged { synced: true },
    }
    .to_bytes();
    *bad.last_mut().unwrap() = 2;
    node.send_body(&bad).await;
    let unknown = TimedEvent {
        timestamp: jam_now(0),
        event: Event::Unknown {
            discriminator: 250,
            raw: HexBytes(vec![1, 2, 3]),
        },
    };
    node.send_events(&[unknown]).await;
    node.send_events(&good[1..2]).await;
    let id = node.node_id();
    assert!(eventually(WAIT, || async { events_of(&db, &id).await == 3 }).await);
    assert!(!node.closed_by_server(Duration::from_millis(200)).await);

    let conn = &mut db.connect().await;
    let stored = stored_events(conn, &id).await;
    let ids: Vec<i64> = stored.iter().map(|e| e.event_id).collect();
    assert_eq!(ids, vec![0, 2, 3]);
    assert_eq!(stored[1].event_type, 250);
    assert_eq!(stored[1].data["Unknown"]["raw"], "0x010203");
    assert!(
        eventually_count(
            &db,
            WAIT,
            "SELECT count(*) AS n FROM decode_failures WHERE node_id = $1 AND event_id = 1 \
                 AND error LIKE 'SyncStatusChanged (13): invalid bool%' AND length(raw) = 10",
            &id,
            1
        )
        .await,
        "the malformed frame is kept with its bytes and error"
    );
    assert_eq!(server.metric("telemetry_decode_failures"), 1.0);
    assert_eq!(server.metric("telemetry_unknown_events"), 1.0);
}

#[derive(QueryableByName, Debug)]
struct Gap {
    #[diesel(sql_type = BigInt)]
    first_event_id: i64,
    #[diesel(sql_type = BigInt)]
    last_event_id: i64,
    #[diesel(sql_type = BigInt)]
    event_count: i64,
}

#[tokio::test]
async fn events_over_the_rate_limit_are_counted_and_leave_gap_records() {
    let db = TestDb::new();
    let mut config = test_config(&db);
    config.rate_limit_per_sec = 1;
    config.rate_limit_burst = 50;
    let server = TestServer::start(config).await;
    let mut node = FakeNode::connect(server.telemetry_addr, node_info(16, 2)).await;
    let mut generator = Generator::new(5, 2);
    let sent: Vec<TimedEvent> = (0..400)
        .map(|i| TimedEvent {
            timestamp: jam_now(i),
            event: Event::generate(11, &mut generator).unwrap(),
        })
        .collect();
    node.send_events(&sent).await;
    drop(node); // ending the session closes the open gap
    let id = node_info(16, 2).node_id();

    let session_done = || async {
        count(
            &mut db.connect().await,
            "SELECT count(*) AS n FROM node_sessions WHERE node_id = $1 \
             AND disconnected_at IS NOT NULL AND events_received = 400",
            &id,
        )
        .await
            == 1
    };
    assert!(eventually(WAIT, session_done).await);
    let conn = &mut db.connect().await;
    let stored = events_of(&db, &id).await;
    let limited = count(
        conn,
        "SELECT events_rate_limited AS n FROM node_sessions WHERE node_id = $1",
        &id,
    )
    .await;
    assert!(
        (50..=52).contains(&stored),
        "burst of 50 (plus at most a refill or two) stored, got {stored}"
    );
    assert_eq!(stored + limited, 400, "every event is stored or counted");
    assert_eq!(
        server.metric("telemetry_events_rate_limited"),
        limited as f64
    );

    let gaps: Vec<Gap> = diesel::sql_query(
        "SELECT first_event_id, last_event_id, event_count FROM rate_limit_gaps \
         WHERE node_id = $1 ORDER BY first_event_id",
    )
    .bind::<Text, _>(&id)
    .load(conn)
    .await
    .unwrap();
    assert_eq!(gaps.iter().map(|g| g.event_count).sum::<i64>(), limited);
    assert_eq!(gaps[0].first_event_id, 50);
    assert_eq!(gaps[gaps.len() - 1].last_event_id, 399);
    for gap in &gaps {
        assert_eq!(
            gap.last_event_id - gap.first_event_id + 1,
            gap.event_count,
            "a gap covers consecutive IDs: {gap:?}"
        );
    }
}

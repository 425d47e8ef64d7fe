//! Input made to break TART: each kind must neither crash the server nor stop it from recording
//! what honest nodes send. Real PostgreSQL, real sockets.

mod harness;

use std::time::Duration;

use harness::*;
use tart_backend::jip3::{Event, TimedEvent};

fn dropped(count: u64) -> TimedEvent {
    TimedEvent {
        timestamp: jam_now(0),
        event: Event::Dropped {
            last_timestamp: jam_now(0),
            num_dropped: count,
        },
    }
}

/// `Dropped(N)` with N near 2^63 and then near 2^64, in separate rollups: the session's dropped
/// count saturates at the largest `bigint` instead of failing every later bookkeeping write, so a
/// node that connects afterwards is recorded and the database circuit stays closed.
#[tokio::test]
async fn a_dropped_count_near_2_to_the_63_does_not_wedge_node_bookkeeping() {
    let db = TestDb::new();
    let server = TestServer::start(unlimited_config(&db)).await;
    let mut hostile = FakeNode::connect(server.telemetry_addr, node_info(51, 2)).await;
    for count in [(1 << 63) - 10, u64::MAX, (1 << 63) + 5] {
        hostile.send_events(&[dropped(count)]).await;
        // Past the 100 ms rollup interval of the test config: each lands in its own rollup.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let honest = FakeNode::connect(server.telemetry_addr, node_info(52, 2)).await;
    assert!(
        eventually_count(
            &db,
            WAIT,
            "SELECT count(*) AS n FROM nodes WHERE node_id = $1",
            &honest.node_id(),
            1
        )
        .await,
        "a node connecting after the hostile one is recorded"
    );
    assert!(
        eventually_count(
            &db,
            WAIT,
            "SELECT count(*) AS n FROM node_sessions WHERE node_id = $1 \
             AND events_dropped = 9223372036854775807",
            &hostile.node_id(),
            1
        )
        .await,
        "the dropped count saturates"
    );
    assert_eq!(server.metric("telemetry_database_circuit_open"), 0.0);
    assert_eq!(server.metric("telemetry_batch_write_failures"), 0.0);
    assert!(server.shutdown().await.is_ok(), "shutdown drains in time");
}

/// A bookkeeping update the database refuses (here a node row that breaks a CHECK constraint,
/// as no socket can produce) is set aside and counted; the updates beside it are written.
#[tokio::test]
async fn a_bookkeeping_update_the_database_refuses_is_set_aside_and_the_rest_written() {
    use actix::Actor;
    use chrono::Utc;
    use std::sync::Arc;
    use tart_backend::ingest::budget::QueueBudget;
    use tart_backend::messages::{Drain, NodeConnected};
    use tart_backend::persist::writer::DbWriter;
    use tart_backend::store::models::{NewSession, NodeConnection};

    let db = TestDb::new();
    let config = test_config(&db);
    let url = db.url.clone();
    let (good, bad) = (node_info(53, 2), node_info(54, 2));
    let good_id = good.node_id();
    let metrics = tokio::task::spawn_blocking(move || {
        actix::System::new().block_on(async move {
            tart_backend::store::prepare(&url).await.unwrap();
            let metrics = Arc::new(tart_backend::metrics::Metrics::new());
            let budget = Arc::new(QueueBudget::new(100, metrics.buffer_pending.clone()));
            let pool = tart_backend::store::create_pool(&url, 2).await.unwrap();
            let writer = DbWriter::new(pool, &config, budget, metrics.clone()).start();
            let connected = |info: &tart_backend::jip3::NodeInformation, session_id| {
                let now = Utc::now();
                NodeConnected {
                    node: NodeConnection::new(info, session_id, None, now),
                    session: NewSession::accepted(info, session_id, None, now),
                }
            };
            let mut broken = connected(&bad, 1);
            broken.node.node_id = "not a node id".into();
            broken.session.node_id = None;
            // One turn of the lane holds both: the refused one must not take the other down.
            writer.do_send(broken);
            writer.do_send(connected(&good, 2));
            // Retried for ever, the refused update would keep the drain from ever finishing.
            tokio::time::timeout(WAIT, writer.send(Drain))
                .await
                .expect("the writer drains: nothing is retried for ever")
                .unwrap();
            metrics
        })
    })
    .await
    .unwrap();
    let conn = &mut db.connect().await;
    let recorded = count(
        conn,
        "SELECT count(*) AS n FROM nodes WHERE node_id = $1",
        &good_id,
    )
    .await;
    assert_eq!(recorded, 1, "the good node is written");
    assert_eq!(
        count(conn, "SELECT count(*) AS n FROM nodes WHERE $1 = $1", "").await,
        1,
        "the refused one is not"
    );
    assert_eq!(
        metric_value(
            &metrics.render(),
            "telemetry_bookkeeping_refused_total{kind=\"connect\"}"
        ),
        1.0
    );
}

/// A second NodeInformation in mid-stream reads, by its first bytes, as a Dropped of a huge
/// count. It is kept as a failed frame saying what it is, takes one event ID, and the events
/// after it keep their IDs.
#[tokio::test]
async fn a_second_node_information_mid_stream_does_not_shift_event_ids() {
    let db = TestDb::new();
    let server = TestServer::start(unlimited_config(&db)).await;
    let info = node_info(55, 2);
    let mut node = FakeNode::connect(server.telemetry_addr, info.clone()).await;
    let best = |slot: u32| TimedEvent {
        timestamp: jam_now(0),
        event: Event::BestBlockChanged {
            slot,
            header_hash: tart_backend::jip3::types::Hash([5; 32]),
        },
    };
    node.send_events(&[best(1)]).await;
    node.send_body(&info.to_bytes()).await;
    node.send_events(&[best(2), best(3)]).await;
    let id = node.node_id();
    assert!(
        eventually_count(
            &db,
            WAIT,
            "SELECT count(*) AS n FROM events WHERE node_id = $1 AND event_id IN (0, 2, 3)",
            &id,
            3
        )
        .await,
        "the events after it keep their IDs"
    );
    assert!(
        eventually_count(
            &db,
            WAIT,
            "SELECT count(*) AS n FROM decode_failures WHERE node_id = $1 AND event_id = 1 \
             AND error LIKE '%second NodeInformation%'",
            &id,
            1
        )
        .await,
        "kept as a failed frame that says what it is"
    );
}

/// Connections that complete the handshake and then say nothing cannot hold every slot: after
/// the idle timeout they are closed (counted by reason), and a real node gets in.
#[tokio::test]
async fn idle_connections_holding_every_slot_are_closed_and_a_real_node_gets_in() {
    let db = TestDb::new();
    let server = TestServer::start(tart_backend::config::Config {
        max_connections: 2,
        idle_timeout_ms: 600,
        ..unlimited_config(&db)
    })
    .await;
    let mut squatters = Vec::new();
    for seed in [56, 57] {
        squatters.push(FakeNode::connect(server.telemetry_addr, node_info(seed, 2)).await);
    }
    assert!(
        eventually(WAIT, || async {
            server.metric("telemetry_active_connections") == 2.0
        })
        .await
    );
    let mut early = FakeNode::connect(server.telemetry_addr, node_info(58, 2)).await;
    assert!(
        early.closed_by_server(WAIT).await,
        "no slot while they hold both"
    );
    for squatter in &mut squatters {
        assert!(squatter.closed_by_server(WAIT).await, "closed when idle");
    }
    assert_eq!(
        server.metric("telemetry_connections_closed{reason=\"idle_timeout\"}"),
        2.0
    );
    let mut real = FakeNode::connect(server.telemetry_addr, node_info(59, 2)).await;
    let status = TimedEvent {
        timestamp: jam_now(0),
        event: Event::SyncStatusChanged { synced: true },
    };
    // A node that keeps talking stays past the timeout.
    for _ in 0..8 {
        real.send_events(std::slice::from_ref(&status)).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert!(
        !real.closed_by_server(Duration::from_millis(100)).await,
        "a talking node stays"
    );
    assert!(
        eventually_count(
            &db,
            WAIT,
            "SELECT count(*) AS n FROM events WHERE node_id = $1",
            &real.node_id(),
            8
        )
        .await
    );
}

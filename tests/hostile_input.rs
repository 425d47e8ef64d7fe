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
            let budget = Arc::new(QueueBudget::from_config(&config, &metrics));
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
    assert!(eventually_stored(&db, &real.node_id(), 8).await);
}

fn best_block(slot: u32) -> TimedEvent {
    let mut generator = tart_backend::jip3::generate::Generator::new(u64::from(slot), 2);
    let mut event = Event::generate(11, &mut generator).unwrap();
    if let Event::BestBlockChanged { slot: s, .. } = &mut event {
        *s = slot;
    }
    TimedEvent {
        timestamp: jam_now(0),
        event,
    }
}

fn ip(text: &str) -> std::net::IpAddr {
    text.parse().unwrap()
}

/// A client on another address sends NodeInformation with a connected node's Peer ID: it is
/// refused while the real node's connection is alive, the real node stays connected, and
/// nothing the impostor sends is stored under the node's name.
#[tokio::test]
async fn an_impostor_of_a_connected_peer_id_is_refused_and_cannot_write_as_it() {
    let db = TestDb::new();
    let server = TestServer::start(unlimited_config(&db)).await;
    let mut real =
        FakeNode::connect_from(ip("127.0.0.1"), server.telemetry_addr, node_info(60, 2)).await;
    let id = real.node_id();
    real.send_events(&[best_block(100)]).await;
    assert!(eventually_stored(&db, &id, 1).await);

    let mut impostor =
        FakeNode::connect_from(ip("127.0.0.2"), server.telemetry_addr, node_info(60, 2)).await;
    impostor.send_events(&[best_block(u32::MAX)]).await;
    assert!(
        impostor.closed_by_server(WAIT).await,
        "the impostor is refused"
    );
    assert_eq!(
        server.metric("telemetry_handshakes_refused_total{reason=\"peer_id_in_use\"}"),
        1.0
    );
    real.send_events(&[best_block(101)]).await;
    assert!(
        eventually_stored(&db, &id, 2).await,
        "the real node is still connected and stored"
    );
    assert!(!real.closed_by_server(Duration::from_millis(200)).await);
    let conn = &mut db.connect().await;
    assert_eq!(
        count(
            conn,
            "SELECT count(*) AS n FROM blocks WHERE node_id = $1 AND slot = 4294967295",
            &id
        )
        .await,
        0
    );
    assert!(
        eventually_count(
            &db,
            WAIT,
            "SELECT count(*) AS n FROM node_sessions WHERE claimed_node_id = $1 \
             AND refusal = 'peer_id_in_use' AND remote_address LIKE '127.0.0.2:%'",
            &id,
            1
        )
        .await,
        "the refusal is recorded with who was claimed and from where"
    );
    assert_eq!(server.metric("telemetry_bookkeeping_refused_total"), 0.0);

    // The same node reconnecting from its own address replaces its older connection.
    let mut again =
        FakeNode::connect_from(ip("127.0.0.1"), server.telemetry_addr, node_info(60, 2)).await;
    assert!(
        real.closed_by_server(WAIT).await,
        "the older connection is replaced"
    );
    again.send_events(&[best_block(102)]).await;
    assert!(eventually_stored(&db, &id, 3).await);
}

/// One node reporting a best block far ahead of the others does not become the network's best
/// block in `/api/stats`; it is listed as an outlier.
#[actix_web::test]
async fn a_forged_best_block_does_not_move_the_network_best_block() {
    let db = TestDb::new();
    let server = TestServer::start(unlimited_config(&db)).await;
    let mut nodes = Vec::new();
    for (seed, slot) in [(61, 500), (62, 501), (63, u32::MAX)] {
        let mut node = FakeNode::connect(server.telemetry_addr, node_info(seed, 2)).await;
        node.send_events(&[best_block(slot)]).await;
        nodes.push(node);
    }
    assert!(
        eventually_count(
            &db,
            WAIT,
            "SELECT count(*) AS n FROM blocks WHERE kind = $1",
            "best",
            3
        )
        .await
    );
    // The stats are cached for 5 s: ask until the snapshot includes all three.
    assert!(
        eventually(WAIT, || async {
            get_json(server.api_addr, "/api/stats").await.1["reporting_nodes"] == 3
        })
        .await
    );
    let (_, stats) = get_json(server.api_addr, "/api/stats").await;
    assert_eq!(stats["best_block"], 501, "{stats}");
    assert_eq!(stats["best_block_highest"], u64::from(u32::MAX), "{stats}");
    assert_eq!(
        stats["outliers"][0]["node_id"],
        nodes[2].node_id(),
        "{stats}"
    );
    assert_eq!(stats["outliers"].as_array().unwrap().len(), 1, "{stats}");
}

/// The per-address limits: connections beyond `max_connections_per_ip` from one address, and
/// new connections beyond its handshake rate, are closed at once and counted; another address
/// is not affected.
#[tokio::test]
async fn per_address_limits_close_what_is_over_them() {
    let db = TestDb::new();
    let server = TestServer::start(tart_backend::config::Config {
        max_connections_per_ip: 2,
        ..unlimited_config(&db)
    })
    .await;
    let addr = server.telemetry_addr;
    let _first = FakeNode::connect_from(ip("127.0.0.3"), addr, node_info(64, 2)).await;
    let _second = FakeNode::connect_from(ip("127.0.0.3"), addr, node_info(65, 2)).await;
    let mut third = FakeNode::connect_from(ip("127.0.0.3"), addr, node_info(66, 2)).await;
    assert!(third.closed_by_server(WAIT).await);
    let mut elsewhere = FakeNode::connect_from(ip("127.0.0.4"), addr, node_info(67, 2)).await;
    assert!(!elsewhere.closed_by_server(Duration::from_millis(300)).await);
    assert_eq!(
        server.metric("telemetry_connections_refused_total{reason=\"per_ip_limit\"}"),
        1.0
    );

    let db = TestDb::new();
    let server = TestServer::start(tart_backend::config::Config {
        handshakes_per_ip_per_sec: 1,
        max_connections: 4,
        ..unlimited_config(&db)
    })
    .await;
    let addr = server.telemetry_addr;
    let mut accepted = Vec::new();
    for seed in 70..74 {
        accepted.push(FakeNode::connect_from(ip("127.0.0.5"), addr, node_info(seed, 2)).await);
    }
    // Room under the connection cap again, but the burst of 4 (max_connections) is spent.
    accepted.truncate(2);
    assert!(
        eventually(WAIT, || async {
            server.metric("telemetry_active_connections") == 2.0
        })
        .await
    );
    let mut over = FakeNode::connect_from(ip("127.0.0.5"), addr, node_info(74, 2)).await;
    assert!(over.closed_by_server(WAIT).await);
    assert_eq!(
        server.metric("telemetry_connections_refused_total{reason=\"handshake_rate\"}"),
        1.0
    );
    for node in &mut accepted {
        assert!(!node.closed_by_server(Duration::from_millis(100)).await);
    }
}

/// The allowlists and the expected genesis: what is not allowed is refused, counted and
/// recorded; what is allowed is stored.
#[tokio::test]
async fn allowlists_and_the_expected_genesis_refuse_other_nodes() {
    let db = TestDb::new();
    let allowed = node_info(80, 2);
    let server = TestServer::start(tart_backend::config::Config {
        allowed_networks: "127.0.0.6/31".into(),
        allowed_peer_ids: hex::encode(allowed.peer_id.0),
        expected_genesis: hex::encode(allowed.genesis_header_hash.0),
        ..unlimited_config(&db)
    })
    .await;
    let addr = server.telemetry_addr;
    let mut outside = FakeNode::connect_from(ip("127.0.0.8"), addr, allowed.clone()).await;
    assert!(outside.closed_by_server(WAIT).await, "address not in range");
    let mut stranger = FakeNode::connect_from(ip("127.0.0.7"), addr, node_info(81, 2)).await;
    assert!(stranger.closed_by_server(WAIT).await, "Peer ID not allowed");
    let mut other_chain = allowed.clone();
    other_chain.genesis_header_hash.0 = [9; 32];
    let mut forked = FakeNode::connect_from(ip("127.0.0.7"), addr, other_chain).await;
    assert!(forked.closed_by_server(WAIT).await, "another genesis");
    let mut good = FakeNode::connect_from(ip("127.0.0.6"), addr, allowed.clone()).await;
    good.send_events(&[best_block(1)]).await;
    assert!(eventually_stored(&db, &good.node_id(), 1).await);
    assert_eq!(
        server.metric("telemetry_connections_refused_total{reason=\"address_not_allowed\"}"),
        1.0
    );
    for reason in ["peer_id_not_allowed", "wrong_genesis"] {
        assert_eq!(
            server.metric(&format!(
                "telemetry_handshakes_refused_total{{reason=\"{reason}\"}}"
            )),
            1.0,
            "{reason}"
        );
    }
}

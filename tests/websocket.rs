//! The WebSocket live stream with real clients: awc for well-behaved ones, a raw TCP client for
//! one that stops reading.

mod harness;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use harness::*;
use serde_json::{json, Value};
use tart_backend::config::Config;
use tart_backend::jip3::types::Hash;
use tart_backend::jip3::{Event, TimedEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn best_blocks(first_slot: u32, count: u32) -> Vec<TimedEvent> {
    (first_slot..first_slot + count)
        .map(|slot| TimedEvent {
            timestamp: jam_now(u64::from(slot)),
            event: Event::BestBlockChanged {
                slot,
                header_hash: Hash([slot as u8; 32]),
            },
        })
        .collect()
}

/// The next `count` event messages (other messages, e.g. stats, are skipped).
async fn events(ws: &mut impl WsConnection, count: usize) -> Vec<Value> {
    let mut events = Vec::new();
    while events.len() < count {
        events.push(ws_until(ws, "event").await.1);
    }
    events
}

/// Waits until the node's `expected` events are in the database.
async fn all_stored(db: &TestDb, node: &FakeNode, expected: i64) -> bool {
    let node_id = node.node_id();
    eventually(WAIT, || async {
        let sql = "SELECT count(*) AS n FROM events WHERE node_id = $1";
        count(&mut db.connect().await, sql, &node_id).await == expected
    })
    .await
}

fn data_of(messages: &[Value], kind: &str) -> Vec<Value> {
    messages
        .iter()
        .filter(|m| m["type"] == kind)
        .map(|m| m["data"].clone())
        .collect()
}

#[actix_web::test]
async fn subscriptions_recent_events_ping_stats_and_ids_shared_with_rest() {
    let db = TestDb::new();
    let server = TestServer::start(Config {
        ws_stats_interval_ms: 300,
        ..unlimited_config(&db)
    })
    .await;
    let api = server.api_addr;
    let mut x = FakeNode::connect(server.telemetry_addr, node_info(31, 2)).await;
    let mut y = FakeNode::connect(server.telemetry_addr, node_info(32, 2)).await;

    let (mut all, connected) = ws_connect(api).await;
    assert_eq!(connected["type"], "connected");
    assert!(connected["timestamp"].is_string());
    let greeting = &connected["data"];
    assert!(greeting["message"].is_string());
    assert_eq!(greeting["recent_events"], 0);
    assert!(greeting["total_nodes"].is_u64());
    assert_eq!(greeting["broadcaster_stats"]["subscribers"], 1);
    assert_eq!(greeting["subscription"], json!({"type": "All"}));

    let (mut only_x, _) = ws_connect(api).await;
    ws_send(
        &mut only_x,
        json!({"type": "Subscribe", "filter": {"type": "Node", "node_id": x.node_id().to_uppercase()}}),
    )
    .await;
    let (_, ack) = ws_until(&mut only_x, "subscribed").await;
    assert_eq!(ack["data"]["filter"]["node_id"], x.node_id().as_str());
    let (mut none, _) = ws_connect(api).await;
    ws_send(&mut none, json!({"type": "Unsubscribe"})).await;
    ws_until(&mut none, "unsubscribed").await;
    ws_send(
        &mut all,
        json!({"type": "Subscribe", "filter": {"type": "All"}}),
    )
    .await;
    ws_until(&mut all, "subscribed").await;

    // Y's events first, all the way through the broadcaster, then X's.
    y.send_events(&best_blocks(100, 5)).await;
    let from_y = events(&mut all, 5).await;
    x.send_events(&best_blocks(200, 5)).await;
    let from_x = events(&mut all, 5).await;
    for (sent, node) in [(&from_y, &y), (&from_x, &x)] {
        for (i, message) in sent.iter().enumerate() {
            let event = &message["data"];
            assert_eq!(event["node_id"], node.node_id().as_str());
            assert_eq!(event["event_id"], i);
            assert_eq!(event["event_type"], 11);
            assert_eq!(event["event_name"], "BestBlockChanged");
            assert!(event["event"]["BestBlockChanged"]["slot"].is_u64());
            assert!(event["latency_ms"].as_f64().unwrap() >= 0.0);
        }
    }
    // The Node filter saw X's events only: any of Y's would have come first.
    let seen = events(&mut only_x, 5).await;
    assert!(seen
        .iter()
        .all(|m| m["data"]["node_id"] == x.node_id().as_str()));
    let ws_ids: Vec<i64> = seen
        .iter()
        .map(|m| m["data"]["id"].as_i64().unwrap())
        .collect();
    assert_eq!(
        ws_ids,
        from_x
            .iter()
            .map(|m| m["data"]["id"].as_i64().unwrap())
            .collect::<Vec<_>>()
    );
    // The unsubscribed client got none, and says so.
    ws_send(&mut none, json!({"type": "Ping"})).await;
    let (before, pong) = ws_until(&mut none, "pong").await;
    assert!(data_of(&before, "event").is_empty());
    assert_eq!(pong["data"]["events_received"], 0);
    assert!(pong["data"]["uptime_ms"].is_u64());
    ws_send(&mut all, json!({"type": "Ping"})).await;
    let (_, pong) = ws_until(&mut all, "pong").await;
    assert_eq!(pong["data"]["events_received"], 10);

    // Recent events: newest first, the node filter applies.
    ws_send(&mut all, json!({"type": "GetRecentEvents", "limit": 3})).await;
    let (_, recent) = ws_until(&mut all, "recent_events").await;
    assert_eq!(recent["data"]["count"], 3);
    let recent_ids: Vec<i64> = recent["data"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert_eq!(
        recent_ids,
        ws_ids.iter().rev().take(3).copied().collect::<Vec<_>>()
    );
    ws_send(
        &mut only_x,
        json!({"type": "GetRecentEvents", "limit": 100}),
    )
    .await;
    let (_, recent) = ws_until(&mut only_x, "recent_events").await;
    assert_eq!(recent["data"]["count"], 5);

    // The same ids over REST, once written.
    let all_ws_ids: HashSet<i64> = from_x
        .iter()
        .chain(&from_y)
        .map(|m| m["data"]["id"].as_i64().unwrap())
        .collect();
    assert!(
        eventually(WAIT, || async {
            let (_, page) = get_json(api, "/api/events?limit=100").await;
            let rest: HashSet<i64> = page["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_i64().unwrap())
                .collect();
            rest == all_ws_ids
        })
        .await,
        "REST returns the ids the WebSocket showed"
    );

    // Bad input gets an error message, and the connection stays usable.
    for bad in [
        "not json",
        r#"{"type":"Nope"}"#,
        r#"{"type":"Subscribe","filter":{"type":"Node","node_id":"xyz"}}"#,
        r#"{"type":"GetRecentEvents","limit":-1}"#,
    ] {
        ws_send_text(&mut all, bad).await;
        let (_, error) = ws_until(&mut all, "error").await;
        assert!(error["data"]["message"].is_string(), "{bad}");
    }
    ws_send(&mut all, json!({"type": "Ping"})).await;
    ws_until(&mut all, "pong").await;

    // Stats arrive periodically; their database part is up to one cache TTL (5 s) old.
    let stats = loop {
        let (_, stats) = ws_until(&mut all, "stats").await;
        if stats["data"]["connections"]["total"] == 2 {
            break stats["data"].clone();
        }
    };
    assert!(stats["database"]["best_block"].is_i64());
    assert_eq!(stats["broadcaster"]["subscribers"], 3);
    assert_eq!(stats["broadcaster"]["total_broadcast"], 10);
    let mut connected_nodes = vec![x.node_id(), y.node_id()];
    connected_nodes.sort();
    assert_eq!(stats["connections"]["total"], 2);
    assert_eq!(stats["connections"]["nodes"], json!(connected_nodes));

    assert_eq!(server.metric("telemetry_broadcaster_subscribers"), 3.0);
    // Not a WebSocket request: a JSON 400.
    let (status, body) = get_json(api, "/api/ws").await;
    assert_eq!(status, 400);
    assert!(body["error"].is_string());
}

#[actix_web::test]
async fn a_silent_client_is_closed_after_the_timeout_and_an_answering_one_stays() {
    let db = TestDb::new();
    let server = TestServer::start(Config {
        ws_heartbeat_ms: 100,
        ws_client_timeout_ms: 600,
        ..test_config(&db)
    })
    .await;
    let (mut silent, _) = ws_connect(server.api_addr).await;
    let (mut answering, _) = ws_connect(server.api_addr).await;
    // The answering client pongs every ping, as browsers do.
    let keep_answering = actix_web::rt::spawn(async move {
        use futures_util::{SinkExt, StreamExt};
        while let Some(Ok(frame)) = answering.next().await {
            if let awc::ws::Frame::Ping(payload) = frame {
                let _ = answering.send(awc::ws::Message::Pong(payload)).await;
            }
        }
    });
    let started = std::time::Instant::now();
    let closed = loop {
        match ws_next(&mut silent).await {
            WsIn::Json(_) => continue,
            other => break other,
        }
    };
    match closed {
        WsIn::Close(Some(reason)) => {
            assert_eq!(reason.code, awc::ws::CloseCode::Policy);
            assert!(reason.description.unwrap().contains("no message or pong"));
        }
        other => panic!("expected a close frame with a reason, got {other:?}"),
    }
    assert!(started.elapsed() >= Duration::from_millis(500));
    assert!(
        !keep_answering.is_finished(),
        "the answering client is still connected"
    );
    assert!(
        eventually(WAIT, || async {
            server.metric("telemetry_broadcaster_subscribers") == 1.0
        })
        .await
    );
    keep_answering.abort();
}

/// A WebSocket client on a raw socket with a small receive buffer that completes the handshake
/// and then never reads again.
async fn non_reading_client(api: SocketAddr) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(api).await.unwrap();
    let request = format!(
        "GET /api/ws HTTP/1.1\r\nHost: {api}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    stream
}

/// Reads everything left until the server ends the connection; false if it stays open.
async fn drained_until_closed(
    stream: &mut (impl tokio::io::AsyncRead + Unpin),
    within: Duration,
) -> bool {
    let mut buf = vec![0u8; 1 << 16];
    tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

#[actix_web::test]
async fn a_client_that_stops_reading_is_disconnected_while_others_and_ingest_carry_on() {
    const EVENTS: u32 = 20_000;
    let db = TestDb::new();
    let server = TestServer::start(Config {
        ws_client_queue_bytes: 1 << 20,
        ..unlimited_config(&db)
    })
    .await;
    let api = server.api_addr;

    let mut stuck = non_reading_client(api).await;
    let (mut reader, _) = ws_connect(api).await;
    let received = Rc::new(std::cell::Cell::new(0u32));
    let counter = received.clone();
    let reading = actix_web::rt::spawn(async move {
        loop {
            match ws_next(&mut reader).await {
                WsIn::Json(m) if m["type"] == "event" => counter.set(counter.get() + 1),
                WsIn::Json(_) => {}
                other => panic!("the reading client was disconnected: {other:?}"),
            }
        }
    });
    assert!(
        eventually(WAIT, || async {
            server.metric("telemetry_broadcaster_subscribers") == 2.0
                && server.metric("telemetry_ws_sessions") == 2.0
        })
        .await
    );

    let mut node = FakeNode::connect(server.telemetry_addr, node_info(33, 2)).await;
    for chunk in 0..EVENTS / 500 {
        node.send_events(&best_blocks(chunk * 500, 500)).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        eventually(WAIT, || async {
            server.metric("telemetry_ws_slow_clients_disconnected") == 1.0
        })
        .await,
        "the client that stopped reading is found out"
    );
    // Its session is gone while the client still reads nothing (reading would unblock it).
    assert!(
        eventually(WAIT, || async {
            server.metric("telemetry_ws_sessions") == 1.0
        })
        .await,
        "the session stuck on the full socket is stopped"
    );
    assert!(
        drained_until_closed(&mut stuck, WAIT).await,
        "and its connection is closed"
    );
    assert!(
        eventually(WAIT, || async { received.get() == EVENTS }).await,
        "the reading client got every event ({} of {EVENTS})",
        received.get()
    );
    assert!(!reading.is_finished());
    assert_eq!(server.metric("telemetry_broadcaster_subscribers"), 1.0);
    assert!(
        all_stored(&db, &node, i64::from(EVENTS)).await,
        "ingest stored every event"
    );
    assert_eq!(server.metric("telemetry_broadcaster_events_shed"), 0.0);
    reading.abort();
}

#[actix_web::test]
async fn a_live_stream_that_falls_behind_sheds_events_from_the_stream_not_from_storage() {
    let db = TestDb::new();
    // Every batch is over this bound: all of them are shed from the live stream.
    let server = TestServer::start(Config {
        broadcast_queue_bytes: 1,
        ..unlimited_config(&db)
    })
    .await;
    let (mut ws, _) = ws_connect(server.api_addr).await;
    let mut node = FakeNode::connect(server.telemetry_addr, node_info(34, 2)).await;
    node.send_events(&best_blocks(0, 50)).await;
    assert!(all_stored(&db, &node, 50).await, "every event is stored");
    assert_eq!(server.metric("telemetry_broadcaster_events_shed"), 50.0);
    assert_eq!(server.metric("telemetry_broadcaster_total_broadcast"), 0.0);
    ws_send(&mut ws, json!({"type": "Ping"})).await;
    let (before, pong) = ws_until(&mut ws, "pong").await;
    assert!(data_of(&before, "event").is_empty());
    assert_eq!(pong["data"]["events_received"], 0);
}

/// A masked client text frame (clients must mask), for payloads under 126 bytes.
fn client_text_frame(text: &str) -> Vec<u8> {
    let mask = [0x11u8, 0x22, 0x33, 0x44];
    let mut frame = vec![0x81, 0x80 | text.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(text.bytes().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

#[actix_web::test]
async fn a_session_frozen_on_a_full_socket_is_found_by_its_stopped_heartbeat() {
    const EVENTS: u32 = 20_000;
    let db = TestDb::new();
    // A queue bound that is never reached: only the heartbeat watch can find the frozen session.
    let server = TestServer::start(Config {
        ws_client_queue_bytes: 256 << 20,
        ws_heartbeat_ms: 100,
        ws_client_timeout_ms: 500,
        ..unlimited_config(&db)
    })
    .await;
    let stuck = non_reading_client(server.api_addr).await;
    let (mut read_half, mut write_half) = stuck.into_split();
    // The client keeps talking (so it is not silent), but never reads.
    let talking = actix_web::rt::spawn(async move {
        let ping = client_text_frame(r#"{"type":"Ping"}"#);
        while write_half.write_all(&ping).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let mut node = FakeNode::connect(server.telemetry_addr, node_info(35, 2)).await;
    for chunk in 0..EVENTS / 500 {
        node.send_events(&best_blocks(chunk * 500, 500)).await;
    }
    assert!(
        eventually(WAIT, || async {
            server.metric("telemetry_ws_slow_clients_disconnected") == 1.0
                && server.metric("telemetry_ws_sessions") == 0.0
        })
        .await,
        "the frozen session is found and stopped"
    );
    assert!(
        drained_until_closed(&mut read_half, WAIT).await,
        "its connection is closed"
    );
    talking.abort();
}

/// A burst of several times a client's queue bound, sent by a node in one go, reaches a client
/// that keeps reading: what the server hands on at once stays far below the bound, so a burst
/// is not mistaken for a client that is behind.
#[actix_web::test]
async fn a_burst_larger_than_a_client_queue_reaches_a_client_that_keeps_up() {
    let db = TestDb::new();
    // The default bound, 16 publishes: in a debug build beside the other tests the session's own
    // formatting is slow, and a client that keeps up must not be mistaken for one that is
    // behind. A burst handed on as one publish (the defect this guards against) is still twice
    // the bound.
    let server = TestServer::start(Config {
        ws_client_queue_bytes: 4 << 20,
        ..unlimited_config(&db)
    })
    .await;
    let (mut ws, _) = ws_connect(server.api_addr).await;
    let mut node = FakeNode::connect(server.telemetry_addr, node_info(41, 2)).await;
    let burst = best_blocks(1, 24_000); // ~8.6 MB of live events, counted as the queue counts them
    node.send_events(&burst).await;
    let mut received = 0;
    while received < burst.len() {
        match tokio::time::timeout(WAIT, ws_next(&mut ws)).await {
            Ok(WsIn::Json(message)) if message["type"] == "event" => {
                assert_eq!(
                    message["data"]["event_id"], received,
                    "in order, none missing"
                );
                received += 1;
            }
            Ok(WsIn::Json(_)) => {}
            Ok(other) => panic!("the client was dropped after {received} events: {other:?}"),
            Err(_) => panic!("only {received} of {} events arrived", burst.len()),
        }
    }
    assert_eq!(server.metric("telemetry_ws_slow_clients_disconnected"), 0.0);
}

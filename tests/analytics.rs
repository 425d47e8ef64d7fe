//! Asking the data: the event explorer's filters and cursor, and time series from the counts
//! kept as events arrive, against what the test nodes really sent, on the real PostgreSQL.

mod harness;

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, TimeDelta, Utc};
use diesel_async::RunQueryDsl;
use harness::*;
use serde_json::Value;
use tart_backend::config::Config;
use tart_backend::jip3::types::Hash;
use tart_backend::jip3::{Event, TimedEvent};

/// A server without a rate limit that writes its event counts every 200 ms.
async fn counting_server(db: &TestDb) -> TestServer {
    TestServer::start(Config {
        hourly_stats_interval_ms: 200,
        ..unlimited_config(db)
    })
    .await
}

/// Event `i` of a test node: every tenth a SyncStatusChanged (13), the rest BestBlockChanged (11).
fn nth_event(i: u32) -> TimedEvent {
    let event = if i.is_multiple_of(10) {
        Event::SyncStatusChanged {
            synced: i.is_multiple_of(20),
        }
    } else {
        Event::BestBlockChanged {
            slot: i,
            header_hash: Hash([i as u8; 32]),
        }
    };
    TimedEvent {
        timestamp: jam_now(u64::from(i)),
        event,
    }
}

/// Sends events `range` of [`nth_event`], a thousand per write.
async fn send_range(node: &mut FakeNode, range: std::ops::Range<u32>) {
    let events: Vec<TimedEvent> = range.map(nth_event).collect();
    for chunk in events.chunks(1000) {
        node.send_events(chunk).await;
    }
}

fn encode(time: DateTime<Utc>) -> String {
    tart_backend::time::format(&time).replace('+', "%2B")
}

/// Follows `next_before` from `path` (which has its own `?` and filters) to the last page;
/// returns every event in page order.
async fn walk(api: std::net::SocketAddr, path: &str) -> Vec<Value> {
    let mut events = Vec::new();
    let mut cursor: Option<i64> = None;
    loop {
        let url = match cursor {
            Some(before) => format!("{path}&before={before}"),
            None => path.to_owned(),
        };
        let (status, page) = get_json(api, &url).await;
        assert_eq!(status, 200, "{url}: {page}");
        events.extend(page["events"].as_array().unwrap().iter().cloned());
        match page["next_before"].as_i64() {
            Some(next) => cursor = Some(next),
            None => return events,
        }
    }
}

fn ids(events: &[Value]) -> Vec<i64> {
    events.iter().map(|e| e["id"].as_i64().unwrap()).collect()
}

#[actix_web::test]
async fn the_explorer_pages_through_a_hundred_thousand_events_and_its_filters_combine() {
    let db = TestDb::new();
    let server = TestServer::start(unlimited_config(&db)).await;
    let api = server.api_addr;
    const PER_NODE: u32 = 25_000;
    const HALF: u32 = PER_NODE / 2;
    let mut nodes = Vec::new();
    for seed in 1..=4 {
        nodes.push(FakeNode::connect(server.telemetry_addr, node_info(seed, 2)).await);
    }
    for node in &mut nodes {
        send_range(node, 0..HALF).await;
    }
    for node in &nodes {
        assert!(eventually_stored(&db, &node.node_id(), i64::from(HALF)).await);
    }
    let middle = Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    for node in &mut nodes {
        send_range(node, HALF..PER_NODE).await;
    }
    for node in &nodes {
        assert!(eventually_stored(&db, &node.node_id(), i64::from(PER_NODE)).await);
    }

    // Everything, newest first, a thousand at a time: no gap, no repeat.
    let all = walk(api, "/api/events?limit=1000").await;
    assert_eq!(all.len(), 4 * PER_NODE as usize);
    let all_ids = ids(&all);
    assert!(
        all_ids.windows(2).all(|w| w[0] > w[1]),
        "strictly newest first"
    );
    let sent: HashSet<(String, u64)> = nodes
        .iter()
        .flat_map(|n| (0..u64::from(PER_NODE)).map(|i| (n.node_id(), i)))
        .collect();
    let seen: HashSet<(String, u64)> = all
        .iter()
        .map(|e| {
            (
                e["node_id"].as_str().unwrap().to_owned(),
                e["event_id"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(seen, sent, "every event sent, once");

    // Node, type and time together, on both routes; pages of 100.
    let a = nodes[0].node_id();
    let after_middle = format!("type=SyncStatusChanged&from={}", encode(middle));
    for path in [
        format!("/api/events?limit=100&node={a}&{after_middle}"),
        format!("/api/nodes/{a}/events?limit=100&{after_middle}"),
    ] {
        let found = walk(api, &path).await;
        assert_eq!(found.len(), (HALF / 10) as usize, "{path}");
        for e in &found {
            assert_eq!(e["node_id"], a.as_str());
            assert_eq!(e["event_type"], 13);
            assert_eq!(e["event_name"], "SyncStatusChanged");
            assert!(e["event_id"].as_u64().unwrap() >= u64::from(HALF));
        }
    }
    // Two types by name and number, before the middle, of another node.
    let b = nodes[1].node_id();
    let before_middle = walk(
        api,
        &format!(
            "/api/events?limit=1000&node={b}&type=11,SyncStatusChanged&to={}",
            encode(middle)
        ),
    )
    .await;
    assert_eq!(before_middle.len(), HALF as usize);
    assert!(before_middle
        .iter()
        .all(|e| e["event_id"].as_u64().unwrap() < u64::from(HALF) && e["node_id"] == b.as_str()));
    // A type across all nodes: the newest of them first.
    let (_, newest_sync) = get_json(api, "/api/events?type=13&limit=5").await;
    let newest: Vec<i64> = ids(newest_sync["events"].as_array().unwrap());
    let expected: Vec<i64> = all
        .iter()
        .filter(|e| e["event_type"] == 13)
        .take(5)
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert_eq!(newest, expected);
    assert!(newest_sync["next_before"].is_i64(), "more pages follow");
    drop(nodes);
}

#[actix_web::test]
async fn every_bad_filter_is_a_400_that_says_why() {
    let db = TestDb::new();
    let server = TestServer::start(test_config(&db)).await;
    let api = server.api_addr;
    let node = "ab".repeat(32);
    for path in [
        "/api/events?type=Bogus".to_owned(),
        "/api/events?type=256".to_owned(),
        "/api/events?type=".to_owned(),
        "/api/events?from=yesterday".to_owned(),
        "/api/events?from=2026-12-01T11:00:00Z&to=2026-12-01T10:00:00Z".to_owned(),
        "/api/events?before=-1".to_owned(),
        "/api/events?before=abc".to_owned(),
        "/api/events?limit=ten".to_owned(),
        "/api/events?limit=1&limit=2".to_owned(),
        "/api/events?node=abc".to_owned(),
        "/api/events?nodes=1".to_owned(),
        format!("/api/nodes/{node}/events?node={node}"),
        format!("/api/nodes/{node}/events?type=Bogus"),
        "/api/timeseries?metric=cpu".to_owned(),
        "/api/timeseries?group_by=colour".to_owned(),
        "/api/timeseries?step=90".to_owned(),
        "/api/timeseries?step=0".to_owned(),
        "/api/timeseries?from=2026-12-01T11:00:00Z&to=2026-12-01T10:00:00Z".to_owned(),
        "/api/timeseries?from=2020-01-01T00:00:00Z&step=3600".to_owned(),
        "/api/timeseries?bucket=1".to_owned(),
    ] {
        let (status, body) = get_json(api, &path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(
            body["error"].as_str().is_some_and(|e| e.len() > 10),
            "{path}: {body}"
        );
    }
}

/// Connects a node of `implementation` and sends `best` BestBlockChanged and `sync`
/// SyncStatusChanged events.
async fn node_sending(
    server: &TestServer,
    seed: u8,
    implementation: &str,
    best: u32,
    sync: u32,
) -> FakeNode {
    let mut info = node_info(seed, 2);
    info.implementation_name = implementation.into();
    let mut node = FakeNode::connect(server.telemetry_addr, info).await;
    let events: Vec<TimedEvent> = (0..best)
        .map(|i| TimedEvent {
            timestamp: jam_now(u64::from(i)),
            event: Event::BestBlockChanged {
                slot: i,
                header_hash: Hash([1; 32]),
            },
        })
        .chain((0..sync).map(|i| TimedEvent {
            timestamp: jam_now(u64::from(i)),
            event: Event::SyncStatusChanged { synced: true },
        }))
        .collect();
    node.send_events(&events).await;
    node
}

fn totals(series: &Value) -> BTreeMap<String, i64> {
    series["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let values: i64 = s["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_i64().unwrap())
                .sum();
            assert_eq!(values, s["total"].as_i64().unwrap(), "{s}");
            (s["key"].as_str().unwrap().to_owned(), values)
        })
        .collect()
}

#[actix_web::test]
async fn time_series_count_what_each_node_type_and_implementation_sent() {
    let db = TestDb::new();
    let server = TestServer::start(Config {
        hourly_stats_interval_ms: 200,
        minute_stats_retention_days: 1,
        ..unlimited_config(&db)
    })
    .await;
    let api = server.api_addr;
    let a = node_sending(&server, 1, "alpha", 200, 100).await;
    let b = node_sending(&server, 2, "alpha", 50, 0).await;
    let c = node_sending(&server, 3, "beta", 0, 70).await;
    let expect_types = BTreeMap::from([("11".to_owned(), 250), ("13".to_owned(), 170)]);
    assert!(
        eventually(WAIT, || async {
            totals(&get_json(api, "/api/timeseries?group_by=type").await.1) == expect_types
        })
        .await,
        "per type"
    );
    let (_, by_type) = get_json(api, "/api/timeseries?metric=events&group_by=type").await;
    assert_eq!(by_type["tier"], "minute");
    assert_eq!(by_type["step_seconds"], 60);
    // The last hour, widened to whole minutes.
    let buckets = by_type["buckets"].as_array().unwrap().len();
    assert!((60..=61).contains(&buckets), "{buckets}");
    assert_eq!(
        by_type["series"][0]["values"].as_array().unwrap().len(),
        buckets
    );
    assert_eq!(by_type["series"][0]["name"], "BestBlockChanged");
    assert!(by_type["counted"].as_str().unwrap().contains("node"));

    let (_, by_node) = get_json(api, "/api/timeseries?group_by=node").await;
    assert_eq!(
        totals(&by_node),
        BTreeMap::from([(a.node_id(), 300), (b.node_id(), 50), (c.node_id(), 70)])
    );
    let (_, by_implementation) = get_json(api, "/api/timeseries?group_by=implementation").await;
    assert_eq!(
        totals(&by_implementation),
        BTreeMap::from([("alpha".to_owned(), 350), ("beta".to_owned(), 70)])
    );

    // Three days back is past the minute counts' retention (one day here): the hourly counts
    // answer, with the same totals.
    let from = encode(Utc::now() - TimeDelta::days(3));
    let (status, hourly) = get_json(
        api,
        &format!("/api/timeseries?group_by=type&from={from}&step=3600"),
    )
    .await;
    assert_eq!(status, 200, "{hourly}");
    assert_eq!(hourly["tier"], "hour");
    assert_eq!(hourly["step_seconds"], 3600);
    assert_eq!(totals(&hourly), expect_types);
    // A range without events has no series.
    let (_, empty) = get_json(
        api,
        "/api/timeseries?from=2026-01-01T00:00:00Z&to=2026-01-01T05:00:00Z&step=3600",
    )
    .await;
    assert_eq!(empty["series"], serde_json::json!([]));
    assert_eq!(empty["buckets"].as_array().unwrap().len(), 5);
    drop((a, b, c));
}

#[actix_web::test]
async fn counts_past_their_retention_are_deleted_and_the_rest_kept() {
    let db = TestDb::new();
    // No server: its own upkeep would prune at start, racing this test.
    tart_backend::store::prepare(&db.url).await.unwrap();
    let mut conn = db.connect().await;
    for insert in [
        "INSERT INTO type_counts_minute (minute, event_count, event_type) VALUES \
         (now() - interval '8 days', 5, 11), (now() - interval '6 days', 7, 11)",
        "INSERT INTO event_stats_hourly (node_id, event_type, hour, event_count) VALUES \
         (repeat('a', 64), 11, now() - interval '401 days', 5), \
         (repeat('a', 64), 11, now() - interval '399 days', 7)",
    ] {
        diesel::sql_query(insert).execute(&mut conn).await.unwrap();
    }
    let deleted = tart_backend::store::aggregates::prune(&mut conn, 7, 400)
        .await
        .unwrap();
    assert_eq!(deleted, (1, 1));
    for table in ["type_counts_minute", "event_stats_hourly"] {
        let kept = count(
            &mut conn,
            &format!("SELECT sum(event_count)::int8 AS n FROM {table} WHERE $1 = $1"),
            "",
        )
        .await;
        assert_eq!(kept, 7, "{table}");
    }
}

/// A frame of `discriminator` whose fields are `fields`, stamped now.
fn raw_event(discriminator: u8, fields: &[u8]) -> Vec<u8> {
    let mut body = jam_now(0).to_le_bytes().to_vec();
    body.push(discriminator);
    body.extend_from_slice(fields);
    body
}

fn ip(text: &str) -> std::net::IpAddr {
    text.parse().unwrap()
}

#[actix_web::test]
async fn a_nodes_sessions_failures_and_counters_say_what_it_did_wrong() {
    let db = TestDb::new();
    let server = TestServer::start(unlimited_config(&db)).await;
    let api = server.api_addr;
    let mut node =
        FakeNode::connect_from(ip("127.0.0.1"), server.telemetry_addr, node_info(9, 2)).await;
    let id = node.node_id();
    node.send_events(&[nth_event(1), nth_event(2)]).await;
    // BestBlockChanged cut short after three bytes of its slot, then a type JIP-3 lacks.
    let truncated = raw_event(11, &[1, 2, 3]);
    node.send_body(&truncated).await;
    node.send_body(&raw_event(250, &[7, 7])).await;
    assert!(
        eventually_stored(&db, &id, 3).await,
        "two events and the undefined one"
    );
    let mut impostor =
        FakeNode::connect_from(ip("127.0.0.2"), server.telemetry_addr, node_info(9, 2)).await;
    assert!(
        impostor.closed_by_server(WAIT).await,
        "refused while the node is connected"
    );
    let first_session_closed = async {
        drop(node);
        eventually(WAIT, || async {
            get_json(api, &format!("/api/nodes/{id}")).await.1["is_connected"] == false
        })
        .await
    };
    assert!(first_session_closed.await);
    let again = FakeNode::connect(server.telemetry_addr, node_info(9, 2)).await;

    let sessions_path = format!("/api/nodes/{id}/sessions");
    assert!(
        eventually(WAIT, || async {
            let (_, body) = get_json(api, &sessions_path).await;
            // The first session's stored count comes with a later rollup than its failure.
            body["sessions"].as_array().map(Vec::len) == Some(3)
                && body["counters"]["decode_failures"] == 1
                && body["sessions"][0]["state"] == "connected"
                && body["sessions"][2]["events_stored"] == 3
        })
        .await,
        "{:?}",
        get_json(api, &sessions_path).await
    );
    let (_, body) = get_json(api, &sessions_path).await;
    let sessions = body["sessions"].as_array().unwrap();
    let states: Vec<&str> = sessions
        .iter()
        .map(|s| s["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["connected", "refused", "disconnected"]);
    assert_eq!(sessions[1]["refusal"], "peer_id_in_use");
    assert!(sessions[1]["remote_address"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.2:"));
    let first = &sessions[2];
    assert_eq!(first["events_received"], 4);
    assert_eq!(first["events_stored"], 3);
    assert_eq!(first["decode_failures"], 1);
    assert_eq!(first["undefined_events"], 1);
    assert!(first["disconnect_reason"].is_string());
    assert_eq!(first["protocol_version"], 1);
    let counters = &body["counters"];
    assert_eq!(counters["sessions"], 2);
    assert_eq!(counters["refused_handshakes"], 1);
    assert_eq!(counters["undefined_events"], 1);
    assert_eq!(body["next_before"], Value::Null);
    // One at a time, by the cursor.
    let walked: Vec<i64> = {
        let mut ids = Vec::new();
        let mut path = format!("{sessions_path}?limit=1");
        loop {
            let (_, page) = get_json(api, &path).await;
            ids.extend(
                page["sessions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s["session_id"].as_i64().unwrap()),
            );
            match page["next_before"].as_i64() {
                Some(next) => path = format!("{sessions_path}?limit=1&before={next}"),
                None => break ids,
            }
        }
    };
    let all: Vec<i64> = sessions
        .iter()
        .map(|s| s["session_id"].as_i64().unwrap())
        .collect();
    assert_eq!(walked, all);

    let (status, failures) = get_json(api, &format!("/api/nodes/{id}/failures")).await;
    assert_eq!(status, 200);
    let failure = &failures["failures"][0];
    assert_eq!(failures["failures"].as_array().unwrap().len(), 1);
    assert_eq!(failure["claimed_type"], 11);
    assert_eq!(failure["claimed_name"], "BestBlockChanged");
    assert_eq!(
        failure["raw"],
        tart_backend::jip3::types::to_hex(&truncated)
    );
    assert_eq!(failure["raw_bytes"], truncated.len());
    assert_eq!(failure["raw_truncated"], false);
    assert_eq!(failure["event_id"], 2);
    assert!(failure["error"].as_str().unwrap().len() > 5);

    let unknown = "0".repeat(64);
    for (path, code) in [
        (format!("/api/nodes/{unknown}/sessions"), 404),
        (format!("/api/nodes/{unknown}/failures"), 404),
        (format!("/api/nodes/{id}/failures?limit=x"), 400),
        (format!("/api/nodes/{id}/sessions?type=1"), 400),
    ] {
        assert_eq!(get_json(api, &path).await.0, code, "{path}");
    }
    drop((impostor, again));
}

#[actix_web::test]
async fn the_network_overview_counts_implementations_slots_laggards_and_problems() {
    let db = TestDb::new();
    let server = TestServer::start(unlimited_config(&db)).await;
    let api = server.api_addr;
    let mut nodes = Vec::new();
    for (seed, implementation, best) in [(21, "alpha", 100), (22, "alpha", 98), (23, "beta", 80)] {
        let mut info = node_info(seed, 2);
        info.implementation_name = implementation.into();
        let mut node = FakeNode::connect(server.telemetry_addr, info).await;
        let header_hash = Hash([seed; 32]);
        node.send_events(&[
            TimedEvent {
                timestamp: jam_now(0),
                event: Event::BestBlockChanged {
                    slot: best,
                    header_hash,
                },
            },
            TimedEvent {
                timestamp: jam_now(1),
                event: Event::FinalizedBlockChanged {
                    slot: best - 2,
                    header_hash,
                },
            },
        ])
        .await;
        nodes.push(node);
    }
    nodes[2].send_body(&raw_event(11, &[1])).await;
    // Two minutes ago, 600 events (as if written by the rollup): 2 a second over five minutes.
    let mut conn = db.connect().await;
    diesel::sql_query(
        "INSERT INTO type_counts_minute (minute, event_count, event_type) \
         VALUES (date_trunc('minute', now()) - interval '2 minutes', 600, 10)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    assert!(
        eventually(WAIT, || async {
            let (_, body) = get_json(api, "/api/network").await;
            body["best_slot"]["reporting_nodes"] == 3 && body["problems"]["decode_failures"] == 1
        })
        .await,
        "{}",
        get_json(api, "/api/network").await.1
    );
    let (status, network) = get_json(api, "/api/network").await;
    assert_eq!(status, 200);
    assert_eq!(network["connected_nodes"], 3);
    assert_eq!(network["known_nodes"], 3);
    let mut implementations: BTreeMap<String, i64> = BTreeMap::new();
    for i in network["implementations"].as_array().unwrap() {
        *implementations
            .entry(i["name"].as_str().unwrap().to_owned())
            .or_default() += i["connected"].as_i64().unwrap();
        assert!(i["version"].is_string());
    }
    assert_eq!(
        implementations,
        BTreeMap::from([("alpha".into(), 2), ("beta".into(), 1)])
    );
    assert_eq!(network["protocol_versions"][0]["value"], "1");
    assert_eq!(network["protocol_versions"][0]["connected"], 3);
    let best = &network["best_slot"];
    assert_eq!(
        (
            best["highest"].as_i64(),
            best["median"].as_i64(),
            best["lowest"].as_i64()
        ),
        (Some(100), Some(98), Some(80))
    );
    assert_eq!(best["spread"], 20);
    assert_eq!(network["finalized_slot"]["median"], 96);
    assert_eq!(network["behind"]["count"], 1);
    assert_eq!(
        network["behind"]["nodes"][0]["node_id"],
        nodes[2].node_id().as_str()
    );
    assert_eq!(network["behind"]["nodes"][0]["behind_median_by"], 18);
    // The test's own events land in the current minute, outside the window, unless a minute
    // turned meanwhile.
    let rate = network["events_per_second"].as_f64().unwrap();
    assert!((2.0..=(600.0 + 7.0) / 300.0).contains(&rate), "{rate}");
    assert!(network["counted"].is_string());
    drop(nodes);
}

#[actix_web::test]
async fn the_implementation_report_shows_what_each_version_sends_and_gets_wrong() {
    let db = TestDb::new();
    let server = counting_server(&db).await;
    let api = server.api_addr;
    let info = |seed: u8, name: &str| {
        let mut info = node_info(seed, 2);
        info.implementation_name = name.into();
        info.implementation_version = "1.0".into();
        info
    };
    let mut flaky = FakeNode::connect(server.telemetry_addr, info(31, "alpha")).await;
    flaky
        .send_events(&[nth_event(1), nth_event(2), nth_event(10)])
        .await;
    flaky.send_body(&raw_event(11, &[1, 2, 3])).await;
    flaky.send_body(&raw_event(250, &[])).await;
    flaky.send_body(&raw_event(250, &[9])).await;
    assert!(eventually_stored(&db, &flaky.node_id(), 5).await);
    drop(flaky);
    let flaky_id = info(31, "alpha").node_id();
    assert!(
        eventually(WAIT, || async {
            get_json(api, &format!("/api/nodes/{flaky_id}")).await.1["is_connected"] == false
        })
        .await
    );
    let mut flaky =
        FakeNode::connect_from(ip("127.0.0.1"), server.telemetry_addr, info(31, "alpha")).await;
    flaky.send_events(&[nth_event(3)]).await;
    assert!(
        eventually_stored(&db, &flaky_id, 6).await,
        "connected again"
    );
    let mut impostor =
        FakeNode::connect_from(ip("127.0.0.2"), server.telemetry_addr, info(31, "alpha")).await;
    assert!(impostor.closed_by_server(WAIT).await);
    let mut steady = FakeNode::connect(server.telemetry_addr, info(32, "alpha")).await;
    steady.send_events(&[nth_event(4)]).await;
    let mut other = FakeNode::connect(server.telemetry_addr, info(33, "beta")).await;
    other
        .send_events(&[TimedEvent {
            timestamp: jam_now(0),
            event: Event::FinalizedBlockChanged {
                slot: 1,
                header_hash: Hash([3; 32]),
            },
        }])
        .await;

    let alpha = |list: &Value| {
        list["implementations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["name"] == "alpha")
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert!(
        eventually(WAIT, || async {
            let (_, list) = get_json(api, "/api/implementations").await;
            let a = alpha(&list);
            a["sessions"] == 3 && a["refused_handshakes"] == 1 && a["events_stored"] == 7
        })
        .await,
        "{}",
        get_json(api, "/api/implementations").await.1
    );
    let (_, list) = get_json(api, "/api/implementations").await;
    let a = alpha(&list);
    assert_eq!(a["version"], "1.0");
    assert_eq!(
        (a["nodes_known"].as_i64(), a["nodes_connected"].as_i64()),
        (Some(2), Some(2))
    );
    assert_eq!(a["reconnects"], 1);
    assert_eq!(a["decode_failures"], 1);
    assert_eq!(a["undefined_events"], 2);
    assert_eq!(list["implementations"].as_array().unwrap().len(), 2);

    let report_of = || async {
        let (status, report) = get_json(api, "/api/implementations/alpha").await;
        assert_eq!(status, 200);
        report["versions"][0].clone()
    };
    assert!(
        eventually(WAIT, || async {
            let sent = report_of().await["types_sent"].clone();
            sent.as_array()
                .is_some_and(|s| s.iter().map(|t| t["count"].as_i64().unwrap()).sum::<i64>() == 5)
        })
        .await,
        "{}",
        report_of().await
    );
    let report = report_of().await;
    let sent: BTreeMap<String, i64> = report["types_sent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_owned(),
                t["count"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        sent,
        BTreeMap::from([
            ("BestBlockChanged".into(), 4),
            ("SyncStatusChanged".into(), 1)
        ])
    );
    let never: Vec<&str> = report["types_never_sent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    let defined = (0..=u8::MAX).filter_map(Event::name_of).count();
    assert_eq!(never.len() + sent.len(), defined);
    assert!(never.contains(&"FinalizedBlockChanged") && !never.contains(&"BestBlockChanged"));
    assert_eq!(
        report["decode_failures_by_claimed_type"][0]["what"],
        "BestBlockChanged"
    );
    assert_eq!(report["decode_failures_by_claimed_type"][0]["count"], 1);
    assert_eq!(
        report["decode_failures_by_error"].as_array().unwrap().len(),
        1
    );
    assert!(report["decode_failures_by_error"][0]["what"]
        .as_str()
        .unwrap()
        .contains("BestBlockChanged"));
    assert_eq!(
        report["undefined_discriminators"],
        serde_json::json!([{"what": "250", "count": 2}])
    );
    assert_eq!(
        report["refused_handshakes_by_reason"],
        serde_json::json!([{"what": "peer_id_in_use", "count": 1}])
    );
    let skew = &report["clock_skew"];
    assert_eq!(skew["absurd"], false, "{skew}");
    assert!(
        skew["p99_ms"][1].as_f64().unwrap().abs() <= 1024.0,
        "{skew}"
    );
    assert_eq!(get_json(api, "/api/implementations/nobody").await.0, 404);

    // A node that counts from the Unix epoch dates its events 55 years late: flagged.
    let mut late = FakeNode::connect(server.telemetry_addr, info(34, "gamma")).await;
    let years_55 = 1_735_732_800_000_000;
    let late_events: Vec<TimedEvent> = (0..3)
        .map(|i| TimedEvent {
            timestamp: jam_now(i) + years_55,
            event: Event::SyncStatusChanged { synced: true },
        })
        .collect();
    late.send_events(&late_events).await;
    let gamma = || async { get_json(api, "/api/implementations/gamma").await.1 };
    assert!(
        eventually(WAIT, || async {
            gamma().await["versions"][0]["clock_skew"]["events"] == 3
        })
        .await,
        "{}",
        gamma().await
    );
    let skew = gamma().await["versions"][0]["clock_skew"].clone();
    assert_eq!(skew["absurd"], true);
    assert!(skew["p50_ms"][0].as_f64().unwrap() < -1e12, "{skew}");
    drop((flaky, impostor, steady, other, late));
}

/// `n` events of `discriminator` (random fields), with `reason` as their Reason if they have one.
fn events_of(discriminator: u8, n: usize, reason: &str) -> Vec<TimedEvent> {
    let mut g = tart_backend::jip3::generate::Generator::new(u64::from(discriminator), 2);
    (0..n)
        .map(|i| {
            let mut event = Event::generate(discriminator, &mut g).unwrap();
            match &mut event {
                Event::ConnectOutFailed { reason: r, .. }
                | Event::PeerMisbehaved { reason: r, .. } => {
                    *r = tart_backend::jip3::types::BoundedString(reason.into())
                }
                _ => {}
            }
            TimedEvent {
                timestamp: jam_now(i as u64),
                event,
            }
        })
        .collect()
}

#[actix_web::test]
async fn failures_are_counted_against_their_attempts_with_their_reasons() {
    let db = TestDb::new();
    let server = counting_server(&db).await;
    let api = server.api_addr;
    // A node whose outbound connections fail a quarter of the time, one whose never do, and one
    // that reports misbehaving peers (a failure that answers no attempt of its own).
    let mut failing = FakeNode::connect(server.telemetry_addr, node_info(41, 2)).await;
    failing.send_events(&events_of(24, 40, "")).await;
    failing.send_events(&events_of(25, 7, "timeout")).await;
    failing
        .send_events(&events_of(25, 3, "connection refused"))
        .await;
    let mut fine = FakeNode::connect(server.telemetry_addr, node_info(42, 2)).await;
    fine.send_events(&events_of(24, 20, "")).await;
    let mut wary = FakeNode::connect(server.telemetry_addr, node_info(43, 2)).await;
    wary.send_events(&events_of(28, 5, "spam")).await;

    let report = || async { get_json(api, "/api/failures").await.1 };
    assert!(
        eventually(WAIT, || async {
            let r = report().await;
            r["failures"].as_array().map(Vec::len) == Some(2)
                && r["failures"][0]["attempts"] == 60
                && r["failures"][1]["reasons"][0]["count"] == 5
        })
        .await,
        "{}",
        report().await
    );
    let r = report().await;
    let out = &r["failures"][0];
    assert_eq!(out["name"], "ConnectOutFailed");
    assert_eq!(out["count"], 10);
    assert_eq!(out["answers"], serde_json::json!(["ConnectingOut"]));
    assert!((out["rate"].as_f64().unwrap() - 10.0 / 60.0).abs() < 1e-9);
    assert_eq!(out["nodes_failing"], 1);
    let node = &out["nodes"][0];
    assert_eq!(node["node_id"], failing.node_id().as_str());
    assert_eq!(
        (node["count"].as_i64(), node["attempts"].as_i64()),
        (Some(10), Some(40))
    );
    assert_eq!(node["rate"], 0.25);
    assert_eq!(
        out["reasons"],
        serde_json::json!([
            {"reason": "timeout", "count": 7},
            {"reason": "connection refused", "count": 3}
        ])
    );
    let misbehaved = &r["failures"][1];
    assert_eq!(misbehaved["name"], "PeerMisbehaved");
    assert_eq!(misbehaved["answers"], serde_json::json!([]));
    assert_eq!(misbehaved["rate"], Value::Null);
    assert_eq!(
        misbehaved["reasons"],
        serde_json::json!([{"reason": "spam", "count": 5}])
    );
    // Before these events, nothing failed.
    let (_, earlier) = get_json(
        api,
        "/api/failures?from=2026-01-01T00:00:00Z&to=2026-01-01T01:00:00Z",
    )
    .await;
    assert_eq!(earlier["failures"], serde_json::json!([]));
    assert_eq!(get_json(api, "/api/failures?from=soon").await.0, 400);
    drop((failing, fine, wary));
}

#[actix_web::test]
async fn linked_events_resolve_both_ways_and_dangling_references_are_marked() {
    let db = TestDb::new();
    let server = TestServer::start(unlimited_config(&db)).await;
    let api = server.api_addr;
    let mut node = FakeNode::connect(server.telemetry_addr, node_info(51, 2)).await;
    let id = node.node_id();
    let mut connecting = events_of(24, 1, "").remove(0); // event 0: ConnectingOut
    connecting.timestamp = jam_now(0);
    let at = |event: Event| TimedEvent {
        timestamp: jam_now(1),
        event,
    };
    node.send_events(&[
        connecting,
        at(Event::ConnectedOut {
            connecting_event_id: 0,
        }),
        // Event 2 points at an ID never sent, event 3 at one of the wrong type (ConnectedOut).
        at(Event::ConnectedOut {
            connecting_event_id: 77,
        }),
        at(Event::ConnectedOut {
            connecting_event_id: 1,
        }),
        at(Event::SyncStatusChanged { synced: true }),
    ])
    .await;
    assert!(eventually_stored(&db, &id, 5).await);
    let (_, page) = get_json(api, &format!("/api/nodes/{id}/events")).await;
    let row_of = |event_id: u64| {
        page["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["event_id"] == event_id)
            .unwrap()["id"]
            .as_i64()
            .unwrap()
    };
    let (status, target) = get_json(api, &format!("/api/events/{}", row_of(0))).await;
    assert_eq!(status, 200);
    assert_eq!(target["event"]["event_name"], "ConnectingOut");
    assert_eq!(target["reference"], Value::Null, "it has no Event ID field");
    let referrers: Vec<i64> = ids(target["referred_by"].as_array().unwrap());
    assert_eq!(referrers, vec![row_of(1)]);

    let (_, connected) = get_json(api, &format!("/api/events/{}", row_of(1))).await;
    assert_eq!(connected["reference"]["state"], "resolved");
    assert_eq!(connected["reference"]["event_id"], 0);
    assert_eq!(connected["reference"]["event"]["id"], row_of(0));
    for dangling in [2, 3] {
        let (_, event) = get_json(api, &format!("/api/events/{}", row_of(dangling))).await;
        assert_eq!(event["reference"]["state"], "dangling", "{event}");
        assert_eq!(event["reference"]["event"], Value::Null);
    }
    let (_, plain) = get_json(api, &format!("/api/events/{}", row_of(4))).await;
    assert_eq!(plain["reference"], Value::Null);
    assert_eq!(plain["referred_by"], serde_json::json!([]));
    assert_eq!(server.metric("telemetry_dangling_references_total"), 2.0);
    assert!(
        eventually(WAIT, || async {
            get_json(api, &format!("/api/nodes/{id}/sessions")).await.1["counters"]
                ["dangling_references"]
                == 2
        })
        .await
    );
    assert_eq!(get_json(api, "/api/events/abc").await.0, 400);
    assert_eq!(get_json(api, "/api/events/123456789").await.0, 404);
    drop(node);
}

/// The simulator plants faults and counts what it delivered; the analytics must report exactly
/// that: a node failing a known share of its outbound connections, a clock 3 s ahead, an
/// implementation that leaves out types and sends an undefined discriminator, a lost range.
#[actix_web::test]
async fn the_simulators_planted_faults_are_reported_as_planted() {
    use tart_backend::sim::{Faults, SimConfig, SLOPPY_IMPLEMENTATION};
    const FAILING: usize = 1;
    const SKEWED: usize = 2;
    const SLOPPY: usize = 3;
    const DROPPING: usize = 4;
    const RATE: f64 = 0.25;
    let db = TestDb::new();
    let server = counting_server(&db).await;
    let api = server.api_addr;
    let config = SimConfig {
        nodes: 6,
        seed: 7,
        // ~120 slots, so the failing node makes well over the 50 attempts the rate check needs.
        // At 200 ms slots (~60 attempts) the test failed twice, each time on the first run after
        // a build and as the simulation ended, where that check is (its message was not kept).
        slot_duration: std::time::Duration::from_millis(100),
        duration: Some(std::time::Duration::from_secs(12)),
        faults: Faults {
            failing_outbound: vec![(FAILING, RATE)],
            skewed_clocks: vec![(SKEWED, 3000)],
            sloppy: vec![SLOPPY],
            dropped_ranges: vec![(DROPPING, 1000)],
            ..Faults::default()
        },
        ..SimConfig::new(server.telemetry_addr)
    };
    let report = simulate_until_stored(&db, config).await;
    let [failing, skewed, sloppy, dropping] =
        [FAILING, SKEWED, SLOPPY, DROPPING].map(|i| &report.nodes[i]);

    // Failures: the failing node's outbound attempts and failures, exactly as sent.
    let (attempts, failed) = (
        failing.sent_of("ConnectingOut") as i64,
        failing.sent_of("ConnectOutFailed") as i64,
    );
    assert!(attempts >= 50, "{attempts} outbound attempts");
    let all_failed: u64 = report
        .nodes
        .iter()
        .map(|n| n.sent_of("ConnectOutFailed"))
        .sum();
    let out_failures = || async {
        let (_, r) = get_json(api, "/api/failures").await;
        r["failures"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == "ConnectOutFailed")
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert!(
        eventually(WAIT, || async {
            out_failures().await["count"].as_u64() == Some(all_failed)
        })
        .await,
        "{} failed in all; TART: {}",
        all_failed,
        out_failures().await
    );
    let failing_node = |out: &Value| {
        out["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["node_id"] == failing.node_id.as_str())
            .expect("the failing node among the nodes failing")
            .clone()
    };
    // Waited for too: the attempts made after the last failure may be counted a rollup later.
    let counted = |node: &Value| (node["count"].as_i64(), node["attempts"].as_i64());
    assert!(
        eventually(WAIT, || async {
            counted(&failing_node(&out_failures().await)) == (Some(failed), Some(attempts))
        })
        .await,
        "the failing node: {failed} of {attempts} sent; TART: {:?}",
        counted(&failing_node(&out_failures().await))
    );
    let out = out_failures().await;
    let node = failing_node(&out);
    let rate = node["rate"].as_f64().unwrap();
    assert!((rate - failed as f64 / attempts as f64).abs() < 1e-9);
    assert!((rate - RATE).abs() < 0.2, "planted {RATE}, sent at {rate}");
    let reasons: i64 = out["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["count"].as_i64().unwrap())
        .sum();
    assert_eq!(reasons, all_failed as i64, "every failure has its reason");

    // The sloppy implementation's conformance report, once its counts are all written.
    let defined_sent =
        sloppy.events_sent - sloppy.sent_by_type[&tart_backend::sim::UNDEFINED_DISCRIMINATOR];
    let sloppy_report = || async {
        let path = format!("/api/implementations/{SLOPPY_IMPLEMENTATION}");
        let (status, list) = get_json(api, &path).await;
        assert_eq!(status, 200, "{list}");
        list["versions"][0].clone()
    };
    assert!(
        eventually(WAIT, || async {
            let types = sloppy_report().await["types_sent"].clone();
            types
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["count"].as_u64().unwrap())
                .sum::<u64>()
                == defined_sent
        })
        .await,
        "{}",
        sloppy_report().await
    );
    let version = sloppy_report().await;
    assert_eq!(version["nodes_known"], 1);
    assert_eq!(version["events_stored"], sloppy.events_sent);
    let sent: BTreeMap<u8, u64> = version["types_sent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["event_type"].as_u64().unwrap() as u8,
                t["count"].as_u64().unwrap(),
            )
        })
        .collect();
    let mut defined = sloppy.sent_by_type.clone();
    let undefined = defined
        .remove(&tart_backend::sim::UNDEFINED_DISCRIMINATOR)
        .expect("some undefined frames");
    assert_eq!(sent, defined, "types sent, with their counts");
    let never: HashSet<&str> = version["types_never_sent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    for &silent in tart_backend::sim::SLOPPY_SILENT_TYPES {
        assert!(never.contains(Event::name_of(silent).unwrap()), "{silent}");
    }
    assert_eq!(
        version["undefined_discriminators"],
        serde_json::json!([{"what": "250", "count": undefined}])
    );
    assert_eq!(version["undefined_events"], undefined);
    assert_eq!(version["dangling_references"], 0);

    // Clock skew: the skewed node's events are dated 3 s ahead of their arrival.
    let skew_of = |node: &str| {
        let path = format!("/api/nodes/{node}/sessions");
        async move { get_json(api, &path).await.1["sessions"][0]["clock_skew"].clone() }
    };
    let ahead = skew_of(&skewed.node_id).await;
    let p50 = &ahead["p50_ms"];
    assert!(
        p50[1].as_f64().unwrap() <= -3000.0 && -3000.0 <= p50[0].as_f64().unwrap(),
        "{ahead}"
    );
    assert_eq!(ahead["absurd"], false);
    let normal = skew_of(&dropping.node_id).await;
    assert!(
        normal["p50_ms"][1].as_f64().unwrap().abs() <= 1024.0,
        "{normal}"
    );

    // Drops: the planted range and the odd ones of the natural flow, exactly.
    assert!(dropping.drops_reported >= 1000);
    let (_, sessions) = get_json(api, &format!("/api/nodes/{}/sessions", dropping.node_id)).await;
    assert_eq!(
        sessions["counters"]["events_dropped"],
        dropping.drops_reported
    );
    let all_drops: u64 = report.nodes.iter().map(|n| n.drops_reported).sum();
    let problems = || async { get_json(api, "/api/network").await.1["problems"].clone() };
    assert!(
        eventually(WAIT, || async {
            let p = problems().await;
            p["events_dropped_by_nodes"] == all_drops && p["undefined_events"] == undefined
        })
        .await,
        "{all_drops} dropped and {undefined} undefined sent: {}",
        problems().await
    );
}

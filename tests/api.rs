//! The REST API, health checks and /metrics, with a real HTTP client against a real server and
//! PostgreSQL.

mod harness;

use std::collections::HashSet;
use std::time::Duration;

use harness::*;
use serde_json::Value;
use tart_backend::config::Config;
use tart_backend::jip3::generate::Generator;
use tart_backend::jip3::types::Hash;
use tart_backend::jip3::{Event, TimedEvent};

fn timed(event: Event, offset: u64) -> TimedEvent {
    TimedEvent {
        timestamp: jam_now(offset),
        event,
    }
}

fn best(slot: u32) -> Event {
    Event::BestBlockChanged {
        slot,
        header_hash: Hash([slot as u8; 32]),
    }
}

async fn stored_count(api: std::net::SocketAddr) -> usize {
    let (_, body) = get_json(api, "/api/events?limit=1000").await;
    body["events"].as_array().map_or(0, Vec::len)
}

fn header<'a>(headers: &'a awc::http::header::HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

fn is_rfc3339_utc(value: &Value) -> bool {
    value
        .as_str()
        .is_some_and(|t| t.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(t).is_ok())
}

#[actix_web::test]
async fn rest_endpoints_return_the_documented_shapes_order_and_limits() {
    let db = TestDb::new();
    let server = TestServer::start(unlimited_config(&db)).await;
    let api = server.api_addr;

    let (status, health) = get_json(api, "/api/health").await;
    assert_eq!(status, 200);
    assert_eq!(health["status"], "ok");
    assert_eq!(health["service"], "tart-backend");
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));

    let mut a = FakeNode::connect(server.telemetry_addr, node_info(21, 2)).await;
    let mut b = FakeNode::connect(server.telemetry_addr, node_info(22, 2)).await;
    // Node A: 1,100 best-block events (slots 1..=1100), a finalized block and an authored one.
    let mut sent: Vec<TimedEvent> = (1..=1100).map(|s| timed(best(s), u64::from(s))).collect();
    sent.push(timed(
        Event::FinalizedBlockChanged {
            slot: 1090,
            header_hash: Hash([9; 32]),
        },
        2000,
    ));
    sent.push(timed(
        Event::generate(42, &mut Generator::new(1, 2)).unwrap(),
        2001,
    ));
    a.send_events(&sent).await;
    b.send_events(&[timed(best(5), 0), timed(best(6), 1)]).await;
    assert!(
        eventually(WAIT, || async {
            let (_, nodes) = get_json(api, "/api/nodes").await;
            let counts: Vec<i64> = nodes["nodes"]
                .as_array()
                .map(|n| n.iter().filter_map(|n| n["event_count"].as_i64()).collect())
                .unwrap_or_default();
            counts.len() == 2 && counts.iter().sum::<i64>() == 1104
        })
        .await,
        "events stored and counted"
    );

    // Limits: default 50, larger values capped at 1,000, 0 allowed, a non-number is 400.
    let (_, page) = get_json(api, "/api/events").await;
    assert_eq!(page["events"].as_array().unwrap().len(), 50);
    let (_, page) = get_json(api, "/api/events?limit=5000").await;
    let events = page["events"].as_array().unwrap();
    assert_eq!(events.len(), 1000);
    let ids: Vec<i64> = events.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first");
    let (_, page) = get_json(api, "/api/events?limit=0").await;
    assert_eq!(page["events"], serde_json::json!([]));
    for bad in ["abc", "-1", "1.5"] {
        let (status, error) = get_json(api, &format!("/api/events?limit={bad}")).await;
        assert_eq!(status, 400, "limit={bad}");
        assert!(error["error"].as_str().unwrap().contains("limit"));
    }

    // One node's events: only its own, newest first, with every documented field.
    let a_id = a.node_id();
    let (status, page) = get_json(api, &format!("/api/nodes/{a_id}/events?limit=3")).await;
    assert_eq!(status, 200);
    let events = page["events"].as_array().unwrap();
    assert_eq!(events.len(), 3);
    let newest = &events[0];
    assert_eq!(newest["node_id"], a_id.as_str());
    assert_eq!(newest["event_id"], 1101, "the authored event, sent last");
    assert_eq!(newest["event_type"], 42);
    assert_eq!(newest["event_name"], "Authored");
    assert_eq!(newest["node_name"], "test-node");
    assert_eq!(
        newest["node_version"],
        a.info.implementation_version.as_str()
    );
    assert!(is_rfc3339_utc(&newest["timestamp"]));
    assert_eq!(events[1]["event_name"], "FinalizedBlockChanged");
    assert_eq!(events[2]["data"]["BestBlockChanged"]["slot"], 1100);
    assert!(events.iter().all(|e| e["node_id"] == a_id.as_str()));
    let (_, page) = get_json(api, &format!("/api/nodes/{}/events", b.node_id())).await;
    let b_events = page["events"].as_array().unwrap();
    assert_eq!(b_events.len(), 2);
    assert_eq!(b_events[0]["event_id"], 1);
    // Upper-case ids are the same node.
    let (status, _) = get_json(api, &format!("/api/nodes/{}/events", a_id.to_uppercase())).await;
    assert_eq!(status, 200);

    // Stats: authored count; the best slot at least half the nodes reached (b is at 6), the
    // highest one, and the finalized slot of the one node that reported any.
    let (status, stats) = get_json(api, "/api/stats").await;
    assert_eq!(status, 200);
    assert_eq!(stats["total_blocks_authored"], 1);
    assert_eq!(stats["best_block"], 6);
    assert_eq!(stats["best_block_highest"], 1100);
    assert_eq!(stats["reporting_nodes"], 2);
    assert_eq!(stats["finalized_block"], 1090);

    // Node details, and errors.
    let (status, node) = get_json(api, &format!("/api/nodes/{a_id}")).await;
    assert_eq!(status, 200);
    assert_eq!(node["node_id"], a_id.as_str());
    assert_eq!(node["peer_id"], a_id.as_str());
    assert_eq!(node["implementation_name"], "test-node");
    assert_eq!(node["is_connected"], true);
    assert!(is_rfc3339_utc(&node["connected_at"]));
    assert_eq!(node["disconnected_at"], Value::Null);
    let info = &node["node_info"];
    assert_eq!(info["params"]["core_count"], 2);
    assert_eq!(
        info["genesis"],
        tart_backend::jip3::types::to_hex(&a.info.genesis_header_hash.0)
    );
    assert_eq!(info["flags"], a.info.node_flags);
    assert_eq!(info["gp_version"], a.info.gp_version.as_str());
    assert_eq!(info["note"], a.info.note.as_str());
    assert_eq!(info["address"]["port"], a.info.peer_address.port);
    for (path, code) in [
        ("/api/nodes/not-hex".to_owned(), 400),
        (format!("/api/nodes/{}", "g".repeat(64)), 400),
        (format!("/api/nodes/{}", "0".repeat(64)), 404),
        (format!("/api/nodes/{}/events", "0".repeat(64)), 404),
        ("/api/nodes/abc/events".to_owned(), 400),
        ("/api/no-such-thing".to_owned(), 404),
    ] {
        let (status, body) = get_json(api, &path).await;
        assert_eq!(status, code, "{path}");
        assert!(body["error"].is_string(), "{path}: {body}");
    }
    let mut wrong_method = awc::Client::new()
        .post(format!("http://{api}/api/nodes"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status().as_u16(), 405);
    let body: Value = serde_json::from_slice(&wrong_method.body().await.unwrap()).unwrap();
    assert!(body["error"].is_string());

    // Connected nodes first, then by last seen.
    drop(b);
    assert!(
        eventually(WAIT, || async {
            let (_, nodes) = get_json(api, "/api/nodes").await;
            nodes["nodes"][1]["is_connected"] == false
        })
        .await
    );
    let (_, nodes) = get_json(api, "/api/nodes").await;
    let nodes = nodes["nodes"].as_array().unwrap();
    assert_eq!(nodes[0]["node_id"], a_id.as_str());
    assert_eq!(nodes[0]["is_connected"], true);
    assert_eq!(nodes[1]["event_count"], 2);
    assert!(is_rfc3339_utc(&nodes[1]["disconnected_at"]));
    for field in [
        "node_id",
        "peer_id",
        "implementation_name",
        "implementation_version",
        "is_connected",
        "event_count",
        "connected_at",
        "last_seen_at",
        "disconnected_at",
    ] {
        assert!(nodes[1].get(field).is_some(), "node field {field}");
    }
    drop(a);
}

#[actix_web::test]
async fn stats_are_cached_for_five_seconds() {
    let db = TestDb::new();
    let server = TestServer::start(unlimited_config(&db)).await;
    let api = server.api_addr;
    let (_, before) = get_json(api, "/api/stats").await;
    assert_eq!(before["best_block"], 0, "no blocks yet");
    let mut node = FakeNode::connect(server.telemetry_addr, node_info(23, 2)).await;
    node.send_events(&[timed(best(77), 0)]).await;
    assert!(eventually(WAIT, || async { stored_count(api).await == 1 }).await);
    let (_, cached) = get_json(api, "/api/stats").await;
    assert_eq!(
        cached["best_block"], 0,
        "served from the cache within the TTL"
    );
    assert!(
        eventually(Duration::from_secs(8), || async {
            get_json(api, "/api/stats").await.1["best_block"] == 77
        })
        .await,
        "refreshed after the TTL"
    );
}

#[actix_web::test]
async fn nodes_carry_their_latest_best_and_finalized_slots_and_status() {
    let db = TestDb::new();
    let server = TestServer::start(unlimited_config(&db)).await;
    let api = server.api_addr;
    let mut a = FakeNode::connect(server.telemetry_addr, node_info(25, 2)).await;
    let quiet = FakeNode::connect(server.telemetry_addr, node_info(26, 2)).await;
    let status = Event::Status {
        num_peers: 12,
        num_validator_peers: 9,
        num_block_announcement_peers: 4,
        guarantees_by_core: tart_backend::jip3::types::CoreCounts(vec![3, 1]),
        num_shards: 5,
        shards_total_size: 4096,
        num_preimages: 0,
        preimages_total_size: 0,
    };
    // The latest block of each kind counts, not the highest: best went back from 9 to 8.
    a.send_events(&[
        timed(best(9), 0),
        timed(best(8), 1),
        timed(
            Event::FinalizedBlockChanged {
                slot: 6,
                header_hash: Hash([6; 32]),
            },
            2,
        ),
        timed(status, 3),
    ])
    .await;
    let a_id = a.node_id();
    assert!(
        eventually(WAIT, || async {
            let (_, node) = get_json(api, &format!("/api/nodes/{a_id}")).await;
            node["latest_status"] != Value::Null && node["event_count"] == 4
        })
        .await,
        "status rolled up"
    );
    let (_, nodes) = get_json(api, "/api/nodes").await;
    let nodes = nodes["nodes"].as_array().unwrap();
    let by_id = |id: &str| nodes.iter().find(|n| n["node_id"] == id).unwrap().clone();
    assert_eq!(by_id(&a_id)["best_slot"], 8);
    assert_eq!(by_id(&a_id)["finalized_slot"], 6);
    assert_eq!(by_id(&quiet.node_id())["best_slot"], Value::Null);
    assert_eq!(by_id(&quiet.node_id())["finalized_slot"], Value::Null);
    // The web dashboard's node table: peers from the latest Status, its connection's failures.
    assert_eq!(by_id(&a_id)["peers"], 12);
    assert_eq!(by_id(&quiet.node_id())["peers"], Value::Null);
    assert_eq!(by_id(&a_id)["decode_failures"], 0);

    let (_, node) = get_json(api, &format!("/api/nodes/{a_id}")).await;
    assert_eq!(node["best_slot"], 8);
    let latest = &node["latest_status"];
    assert!(is_rfc3339_utc(&latest["timestamp"]));
    assert_eq!(latest["data"]["Status"]["num_peers"], 12);
    assert_eq!(
        latest["data"]["Status"]["guarantees_by_core"],
        serde_json::json!([3, 1])
    );
    let (_, node) = get_json(api, &format!("/api/nodes/{}", quiet.node_id())).await;
    assert_eq!(node["latest_status"], Value::Null);
}

/// Parses the Prometheus text exposition format strictly enough to catch a malformed line:
/// `# HELP`/`# TYPE` comments, and `name{labels} value` samples with a valid name and number.
fn parse_prometheus(text: &str) -> Vec<(String, f64)> {
    let valid_name = |n: &str| {
        !n.is_empty()
            && !n.starts_with(|c: char| c.is_ascii_digit())
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    let mut typed = HashSet::new();
    let mut samples = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(comment) = line.strip_prefix("# ") {
            let mut parts = comment.splitn(3, ' ');
            let (kind, name) = (parts.next().unwrap(), parts.next().unwrap());
            assert!(valid_name(name), "bad metric name in {line:?}");
            if kind == "TYPE" {
                let t = parts.next().unwrap();
                assert!(
                    ["counter", "gauge", "histogram", "summary", "untyped"].contains(&t),
                    "{line:?}"
                );
                typed.insert(name.to_owned());
            }
            continue;
        }
        let (key, value) = line.rsplit_once(' ').expect("sample: name value");
        let name = key.split('{').next().unwrap();
        assert!(valid_name(name), "bad sample name in {line:?}");
        if let Some(labels) = key.strip_prefix(name) {
            assert!(
                labels.is_empty() || (labels.starts_with('{') && labels.ends_with('}')),
                "{line:?}"
            );
        }
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|b| typed.contains(*b)))
            .unwrap_or(name);
        assert!(typed.contains(base), "sample before its # TYPE: {line:?}");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        samples.push((key.to_owned(), value));
    }
    samples
}

fn sample(samples: &[(String, f64)], key: &str) -> f64 {
    samples
        .iter()
        .filter(|(k, _)| k == key || k.split('{').next() == Some(key))
        .map(|(_, v)| v)
        .sum()
}

#[actix_web::test]
async fn metrics_parse_as_prometheus_text_and_move_with_the_traffic() {
    let db = TestDb::new();
    let server = TestServer::start(unlimited_config(&db)).await;
    let api = server.api_addr;
    let (status, headers, body) = get(api, "/metrics", &[]).await;
    assert_eq!(status, 200);
    assert!(header(&headers, "content-type").starts_with("text/plain"));
    let before = parse_prometheus(std::str::from_utf8(&body).unwrap());
    for name in [
        "telemetry_active_connections",
        "telemetry_connections_total",
        "telemetry_connections_rejected",
        "telemetry_events_received",
        "telemetry_events_dropped",
        "telemetry_events_rate_limited",
        "telemetry_buffer_pending",
        "telemetry_batch_write_duration_count",
        "telemetry_broadcaster_subscribers",
        "telemetry_broadcaster_total_broadcast",
        "telemetry_database_pool_connections",
        "telemetry_ingest_latency_seconds_count",
        "telemetry_writer_queue_wait_seconds_count",
        "telemetry_broadcast_latency_seconds_count",
        "telemetry_decode_failures",
        "telemetry_ws_slow_clients_disconnected",
        "telemetry_broadcaster_events_shed",
    ] {
        assert!(
            before
                .iter()
                .any(|(k, _)| k.split('{').next() == Some(name)),
            "{name} is exported"
        );
    }
    assert_eq!(sample(&before, "telemetry_events_received"), 0.0);

    let (mut ws, _) = ws_connect(api).await;
    let mut node = FakeNode::connect(server.telemetry_addr, node_info(24, 2)).await;
    let events: Vec<TimedEvent> = (0..20).map(|i| timed(best(i), u64::from(i))).collect();
    node.send_events(&events).await;
    for _ in 0..20 {
        ws_until(&mut ws, "event").await;
    }
    assert!(eventually(WAIT, || async { stored_count(api).await == 20 }).await);
    let (_, _, body) = get(api, "/metrics", &[]).await;
    let after = parse_prometheus(std::str::from_utf8(&body).unwrap());
    assert_eq!(sample(&after, "telemetry_events_received"), 20.0);
    assert_eq!(
        sample(&after, "telemetry_broadcaster_total_broadcast"),
        20.0
    );
    assert_eq!(sample(&after, "telemetry_broadcaster_subscribers"), 1.0);
    assert_eq!(sample(&after, "telemetry_connections_total"), 1.0);
    assert_eq!(sample(&after, "telemetry_active_connections"), 1.0);
    assert_eq!(
        sample(&after, "telemetry_broadcast_latency_seconds_count"),
        20.0
    );
    assert!(sample(&after, "telemetry_ingest_latency_seconds_count") >= 1.0);
    assert!(sample(&after, "telemetry_writer_queue_wait_seconds_count") >= 1.0);
    assert!(sample(&after, "telemetry_batch_write_duration_count") >= 1.0);
}

#[actix_web::test]
async fn cors_allows_the_configured_origins_only() {
    let db = TestDb::new();
    let server = TestServer::start(Config {
        cors_allowed_origins: "https://dash.example.org, http://localhost:3000".into(),
        ..test_config(&db)
    })
    .await;
    let api = server.api_addr;
    let (status, headers, _) = get(
        api,
        "/api/health",
        &[("Origin", "https://dash.example.org")],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "access-control-allow-origin"),
        "https://dash.example.org"
    );
    let (_, headers, _) = get(api, "/api/health", &[("Origin", "https://evil.example")]).await;
    assert!(headers.get("access-control-allow-origin").is_none());
    drop(server);

    // The default: any origin.
    let db = TestDb::new();
    let server = TestServer::start(test_config(&db)).await;
    let (_, headers, _) = get(
        server.api_addr,
        "/api/nodes",
        &[("Origin", "https://anywhere.example")],
    )
    .await;
    assert_eq!(header(&headers, "access-control-allow-origin"), "*");
}

#[actix_web::test]
async fn detailed_health_is_503_when_the_database_is_unreachable() {
    let db = TestDb::new();
    let server = TestServer::start(Config {
        shutdown_timeout_secs: 3,
        ..test_config(&db)
    })
    .await;
    let api = server.api_addr;
    let (status, health) = get_json(api, "/api/health/detailed").await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["status"], "healthy");
    let database = &health["components"]["database"];
    assert_eq!(database["status"], "healthy");
    assert!(database["latency_ms"].as_f64().unwrap() > 0.0);
    assert!(database["message"].is_string());
    assert_eq!(health["components"]["broadcaster"]["status"], "healthy");
    assert_eq!(health["components"]["broadcaster"]["subscribers"], 0);
    assert!(
        health["components"]["memory"]["usage_percent"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
    assert!(health["uptime_seconds"].is_u64());
    assert!(is_rfc3339_utc(&health["timestamp"]));

    // The database goes away (its connections are terminated, new ones are refused).
    tart_backend::store::drop_database(&db.url).await.unwrap();
    let (status, health) = get_json(api, "/api/health/detailed").await;
    assert_eq!(status, 503, "{health}");
    assert_eq!(health["status"], "unhealthy");
    assert_eq!(health["components"]["database"]["status"], "unhealthy");
    let (status, error) = get_json(api, "/api/nodes").await;
    assert_eq!(status, 503);
    assert!(error["error"].as_str().unwrap().contains("database"));
    // The process itself still answers.
    assert_eq!(get_json(api, "/api/health").await.0, 200);
}

/// With `api_token` set, every path but the liveness check needs the token, as a bearer header
/// or (for a browser's WebSocket) in the query; without it the answer is a JSON 401.
#[actix_web::test]
async fn a_read_token_guards_everything_but_liveness() {
    let db = TestDb::new();
    let server = TestServer::start(Config {
        api_token: "s3cret".into(),
        ..test_config(&db)
    })
    .await;
    let api = server.api_addr;
    for path in [
        "/api/nodes",
        "/api/events",
        "/metrics",
        "/api/health/detailed",
    ] {
        let (status, headers, body) = get(api, path, &[]).await;
        assert_eq!(status, 401, "{path}");
        assert_eq!(header(&headers, "www-authenticate"), "Bearer");
        let error: Value = serde_json::from_slice(&body).unwrap();
        assert!(
            error["error"].as_str().unwrap().contains("token"),
            "{error}"
        );
        let (status, _, _) = get(api, path, &[("Authorization", "Bearer wrong")]).await;
        assert_eq!(status, 401, "{path} with a wrong token");
        let (status, _, _) = get(api, path, &[("Authorization", "Bearer s3cret")]).await;
        assert_eq!(status, 200, "{path} with the token");
    }
    assert_eq!(
        get(api, "/api/health", &[]).await.0,
        200,
        "liveness stays open"
    );
    assert!(awc::Client::new()
        .ws(format!("ws://{api}/api/ws"))
        .connect()
        .await
        .is_err());
    let (response, _) = awc::Client::new()
        .ws(format!("ws://{api}/api/ws?token=s3cret"))
        .connect()
        .await
        .expect("the token in the query opens the WebSocket");
    assert_eq!(response.status(), 101);
    assert_eq!(
        server.metric("telemetry_api_requests_unauthorized_total"),
        9.0
    );
}

/// Sends one raw HTTP GET from the loopback address `source`, with `forwarded_for` as its
/// X-Forwarded-For when given, and returns the status code.
async fn status_from(
    source: &str,
    api: std::net::SocketAddr,
    path: &str,
    forwarded_for: Option<&str>,
) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(std::net::SocketAddr::new(source.parse().unwrap(), 0))
        .unwrap();
    let mut stream = socket.connect(api).await.unwrap();
    let forwarded = forwarded_for.map_or(String::new(), |f| format!("X-Forwarded-For: {f}\r\n"));
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: tart\r\n{forwarded}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response[9..12].parse().unwrap()
}

/// One address over `api_requests_per_ip_per_sec` (burst ten times that) is answered 429 with
/// Retry-After; another address is served meanwhile.
#[actix_web::test]
async fn a_client_over_its_request_rate_gets_429_and_others_are_served() {
    let db = TestDb::new();
    let server = TestServer::start(Config {
        api_requests_per_ip_per_sec: 1,
        ..test_config(&db)
    })
    .await;
    let api = server.api_addr;
    let mut statuses = Vec::new();
    for _ in 0..11 {
        statuses.push(status_from("127.0.0.9", api, "/api/health", None).await);
    }
    assert_eq!(statuses[..10], [200; 10]);
    assert_eq!(statuses[10], 429);
    assert_eq!(
        status_from("127.0.0.9", api, "/api/health", Some("203.0.113.1")).await,
        429,
        "X-Forwarded-For from an address that is not a trusted proxy is ignored"
    );
    assert_eq!(
        status_from("127.0.0.10", api, "/api/health", None).await,
        200
    );
    assert_eq!(server.metric("telemetry_api_requests_limited_total"), 2.0);
}

/// Behind a trusted proxy the client in X-Forwarded-For is limited, not the proxy.
#[actix_web::test]
async fn behind_a_trusted_proxy_each_forwarded_client_is_limited_on_its_own() {
    let db = TestDb::new();
    let server = TestServer::start(Config {
        api_requests_per_ip_per_sec: 1,
        api_trusted_proxies: "127.0.0.11".into(),
        ..test_config(&db)
    })
    .await;
    let api = server.api_addr;
    let from = |client: &'static str| status_from("127.0.0.11", api, "/api/health", Some(client));
    for _ in 0..10 {
        assert_eq!(from("203.0.113.1").await, 200);
    }
    assert_eq!(from("203.0.113.1").await, 429);
    assert_eq!(
        from("203.0.113.2").await,
        200,
        "another client behind the same proxy"
    );
}

/// 20,000 node rows (as a flood of fabricated handshakes would leave): `/api/nodes` answers a
/// bounded page quickly, pages and filters work, and 16 parallel calls do not exhaust the pools.
#[actix_web::test]
async fn twenty_thousand_fake_nodes_do_not_take_the_api_down() {
    use diesel::sql_types::Text;
    use diesel_async::RunQueryDsl;
    let db = TestDb::new();
    let server = TestServer::start(test_config(&db)).await;
    let api = server.api_addr;
    let real = FakeNode::connect(server.telemetry_addr, node_info(90, 2)).await;
    let real_id = real.node_id();
    assert!(
        eventually_count(
            &db,
            WAIT,
            "SELECT count(*) AS n FROM nodes WHERE node_id = $1",
            &real_id,
            1
        )
        .await
    );
    let conn = &mut db.connect().await;
    diesel::sql_query(
        "INSERT INTO nodes SELECT (jsonb_populate_record(t, jsonb_build_object( \
             'node_id', lpad(to_hex(g), 64, '0'), 'implementation_name', 'fake', \
             'is_connected', false))).* \
         FROM nodes t, generate_series(1, 20000) g WHERE t.node_id = $1",
    )
    .bind::<Text, _>(&real_id)
    .execute(conn)
    .await
    .unwrap();

    let calls = (0..16).map(|_| get(api, "/api/nodes", &[]));
    let started = std::time::Instant::now();
    for (status, _, body) in futures_util::future::join_all(calls).await {
        assert_eq!(status, 200);
        let page: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(page["total"], 20_001);
        assert_eq!(page["nodes"].as_array().unwrap().len(), 1024);
        assert_eq!(
            page["nodes"][0]["node_id"],
            real_id.as_str(),
            "connected first"
        );
        assert!(
            body.len() < 2 << 20,
            "a page is bounded: {} bytes",
            body.len()
        );
    }
    eprintln!(
        "16 parallel /api/nodes over 20,001 nodes: {:?}",
        started.elapsed()
    );
    let (status, health) = get_json(api, "/api/health/detailed").await;
    assert_eq!(status, 200, "{health}");

    let (_, last) = get_json(api, "/api/nodes?limit=10&offset=19995").await;
    assert_eq!(last["nodes"].as_array().unwrap().len(), 6);
    let (_, real_only) = get_json(api, "/api/nodes?connected=true").await;
    assert_eq!(real_only["total"], 1);
    let (_, fakes) = get_json(api, "/api/nodes?implementation=fake&limit=1").await;
    assert_eq!(fakes["total"], 20_000);
    for bad in ["connected=maybe", "limit=-1", "offset=x"] {
        let (status, error) = get_json(api, &format!("/api/nodes?{bad}")).await;
        assert_eq!(status, 400, "{bad}: {error}");
    }
    drop(real);
}

/// The paths `api::routes` registers, read from its source: the routes as the code has them.
fn registered_paths() -> std::collections::BTreeSet<String> {
    let source = include_str!("../src/api/mod.rs");
    source
        .split("web::resource(\"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().to_owned())
        .collect()
}

#[actix_web::test]
async fn the_openapi_document_lists_every_route_and_each_answers_as_documented() {
    let db = TestDb::new();
    let server = TestServer::start(test_config(&db)).await;
    let api = server.api_addr;
    let (status, document) = get_json(api, "/api/openapi.json").await;
    assert_eq!(status, 200);
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    let paths = document["paths"].as_object().unwrap();
    let documented: std::collections::BTreeSet<String> = paths.keys().cloned().collect();
    assert_eq!(
        documented,
        registered_paths(),
        "routes and document disagree"
    );
    for (path, item) in paths {
        let operation = &item["get"];
        assert!(operation.is_object(), "{path} has a GET");
        let concrete = path
            .replace("{node_id}", &"0".repeat(64))
            .replace("{id}", "1")
            .replace("{name}", "nobody")
            .replace("{slot}", "7")
            .replace("{hash}", &"ab".repeat(32));
        let (status, _, _) = get(api, &concrete, &[]).await;
        let listed: Vec<&String> = operation["responses"].as_object().unwrap().keys().collect();
        assert!(
            listed
                .iter()
                .any(|code| code.as_str() == status.to_string()),
            "{concrete} answered {status}, documented {listed:?}"
        );
    }
}

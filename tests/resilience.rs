//! Failure and lifecycle behaviour: a database outage mid-stream, backpressure, and a graceful
//! shutdown of the real binary on SIGTERM.

mod harness;

use std::io::BufRead;
use std::time::Duration;

use diesel::sql_types::Text;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use harness::*;
use tart_backend::jip3::generate::Generator;
use tart_backend::jip3::{Event, TimedEvent};

/// `n` BestBlockChanged events with increasing slots.
fn block_events(n: u64) -> Vec<TimedEvent> {
    let mut generator = Generator::new(n, 2);
    (0..n)
        .map(|i| {
            let mut event = Event::generate(11, &mut generator).unwrap();
            if let Event::BestBlockChanged { slot, .. } = &mut event {
                *slot = i as u32;
            }
            TimedEvent {
                timestamp: jam_now(i),
                event,
            }
        })
        .collect()
}

async fn stored_and_distinct(db: &TestDb, node_id: &str) -> (i64, i64) {
    let conn = &mut db.connect().await;
    let all = count(
        conn,
        "SELECT count(*) AS n FROM events WHERE node_id = $1",
        node_id,
    )
    .await;
    let distinct = count(
        conn,
        "SELECT count(DISTINCT event_id) AS n FROM events WHERE node_id = $1",
        node_id,
    )
    .await;
    (all, distinct)
}

/// Refuses or allows new connections to the test database, and cuts the open ones.
async fn set_database_reachable(db: &TestDb, reachable: bool) {
    let (base, name) = db.url.rsplit_once('/').unwrap();
    let mut admin = AsyncPgConnection::establish(&format!("{base}/postgres"))
        .await
        .unwrap();
    diesel::sql_query(format!(
        "ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS {reachable}"
    ))
    .execute(&mut admin)
    .await
    .unwrap();
    if !reachable {
        diesel::sql_query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind::<Text, _>(name)
        .execute(&mut admin)
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn a_database_outage_loses_nothing_and_duplicates_nothing() {
    let db = TestDb::new();
    let mut config = test_config(&db);
    config.rate_limit_per_sec = 0;
    config.queue_capacity = 2_000;
    let server = TestServer::start(config).await;
    let mut node = FakeNode::connect(server.telemetry_addr, node_info(20, 2)).await;
    let id = node.node_id();
    let events = block_events(8_000);

    node.send_events(&events[..1_000]).await;
    assert!(
        eventually(WAIT, || async {
            stored_and_distinct(&db, &id).await.0 == 1_000
        })
        .await
    );

    set_database_reachable(&db, false).await;
    // More than the queue holds: the connection must stop reading (backpressure), not drop.
    let rest = events[1_000..].to_vec();
    let sender = tokio::spawn(async move {
        node.send_events(&rest).await;
        node
    });
    assert!(
        eventually(WAIT, || async {
            server.metric("telemetry_database_circuit_open") == 1.0
        })
        .await,
        "the circuit breaker opens"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pending = server.metric("telemetry_buffer_pending");
    assert!(
        pending > 0.0 && pending <= 2_000.0,
        "queue stays within its bound: {pending}"
    );
    assert!(server.metric("telemetry_batch_write_failures") >= 1.0);

    set_database_reachable(&db, true).await;
    let node = sender.await.unwrap();
    assert!(
        eventually(WAIT, || async {
            stored_and_distinct(&db, &id).await == (8_000, 8_000)
        })
        .await,
        "every event stored exactly once after the outage: {:?}",
        stored_and_distinct(&db, &id).await
    );
    assert_eq!(server.metric("telemetry_database_circuit_open"), 0.0);
    assert!(
        eventually_count(
            &db,
            WAIT,
            "SELECT events_stored AS n FROM node_sessions WHERE node_id = $1",
            &id,
            8_000
        )
        .await,
        "session counters count each stored event once"
    );
    drop(node);
}

/// A node that sends at a steady rate under its limit through a 60 s outage: the backlog that
/// reaches the server as one burst when the database is back is the server's doing (it stopped
/// reading while its queue was full), so none of it is rate-limited.
#[tokio::test]
async fn a_long_outage_under_steady_load_stores_everything_and_rate_limits_nothing() {
    const PER_SEC: u64 = 200;
    let db = TestDb::new();
    let mut config = test_config(&db);
    config.rate_limit_per_sec = 250;
    config.rate_limit_burst = 250;
    config.queue_capacity = 2_000;
    let server = TestServer::start(config).await;
    let mut node = FakeNode::connect(server.telemetry_addr, node_info(21, 2)).await;
    let id = node.node_id();
    let events = block_events(PER_SEC * 75);
    let sender = tokio::spawn(async move {
        // 20 events every 100 ms, paced by the clock rather than by the sends.
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        for chunk in events.chunks(PER_SEC as usize / 10) {
            tick.tick().await;
            node.send_events(chunk).await;
        }
        node
    });
    tokio::time::sleep(Duration::from_secs(5)).await;
    set_database_reachable(&db, false).await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(
        server.metric("telemetry_buffer_pending") >= 2_000.0,
        "the queue filled during the outage, so the server held the node back"
    );
    set_database_reachable(&db, true).await;
    let node = sender.await.unwrap();
    let total = (PER_SEC * 75) as i64;
    assert!(
        eventually(WAIT, || async {
            stored_and_distinct(&db, &id).await == (total, total)
        })
        .await,
        "every event stored once: {:?} of {total}",
        stored_and_distinct(&db, &id).await
    );
    assert_eq!(server.metric("telemetry_events_rate_limited"), 0.0);
    drop(node);
}

/// The real `tart-backend` binary, started on ephemeral ports against `db`.
struct Binary {
    child: std::process::Child,
    /// Kept open: the server writes more to stdout (the demo banner) after the first line.
    _stdout: std::io::BufReader<std::process::ChildStdout>,
    telemetry: std::net::SocketAddr,
    api: String,
}

/// A test that fails must not leave its server running (holding database connections).
impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Binary {
    fn start(db: &TestDb, args: &[&str]) -> Binary {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tart-backend"))
            .args([
                "--telemetry-bind",
                "127.0.0.1:0",
                "--api-bind",
                "127.0.0.1:0",
            ])
            .args(args)
            .env("DATABASE_URL", &db.url)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("binary starts");
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|word| word.strip_prefix(name))
                .unwrap_or_else(|| panic!("no {name} in {line:?}"))
                .to_owned()
        };
        Binary {
            telemetry: field("telemetry=").parse().unwrap(),
            api: field("api="),
            child,
            _stdout: stdout,
        }
    }

    /// Sends `signal` (e.g. "-TERM") and waits for the exit status.
    async fn stop(mut self, signal: &str) -> std::process::ExitStatus {
        let sent = std::process::Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        tokio::task::spawn_blocking(move || self.child.wait().unwrap())
            .await
            .unwrap()
    }
}

/// The peak resident memory of process `pid`, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status");
    kib << 10
}

/// 400 frames of 1 MiB (undefined discriminator: each is kept whole, a few MB in memory until
/// written) sent while the database is down: memory stays within the byte budget, during the
/// outage and while the backlog is written after it, and every frame is stored.
#[tokio::test]
async fn huge_frames_during_an_outage_keep_memory_within_the_byte_budget() {
    use tokio::io::AsyncWriteExt;
    const QUEUE_BYTES: u64 = 64 << 20;
    /// What the server may hold beside the queue, as the README's memory bound states it: the
    /// live stream's recent events (64 MiB) and its queue (`broadcast_queue_bytes`, 32 MiB),
    /// three writes in flight with their parameters (~96 MiB), and a baseline of 64 MiB.
    const ALLOWANCE: u64 = (64 + 32 + 96 + 64) << 20;
    let db = TestDb::new();
    let binary = Binary::start(
        &db,
        &[
            "--set",
            "rate_limit_per_sec=0",
            "--set",
            &format!("queue_bytes={QUEUE_BYTES}"),
        ],
    );
    let pid = binary.child.id();
    let info = node_info(22, 2);
    let id = info.node_id();
    let mut socket = tokio::net::TcpStream::connect(binary.telemetry)
        .await
        .unwrap();
    socket
        .write_all(&tart_backend::jip3::codec::frame(&info.to_bytes()))
        .await
        .unwrap();
    assert!(
        eventually_count(
            &db,
            WAIT,
            "SELECT count(*) AS n FROM nodes WHERE node_id = $1",
            &id,
            1
        )
        .await
    );

    set_database_reachable(&db, false).await;
    let sender = tokio::spawn(async move {
        let mut body = vec![0u8; 1 << 20];
        body[..8].copy_from_slice(&jam_now(0).to_le_bytes());
        body[8] = 255;
        let framed = tart_backend::jip3::codec::frame(&body);
        for _ in 0..400 {
            socket.write_all(&framed).await.unwrap();
        }
        socket
    });
    tokio::time::sleep(Duration::from_secs(15)).await;
    let during = peak_rss(pid);
    set_database_reachable(&db, true).await;
    let socket = sender.await.unwrap();
    assert!(
        eventually_count(
            &db,
            Duration::from_secs(120),
            "SELECT count(*) AS n FROM events WHERE node_id = $1",
            &id,
            400
        )
        .await,
        "all 400 frames stored after the outage"
    );
    let after = peak_rss(pid);
    eprintln!(
        "peak RSS: {} MiB during the outage, {} MiB after the backlog",
        during >> 20,
        after >> 20
    );
    let bound = QUEUE_BYTES + ALLOWANCE;
    assert!(
        during <= bound,
        "peak RSS during the outage {during} > {bound}"
    );
    assert!(
        after <= bound,
        "peak RSS after the backlog {after} > {bound}"
    );
    drop(socket);
    assert!(binary.stop("-TERM").await.success());
}

#[tokio::test]
async fn sigterm_writes_everything_sent_and_exits_zero() {
    let db = TestDb::new();
    let binary = Binary::start(&db, &["--set", "rate_limit_per_sec=0"]);
    let api = binary.api.clone();
    let healthcheck = |url: String| {
        std::process::Command::new(env!("CARGO_BIN_EXE_tart-backend"))
            .args(["healthcheck", "--url", &url])
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(
        healthcheck(format!("{api}/api/health")),
        "healthcheck passes"
    );
    assert!(
        !healthcheck(format!("{api}/no/such/path")),
        "a 404 is unhealthy"
    );

    let mut node = FakeNode::connect(binary.telemetry, node_info(21, 2)).await;
    let events = block_events(20_000);
    node.send_events(&events).await;
    let exit = binary.stop("-TERM").await;
    assert!(exit.success(), "exit status {exit:?}");
    assert_eq!(
        stored_and_distinct(&db, &node.node_id()).await,
        (20_000, 20_000)
    );
    let conn = &mut db.connect().await;
    assert_eq!(
        count(
            conn,
            "SELECT count(*) AS n FROM node_sessions WHERE node_id = $1 \
             AND disconnect_reason = 'server shutting down' AND events_stored = 20000",
            &node.node_id(),
        )
        .await,
        1
    );
}

/// SIGKILL after events are stored but before the counters' rollup: at the next start the
/// session and node counters are recounted from the stored rows.
#[tokio::test]
async fn counters_are_reconciled_from_the_stored_rows_after_sigkill() {
    let db = TestDb::new();
    // No rollup before the kill: the counters stay at zero while rows are written.
    let args = [
        "--set",
        "rate_limit_per_sec=0",
        "--set",
        "rollup_interval_ms=3600000",
    ];
    let binary = Binary::start(&db, &args);
    let mut node = FakeNode::connect(binary.telemetry, node_info(23, 2)).await;
    let id = node.node_id();
    node.send_events(&block_events(3_000)).await;
    assert!(
        eventually(WAIT, || async {
            stored_and_distinct(&db, &id).await == (3_000, 3_000)
        })
        .await
    );
    let conn = &mut db.connect().await;
    let stored_counter = "SELECT events_stored AS n FROM node_sessions WHERE node_id = $1";
    assert_eq!(count(conn, stored_counter, &id).await, 0, "no rollup yet");
    assert!(!binary.stop("-KILL").await.success());

    let binary = Binary::start(&db, &args);
    assert_eq!(count(conn, stored_counter, &id).await, 3_000);
    assert_eq!(
        count(
            conn,
            "SELECT event_count AS n FROM nodes WHERE node_id = $1",
            &id
        )
        .await,
        3_000
    );
    assert!(binary.stop("-TERM").await.success());
}

#[tokio::test]
async fn nul_characters_in_strings_are_stored_as_replacement_characters() {
    let db = TestDb::new();
    let server = TestServer::start(test_config(&db)).await;
    let mut info = node_info(22, 2);
    info.note = "before\0after".into();
    let mut node = FakeNode::connect(server.telemetry_addr, info).await;
    let event = TimedEvent {
        timestamp: jam_now(0),
        event: Event::PeerMisbehaved {
            peer_id: tart_backend::jip3::types::Hash([1; 32]),
            reason: "bad\0peer".into(),
        },
    };
    node.send_events(&[event]).await;
    let id = node.node_id();
    assert!(
        eventually(WAIT, || async {
            stored_and_distinct(&db, &id).await.0 == 1
        })
        .await
    );
    let conn = &mut db.connect().await;
    decode_stored(conn).await;
    assert_eq!(
        count(
            conn,
            "SELECT count(*) AS n FROM decoded_events WHERE node_id = $1 \
             AND data->'PeerMisbehaved'->>'reason' = 'bad\u{FFFD}peer'",
            &id
        )
        .await,
        1
    );
    assert!(
        eventually_count(
            &db,
            WAIT,
            "SELECT count(*) AS n FROM nodes WHERE node_id = $1 AND note = 'before\u{FFFD}after'",
            &id,
            1
        )
        .await
    );
}

/// A row PostgreSQL refuses (here text that is not JSON, which the codec never produces) must
/// not stall the writer: it is isolated and kept as a decode failure, its batch-mates are stored.
#[tokio::test]
async fn a_row_the_database_refuses_is_isolated_and_kept_as_a_failure() {
    use actix::Actor;
    use std::sync::Arc;
    use tart_backend::ingest::budget::QueueBudget;
    use tart_backend::jip3::{stored, Dialect};
    use tart_backend::messages::{
        Drain, EventBatch, EventBatches, Fact, IngestEvent, Payload, Reference,
    };
    use tart_backend::persist::writer::DbWriter;

    let db = TestDb::new();
    let config = test_config(&db);
    let url = db.url.clone();
    let batch_events: Vec<IngestEvent> = block_events(10)
        .into_iter()
        .enumerate()
        .map(|(i, event)| IngestEvent {
            id: 1_000 + i as i64,
            event_id: i as u64,
            received_at: chrono::Utc::now(),
            payload: Payload::Decoded {
                timestamp: event.timestamp,
                discriminator: event.event.discriminator(),
                fields: stored::fields_of(&event.to_bytes()),
                fact: Fact::of(&event.event),
                reference: Reference::None,
            },
        })
        .collect();
    let metrics = tokio::task::spawn_blocking(move || {
        actix::System::new().block_on(async move {
            tart_backend::store::prepare(&url).await.unwrap();
            tart_backend::store::partitions::maintain(
                &tart_backend::store::create_pool(&url, 1).await.unwrap(),
                1,
                30,
            )
            .await
            .unwrap();
            // Every value fits its column (the fields are bytes, times are clamped), so the
            // database is made to refuse one row, as an operator's constraint or trigger would.
            let mut conn = AsyncPgConnection::establish(&url).await.unwrap();
            diesel::sql_query(
                "ALTER TABLE event_rows ADD CONSTRAINT not_six CHECK (event_id <> 6)",
            )
            .execute(&mut conn)
            .await
            .unwrap();
            let metrics = Arc::new(tart_backend::metrics::Metrics::new());
            let budget = Arc::new(QueueBudget::from_config(&config, &metrics));
            budget.acquire(&batch_events).await;
            let pool = tart_backend::store::create_pool(&url, 2).await.unwrap();
            let writer = DbWriter::new(pool, &config, budget, metrics.clone()).start();
            writer.do_send(EventBatches {
                batches: vec![EventBatch {
                    node_id: "ab".repeat(32).into(),
                    session_id: 7,
                    dialect: Dialect::v1(2),
                    read_at: std::time::Instant::now(),
                    held_back: Duration::ZERO,
                    events: batch_events,
                    counts: Default::default(),
                    undefined: Vec::new(),
                    gaps: Vec::new(),
                    skew: None,
                }],
                handed_at: std::time::Instant::now(),
            });
            writer.send(Drain).await.unwrap();
            metrics
        })
    })
    .await
    .unwrap();
    let conn = &mut db.connect().await;
    let node = "ab".repeat(32);
    assert_eq!(
        count(
            conn,
            "SELECT count(*) AS n FROM events WHERE node_id = $1",
            &node
        )
        .await,
        9
    );
    assert_eq!(
        count(
            conn,
            "SELECT count(*) AS n FROM decode_failures WHERE node_id = $1 AND event_id = 6 \
             AND error LIKE 'refused by PostgreSQL%'",
            &node
        )
        .await,
        1
    );
    assert_eq!(metrics.decode_failures.get(), 1);
    assert_eq!(metrics.events_stored.get(), 9);
}

#[test]
fn an_unreachable_database_is_reported_clearly_and_exits_non_zero() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tart-backend"))
        .args([
            "--telemetry-bind",
            "127.0.0.1:0",
            "--api-bind",
            "127.0.0.1:0",
        ])
        .env(
            "DATABASE_URL",
            "postgres://tart:secret@127.0.0.1:1/tart_telemetry",
        )
        .env("RUST_LOG", "info")
        .output()
        .expect("binary runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "cannot connect to PostgreSQL at postgres://tart:***@127.0.0.1:1/tart_telemetry"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("pg_ctlcluster"), "{stderr}");
    assert!(
        !stderr.contains("secret"),
        "the password is not shown: {stderr}"
    );
}

#[tokio::test]
async fn the_demo_runs_simulated_nodes_that_show_up_in_the_api() {
    let db = TestDb::new();
    let binary = Binary::start(&db, &["--demo", "4"]);
    let api = binary.api.clone();
    let connected_nodes = || {
        let (_, body) =
            tart_backend::api::client::get(&format!("{api}/api/nodes"), Duration::from_secs(5))
                .unwrap();
        let nodes: serde_json::Value = serde_json::from_str(&body).unwrap();
        nodes["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["is_connected"] == true && n["event_count"].as_i64() > Some(0))
            .count()
    };
    assert!(
        eventually(WAIT, || async { connected_nodes() == 4 }).await,
        "4 simulated nodes connected and stored events"
    );
    let exit = binary.stop("-INT").await;
    assert!(exit.success(), "exit status {exit:?}");
}

/// A run that uses up its row id generation moves on to the spare it took at start and takes a
/// new spare from the database's sequence in the background: ids stay unique and nothing stops.
#[tokio::test]
async fn row_ids_roll_over_to_a_generation_taken_from_the_database() {
    let db = TestDb::new();
    let url = db.url.clone();
    let (before, after, sequence) = tokio::task::spawn_blocking(move || {
        actix::System::new().block_on(async move {
            tart_backend::store::prepare(&url).await.unwrap();
            let pool = tart_backend::store::create_pool(&url, 2).await.unwrap();
            let ids = tart_backend::store::ids::IdAllocator::from_database(&pool)
                .await
                .unwrap();
            let first_generation = ids.generation();
            let ids = ids.starting_at((1 << 40) - 5);
            let before = ids.reserve(5);
            let after = ids.reserve(10);
            assert_eq!(ids.generation(), first_generation + 1, "the spare");
            // The refill takes the next one from the sequence.
            let mut sequence = 0;
            for _ in 0..100 {
                sequence = diesel::sql_query("SELECT last_value AS n FROM id_generation")
                    .get_result::<LastValue>(&mut *pool.get().await.unwrap())
                    .await
                    .unwrap()
                    .n;
                if sequence == first_generation + 2 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (before, after, (first_generation, sequence))
        })
    })
    .await
    .unwrap();
    assert!(after > before + 4, "increasing across the roll-over");
    assert_eq!(after >> 40, sequence.0 + 1);
    assert_eq!(sequence.1, sequence.0 + 2, "a new spare was taken");
}

#[derive(diesel::QueryableByName)]
struct LastValue {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

//! Test harness: a throwaway PostgreSQL database per test, a real TART instance on ephemeral
//! ports in its own thread, a fake JAM node speaking JIP-3 over a real TCP socket, and the JIP-3
//! test vectors ([`vectors`]).
#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod browser;
pub mod vectors;
#[allow(unused_imports)] // the same reason
pub use vectors::*;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use diesel::sql_types::{BigInt, Text};
use diesel::QueryableByName;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use tart_backend::config::Config;
use tart_backend::jip3::codec::frame;
use tart_backend::jip3::generate::{Generate, Generator};
use tart_backend::jip3::{JamParameters, JamParams, NodeInformation, TimedEvent};
use tart_backend::metrics::Metrics;
use tart_backend::server::{Server, ShutdownTimedOut};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const BASE_URL: &str = "postgres://postgres@127.0.0.1:5432";

/// A uniquely named database, dropped when the test ends.
pub struct TestDb {
    pub url: String,
}

impl TestDb {
    pub fn new() -> TestDb {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "tart_test_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            rand::random::<u32>()
        );
        let base = std::env::var("TART_TEST_PG").unwrap_or_else(|_| BASE_URL.to_owned());
        TestDb {
            url: format!("{base}/{name}"),
        }
    }

    pub async fn connect(&self) -> AsyncPgConnection {
        AsyncPgConnection::establish(&self.url)
            .await
            .expect("test database reachable")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let url = self.url.clone();
        // Dropping needs async I/O; do it on a runtime of its own, whatever the test used.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            if let Err(e) = rt.block_on(tart_backend::store::drop_database(&url)) {
                eprintln!("could not drop test database {url}: {e}");
            }
        })
        .join()
        .unwrap();
    }
}

/// Settings for a test server: ephemeral ports, its own database, quick timers.
pub fn test_config(db: &TestDb) -> Config {
    Config {
        database_url: db.url.clone(),
        telemetry_bind: "127.0.0.1:0".into(),
        api_bind: "127.0.0.1:0".into(),
        rollup_interval_ms: 100,
        retry_base_ms: 20,
        retry_max_ms: 200,
        breaker_probe_ms: 100,
        shutdown_timeout_secs: 20,
        ..Config::default()
    }
}

/// [`test_config`] without a rate limit, for tests that count every event.
pub fn unlimited_config(db: &TestDb) -> Config {
    Config {
        rate_limit_per_sec: 0,
        ..test_config(db)
    }
}

/// A TART instance running in a thread of its own (its own actix System).
pub struct TestServer {
    pub telemetry_addr: SocketAddr,
    /// The REST API, WebSocket and /metrics.
    pub api_addr: SocketAddr,
    pub metrics: Arc<Metrics>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), ShutdownTimedOut>>>,
}

impl TestServer {
    pub async fn start(config: Config) -> TestServer {
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            actix::System::new().block_on(async move {
                let server = Server::start(config).await.expect("server starts");
                ready_tx
                    .send((
                        server.telemetry_addr,
                        server.api_addr,
                        server.metrics.clone(),
                    ))
                    .ok()
                    .expect("test is waiting");
                let _ = stop_rx.await;
                server.shutdown().await
            })
        });
        let (telemetry_addr, api_addr, metrics) = ready_rx.await.expect("server started");
        TestServer {
            telemetry_addr,
            api_addr,
            metrics,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// Graceful shutdown, as on SIGTERM; returns once everything queued is written.
    pub async fn shutdown(mut self) -> Result<(), ShutdownTimedOut> {
        self.stop_and_join().await
    }

    async fn stop_and_join(&mut self) -> Result<(), ShutdownTimedOut> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let thread = self.thread.take().expect("joined once");
        tokio::task::spawn_blocking(move || thread.join().expect("server thread"))
            .await
            .unwrap()
    }

    pub fn metric(&self, name: &str) -> f64 {
        metric_value(&self.metrics.render(), name)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

/// The value of a metric (the sum over its label sets) in Prometheus text format.
pub fn metric_value(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            let bare = key.split('{').next()?;
            (bare == name || key == name).then(|| value.parse::<f64>().ok())?
        })
        .sum()
}

/// A NodeInformation with a predictable Peer ID (all bytes `seed`) and `cores` cores, in
/// protocol version 1 with GP 0.7 parameters (what the reference node sends).
pub fn node_info(seed: u8, cores: u16) -> NodeInformation {
    let mut info = NodeInformation::generate(&mut Generator::new(u64::from(seed), cores));
    info.peer_id.0 = [seed; 32];
    info.implementation_name = "test-node".into();
    info.params = JamParams::Known(JamParameters {
        core_count: cores,
        ..JamParameters::tiny()
    });
    info
}

/// A fake JAM node: a real TCP connection speaking JIP-3.
pub struct FakeNode {
    pub socket: TcpStream,
    pub info: NodeInformation,
}

impl FakeNode {
    /// Connects and sends NodeInformation.
    pub async fn connect(addr: SocketAddr, info: NodeInformation) -> FakeNode {
        let body = info.to_bytes();
        Self::connect_sending(addr, info, &body).await
    }

    /// Connects as the node `info` describes, but sends `first_body` as its first message (a
    /// NodeInformation bent out of shape).
    pub async fn connect_sending(
        addr: SocketAddr,
        info: NodeInformation,
        first_body: &[u8],
    ) -> FakeNode {
        let mut node = FakeNode {
            socket: TcpStream::connect(addr).await.expect("connect"),
            info,
        };
        node.send_body(first_body).await;
        node
    }

    /// Connects from the loopback address `source` (any of 127.0.0.0/8), as a node on another
    /// host would appear, and sends NodeInformation.
    pub async fn connect_from(
        source: std::net::IpAddr,
        addr: SocketAddr,
        info: NodeInformation,
    ) -> FakeNode {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.bind(SocketAddr::new(source, 0)).expect("bind");
        let mut node = FakeNode {
            socket: socket.connect(addr).await.expect("connect"),
            info,
        };
        node.send_body(&node.info.to_bytes()).await;
        node
    }

    pub fn node_id(&self) -> String {
        self.info.node_id()
    }

    pub async fn send_body(&mut self, body: &[u8]) {
        self.socket.write_all(&frame(body)).await.expect("send");
    }

    /// Sends many events in one write, as a busy node would.
    pub async fn send_events(&mut self, events: &[TimedEvent]) {
        let bytes: Vec<u8> = events.iter().flat_map(|e| frame(&e.to_bytes())).collect();
        self.socket.write_all(&bytes).await.expect("send");
    }

    /// True once the server has closed the connection.
    pub async fn closed_by_server(&mut self, within: Duration) -> bool {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 16];
        matches!(
            tokio::time::timeout(within, self.socket.read(&mut buf)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }
}

/// Polls `check` until it returns true or `within` passes.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Runs a `SELECT count(*) AS n ...` with one text parameter.
pub async fn count(conn: &mut AsyncPgConnection, sql: &str, param: &str) -> i64 {
    diesel::sql_query(sql)
        .bind::<Text, _>(param)
        .get_result::<Count>(conn)
        .await
        .map(|c| c.n)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Waits until `sql` (one text parameter, a column `n`) returns `expected`.
pub async fn eventually_count(
    db: &TestDb,
    within: Duration,
    sql: &str,
    param: &str,
    expected: i64,
) -> bool {
    eventually(within, || async {
        count(&mut db.connect().await, sql, param).await == expected
    })
    .await
}

/// Decodes every stored event into `decoded_events`, as `tart-backend decode-events` does, so a
/// test reads event fields in SQL the way an operator does (events are stored in wire form).
pub async fn decode_stored(conn: &mut AsyncPgConnection) {
    tart_backend::store::decoded::fill(conn, &Default::default())
        .await
        .expect("decoding stored events");
}

/// Waits until `node_id` has exactly `expected` rows in `events`.
pub async fn eventually_stored(db: &TestDb, node_id: &str, expected: i64) -> bool {
    eventually_count(
        db,
        WAIT,
        "SELECT count(*) AS n FROM events WHERE node_id = $1",
        node_id,
        expected,
    )
    .await
}

/// Runs a simulation to its end, then waits until the server stored everything each node sent.
pub async fn simulate_until_stored(
    db: &TestDb,
    config: tart_backend::sim::SimConfig,
) -> tart_backend::sim::SimReport {
    let report = tart_backend::sim::Simulation::new(config)
        .run(tokio_util::sync::CancellationToken::new())
        .await;
    for node in &report.nodes {
        assert!(
            eventually_stored(db, &node.node_id, node.events_sent as i64).await,
            "node {} stored all {} it sent",
            node.node_id,
            node.events_sent
        );
    }
    report
}

/// A JIP-3 timestamp for "now plus `offset` µs", so events look current.
pub fn jam_now(offset: u64) -> u64 {
    tart_backend::jip3::time::now() + offset
}

/// How long a test waits for anything to happen (a row, a metric, an answer, a WebSocket
/// message) before it fails: generous, as the machines are shared and debug builds slow.
pub const WAIT: Duration = Duration::from_secs(30);

/// GET `path` from the API with a real HTTP client (awc; needs an actix runtime, e.g.
/// `#[actix_web::test]`): the status and the JSON body.
pub async fn get_json(api: SocketAddr, path: &str) -> (u16, serde_json::Value) {
    let (status, _, body) = get(api, path, &[]).await;
    let json = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {}", String::from_utf8_lossy(&body)));
    (status, json)
}

/// GET `path` with extra request headers: the status, the response headers and the body.
pub async fn get(
    api: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, awc::http::header::HeaderMap, Vec<u8>) {
    let mut request = awc::Client::new()
        .get(format!("http://{api}{path}"))
        .timeout(WAIT);
    for (name, value) in headers {
        request = request.insert_header((*name, *value));
    }
    let mut response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let body = response
        .body()
        .limit(256 << 20)
        .await
        .unwrap_or_else(|e| panic!("GET {path} body: {e}"));
    (
        response.status().as_u16(),
        response.headers().clone(),
        body.to_vec(),
    )
}

/// A real WebSocket client connection (awc).
pub trait WsConnection:
    futures_util::Stream<Item = Result<awc::ws::Frame, awc::error::WsProtocolError>>
    + futures_util::Sink<awc::ws::Message, Error = awc::error::WsProtocolError>
    + Unpin
{
}

impl<T> WsConnection for T where
    T: futures_util::Stream<Item = Result<awc::ws::Frame, awc::error::WsProtocolError>>
        + futures_util::Sink<awc::ws::Message, Error = awc::error::WsProtocolError>
        + Unpin
{
}

/// Opens `/api/ws` and returns the connection with its first message (`connected`).
pub async fn ws_connect(api: SocketAddr) -> (impl WsConnection, serde_json::Value) {
    let (_, mut ws) = awc::Client::new()
        .ws(format!("ws://{api}/api/ws"))
        .max_frame_size(256 << 20)
        .connect()
        .await
        .expect("WebSocket handshake");
    let first = ws_json(&mut ws).await;
    (ws, first)
}

/// What a WebSocket client receives, pings and pongs aside.
#[derive(Debug)]
pub enum WsIn {
    Json(serde_json::Value),
    Close(Option<awc::ws::CloseReason>),
    /// The connection ended without a close frame.
    Ended,
}

pub async fn ws_next(ws: &mut impl WsConnection) -> WsIn {
    use futures_util::StreamExt;
    loop {
        let frame = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a WebSocket message in time");
        return match frame {
            Some(Ok(awc::ws::Frame::Text(text))) => {
                WsIn::Json(serde_json::from_slice(&text).expect("server messages are JSON"))
            }
            Some(Ok(awc::ws::Frame::Close(reason))) => WsIn::Close(reason),
            Some(Ok(awc::ws::Frame::Ping(_) | awc::ws::Frame::Pong(_))) => continue,
            Some(Ok(other)) => panic!("unexpected WebSocket frame {other:?}"),
            Some(Err(_)) | None => WsIn::Ended,
        };
    }
}

/// The next JSON message.
pub async fn ws_json(ws: &mut impl WsConnection) -> serde_json::Value {
    match ws_next(ws).await {
        WsIn::Json(message) => message,
        other => panic!("expected a message, got {other:?}"),
    }
}

/// Messages up to the first of type `kind`: the ones before it, and it.
pub async fn ws_until(
    ws: &mut impl WsConnection,
    kind: &str,
) -> (Vec<serde_json::Value>, serde_json::Value) {
    let mut before = Vec::new();
    loop {
        let message = ws_json(ws).await;
        if message["type"] == kind {
            return (before, message);
        }
        before.push(message);
    }
}

pub async fn ws_send(ws: &mut impl WsConnection, message: serde_json::Value) {
    ws_send_text(ws, &message.to_string()).await;
}

pub async fn ws_send_text(ws: &mut impl WsConnection, text: &str) {
    use futures_util::SinkExt;
    ws.send(awc::ws::Message::Text(text.to_owned().into()))
        .await
        .expect("WebSocket send");
}

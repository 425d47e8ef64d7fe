//! `tart-bench`: starts the release `tart-backend` against a fresh database, connects N simulated
//! nodes over real TCP, sends at a fixed rate, and prints one JSON summary (sent, stored, lost,
//! throughput, server RSS and CPU). `--search` raises the rate step by step (rate limiter off)
//! until stored events/s stops rising. A benchmark program, not a test: figures vary with load.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use diesel::sql_types::BigInt;
use diesel::QueryableByName;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use serde_json::json;
use tart_backend::jip3::codec::frame;
use tart_backend::jip3::generate::{Generate, Generator};
use tart_backend::jip3::{Event, NodeInformation, TimedEvent};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

#[derive(Parser, Debug)]
#[command(about = "Load benchmark for TART's ingest path")]
struct Args {
    /// Simulated node connections.
    #[arg(long, default_value_t = 1024)]
    nodes: usize,
    /// Events per second per node.
    #[arg(long, default_value_t = 100)]
    rate: u64,
    /// Seconds of load per step.
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// Raise the rate until stored events/s stops rising (rate limiter off).
    #[arg(long)]
    search: bool,
    /// PostgreSQL server (a fresh database is created on it and dropped afterwards).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    postgres: String,
    /// Extra `--set key=value` settings for the server.
    #[arg(long = "set")]
    settings: Vec<String>,
}

/// Pre-encoded frames of a realistic mix, reused in a loop by every node.
fn frame_pool(cores: u16, seed: u64) -> Vec<u8> {
    // (discriminator, weight): status and block flow dominate, as on a live node.
    const MIX: &[(u8, usize)] = &[
        (10, 4),
        (11, 6),
        (12, 3),
        (62, 10),
        (43, 4),
        (45, 4),
        (47, 4),
        (23, 2),
        (26, 2),
        (27, 2),
        (66, 2),
        (68, 4),
        (90, 1),
        (94, 1),
        (95, 1),
        (101, 1),
        (102, 1),
        (105, 1),
        (128, 3),
        (131, 3),
        (198, 1),
    ];
    let mut generator = Generator::new(seed, cores);
    let mut out = Vec::new();
    let start = tart_backend::jip3::time::now();
    for round in 0..20u64 {
        for &(discriminator, weight) in MIX {
            for _ in 0..weight {
                let mut event = Event::generate(discriminator, &mut generator).expect("known");
                shrink_lists(&mut event);
                let body = TimedEvent {
                    timestamp: start + round,
                    event,
                }
                .to_bytes();
                out.extend_from_slice(&frame(&body));
            }
        }
    }
    out
}

/// Keeps generated lists at realistic sizes (the generator sometimes makes 120+ items).
fn shrink_lists(event: &mut Event) {
    match event {
        Event::BlockExecuted { services, .. } => services.truncate(3),
        Event::Refined { costs, .. } => costs.truncate(2),
        Event::WorkPackageReceived { outline, .. } => {
            outline.work_items.truncate(2);
            for item in &mut outline.work_items {
                item.imports.truncate(4);
            }
        }
        Event::GuaranteeBuilt { outline, .. } => outline.guarantors.truncate(3),
        _ => {}
    }
}

fn frames_in(pool: &[u8]) -> Vec<std::ops::Range<usize>> {
    let mut ranges = Vec::new();
    let mut at = 0;
    while at < pool.len() {
        let len = u32::from_le_bytes(pool[at..at + 4].try_into().unwrap()) as usize;
        ranges.push(at..at + 4 + len);
        at += 4 + len;
    }
    ranges
}

struct Load {
    sent: AtomicU64,
    stop: AtomicBool,
    rate: AtomicU64,
}

/// One node: handshake, then `rate` events/s in 20 ms ticks until told to stop.
async fn run_node(
    addr: std::net::SocketAddr,
    index: usize,
    load: Arc<Load>,
) -> std::io::Result<()> {
    let cores = if index.is_multiple_of(2) { 2 } else { 341 };
    let mut info = NodeInformation::generate(&mut Generator::new(index as u64, cores));
    info.peer_id.0[..8].copy_from_slice(&(index as u64).to_le_bytes());
    info.implementation_name = "tart-bench".into();
    let pool = frame_pool(cores, index as u64);
    let frames = frames_in(&pool);
    let mut socket = TcpStream::connect(addr).await?;
    socket.write_all(&frame(&info.to_bytes())).await?;
    let tick = Duration::from_millis(20);
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut next, mut owed) = (0usize, 0.0f64);
    let mut buf = Vec::with_capacity(64 * 1024);
    while !load.stop.load(Ordering::Relaxed) {
        ticker.tick().await;
        owed += load.rate.load(Ordering::Relaxed) as f64 * tick.as_secs_f64();
        let due = owed.floor() as usize;
        owed -= due as f64;
        buf.clear();
        for _ in 0..due {
            buf.extend_from_slice(&pool[frames[next].clone()]);
            next = (next + 1) % frames.len();
        }
        socket.write_all(&buf).await?;
        load.sent.fetch_add(due as u64, Ordering::Relaxed);
    }
    Ok(())
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

async fn query_count(conn: &mut AsyncPgConnection, sql: &str) -> i64 {
    use diesel_async::RunQueryDsl; // scoped: its `load` would shadow the atomics' `load`
    diesel::sql_query(sql)
        .get_result::<Count>(conn)
        .await
        .map(|c| c.n)
        .unwrap_or_else(|e| {
            eprintln!("bench query failed: {sql}: {e}");
            -1
        })
}

/// Reads (VmHWM kB, VmRSS kB, CPU seconds) of a process from /proc.
fn process_usage(pid: u32) -> (u64, u64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0)
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<f64>().ok())
        .sum();
    (field("VmHWM:"), field("VmRSS:"), ticks / 100.0)
}

fn start_server(db_url: &str, args: &Args) -> (Child, std::net::SocketAddr) {
    let exe = std::env::current_exe()
        .unwrap()
        .with_file_name("tart-backend");
    let mut command = Command::new(&exe);
    command
        .args([
            "--telemetry-bind",
            "127.0.0.1:0",
            "--api-bind",
            "127.0.0.1:0",
        ])
        .env("DATABASE_URL", db_url)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped());
    if args.search {
        command.args(["--set", "rate_limit_per_sec=0"]);
    }
    for setting in &args.settings {
        command.args(["--set", setting]);
    }
    let mut child = command.spawn().unwrap_or_else(|e| {
        panic!(
            "cannot start {}: {e} (build it with --release)",
            exe.display()
        )
    });
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("telemetry="))
        .unwrap_or_else(|| panic!("server did not start: {line:?}"))
        .parse()
        .unwrap();
    (child, addr)
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let db_url = format!(
        "{}/tart_bench_{}",
        args.postgres,
        chrono::Utc::now().format("%Y%m%d%H%M%S")
    );
    let (mut server, addr) = start_server(&db_url, &args);
    let pid = server.id();
    let mut db = AsyncPgConnection::establish(&db_url)
        .await
        .expect("bench database");

    let load = Arc::new(Load {
        sent: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        rate: AtomicU64::new(args.rate),
    });
    let mut nodes = Vec::new();
    for index in 0..args.nodes {
        nodes.push(tokio::spawn(run_node(addr, index, load.clone())));
    }
    let rates: Vec<u64> = if args.search {
        (1..=12).map(|step| args.rate * step).collect()
    } else {
        vec![args.rate]
    };
    let stored_sql = "SELECT coalesce(sum(event_count), 0)::int8 AS n FROM nodes";
    let mut steps = Vec::new();
    let mut best = 0.0f64;
    for rate in rates {
        load.rate.store(rate, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(3)).await; // settle at the new rate
        let (sent0, stored0, t0) = (
            load.sent.load(Ordering::Relaxed),
            query_count(&mut db, stored_sql).await,
            Instant::now(),
        );
        tokio::time::sleep(Duration::from_secs(args.duration)).await;
        let secs = t0.elapsed().as_secs_f64();
        let sent_rate = (load.sent.load(Ordering::Relaxed) - sent0) as f64 / secs;
        let stored_rate = (query_count(&mut db, stored_sql).await - stored0) as f64 / secs;
        let (_, rss_kb, _) = process_usage(pid);
        let step = json!({
            "offered_per_node": rate,
            "offered_total": rate * args.nodes as u64,
            "sent_per_sec": sent_rate.round(),
            "stored_per_sec": stored_rate.round(),
            "server_rss_mb": rss_kb / 1024,
        });
        eprintln!("{step}");
        steps.push(step);
        if args.search && stored_rate < best * 1.03 {
            break; // stopped rising
        }
        best = best.max(stored_rate);
    }
    load.stop.store(true, Ordering::Relaxed);
    for node in nodes {
        let _ = node.await;
    }
    let sent = load.sent.load(Ordering::Relaxed) as i64;
    // Let the pipeline finish, then count the rows themselves.
    let drain_start = Instant::now();
    while query_count(&mut db, stored_sql).await
        + query_count(
            &mut db,
            "SELECT coalesce(sum(events_rate_limited),0)::int8 AS n FROM node_sessions",
        )
        .await
        < sent
        && drain_start.elapsed() < Duration::from_secs(60)
    {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (peak_kb, rss_kb, cpu_secs) = process_usage(pid);
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let exit = server.wait().ok().and_then(|s| s.code());
    let stored = query_count(&mut db, "SELECT count(*) AS n FROM events").await;
    let rate_limited = query_count(
        &mut db,
        "SELECT coalesce(sum(events_rate_limited),0)::int8 AS n FROM node_sessions",
    )
    .await;
    drop(db);
    let _ = tart_backend::store::drop_database(&db_url).await;
    let summary = json!({
        "nodes": args.nodes,
        "events_sent": sent,
        "events_stored": stored,
        "events_rate_limited": rate_limited,
        "events_lost": sent - stored - rate_limited,
        "steps": steps,
        "max_stored_per_sec": best.round(),
        "server_peak_rss_mb": peak_kb / 1024,
        "server_rss_mb_at_end": rss_kb / 1024,
        "rss_per_connection_kb": peak_kb / args.nodes.max(1) as u64,
        "server_cpu_seconds": cpu_secs,
        "server_cpu_seconds_per_million_events": (cpu_secs * 1e6 / stored.max(1) as f64 * 100.0).round() / 100.0,
        "server_exit_code": exit,
    });
    println!("{}", serde_json::to_string_pretty(&summary).unwrap());
}

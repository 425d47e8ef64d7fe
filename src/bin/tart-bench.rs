//! `tart-bench`: starts the release `tart-backend` against a fresh database, drives it with the
//! node simulator engine over real TCP and with a WebSocket client subscribed to every event, and
//! prints one JSON summary: sent, stored (counted in the database), rate-limited, lost,
//! throughput, latencies, server RSS and CPU. `--search` raises the rate step by step (rate
//! limiter off) until stored events/s stops rising. A benchmark program, not a test: its figures
//! vary with the machine's load.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use diesel::sql_types::BigInt;
use diesel::QueryableByName;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tart_backend::sim::{Mix, Params, SimConfig, Simulation, Timestamps, Writes};
use tokio_util::sync::CancellationToken;

/// As in the server (see `main.rs`): the load generator shares the cores with the server under
/// test, so its own CPU counts.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(about = "Load benchmark for TART: simulated nodes in, a WebSocket subscriber out")]
struct Args {
    /// Simulated node connections.
    #[arg(long, default_value_t = 1024)]
    nodes: usize,
    /// Events per second per node (the first step, with --search).
    #[arg(long, default_value_t = 100)]
    rate: u64,
    /// Seconds of measured load per step.
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// Raise the rate step by step (rate limiter off) until stored events/s stops rising.
    #[arg(long)]
    search: bool,
    /// The nodes send at their natural rate (what the simulator's JAM flow makes) instead of
    /// `--rate`.
    #[arg(long, conflicts_with = "search")]
    natural: bool,
    /// batched: each node writes a tick's frames at once (~4 events per write at 100/s);
    /// per-event: every frame in a write of its own, as real nodes and other load generators do.
    #[arg(long, value_enum, default_value_t = Writes::Batched)]
    writes: Writes,
    /// What fills up to the rate: natural, or half-status (Status for half of all events).
    #[arg(long, value_enum, default_value_t = Mix::Natural)]
    mix: Mix,
    /// JAM parameters of the nodes: tiny (C=2), full (C=341) or mixed (alternating).
    #[arg(long, default_value = "mixed")]
    params: Params,
    /// Leave out the WebSocket subscriber.
    #[arg(long)]
    no_websocket: bool,
    /// PostgreSQL server (a fresh database is created on it and dropped afterwards).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    postgres: String,
    /// Extra `--set key=value` settings for the server.
    #[arg(long = "set")]
    settings: Vec<String>,
    /// While the load runs, ask the analytics endpoints and the explorer's first pages in turn
    /// (one request every 100 ms) and report each one's latency.
    #[arg(long)]
    queries: bool,
}

/// Starts the release server; returns it with its telemetry address and API base URL.
fn start_server(db_url: &str, args: &Args) -> (Child, std::net::SocketAddr, String) {
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
    let field = |name: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .unwrap_or_else(|| panic!("server did not start: {line:?}"))
            .to_owned()
    };
    (child, field("telemetry=").parse().unwrap(), field("api="))
}

/// The server's metrics, as text.
fn metrics(api: &str) -> String {
    tart_backend::api::client::get(&format!("{api}/metrics"), Duration::from_secs(5))
        .map(|(_, body)| body)
        .unwrap_or_default()
}

/// A counter or gauge: `name` sums over its label sets, `name{label="value"}` is one of them.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            (key == name || key.split('{').next()? == name).then(|| value.parse::<f64>().ok())?
        })
        .sum::<f64>()
        + 0.0 // an empty sum is -0.0
}

/// The upper bound (in ms) of the histogram bucket holding quantile `q`.
fn bucket_quantile_ms(text: &str, histogram: &str, q: f64) -> Option<f64> {
    let prefix = format!("{histogram}_bucket{{le=\"");
    let buckets: Vec<(f64, f64)> = text
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(&prefix)?;
            let (le, count) = rest.split_once("\"} ")?;
            Some((le.parse().unwrap_or(f64::INFINITY), count.parse().ok()?))
        })
        .collect();
    let total = buckets.last()?.1;
    buckets
        .iter()
        .find(|(_, count)| total > 0.0 && *count >= q * total)
        .map(|(le, _)| le * 1000.0)
}

/// p50 and p99 of measured samples, in ms.
fn sample_quantiles(samples: &mut [f64]) -> serde_json::Value {
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| {
        (!samples.is_empty()).then(|| {
            let i = ((samples.len() - 1) as f64 * q).round() as usize;
            (samples[i] * 1000.0).round() / 1000.0
        })
    };
    json!({ "p50_ms": at(0.5), "p99_ms": at(0.99), "samples": samples.len() })
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

/// CPU seconds of every PostgreSQL process on this machine so far: the live ones' own, and the
/// postmaster's reaped children (backends that ended). Other databases' work counts too, so
/// compare runs on a quiet machine.
fn postgres_cpu_seconds() -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    let mut ticks = 0.0;
    for entry in entries.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        if !head.ends_with("(postgres") {
            continue;
        }
        let fields: Vec<f64> = rest
            .split_whitespace()
            .map(|f| f.parse().unwrap_or(0.0))
            .collect();
        // After the name: state is field 0, ppid 1, utime 11, stime 12, cutime 13, cstime 14.
        let own = fields.get(11).unwrap_or(&0.0) + fields.get(12).unwrap_or(&0.0);
        let parent_is_postgres = std::fs::read_to_string(format!(
            "/proc/{}/comm",
            fields.get(1).copied().unwrap_or(0.0) as u64
        ))
        .is_ok_and(|comm| comm.trim() == "postgres");
        let reaped = if parent_is_postgres {
            0.0
        } else {
            fields.get(13).unwrap_or(&0.0) + fields.get(14).unwrap_or(&0.0)
        };
        ticks += own + reaped;
    }
    ticks / 100.0
}

/// What the WebSocket subscriber saw: events received, and latency samples (event time as the
/// node stamped it → received here), one per event.
#[derive(Default)]
struct Subscriber {
    events: u64,
    latencies_ms: Vec<f64>,
}

/// Subscribes to every event on its own thread (the WebSocket client runs on an actix runtime).
fn spawn_subscriber(api: &str, stop: Arc<AtomicBool>) -> Arc<Mutex<Subscriber>> {
    let seen = Arc::new(Mutex::new(Subscriber::default()));
    let (url, out) = (
        format!("{}/api/ws", api.replace("http://", "ws://")),
        seen.clone(),
    );
    std::thread::spawn(move || {
        actix::System::new().block_on(async move {
            let (_, mut ws) = match awc::Client::new()
                .ws(&url)
                .max_frame_size(64 << 20)
                .connect()
                .await
            {
                Ok(pair) => pair,
                Err(e) => return eprintln!("WebSocket subscriber could not connect: {e}"),
            };
            // One timer for the whole run: a timeout per frame cost this thread more than the
            // frames themselves, and its CPU is taken from the server under test.
            let mut stop_check = tokio::time::interval(Duration::from_millis(200));
            while !stop.load(Ordering::Relaxed) {
                let frame = tokio::select! {
                    frame = ws.next() => frame,
                    _ = stop_check.tick() => continue,
                };
                let text = match frame {
                    Some(Ok(awc::ws::Frame::Text(text))) => text,
                    // Unanswered pings make the server drop the client as gone (after its
                    // client timeout), which ended longer runs' measurements early.
                    Some(Ok(awc::ws::Frame::Ping(payload))) => {
                        let _ = ws.send(awc::ws::Message::Pong(payload)).await;
                        continue;
                    }
                    Some(_) => continue,
                    None => {
                        eprintln!("the server closed the WebSocket subscriber's connection");
                        break;
                    }
                };
                let now = chrono::Utc::now();
                // A cheap look at the event's own time; full JSON parsing would load the
                // benchmark's CPU more than the server's.
                let Ok(text) = std::str::from_utf8(&text) else {
                    continue;
                };
                if !text.starts_with(r#"{"type":"event""#) {
                    continue;
                }
                let latency = text
                    .split_once(r#""timestamp":""#)
                    .and_then(|(_, rest)| rest.split_once('"'))
                    .and_then(|(time, _)| chrono::DateTime::parse_from_rfc3339(time).ok())
                    .map(|sent| (now - sent.to_utc()).num_microseconds().unwrap_or(0) as f64 / 1e3);
                let mut seen = out.lock().unwrap();
                seen.events += 1;
                seen.latencies_ms.extend(latency);
            }
        });
    });
    seen
}

/// What each route asked by the querier took, client side, in milliseconds.
type QueryLatencies = Arc<Mutex<std::collections::BTreeMap<String, Vec<f64>>>>;

/// The routes the querier asks, with a node and an implementation that exist.
fn query_paths(node_id: &str, implementation: &str, slot: i64, package: &str) -> Vec<String> {
    [
        "/api/events?limit=50".to_owned(),
        "/api/events?limit=50&type=BestBlockChanged".to_owned(),
        "/api/events?limit=50&type=Status".to_owned(),
        format!("/api/nodes/{node_id}/events?limit=50"),
        format!("/api/nodes/{node_id}/events?limit=50&type=BestBlockChanged"),
        format!("/api/nodes/{node_id}/sessions"),
        format!("/api/nodes/{node_id}/failures"),
        "/api/timeseries?group_by=type".to_owned(),
        "/api/timeseries?group_by=node".to_owned(),
        "/api/timeseries?group_by=implementation".to_owned(),
        "/api/failures".to_owned(),
        "/api/network".to_owned(),
        "/api/implementations".to_owned(),
        format!("/api/implementations/{implementation}"),
        "/api/stats".to_owned(),
        "/api/nodes".to_owned(),
        "/api/slots".to_owned(),
        format!("/api/slots/{slot}"),
        "/api/slots/propagation".to_owned(),
        "/api/work-packages".to_owned(),
        "/api/work-packages/funnel".to_owned(),
        format!("/api/work-packages/{package}"),
        "/api/cores".to_owned(),
        "/api/guarantees".to_owned(),
        "/api/peers".to_owned(),
        "/api/peers/churn".to_owned(),
    ]
    .to_vec()
}

/// Asks the analytics routes in turn on its own thread until `stop`, keeping each latency.
fn spawn_querier(api: &str, stop: Arc<AtomicBool>) -> QueryLatencies {
    let latencies: QueryLatencies = Arc::default();
    let (api, out) = (api.to_owned(), latencies.clone());
    std::thread::spawn(move || {
        actix::System::new().block_on(async move {
            let client = awc::Client::builder()
                .timeout(Duration::from_secs(30))
                .finish();
            let get = async |path: &str| -> serde_json::Value {
                match client.get(format!("{api}{path}")).send().await {
                    Ok(mut response) => response.json().await.unwrap_or_default(),
                    Err(_) => serde_json::Value::Null,
                }
            };
            // Waits for a node, a block some slots old and a work-package to ask about.
            let mut paths = Vec::new();
            while paths.is_empty() && !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let nodes = get("/api/nodes?limit=1").await;
                let slots = get("/api/slots").await;
                let packages = get("/api/work-packages?limit=1").await;
                let node = &nodes["nodes"][0];
                if let (Some(id), Some(name), Some(slot), Some(package)) = (
                    node["node_id"].as_str(),
                    node["implementation_name"].as_str(),
                    slots["slots"][3]["slot"].as_i64(),
                    packages["packages"][0]["hash"].as_str(),
                ) {
                    paths = query_paths(id, name, slot, package);
                }
            }
            for path in paths.iter().cycle() {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let started = Instant::now();
                let answered = match client.get(format!("{api}{path}")).send().await {
                    Ok(mut response) => {
                        response.body().limit(64 << 20).await.is_ok()
                            && response.status().is_success()
                    }
                    Err(_) => false,
                };
                let took = started.elapsed().as_secs_f64() * 1e3;
                let key = if answered {
                    path.clone()
                } else {
                    format!("{path} (failed)")
                };
                out.lock().unwrap().entry(key).or_default().push(took);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
    });
    latencies
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

async fn count(conn: &mut AsyncPgConnection, sql: &str) -> i64 {
    use diesel_async::RunQueryDsl; // scoped: its `load` would shadow the atomics' `load`
    diesel::sql_query(sql)
        .get_result::<Count>(conn)
        .await
        .map(|c| c.n)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

#[tokio::main]
async fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let args = Args::parse();
    let db_url = format!(
        "{}/tart_bench_{}",
        args.postgres,
        chrono::Utc::now().format("%Y%m%d%H%M%S")
    );
    let postgres_cpu_at_start = postgres_cpu_seconds();
    let (mut server, addr, api) = start_server(&db_url, &args);
    let pid = server.id();
    let stop_subscriber = Arc::new(AtomicBool::new(false));
    let subscriber = (!args.no_websocket).then(|| spawn_subscriber(&api, stop_subscriber.clone()));
    let querier = args
        .queries
        .then(|| spawn_querier(&api, stop_subscriber.clone()));

    let rates: Vec<u64> = if args.search {
        (1..=12).map(|step| args.rate * step).collect()
    } else {
        vec![args.rate]
    };
    let stored = || metric(&metrics(&api), "telemetry_events_stored");
    let (mut steps, mut best, mut sent) = (Vec::new(), 0.0f64, 0u64);
    let mut load_ended = Instant::now();
    for (step, rate) in rates.into_iter().enumerate() {
        let simulation = Simulation::new(SimConfig {
            nodes: args.nodes,
            rate: (!args.natural).then_some(rate as f64),
            params: args.params,
            writes: args.writes,
            mix: args.mix,
            seed: step as u64,
            // Ingest latency is measured from the time a frame is written.
            timestamps: Timestamps::Sent,
            ..SimConfig::new(addr)
        });
        let live = simulation.stats();
        let stop = CancellationToken::new();
        let running = tokio::spawn(simulation.run(stop.clone()));
        tokio::time::sleep(Duration::from_secs(3)).await; // connect and settle
        let (sent0, stored0, t0) = (live.events_sent(), stored(), Instant::now());
        tokio::time::sleep(Duration::from_secs(args.duration)).await;
        let secs = t0.elapsed().as_secs_f64();
        let sent_rate = (live.events_sent() - sent0) as f64 / secs;
        let stored_rate = (stored() - stored0) / secs;
        stop.cancel();
        load_ended = Instant::now();
        sent += running.await.expect("simulation").events_sent();
        // The server still reads the closed connections' backlog; the next step's nodes would
        // find all 1,024 slots taken and be refused. Wait until they are gone.
        let wait_start = Instant::now();
        while metric(&metrics(&api), "telemetry_active_connections") > 0.0
            && wait_start.elapsed() < Duration::from_secs(300)
        {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let (_, rss_kb, _) = process_usage(pid);
        let step = json!({
            "rate_per_node": rate,
            "offered_total": rate * args.nodes as u64,
            "sent_per_sec": sent_rate.round(),
            "stored_per_sec": stored_rate.round(),
            "server_rss_mb": rss_kb / 1024,
        });
        eprintln!("{step}");
        steps.push(step);
        let stopped_rising = stored_rate < best * 1.03;
        best = best.max(stored_rate);
        if args.search && stopped_rising {
            break;
        }
    }

    // Let the pipeline finish, then count the rows themselves.
    let drain_start = Instant::now();
    let caught_up_after = loop {
        let text = metrics(&api);
        let done = metric(&text, "telemetry_events_stored")
            + metric(&text, "telemetry_events_rate_limited");
        if done >= sent as f64 {
            break Some(load_ended.elapsed());
        }
        if drain_start.elapsed() > Duration::from_secs(120) {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    tokio::time::sleep(Duration::from_secs(1)).await; // last WebSocket frames
    stop_subscriber.store(true, Ordering::Relaxed);
    let final_metrics = metrics(&api);
    let server_histogram = |name: &str| {
        json!({
            "p50_ms": bucket_quantile_ms(&final_metrics, name, 0.5),
            "p99_ms": bucket_quantile_ms(&final_metrics, name, 0.99),
            "note": "upper bounds of the server's histogram buckets",
        })
    };
    let (peak_kb, rss_kb, cpu_secs) = process_usage(pid);
    let postgres_cpu = postgres_cpu_seconds() - postgres_cpu_at_start;
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let exit = server.wait().ok().and_then(|s| s.code());
    let mut db = AsyncPgConnection::establish(&db_url)
        .await
        .expect("bench database");
    let rows = count(&mut db, "SELECT count(*) AS n FROM events").await;
    let failures = count(&mut db, "SELECT count(*) AS n FROM decode_failures").await;
    let rate_limited = count(
        &mut db,
        "SELECT coalesce(sum(events_rate_limited), 0)::int8 AS n FROM node_sessions",
    )
    .await;
    let events_bytes = count(
        &mut db,
        "SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0)::int8 AS n FROM pg_inherits \
         WHERE inhparent = coalesce(to_regclass('event_rows'), 'events'::regclass)",
    )
    .await;
    drop(db);
    let _ = tart_backend::store::drop_database(&db_url).await;
    let queries = querier.map(|latencies| {
        let mut latencies = latencies.lock().unwrap();
        latencies
            .iter_mut()
            .map(|(path, samples)| (path.clone(), sample_quantiles(samples)))
            .collect::<serde_json::Map<_, _>>()
    });
    let websocket = subscriber.map(|seen| {
        let mut seen = seen.lock().unwrap();
        let events = seen.events;
        json!({
            "events_received": events,
            "event_sent_to_received": sample_quantiles(&mut seen.latencies_ms),
        })
    });
    let summary = json!({
        "nodes": args.nodes,
        "events_sent": sent,
        "events_stored": rows,
        "events_rate_limited": rate_limited,
        "decode_failures": failures,
        "events_lost": sent as i64 - rows - rate_limited,
        // Frames the server read; the difference to `events_sent` never reached it (e.g. a
        // simulated node stopped in the middle of a write when its step ended).
        "server_events_received": metric(&final_metrics, "telemetry_events_received"),
        "server_connections_closed_on_read_errors": metric(
            &final_metrics,
            r#"telemetry_connections_closed{reason="read_error"}"#,
        ),
        "steps": steps,
        "max_stored_per_sec": best.round(),
        // From the end of the (last step's) load until everything sent was stored or
        // rate-limited: how far behind the server was; null if not within 120 s.
        "caught_up_seconds_after_load": caught_up_after.map(|d| (d.as_secs_f64() * 10.0).round() / 10.0),
        "ingest_latency": server_histogram("telemetry_ingest_latency_seconds"),
        "writer_queue_wait": server_histogram("telemetry_writer_queue_wait_seconds"),
        "db_batch_write": server_histogram("telemetry_batch_write_duration"),
        "broadcast_latency_server": server_histogram("telemetry_broadcast_latency_seconds"),
        "websocket": websocket,
        // Client side, while the load ran (and while the server caught up after it).
        "query_latency_ms": queries,
        "server_peak_rss_mb": peak_kb / 1024,
        "server_rss_mb_at_end": rss_kb / 1024,
        "rss_per_connection_kb": peak_kb / args.nodes.max(1) as u64,
        "server_cpu_seconds": cpu_secs,
        "server_cpu_seconds_per_million_events": (cpu_secs * 1e6 / rows.max(1) as f64 * 100.0).round() / 100.0,
        "postgres_cpu_seconds": (postgres_cpu * 100.0).round() / 100.0,
        "postgres_cpu_seconds_per_million_events": (postgres_cpu * 1e6 / rows.max(1) as f64 * 100.0).round() / 100.0,
        "stored_bytes_per_event": events_bytes / rows.max(1),
        "server_exit_code": exit,
    });
    println!("{}", serde_json::to_string_pretty(&summary).unwrap());
}

//! `tart-backend`: the TART server, and `tart-backend decode` for raw captures.

use std::process::ExitCode;

use std::net::{Ipv4Addr, SocketAddr};

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use tart_backend::config::Config;
use tart_backend::jip3::Event;
use tart_backend::server::Server;
use tart_backend::sim::{Dialects, Faults, Params, SimConfig};
use tart_backend::store::decoded::Range;
use tokio_util::sync::CancellationToken;

/// Events are many small allocations freed on other threads: glibc's malloc and free were 15-19%
/// of the server's CPU at the design load, and mimalloc does that work for less (BENCHMARKS.md).
/// The `no_thp` build only stops mimalloc asking for transparent huge pages (zeroing them cost ~4%
/// of both cores here); where THP is `always`, set MIMALLOC_ALLOW_THP=0 as the Dockerfile does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(version, about = "TART: telemetry backend for JAM networks (JIP-3)")]
struct Cli {
    /// TOML file with settings (see config/default.toml).
    #[arg(long, global = true)]
    config: Option<String>,
    /// PostgreSQL URL [env: DATABASE_URL]
    #[arg(long, global = true)]
    database_url: Option<String>,
    /// Where nodes connect [env: TELEMETRY_BIND]
    #[arg(long, global = true)]
    telemetry_bind: Option<String>,
    /// REST API, WebSocket and /metrics [env: API_BIND]
    #[arg(long, global = true)]
    api_bind: Option<String>,
    /// Also play this many simulated JAM nodes against the server: TART at work without a JAM
    /// network (`--demo` alone: 16 nodes).
    #[arg(long, value_name = "NODES", num_args = 0..=1, default_missing_value = "16")]
    demo: Option<usize>,
    /// Any setting from config/default.toml, e.g. `--set rate_limit_per_sec=0`.
    #[arg(long = "set", value_name = "KEY=VALUE", global = true, value_parser = parse_key_value)]
    settings: Vec<(String, String)>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Decode a raw telemetry capture (the bytes a node sends) into JSON lines.
    Decode {
        /// Capture file, or `-` for standard input.
        #[arg(default_value = "-")]
        file: String,
    },
    /// Decode stored events into the `decoded_events` table, to read their fields in SQL
    /// (events are stored in their wire form; see the README's "Storage").
    DecodeEvents {
        /// Received at or after this time (RFC 3339, e.g. 2026-12-01T10:00:00Z).
        #[arg(long)]
        from: Option<DateTime<Utc>>,
        /// Received before this time.
        #[arg(long)]
        to: Option<DateTime<Utc>>,
        /// Only this node (64 hex digits).
        #[arg(long)]
        node: Option<String>,
        /// Only this event type, by number or name (repeatable).
        #[arg(long = "type", value_parser = parse_event_type)]
        types: Vec<i16>,
    },
    /// Exit 0 if a running TART answers its health endpoint (for container HEALTHCHECKs, which
    /// have no curl in a slim image).
    Healthcheck {
        #[arg(long, default_value = "http://127.0.0.1:8080/api/health")]
        url: String,
    },
}

fn parse_event_type(text: &str) -> Result<i16, String> {
    Event::type_from_text(text)
        .map(i16::from)
        .ok_or_else(|| format!("`{text}` is neither an event number (0-255) nor an event name"))
}

fn parse_key_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected KEY=VALUE, got `{text}`"))
}

impl Cli {
    fn overrides(&self) -> Vec<(String, String)> {
        let named = [
            ("database_url", &self.database_url),
            ("telemetry_bind", &self.telemetry_bind),
            ("api_bind", &self.api_bind),
        ];
        let mut all: Vec<(String, String)> = named
            .into_iter()
            .filter_map(|(k, v)| v.clone().map(|v| (k.to_owned(), v)))
            .collect();
        all.extend(self.settings.iter().cloned());
        all
    }
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref(), &cli.overrides()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config, cli.demo),
        Command::Decode { file } => decode(&file, config.max_frame_bytes),
        Command::DecodeEvents {
            from,
            to,
            node,
            types,
        } => decode_events(
            &config.database_url,
            Range {
                from,
                to,
                node_id: node,
                event_types: types,
            },
        ),
        Command::Healthcheck { url } => match healthcheck(&url) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("unhealthy: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

fn serve(config: Config, demo_nodes: Option<usize>) -> ExitCode {
    actix::System::new().block_on(async move {
        let server = match Server::start(config).await {
            Ok(server) => server,
            Err(e) => {
                log::error!("TART cannot start: {e}");
                return ExitCode::FAILURE;
            }
        };
        say(&format!(
            "TART listening: telemetry={} api=http://{}",
            server.telemetry_addr, server.api_addr
        ));
        let demo = demo_nodes.map(|nodes| start_demo(&server, nodes));
        wait_for_signal().await;
        if let Some(stop) = demo {
            stop.cancel();
        }
        log::info!("shutting down: closing node connections and writing what is queued");
        match server.shutdown().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                log::error!("{e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Starts simulated nodes against the server and prints where to look.
fn start_demo(server: &Server, nodes: usize) -> CancellationToken {
    let local = |addr: SocketAddr| SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port());
    let (telemetry, api) = (local(server.telemetry_addr), local(server.api_addr));
    let stop = CancellationToken::new();
    let sim = SimConfig {
        nodes,
        params: Params::Mixed,
        dialects: Dialects::MIXED,
        faults: Faults::demo(nodes),
        ..SimConfig::new(telemetry)
    };
    actix::spawn(tart_backend::sim::run(sim, stop.clone()));
    say(&format!(
        "\nTART is running with {nodes} simulated JAM nodes: half tiny, half full parameters; \
         they take turns through protocol versions 0 and 1 and the GP 0.7 and 0.8 parameter \
         layouts (every combination from 8 nodes on). Faults are planted for the analytics to \
         find: node 1 fails a quarter of its outbound connections, node 2 runs \"sloppy-sim\" \
         (leaves out events 190-192, sends the undefined 250), node 3's clock is 1.5 s ahead, \
         node 0 reports 100 events lost, node 4 learns of blocks 2 s late, every 20th slot is \
         forked, half of core 1's work-packages fail, node 5 never sends its guarantees and node 6's \
         link to node 7 flaps.\n\
         \x20 web page:     http://{api}/\n\
         \x20 nodes:        http://{api}/api/nodes\n\
         \x20 events:       http://{api}/api/events?limit=10\n\
         \x20 network:      http://{api}/api/network\n\
         \x20 failures:     http://{api}/api/failures\n\
         \x20 conformance:  http://{api}/api/implementations/sloppy-sim\n\
         \x20 blocks:       http://{api}/#/slots (http://{api}/api/slots)\n\
         \x20 work-packages: http://{api}/#/work-packages (http://{api}/api/work-packages)\n\
         \x20 peers:        http://{api}/#/peers (http://{api}/api/peers)\n\
         \x20 live:         ws://{api}/api/ws\n\
         \x20 metrics:      http://{api}/metrics\n\
         \x20 terminal:     cargo run --release --bin tart-dash -- --port {}\n\
         \x20 real nodes:   --telemetry <this host>:{}\n\
         Ctrl-C stops (everything received is written first).",
        api.port(),
        telemetry.port(),
    ));
    stop
}

/// Prints a line for the operator; a closed stdout (e.g. piped into `head`) must not stop the
/// server, as `println!` would by panicking.
fn say(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}").and_then(|()| out.flush());
}

async fn wait_for_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}

fn decode(file: &str, max_frame: usize) -> ExitCode {
    let mut input: Box<dyn std::io::Read> = if file == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        match std::fs::File::open(file) {
            Ok(f) => Box::new(std::io::BufReader::new(f)),
            Err(e) => {
                eprintln!("error: cannot open {file}: {e}");
                return ExitCode::from(2);
            }
        }
    };
    let mut out = std::io::stdout().lock();
    match tart_backend::decode_tool::run(&mut input, &mut out, max_frame) {
        Ok(summary) if summary.failed() => ExitCode::FAILURE,
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn decode_events(database_url: &str, range: Range) -> ExitCode {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let filled = runtime.block_on(async {
        let mut conn = AsyncPgConnection::establish(database_url)
            .await
            .map_err(|e| e.to_string())?;
        tart_backend::store::decoded::fill(&mut conn, &range)
            .await
            .map_err(|e| e.to_string())
    });
    match filled {
        Ok(added) => {
            say(&format!("decoded {added} events into decoded_events"));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Healthy means the health endpoint answers 200.
fn healthcheck(url: &str) -> Result<(), String> {
    match tart_backend::api::client::get(url, std::time::Duration::from_secs(3))? {
        (200, _) => Ok(()),
        (status, body) => Err(format!("{url} answered {status}: {body}")),
    }
}

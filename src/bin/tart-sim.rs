//! `tart-sim`: plays N JAM validators against a TART telemetry port, so TART can be tried (and
//! loaded) without a JAM network. Prints a summary when the duration ends or on Ctrl-C.

use std::time::Duration;

use clap::Parser;
use tart_backend::sim::{
    parse_node_value, Dialects, Faults, Mix, Params, SimConfig, Simulation, Timestamps, Writes,
};
use tokio_util::sync::CancellationToken;

/// As in the server (see `main.rs`): the simulator allocates an event at a time, too.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How often progress is logged.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

#[derive(Parser, Debug)]
#[command(about = "Simulated JAM nodes sending JIP-3 telemetry to a TART server")]
struct Args {
    /// TART telemetry address (host:port).
    #[arg(long, default_value = "127.0.0.1:9000")]
    target: String,
    /// Number of simulated nodes.
    #[arg(long, default_value_t = 16)]
    nodes: usize,
    /// About this many events per second per node (default: the natural flow, about 9/s tiny and
    /// 25/s full). Blocks and Status are never skipped, so the floor is about 1.5/s at 6 s slots.
    #[arg(long)]
    rate: Option<f64>,
    /// JAM parameters of the nodes: tiny (C=2, V=6), full (C=341, V=1023) or mixed.
    #[arg(long, default_value = "tiny")]
    params: Params,
    /// Telemetry protocol version of the nodes: 0, 1 (what the reference node sends) or mixed.
    #[arg(long, default_value = "1")]
    protocol: String,
    /// Layout of the JAM parameters they announce: 0.7 (134 bytes), 0.8 (122 bytes, no
    /// validator count) or mixed.
    #[arg(long, default_value = "0.7")]
    gp: String,
    /// Every node sends every one of the 115 event types at least once.
    #[arg(long)]
    all_types: bool,
    /// Stop after this many seconds (default: until Ctrl-C).
    #[arg(long)]
    duration: Option<u64>,
    /// Seed for identities and events: the same seed gives the same nodes.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// batched: a tick's frames in one write; per-event: every frame in a write of its own.
    #[arg(long, value_enum, default_value_t = Writes::Batched)]
    writes: Writes,
    /// What fills up to --rate: natural (a validator's flow) or half-status (Status for half of
    /// all events, as another telemetry server's load generator sends).
    #[arg(long, value_enum, default_value_t = Mix::Natural)]
    mix: Mix,
    /// Slot length in milliseconds (JAM: 6000).
    #[arg(long, default_value_t = 6000, value_parser = clap::value_parser!(u64).range(1..))]
    slot_ms: u64,
    /// Planted fault NODE=SHARE: node NODE (0-based) also tries an outbound connection every
    /// slot, and each of its outbound attempts fails with probability SHARE. Repeatable.
    #[arg(long, value_name = "NODE=SHARE", value_parser = parse_node_value::<f64>)]
    fail_outbound: Vec<(usize, f64)>,
    /// Planted fault NODE=MS: node NODE's clock runs MS milliseconds ahead (negative: behind).
    #[arg(long, value_name = "NODE=MS", value_parser = parse_node_value::<i64>, allow_hyphen_values = true)]
    skew_clock: Vec<(usize, i64)>,
    /// Planted fault: node NODE announces the implementation "sloppy-sim", never sends the
    /// preimage announcement events (190-192) and sends discriminator 250 (undefined) after
    /// every 50 events. Repeatable.
    #[arg(long, value_name = "NODE")]
    sloppy: Vec<usize>,
    /// Planted fault NODE=N: in its first slot, node NODE loses N events and reports them with
    /// Dropped(N). Repeatable.
    #[arg(long, value_name = "NODE=N", value_parser = parse_node_value::<u64>)]
    drop_range: Vec<(usize, u64)>,
    /// Planted fault NODE=MS: node NODE learns of every block it does not author MS
    /// milliseconds late. Repeatable.
    #[arg(long, value_name = "NODE=MS", value_parser = parse_node_value::<u64>)]
    late_blocks: Vec<(usize, u64)>,
    /// Planted fault: every slot whose number is a multiple of N is forked (a second block,
    /// from the next node, imported by the odd-numbered nodes).
    #[arg(long, value_name = "N")]
    fork_every: Option<u32>,
    /// planned: each event dated when the node's flow has it happen; sent: when its frame is
    /// written (what ingest latency is measured from).
    #[arg(long, value_enum, default_value_t = Timestamps::Planned)]
    timestamps: Timestamps,
    /// Planted fault CORE=SHARE: that share of core CORE's work-packages fail once authorized,
    /// at every guarantor.
    #[arg(long, value_name = "CORE=SHARE", value_parser = parse_node_value::<f64>)]
    failing_core: Option<(usize, f64)>,
    /// Planted fault: node NODE, as primary guarantor, never sends the guarantees it builds.
    #[arg(long, value_name = "NODE")]
    silent_guarantor: Option<usize>,
    /// Planted fault NODE=PEER: node NODE connects out to node PEER in even slots and loses
    /// the connection in odd ones.
    #[arg(long, value_name = "NODE=PEER", value_parser = parse_node_value::<usize>)]
    flapping_link: Option<(usize, usize)>,
}

#[tokio::main]
async fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = Args::parse();
    if args.rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
        eprintln!("--rate must be a positive number");
        std::process::exit(2);
    }
    let target = match tokio::net::lookup_host(&args.target)
        .await
        .map(|mut a| a.next())
    {
        Ok(Some(addr)) => addr,
        Ok(None) => {
            eprintln!("--target {}: no address", args.target);
            std::process::exit(2);
        }
        Err(e) => {
            eprintln!("--target {}: {e}", args.target);
            std::process::exit(2);
        }
    };
    let dialects = Dialects::from_flags(&args.protocol, &args.gp).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2);
    });
    let faults = Faults {
        failing_outbound: args.fail_outbound,
        skewed_clocks: args.skew_clock,
        sloppy: args.sloppy,
        dropped_ranges: args.drop_range,
        late_blocks: args.late_blocks,
        forks_every: args.fork_every,
        failing_core: match args.failing_core {
            Some((core, share)) => match u16::try_from(core) {
                Ok(core) => Some((core, share)),
                Err(_) => {
                    eprintln!("--failing-core {core}: cores are numbered 0 to 65535");
                    std::process::exit(2);
                }
            },
            None => None,
        },
        silent_guarantor: args.silent_guarantor,
        flapping_link: args.flapping_link,
    };
    if let Err(e) = faults.check(args.nodes) {
        eprintln!("{e}");
        std::process::exit(2);
    }
    let config = SimConfig {
        nodes: args.nodes,
        rate: args.rate,
        params: args.params,
        dialects,
        all_types: args.all_types,
        duration: args.duration.map(Duration::from_secs),
        seed: args.seed,
        slot_duration: Duration::from_millis(args.slot_ms),
        writes: args.writes,
        mix: args.mix,
        faults,
        timestamps: args.timestamps,
        ..SimConfig::new(target)
    };
    log::info!(
        "simulating {} nodes ({:?} parameters, protocol {}, GP {}) against {target}",
        config.nodes,
        config.params,
        args.protocol,
        args.gp,
    );

    let stop = CancellationToken::new();
    let on_ctrl_c = stop.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            log::info!("Ctrl-C: stopping");
        }
        on_ctrl_c.cancel();
    });
    let simulation = Simulation::new(config);
    let stats = simulation.stats();
    let progress_stop = stop.clone();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(PROGRESS_EVERY);
        ticks.tick().await;
        let mut before = 0;
        loop {
            tokio::select! {
                _ = progress_stop.cancelled() => break,
                _ = ticks.tick() => {}
            }
            let sent = stats.events_sent();
            log::info!(
                "{sent} events sent ({:.0}/s)",
                (sent - before) as f64 / PROGRESS_EVERY.as_secs_f64()
            );
            before = sent;
        }
    });
    let report = simulation.run(stop.clone()).await;
    stop.cancel();
    print!("{report}");
}

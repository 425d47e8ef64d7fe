//! Single-thread decode throughput of JIP-3 event bodies: `cargo bench --bench decode`.
//!
//! The mix is what a validator mostly sends (status, block and peer events, a few guarantee and
//! work-package events), generated at GP full parameters (C = 341) from a fixed seed, so runs are
//! comparable. Targets on one core: parse ≥ 3 M events/s, parse + JSON ≥ 1 M events/s.

use std::hint::black_box;
use std::time::{Duration, Instant};

use rand::Rng;
use tart_backend::jip3::generate::Generator;
use tart_backend::jip3::{Dialect, Event, TimedEvent};

const CORES: u16 = 341;
const SEED: u64 = 0x7a27_2025;
const EVENTS: usize = 20_000;
/// Larger generated bodies (lists of 120+ items) are redrawn: rare in real traffic.
const MAX_BODY: usize = 2048;
const REPETITIONS: usize = 5;
const RUN_TIME: Duration = Duration::from_secs(2);
/// Per event type in `--by-event` mode.
const BY_EVENT_TIME: Duration = Duration::from_millis(300);

/// (discriminator, relative weight): roughly one 6-second slot of a validator at full scale.
/// Status comes every 2 s (3 per slot) and is the largest body (382 B at C = 341); block
/// announcements come from each peer with a UP 0 stream; a guarantor handles about one work
/// package per slot.
const MIX: &[(u8, u32)] = &[
    (10, 9),   // Status
    (11, 3),   // BestBlockChanged
    (12, 3),   // FinalizedBlockChanged
    (62, 30),  // BlockAnnounced
    (23, 2),   // ConnectedIn
    (26, 2),   // ConnectedOut
    (27, 2),   // Disconnected (Reason)
    (28, 1),   // PeerMisbehaved (Reason)
    (43, 3),   // Importing
    (45, 3),   // BlockVerified
    (47, 3),   // BlockExecuted (a few services)
    (90, 2),   // WorkPackageSubmission
    (94, 2),   // WorkPackageReceived
    (95, 2),   // Authorized
    (101, 2),  // Refined
    (102, 2),  // WorkReportBuilt
    (105, 2),  // GuaranteeBuilt
    (92, 1),   // WorkPackageFailed (Reason)
    (112, 4),  // GuaranteeReceived
    (126, 3),  // DistributingAssurance
    (131, 10), // AssuranceReceived
];

fn mix() -> Vec<Vec<u8>> {
    let mut g = Generator::new(SEED, CORES);
    let total: u32 = MIX.iter().map(|&(_, w)| w).sum();
    let mut bodies = Vec::with_capacity(EVENTS);
    while bodies.len() < EVENTS {
        let mut pick = g.rng.random_range(0..total);
        let &(d, _) = MIX
            .iter()
            .find(|&&(_, w)| {
                pick < w || {
                    pick -= w;
                    false
                }
            })
            .expect("pick < total");
        let event = TimedEvent {
            timestamp: 27_900_000_000_000 + bodies.len() as u64 * 1000,
            event: Event::generate(d, &mut g).expect("defined discriminator"),
        };
        let body = event.to_bytes();
        if body.len() <= MAX_BODY {
            bodies.push(body);
        }
    }
    bodies
}

/// This thread's CPU time, from Linux's `/proc/thread-self/schedstat` (first field, ns). Rates
/// per CPU second stay meaningful when other processes share the machine; wall time is the
/// fallback where the file is missing.
fn cpu_time() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// Runs `per_event` over the bodies, whole passes, for about `time` of wall clock; returns
/// events per CPU second (per wall second without `cpu_time`).
fn measure(bodies: &[Vec<u8>], time: Duration, per_event: &mut dyn FnMut(&[u8])) -> f64 {
    let start = Instant::now();
    let cpu_start = cpu_time();
    let mut done = 0u64;
    while start.elapsed() < time {
        for body in bodies {
            per_event(black_box(body));
        }
        done += bodies.len() as u64;
    }
    let spent = match (cpu_start, cpu_time()) {
        (Some(a), Some(b)) => b - a,
        _ => start.elapsed(),
    };
    done as f64 / spent.as_secs_f64()
}

fn report(name: &str, bodies: &[Vec<u8>], target: f64, per_event: &mut dyn FnMut(&[u8])) {
    let mut rates: Vec<f64> = (0..REPETITIONS)
        .map(|_| measure(bodies, RUN_TIME, per_event))
        .collect();
    rates.sort_by(f64::total_cmp);
    let median = rates[rates.len() / 2];
    let best = rates[rates.len() - 1];
    let verdict = if median >= target { "met" } else { "MISSED" };
    println!(
        "{name:<16} best {:>6.2} M/s  median {:>6.2} M/s  (target {:.0} M/s: {verdict})",
        best / 1e6,
        median / 1e6,
        target / 1e6
    );
}

/// `cargo bench --bench decode -- --by-event`: the rate of each event type of the mix alone, to
/// see where the time goes.
fn by_event(bodies: &[Vec<u8>]) {
    println!("  d event                           mean  parse      + JSON     + JSON buf  (M/s)");
    for &(d, _) in MIX {
        let only: Vec<Vec<u8>> = bodies.iter().filter(|b| b[8] == d).cloned().collect();
        let mean = only.iter().map(Vec::len).sum::<usize>() / only.len();
        let rates = [parse_only, parse_json, parse_json_buf].map(|f| {
            let mut buf = Vec::new();
            measure(&only, BY_EVENT_TIME, &mut |body| f(body, &mut buf)) / 1e6
        });
        println!(
            "{:>3} {:<28} {:>5} B {:>7.2} {:>10.2} {:>12.2}",
            d,
            Event::name_of(d).unwrap_or("?"),
            mean,
            rates[0],
            rates[1],
            rates[2]
        );
    }
}

// The three measured operations; `buf` is a reused output buffer (only the last uses it).
fn parse_only(body: &[u8], _buf: &mut Vec<u8>) {
    black_box(TimedEvent::parse(body, Dialect::v1(CORES)).expect("valid body"));
}

fn parse_json(body: &[u8], _buf: &mut Vec<u8>) {
    let event = TimedEvent::parse(body, Dialect::v1(CORES)).expect("valid body");
    black_box(serde_json::to_vec(&event.event).expect("serialisable"));
}

/// As a writer that batches rows would do it: one buffer, reused.
fn parse_json_buf(body: &[u8], buf: &mut Vec<u8>) {
    let event = TimedEvent::parse(body, Dialect::v1(CORES)).expect("valid body");
    buf.clear();
    serde_json::to_writer(&mut *buf, &event.event).expect("serialisable");
    black_box(&buf);
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this too, so keep that quick.
    if !std::env::args().any(|a| a == "--bench") {
        println!("decode bench: run with `cargo bench --bench decode`");
        return;
    }
    let bodies = mix();
    let bytes: usize = bodies.iter().map(Vec::len).sum();
    println!(
        "{} event bodies, mean {:.0} B, C = {CORES}, {REPETITIONS} runs of {:?} each, one thread, \
         events per {} second",
        bodies.len(),
        bytes as f64 / bodies.len() as f64,
        RUN_TIME,
        if cpu_time().is_some() { "CPU" } else { "wall" },
    );
    if std::env::args().any(|a| a == "--by-event") {
        by_event(&bodies);
        return;
    }
    let mut buf = Vec::with_capacity(64 * 1024);
    report("parse", &bodies, 3e6, &mut |b| parse_only(b, &mut buf));
    report("parse + JSON", &bodies, 1e6, &mut |b| {
        parse_json(b, &mut buf)
    });
    report("parse + JSON buf", &bodies, 1e6, &mut |b| {
        parse_json_buf(b, &mut buf)
    });
}

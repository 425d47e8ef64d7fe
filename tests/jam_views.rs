//! The JAM protocol views against what the simulator planted (a node that learns of blocks late,
//! forks in known slots) and against hand-made events, on the real PostgreSQL.

mod harness;

use std::collections::HashMap;
use std::time::Duration;

use harness::*;
use serde_json::Value;
use tart_backend::jip3::types::{BlockOutline, ConnectionSide, Hash};
use tart_backend::jip3::{Event, TimedEvent};
use tart_backend::sim::{Faults, SimConfig, Simulation};

const NODES: usize = 6;
const SLOT_MS: f64 = 400.0;
const LATE: usize = 2;
const LATE_MS: u64 = 250;
const FORKS_EVERY: i64 = 4;

/// A server without a rate limit that writes its counts (the funnel, guarantees, churn) every
/// 200 ms rather than every 30 s.
fn views_config(db: &TestDb) -> tart_backend::config::Config {
    tart_backend::config::Config {
        hourly_stats_interval_ms: 200,
        ..unlimited_config(db)
    }
}

fn outline(hash: Hash) -> BlockOutline {
    BlockOutline {
        size: 1000,
        header_hash: hash,
        num_tickets: 0,
        num_preimages: 0,
        preimages_size: 0,
        num_guarantees: 0,
        num_assurances: 0,
        num_dispute_verdicts: 0,
    }
}

fn slots_of(list: &Value) -> Vec<Value> {
    list["slots"].as_array().expect("slots").clone()
}

fn sum(slots: &[Value], field: &str) -> u64 {
    slots
        .iter()
        .flat_map(|s| s["blocks"].as_array().unwrap().iter())
        .map(|b| b[field].as_u64().unwrap())
        .sum()
}

/// Six simulated nodes at 400 ms slots, node 2 learning of blocks 250 ms late, every fourth slot
/// forked. The slot views show the forks where they were planted, split between the nodes as
/// planted, each node's delay within the simulator's stated bounds (1–15% of a slot, plus the
/// planted lateness), finalization two slots on, and exactly the failures the nodes sent.
#[actix_web::test]
async fn slot_views_report_the_planted_late_node_and_forks() {
    let db = TestDb::new();
    let server = TestServer::start(views_config(&db)).await;
    let api = server.api_addr;
    let config = SimConfig {
        nodes: NODES,
        seed: 21,
        slot_duration: Duration::from_millis(SLOT_MS as u64),
        duration: Some(Duration::from_secs(10)),
        faults: Faults {
            late_blocks: vec![(LATE, LATE_MS)],
            forks_every: Some(FORKS_EVERY as u32),
            ..Faults::default()
        },
        ..SimConfig::new(server.telemetry_addr)
    };
    let report = simulate_until_stored(&db, config).await;
    let index_of: HashMap<&str, usize> = report
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.node_id.as_str(), i))
        .collect();
    let sent = |name: &str| report.nodes.iter().map(|n| n.sent_of(name)).sum::<u64>();

    // Every failure the nodes sent is counted once, on its block or slot (the rollup may still
    // be on its way).
    let list = || async { get_json(api, "/api/slots").await.1 };
    assert!(
        eventually(WAIT, || async {
            let slots = slots_of(&list().await);
            sum(&slots, "import_failures") == sent("BlockVerificationFailed")
                && sum(&slots, "execution_failures") == sent("BlockExecutionFailed")
                && slots
                    .iter()
                    .map(|s| s["authoring_failures"].as_array().unwrap().len() as u64)
                    .sum::<u64>()
                    == sent("AuthoringFailed")
        })
        .await,
        "failures as sent (verification {}, execution {}, authoring {}): {}",
        sent("BlockVerificationFailed"),
        sent("BlockExecutionFailed"),
        sent("AuthoringFailed"),
        list().await
    );
    let slots = slots_of(&list().await);
    let numbers: Vec<i64> = slots.iter().map(|s| s["slot"].as_i64().unwrap()).collect();
    assert!(numbers.len() >= 20, "{} slots", numbers.len());
    let (first, last) = (*numbers.last().unwrap(), numbers[0]);
    let mut forks_checked = 0;
    let mut blocks_checked = 0;
    // The list starts two slots before the run (the first slots finalize those), the run's
    // first slot is cut by the nodes connecting during it, and the last few by its end.
    for slot in slots.iter().filter(|s| {
        let n = s["slot"].as_i64().unwrap();
        n > first + 3 && n < last - 2
    }) {
        let number = slot["slot"].as_i64().unwrap();
        let blocks = slot["blocks"].as_array().unwrap();
        if blocks.is_empty() {
            continue;
        }
        let author = number as usize % NODES;
        let forked = number % FORKS_EVERY == 0;
        assert_eq!(slot["fork"], forked, "slot {number}: {slot}");
        assert_eq!(blocks.len(), if forked { 2 } else { 1 }, "slot {number}");
        let fork_author = (author + 1) % NODES;
        let detail = get_json(api, &format!("/api/slots/{number}")).await.1;
        assert_eq!(detail["never_reached"], serde_json::json!([]), "{detail}");
        for block in detail["blocks"].as_array().unwrap() {
            let author_id = block["author"].as_str().expect("its author");
            let block_author = index_of[author_id];
            let second = block_author != author;
            assert!(
                !second || (forked && block_author == fork_author),
                "{block}"
            );
            // Everyone else imports the block of an ordinary slot; in a forked one the even nodes
            // import the first block and the odd ones the second, its two authors neither.
            let importers: Vec<usize> = (0..NODES)
                .filter(|&i| match forked {
                    false => i != author,
                    true => i != author && i != fork_author && (i % 2 == 1) == second,
                })
                .collect();
            assert_eq!(
                block["nodes_imported"].as_u64(),
                Some(importers.len() as u64),
                "slot {number}: {block}"
            );
            for sighting in block["nodes"].as_array().unwrap() {
                let node = index_of[sighting["node_id"].as_str().unwrap()];
                if sighting["importing_ms"].is_null() {
                    continue;
                }
                assert!(importers.contains(&node), "{sighting}");
                let late = if node == LATE { LATE_MS as f64 } else { 0.0 };
                let delay = sighting["delay_ms"].as_f64().unwrap() - late;
                assert!(
                    (0.01 * SLOT_MS - 0.5..=0.15 * SLOT_MS + 0.5).contains(&delay),
                    "slot {number}, node {node}: {sighting}"
                );
            }
            // The simulated nodes finalize the block of two slots back, naming it; after an empty
            // slot they name none (a block counts as finalized by the nodes that named it).
            let finalizing_slot_has_a_block = slots
                .iter()
                .any(|s| s["slot"] == number + 2 && !s["blocks"].as_array().unwrap().is_empty());
            if !second && finalizing_slot_has_a_block {
                let lag = block["finalization_lag_ms"].as_f64().expect("finalized");
                assert!(
                    (1.9 * SLOT_MS..2.6 * SLOT_MS).contains(&lag),
                    "slot {number}: {block}"
                );
            }
            if !second {
                let reached: Vec<f64> = block["reached"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["share"].as_f64().unwrap())
                    .collect();
                assert_eq!(reached.last(), Some(&1.0), "{block}");
            }
            if !forked && author != LATE {
                let max = block["delay_max_ms"].as_f64().unwrap();
                assert!(
                    max >= LATE_MS as f64,
                    "the late node is the slowest: {block}"
                );
            }
            blocks_checked += 1;
        }
        forks_checked += usize::from(forked);
    }
    assert!(forks_checked >= 3, "{forks_checked} forks checked");
    assert!(blocks_checked >= 15, "{blocks_checked} blocks checked");

    // The propagation series: the late node sets the largest delay of nearly every bucket (not
    // of those whose blocks it authored).
    let from = tart_backend::time::format(&(chrono::Utc::now() - chrono::TimeDelta::minutes(1)));
    let series = get_json(api, &format!("/api/slots/propagation?from={from}&step=1"))
        .await
        .1;
    let buckets: Vec<&Value> = series["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["blocks"].as_u64() > Some(0))
        .collect();
    assert!(buckets.len() >= 8, "{series}");
    let p50s: Vec<f64> = buckets
        .iter()
        .filter_map(|b| b["delay_p50_ms"].as_f64())
        .collect();
    assert!(
        p50s.iter().all(|&p| p <= 0.15 * SLOT_MS + 0.5),
        "medians are the punctual nodes': {p50s:?}"
    );
    assert!(
        buckets
            .iter()
            .filter(|b| b["delay_max_ms"].as_f64() >= Some(LATE_MS as f64))
            .count()
            >= buckets.len() / 2,
        "{series}"
    );
    server.shutdown().await.expect("clean shutdown");
}

/// Two nodes send the same Event ID values for different things: node A's Authored refers to
/// its event 0 (Authoring slot 1000), node B's verification failure to its event 0 (Importing
/// slot 2000). Each lands on its own node's block; B's announcement of A's block is joined to
/// it by slot and header hash, 123 ms after A authored it.
#[actix_web::test]
async fn the_same_event_ids_on_two_nodes_never_get_mixed_up() {
    let db = TestDb::new();
    let server = TestServer::start(views_config(&db)).await;
    let api = server.api_addr;
    let (hash_a, hash_b) = (Hash([0xa1; 32]), Hash([0xb2; 32]));
    let t = jam_now(0);
    let mut a = FakeNode::connect(server.telemetry_addr, node_info(1, 2)).await;
    let mut b = FakeNode::connect(server.telemetry_addr, node_info(2, 2)).await;
    let at = |offset: u64, event: Event| TimedEvent {
        timestamp: t + offset,
        event,
    };
    a.send_events(&[
        at(
            0,
            Event::Authoring {
                slot: 1000,
                parent_header_hash: Hash([0; 32]),
            },
        ),
        at(
            5_000,
            Event::Authored {
                authoring_event_id: 0,
                outline: outline(hash_a),
            },
        ),
    ])
    .await;
    b.send_events(&[
        at(
            1_000,
            Event::Importing {
                slot: 2000,
                outline: outline(hash_b),
            },
        ),
        at(
            2_000,
            Event::BlockVerificationFailed {
                importing_event_id: 0,
                reason: "bad seal".into(),
            },
        ),
        at(
            128_000,
            Event::BlockAnnounced {
                peer_id: Hash([1; 32]),
                announcer: ConnectionSide::Remote,
                slot: 1000,
                header_hash: hash_a,
            },
        ),
    ])
    .await;
    let slot = |n: u32| async move { get_json(api, &format!("/api/slots/{n}")).await };
    assert!(
        eventually(WAIT, || async {
            slot(1000).await.1["blocks"][0]["nodes_reached"] == 1
                && slot(2000).await.1["blocks"][0]["import_failures"] == 1
        })
        .await,
        "{} {}",
        slot(1000).await.1,
        slot(2000).await.1
    );
    let (_, authored) = slot(1000).await;
    let block = &authored["blocks"][0];
    assert_eq!(block["header_hash"], format!("0x{}", "a1".repeat(32)));
    assert_eq!(block["author"], a.node_id());
    assert_eq!(block["import_failures"], 0);
    assert_eq!(block["delay_p50_ms"], 123.0);
    let announced = block["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node_id"] == b.node_id().as_str())
        .expect("B's sighting")
        .clone();
    assert_eq!(announced["announced_ms"], 123.0);
    assert!(announced["importing_ms"].is_null());
    let (_, imported) = slot(2000).await;
    let block = &imported["blocks"][0];
    assert_eq!(block["header_hash"], format!("0x{}", "b2".repeat(32)));
    assert!(block["author"].is_null(), "{block}");
    assert_eq!(block["nodes"][0]["failure"], "verification");
    assert_eq!(block["nodes"][0]["failure_reason"], "bad seal");
    let (status, _) = slot(1001).await;
    assert_eq!(status, 404);
    let (status, body) = get_json(api, "/api/slots?from=5&to=1").await;
    assert_eq!(status, 400, "{body}");
    server.shutdown().await.expect("clean shutdown");
}

/// Six simulated nodes (tiny parameters: two cores, each guaranteed by three of them) with half
/// of core 1's work-packages failing once authorized and one node never sending the guarantees
/// it builds. Every package's status, failure reason, furthest stage and guarantee receivers are
/// what the simulator's world decided for it; the funnel, the cores and the guarantors add up.
#[actix_web::test]
async fn work_package_views_report_the_planted_failing_core_and_silent_guarantor() {
    use tart_backend::jip3::JamParameters;
    use tart_backend::sim::{World, PLANTED_PACKAGE_FAILURE};
    const SEED: u64 = 5;
    const FAILING_CORE: u16 = 1;
    const SHARE: f64 = 0.5;
    let world = World {
        seed: SEED,
        nodes: NODES,
    };
    let params = JamParameters::tiny();
    // The silent guarantor: the node that will be primary most often in the run's middle (its
    // slots start at the JAM slot of now), so that it has packages to be silent about.
    let run_start = (tart_backend::jip3::time::now() / 6_000_000) as u32;
    let silent = (0..NODES)
        .max_by_key(|&node| {
            (run_start + 4..run_start + 25)
                .flat_map(|slot| (0..params.core_count).map(move |core| (slot, core)))
                .filter(|&(slot, core)| {
                    world.work_package(core, slot).is_some_and(|(_, rank)| {
                        World::guarantors(core, slot, &params)[rank] as usize == node
                    })
                })
                .count()
        })
        .unwrap();
    let db = TestDb::new();
    let server = TestServer::start(views_config(&db)).await;
    let api = server.api_addr;
    let config = SimConfig {
        nodes: NODES,
        seed: SEED,
        slot_duration: Duration::from_millis(SLOT_MS as u64),
        duration: Some(Duration::from_secs(12)),
        faults: Faults {
            failing_core: Some((FAILING_CORE, SHARE)),
            silent_guarantor: Some(silent),
            ..Faults::default()
        },
        ..SimConfig::new(server.telemetry_addr)
    };
    let report = simulate_until_stored(&db, config).await;
    let sent = |name: &str| report.nodes.iter().map(|n| n.sent_of(name)).sum::<u64>();
    let list = || async { get_json(api, "/api/work-packages?limit=1000").await.1 };
    assert!(
        eventually(WAIT, || async {
            list().await["funnel"]["guarantee_built"].as_u64() == Some(sent("GuaranteeBuilt"))
        })
        .await,
        "every guarantee built (one per package: each has one primary) is counted: {} sent, {}",
        sent("GuaranteeBuilt"),
        list().await["funnel"]
    );

    // Which slot and core each package belongs to, from the world every node shares.
    let slots = slots_of(&get_json(api, "/api/slots").await.1);
    let numbers: Vec<u32> = slots
        .iter()
        .map(|s| s["slot"].as_u64().unwrap() as u32)
        .collect();
    let (first, last) = (
        *numbers.iter().min().unwrap(),
        *numbers.iter().max().unwrap(),
    );
    let mut of_hash: HashMap<String, (u16, u32, usize)> = HashMap::new();
    for slot in first..=last {
        for core in 0..params.core_count {
            if let Some((hash, rank)) = world.work_package(core, slot) {
                let primary = World::guarantors(core, slot, &params)[rank] as usize;
                of_hash.insert(format!("0x{hash}"), (core, slot, primary));
            }
        }
    }
    let listed = list().await;
    let packages = listed["packages"].as_array().unwrap();
    let (mut checked, mut failed_checked, mut silent_checked) = (0, 0, 0);
    for package in packages {
        let hash = package["hash"].as_str().unwrap();
        let &(core, slot, primary) = of_hash.get(hash).expect("a package of the world");
        assert_eq!(package["core"], core, "{package}");
        // The run's first slots and its last are cut by the connections and the end.
        if slot < first + 4 || slot + 3 > last || package["duplicates"].as_u64() > Some(0) {
            continue;
        }
        let bytes = hex_bytes(hash);
        let share = if core == FAILING_CORE {
            SHARE
        } else {
            1.0 / 30.0
        };
        let fails = world.fate(&Hash(bytes), 0) < share;
        if fails {
            assert_eq!(package["status"], "failed", "{package}");
            assert_eq!(package["furthest_stage"], "authorized", "{package}");
            assert_eq!(package["guarantees_built"], 0);
            if core == FAILING_CORE {
                assert_eq!(package["failure_reason"], PLANTED_PACKAGE_FAILURE);
            }
            failed_checked += 1;
        } else {
            assert_eq!(package["status"], "guaranteed", "{package}");
            assert_eq!(
                package["guarantees_built"], 1,
                "the primary built it: {package}"
            );
            let expected: u64 = (1..=2)
                .filter(|&ahead| {
                    let recipient = (slot + ahead) as usize % NODES;
                    recipient != primary
                        && primary != silent
                        && world.fate(&Hash(bytes), u64::from(ahead)) >= 1.0 / 20.0
                })
                .count() as u64;
            assert_eq!(
                package["guarantee_receivers"].as_u64(),
                Some(expected),
                "slot {slot}, primary {primary}: {package}"
            );
            if primary == silent {
                assert_eq!(package["guarantees_sent"], 0, "{package}");
                assert!(package["distributed_ms"].is_null(), "{package}");
                silent_checked += 1;
            } else {
                assert!(
                    package["distributed_ms"].as_f64() > package["guarantee_built_ms"].as_f64()
                );
            }
        }
        checked += 1;
    }
    assert!(checked >= 25, "{checked} packages checked");
    assert!(
        failed_checked >= 4,
        "{failed_checked} failed packages checked"
    );
    assert!(
        silent_checked >= 1,
        "{silent_checked} packages of the silent guarantor"
    );

    // A package's journey: one row per guarantor, the primary's first.
    let guaranteed = packages
        .iter()
        .find(|p| p["status"] == "guaranteed" && p["guarantee_receivers"].as_u64() > Some(0))
        .expect("a guaranteed package that reached a validator");
    let (status, detail) = get_json(
        api,
        &format!(
            "/api/work-packages/{}",
            guaranteed["hash"].as_str().unwrap()
        ),
    )
    .await;
    assert_eq!(status, 200, "{detail}");
    let journeys = detail["journeys"].as_array().unwrap();
    assert_eq!(journeys.len(), 3, "three guarantors: {detail}");
    assert_eq!(
        journeys.iter().filter(|j| j["role"] == "primary").count(),
        1,
        "{detail}"
    );
    for journey in journeys {
        assert!(
            journey["refined_ms"].as_f64() > journey["received_ms"].as_f64(),
            "{journey}"
        );
    }
    let receipts = detail["guarantee_receipts"].as_array().unwrap();
    assert!(!receipts.is_empty());
    assert!(
        receipts.iter().all(|r| r["after_ms"].as_f64() > Some(0.0)),
        "{detail}"
    );

    // Cores add up to the packages, and the guarantors' counts to what they sent.
    let (_, cores) = get_json(api, "/api/cores").await;
    let failed_of = |core: u16| {
        packages
            .iter()
            .filter(|p| p["core"] == core && !p["failed_ms"].is_null())
            .count() as u64
    };
    for core in cores["cores"].as_array().unwrap() {
        let number = core["core"].as_u64().unwrap() as u16;
        assert_eq!(
            core["packages"]["failed"].as_u64(),
            Some(failed_of(number)),
            "{core}"
        );
        assert!(core["mean_refine_gas"].as_f64() > Some(0.0), "{core}");
        let top = core["top_guarantors"].as_array().unwrap();
        assert!(!top.is_empty(), "{core}");
        assert!(
            core["guarantors"].as_u64() >= Some(top.len() as u64),
            "{core}"
        );
    }
    // Its nodes' Status reports count no guarantee for the failing core, and some for the other.
    let (_, status) = get_json(api, "/api/cores/status").await;
    let means = |core: u16| -> Vec<f64> {
        status["cores"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["core"] == core)
            .map(|c| {
                let means = c["mean_guarantees"].as_array().unwrap();
                means.iter().filter_map(Value::as_f64).collect()
            })
            .unwrap_or_default()
    };
    let (failing_means, other_means) = (means(FAILING_CORE), means(1 - FAILING_CORE));
    assert!(
        !failing_means.is_empty() && failing_means.iter().all(|&m| m == 0.0),
        "{status}"
    );
    assert!(
        !other_means.is_empty() && other_means.iter().all(|&m| m > 0.0),
        "{status}"
    );
    let failing = failed_of(FAILING_CORE) as f64;
    assert!(
        failing > 2.0 * failed_of(1 - FAILING_CORE) as f64,
        "{cores}"
    );
    // Every guarantor row of this small network (the default lists the 100 that built most).
    const GUARANTEES: &str = "/api/guarantees?limit=1000";
    // The guarantee counts are held back and written every hourly_stats_interval, so the last
    // ones may still be on their way: read until what was sent is all there.
    let sums = |guarantees: &serde_json::Value, list: &str, field: &str| {
        guarantees[list]
            .as_array()
            .map(|rows| rows.iter().filter_map(|g| g[field].as_u64()).sum::<u64>())
    };
    let complete = |guarantees: &serde_json::Value| {
        [
            ("guarantors", "sent", "GuaranteeSent"),
            ("guarantors", "send_failed", "GuaranteeSendFailed"),
            ("receivers", "received", "GuaranteeReceived"),
        ]
        .iter()
        .all(|&(list, field, event)| sums(guarantees, list, field) == Some(sent(event)))
    };
    assert!(
        eventually(WAIT, || async {
            complete(&get_json(api, GUARANTEES).await.1)
        })
        .await,
        "the guarantors' counts add up to what was sent: {}",
        get_json(api, GUARANTEES).await.1
    );
    let (_, guarantees) = get_json(api, GUARANTEES).await;
    let silent = &report.nodes[silent].node_id;
    for g in guarantees["guarantors"].as_array().unwrap() {
        if g["node_id"] == silent.as_str() {
            assert_eq!(g["sent"], 0, "{g}");
            assert_eq!(g["send_failed"], 0, "{g}");
        }
    }
    assert!(
        guarantees["guarantors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["node_id"] == silent.as_str() && g["built"].as_u64() > Some(0)),
        "the silent guarantor built guarantees: {guarantees}"
    );
    server.shutdown().await.expect("clean shutdown");
}

fn hex_bytes(hash: &str) -> [u8; 32] {
    let hex = hash.trim_start_matches("0x");
    let mut bytes = [0u8; 32];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    bytes
}

/// Six simulated nodes, node 0's link to node 1 flapping every slot: the peer view shows that
/// link among the most flapping, its peer mapped to node 1, with about a connect and a
/// disconnect per two slots (exactly as many as node 0 sent), its state that of the newest
/// event; peers that do not report to TART are shown as unknown; Status's peer counts are there.
#[actix_web::test]
async fn the_peer_view_shows_the_planted_flapping_link() {
    let db = TestDb::new();
    let server = TestServer::start(views_config(&db)).await;
    let api = server.api_addr;
    let config = SimConfig {
        nodes: NODES,
        seed: 9,
        // With the full validator set, the nodes' random churn picks among 1,022 other peers,
        // so it all but never touches the planted link.
        params: tart_backend::sim::Params::Full,
        slot_duration: Duration::from_millis(SLOT_MS as u64),
        duration: Some(Duration::from_secs(8)),
        faults: Faults {
            flapping_link: Some((0, 1)),
            ..Faults::default()
        },
        ..SimConfig::new(server.telemetry_addr)
    };
    let report = simulate_until_stored(&db, config).await;
    let (flapper, peer) = (&report.nodes[0].node_id, &report.nodes[1].node_id);
    let graph = || async { get_json(api, "/api/peers").await.1 };
    let sent = |name: &str| report.nodes.iter().map(|n| n.sent_of(name)).sum::<u64>();
    assert!(
        eventually(WAIT, || async {
            let links = graph().await["links"].as_array().unwrap().clone();
            let total = |field: &str| {
                links
                    .iter()
                    .map(|l| l[field].as_u64().unwrap())
                    .sum::<u64>()
            };
            total("disconnects") == sent("Disconnected")
                && total("connects") == sent("ConnectedIn") + sent("ConnectedOut")
        })
        .await,
        "every connect and disconnect counted: {}",
        graph().await
    );
    let graph = graph().await;
    // A limited list still counts every link per node.
    let (_, first) = get_json(api, "/api/peers?limit=1").await;
    assert_eq!(first["links"].as_array().unwrap().len(), 1, "{first}");
    let counted: u64 = first["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["links"].as_u64().unwrap())
        .sum();
    assert_eq!(counted as usize, graph["links"].as_array().unwrap().len());
    let top = &graph["flapping"][0];
    assert_eq!(top["node_id"], flapper.as_str(), "{graph}");
    assert_eq!(
        top["peer_node_id"],
        peer.as_str(),
        "mapped to the node: {top}"
    );
    let slots = report.elapsed.as_secs_f64() * 1000.0 / SLOT_MS;
    let flaps = top["connects"].as_f64().unwrap() + top["disconnects"].as_f64().unwrap();
    assert!(
        (slots - 3.0..=slots + 1.0).contains(&flaps),
        "a change a slot over {slots:.0} slots: {top}"
    );
    let difference = top["connects"].as_i64().unwrap() - top["disconnects"].as_i64().unwrap();
    assert!(difference.abs() <= 1, "{top}");
    let links = graph["links"].as_array().unwrap();
    assert!(
        links.iter().any(|l| l["peer_node_id"].is_null()),
        "the validators beyond the six simulated nodes are unknown peers"
    );
    let nodes = graph["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), NODES, "{graph}");
    assert!(
        nodes
            .iter()
            .all(|n| n["reported"]["num_peers"].as_u64() > Some(0)),
        "{graph}"
    );
    // The churn counts are held back like the event counts: read until the last are written.
    let churn = || async { get_json(api, "/api/peers/churn").await.1 };
    let disconnects = |churn: &serde_json::Value| {
        churn["minutes"].as_array().map(|minutes| {
            minutes
                .iter()
                .filter_map(|m| m["disconnects"].as_u64())
                .sum::<u64>()
        })
    };
    assert!(
        eventually(WAIT, || async {
            disconnects(&churn().await) == Some(sent("Disconnected"))
        })
        .await,
        "every disconnect in the churn series ({} sent): {}",
        sent("Disconnected"),
        churn().await
    );
    server.shutdown().await.expect("clean shutdown");
}

/// One sample of the Prometheus text format: name, labels, value.
type Sample = (String, HashMap<String, String>, f64);

fn samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("name and value");
            let (name, labels) = match series.split_once('{') {
                Some((name, labels)) => (name, labels.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split(',')
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (key, value) = pair.split_once('=').expect("key=value");
                    (key.to_owned(), value.trim_matches('"').to_owned())
                })
                .collect();
            (name.to_owned(), labels, value.parse().expect("a number"))
        })
        .collect()
}

async fn network_samples(api: std::net::SocketAddr) -> Vec<Sample> {
    let (status, _, body) = get(api, "/metrics/network", &[]).await;
    assert_eq!(status, 200);
    samples(&String::from_utf8(body).expect("UTF-8"))
}

/// What `/metrics/network` says of one node (by the node label: its id's first 16 characters).
fn of_node(samples: &[Sample], node_id: &str, name: &str) -> Option<f64> {
    samples
        .iter()
        .find(|(n, labels, _)| n == name && node_id.starts_with(&labels["node"]))
        .map(|&(_, _, value)| value)
}

/// The JAM network metrics count, per node, what each simulated node sent (one node sloppy,
/// sending undefined discriminators; one reporting 100 events lost); their slots and peers are
/// what the REST views say; when the nodes leave their series say so, and go after
/// `network_metrics_forget_secs`.
#[actix_web::test]
async fn the_network_metrics_count_what_each_node_sent_and_forget_nodes_that_left() {
    const SLOPPY: usize = 2;
    const LOSSY: usize = 0;
    const FORGET_SECS: u64 = 6;
    let db = TestDb::new();
    let server = TestServer::start(tart_backend::config::Config {
        network_metrics_forget_secs: FORGET_SECS,
        ..views_config(&db)
    })
    .await;
    let api = server.api_addr;
    let config = SimConfig {
        nodes: NODES,
        seed: 11,
        slot_duration: Duration::from_millis(SLOT_MS as u64),
        duration: Some(Duration::from_secs(6)),
        faults: Faults {
            sloppy: vec![SLOPPY],
            dropped_ranges: vec![(LOSSY, 100)],
            ..Faults::default()
        },
        ..SimConfig::new(server.telemetry_addr)
    };
    let running = tokio::task::spawn_local(
        Simulation::new(config).run(tokio_util::sync::CancellationToken::new()),
    );
    // While the nodes are connected: the network-wide figures follow from the nodes' own.
    let consistent = |samples: Vec<Sample>| {
        let all = |name: &str| {
            samples
                .iter()
                .filter(|(n, _, _)| n == name)
                .map(|&(_, _, value)| value)
                .collect::<Vec<f64>>()
        };
        let best = all("jam_node_best_slot");
        let network_best = best.iter().copied().fold(f64::MIN, f64::max);
        let behind: Vec<f64> = best.iter().map(|slot| network_best - slot).collect();
        let nodes_behind = behind.iter().filter(|&&gap| gap > 2.0).count() as f64;
        all("jam_network_nodes") == [NODES as f64]
            && best.len() == NODES
            && all("jam_network_best_slot") == [network_best]
            && all("jam_node_slots_behind") == behind
            && all("jam_network_nodes_behind") == [nodes_behind]
            && all("jam_network_finalization_lag_slots").len() == 1
    };
    assert!(
        eventually(WAIT, || async { consistent(network_samples(api).await) }).await,
        "network-wide figures while connected: {:?}",
        network_samples(api).await
    );
    let report = running.await.expect("the simulation ran");
    let left = std::time::Instant::now();
    let all_left = |samples: &[Sample]| {
        report
            .nodes
            .iter()
            .all(|n| of_node(samples, &n.node_id, "jam_node_connected") == Some(0.0))
    };
    assert!(
        eventually(WAIT, || async { all_left(&network_samples(api).await) }).await,
        "every node shows as disconnected once the simulation ended"
    );
    assert!(left.elapsed() < Duration::from_secs(FORGET_SECS - 2));
    let metrics = network_samples(api).await;
    let value = |node: &str, name: &str| of_node(&metrics, node, name);
    let mut authored = 0.0;
    for (index, node) in report.nodes.iter().enumerate() {
        let id = node.node_id.as_str();
        for (metric, event) in [
            ("jam_node_blocks_authored_total", "Authored"),
            ("jam_node_blocks_imported_total", "BlockVerified"),
            (
                "jam_node_work_packages_received_total",
                "WorkPackageReceived",
            ),
            ("jam_node_guarantees_built_total", "GuaranteeBuilt"),
            ("jam_node_assurances_sent_total", "AssuranceSent"),
        ] {
            assert_eq!(
                value(id, metric),
                Some(node.sent_of(event) as f64),
                "{metric} of node {index}"
            );
        }
        authored += value(id, "jam_node_blocks_authored_total").unwrap();
        let undefined = node
            .sent_by_type
            .get(&tart_backend::sim::UNDEFINED_DISCRIMINATOR)
            .copied()
            .unwrap_or(0);
        assert_eq!(
            value(id, "jam_node_undefined_events_total"),
            Some(undefined as f64)
        );
        assert_eq!((index == SLOPPY), undefined > 0, "only the sloppy node");
        assert_eq!(
            value(id, "jam_node_reported_dropped_events_total"),
            Some(node.drops_reported as f64)
        );
        if index == LOSSY {
            assert!(node.drops_reported >= 100, "{}", node.drops_reported);
        }
        let implementation = metrics
            .iter()
            .find(|(n, labels, _)| n == "jam_node_connected" && id.starts_with(&labels["node"]))
            .map(|(_, labels, _)| labels["implementation"].clone());
        assert_eq!(
            implementation.as_deref(),
            Some(node.implementation.as_str())
        );
        assert!(value(id, "jam_node_last_event_age_seconds") < Some(30.0));
    }
    assert!(authored > 0.0, "blocks were authored");

    // Slots and peers as the REST views say, once the bookkeeping lane (which writes the
    // latest slots and Status after the events) has caught up.
    let peers_of = |peers: &serde_json::Value, id: &str| {
        peers["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["node_id"] == id)
            .map(|n| n["reported"]["num_peers"].as_f64())
            .unwrap()
    };
    let rest_views = || async {
        let (_, nodes) = get_json(api, "/api/nodes").await;
        let (_, peers) = get_json(api, "/api/peers").await;
        (nodes, peers)
    };
    let caught_up = |(nodes, peers): &(serde_json::Value, serde_json::Value)| {
        nodes["nodes"].as_array().unwrap().iter().all(|node| {
            let id = node["node_id"].as_str().unwrap();
            value(id, "jam_node_best_slot") == node["best_slot"].as_f64()
                && value(id, "jam_node_finalized_slot") == node["finalized_slot"].as_f64()
                && value(id, "jam_node_peers") == peers_of(peers, id)
        })
    };
    eventually(WAIT, || async { caught_up(&rest_views().await) }).await;
    let (nodes, peers) = rest_views().await;
    let mut best_slots = Vec::new();
    for node in nodes["nodes"].as_array().unwrap() {
        let id = node["node_id"].as_str().unwrap();
        let best = value(id, "jam_node_best_slot");
        assert_eq!(best, node["best_slot"].as_f64(), "{node}");
        assert_eq!(
            value(id, "jam_node_finalized_slot"),
            node["finalized_slot"].as_f64(),
            "{node}"
        );
        best_slots.push(best.unwrap());
        let reported = peers_of(&peers, id);
        assert!(reported > Some(0.0));
        assert_eq!(value(id, "jam_node_peers"), reported, "{id}");
    }
    assert_eq!(best_slots.len(), NODES);
    let network = |name: &str| {
        metrics
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|&(_, _, value)| value)
    };
    // Nobody is connected now, so no network-wide best slot; the nodes' gaps remain.
    assert_eq!(network("jam_network_nodes"), Some(0.0));
    assert_eq!(network("jam_network_best_slot"), None);

    // Past network_metrics_forget_secs, the nodes that left are no longer listed.
    assert!(
        eventually(Duration::from_secs(FORGET_SECS + 10), || async {
            !network_samples(api)
                .await
                .iter()
                .any(|(name, _, _)| name.starts_with("jam_node_"))
        })
        .await,
        "the nodes' series are gone {FORGET_SECS} s after they left"
    );
    server.shutdown().await.expect("clean shutdown");
}

/// `/api/cores/status` averages what the nodes' Status events count per core: two nodes' reports
/// of three cores, each sampled once.
#[actix_web::test]
async fn the_cores_status_series_is_the_mean_of_what_the_nodes_reported() {
    let db = TestDb::new();
    let server = TestServer::start(views_config(&db)).await;
    let status = |guarantees: Vec<u8>| TimedEvent {
        timestamp: jam_now(0),
        event: Event::Status {
            num_peers: 4,
            num_validator_peers: 4,
            num_block_announcement_peers: 4,
            guarantees_by_core: tart_backend::jip3::types::CoreCounts(guarantees),
            num_shards: 0,
            shards_total_size: 0,
            num_preimages: 0,
            preimages_total_size: 0,
        },
    };
    let mut a = FakeNode::connect(server.telemetry_addr, node_info(1, 3)).await;
    let mut b = FakeNode::connect(server.telemetry_addr, node_info(2, 3)).await;
    a.send_events(&[status(vec![3, 1, 0])]).await;
    b.send_events(&[status(vec![1, 1, 2])]).await;
    let series = || async {
        get_json(server.api_addr, "/api/cores/status?step=3600")
            .await
            .1
    };
    let sampled = |series: &Value| {
        series["cores"].as_array().is_some_and(|cores| {
            cores.len() == 3
                && cores
                    .iter()
                    .all(|c| c["samples"].as_array().unwrap().iter().any(|s| s == 2))
        })
    };
    assert!(
        eventually(WAIT, || async { sampled(&series().await) }).await,
        "both reports sampled: {}",
        series().await
    );
    let series = series().await;
    for (core, mean) in [(0, 2.0), (1, 1.0), (2, 1.0)] {
        let means: Vec<f64> = series["cores"][core]["mean_guarantees"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_f64)
            .collect();
        assert_eq!(means, vec![mean], "core {core}: {series}");
    }
    let (status, error) = get_json(server.api_addr, "/api/cores/status?step=90").await;
    assert_eq!(status, 400, "{error}");
}

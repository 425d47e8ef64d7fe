//! The node simulator against a real TART server and PostgreSQL: every event type arrives and
//! decodes, references between events hold in storage, `--rate` is kept, and nodes come back after
//! the server restarts.

mod harness;

use std::collections::HashMap;
use std::time::Duration;

use diesel::sql_types::{BigInt, Json, SmallInt, Text};
use diesel::QueryableByName;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use harness::*;
use tart_backend::jip3::Event;
use tart_backend::sim::{Params, SimConfig, SimReport, Simulation};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A simulator run in the background, stopped by `stop`.
struct Running {
    node_ids: Vec<String>,
    stop: CancellationToken,
    task: JoinHandle<SimReport>,
}

impl Running {
    fn start(config: SimConfig) -> Running {
        let simulation = Simulation::new(config);
        let node_ids = simulation
            .stats()
            .nodes
            .iter()
            .map(|n| n.node_id.clone())
            .collect();
        let stop = CancellationToken::new();
        let task = tokio::spawn(simulation.run(stop.clone()));
        Running {
            node_ids,
            stop,
            task,
        }
    }

    async fn finish(self) -> SimReport {
        self.stop.cancel();
        self.task.await.expect("simulator task")
    }
}

/// A quick network: short slots so a few seconds hold many of them.
fn sim_config(server: &TestServer, nodes: usize, params: Params) -> SimConfig {
    SimConfig {
        nodes,
        params,
        seed: 42,
        slot_duration: Duration::from_millis(500),
        max_backoff: Duration::from_millis(300),
        ..SimConfig::new(server.telemetry_addr)
    }
}

async fn stored(db: &TestDb, sql: &str, node_id: &str) -> i64 {
    count(&mut db.connect().await, sql, node_id).await
}

async fn events_of(db: &TestDb, node_id: &str) -> i64 {
    stored(
        db,
        "SELECT count(*) AS n FROM events WHERE node_id = $1",
        node_id,
    )
    .await
}

/// Waits until the server has stored exactly what each node sent.
async fn all_stored(db: &TestDb, report: &SimReport) {
    for node in &report.nodes {
        assert!(
            eventually(WAIT, || async {
                events_of(db, &node.node_id).await == node.events_sent as i64
            })
            .await,
            "node {} sent {} events, stored {}",
            node.node_id,
            node.events_sent,
            events_of(db, &node.node_id).await
        );
    }
}

#[tokio::test]
async fn all_types_reach_the_database_for_tiny_and_full_nodes() {
    let db = TestDb::new();
    let mut config = test_config(&db);
    config.rate_limit_per_sec = 0;
    let server = TestServer::start(config).await;
    let sim = Running::start(SimConfig {
        all_types: true,
        ..sim_config(&server, 2, Params::Mixed)
    });

    for node_id in &sim.node_ids {
        assert!(
            eventually(WAIT, || async {
                stored(
                    &db,
                    "SELECT count(DISTINCT event_type) AS n FROM events WHERE node_id = $1",
                    node_id,
                )
                .await
                    == 115
            })
            .await,
            "every one of the 115 event types stored for node {node_id}"
        );
    }
    let report = sim.finish().await;
    all_stored(&db, &report).await;
    let cores: Vec<u16> = report.nodes.iter().map(|n| n.core_count).collect();
    assert_eq!(cores, vec![2, 341], "one tiny node, one full node");
    let conn = &mut db.connect().await;
    assert_eq!(
        count(
            conn,
            "SELECT count(*) AS n FROM decode_failures WHERE $1 = $1",
            ""
        )
        .await,
        0
    );
    assert_eq!(
        count(
            conn,
            "SELECT count(*) AS n FROM nodes WHERE implementation_name = $1",
            "PolkaJam"
        )
        .await,
        1,
        "node 0 plays PolkaJam"
    );
}

#[derive(QueryableByName)]
struct StoredEvent {
    #[diesel(sql_type = BigInt)]
    session_id: i64,
    #[diesel(sql_type = BigInt)]
    event_id: i64,
    #[diesel(sql_type = SmallInt)]
    event_type: i16,
    #[diesel(sql_type = Json)]
    data: serde_json::Value,
}

/// Events of type `source` whose `field` does not name an event of one of `targets` in the same
/// session, and how many events of type `source` there are.
async fn dangling(
    conn: &mut AsyncPgConnection,
    source: &str,
    field: &str,
    targets: &str,
) -> (i64, i64) {
    let sql = format!(
        "SELECT count(*) FILTER (WHERE NOT EXISTS ( \
             SELECT 1 FROM decoded_events t WHERE t.node_id = e.node_id \
             AND t.session_id = e.session_id AND t.event_type IN ({targets}) \
             AND t.event_id = (e.data->'{source}'->>'{field}')::int8)) AS n, \
         count(*) AS total \
         FROM decoded_events e WHERE e.data -> $1 IS NOT NULL"
    );
    #[derive(QueryableByName)]
    struct Counts {
        #[diesel(sql_type = BigInt)]
        n: i64,
        #[diesel(sql_type = BigInt)]
        total: i64,
    }
    let counts: Counts = diesel::sql_query(sql)
        .bind::<Text, _>(source)
        .get_result(conn)
        .await
        .unwrap();
    (counts.n, counts.total)
}

#[tokio::test]
async fn stored_references_point_at_events_of_the_right_type_in_the_same_session() {
    let db = TestDb::new();
    let mut config = test_config(&db);
    config.rate_limit_per_sec = 0;
    let server = TestServer::start(config).await;
    let sim = Running::start(SimConfig {
        slot_duration: Duration::from_millis(300),
        ..sim_config(&server, 4, Params::Mixed)
    });
    tokio::time::sleep(Duration::from_secs(4)).await;
    let report = sim.finish().await;
    all_stored(&db, &report).await;

    let conn = &mut db.connect().await;
    decode_stored(conn).await;
    for (source, field, targets) in [
        ("BlockExecuted", "authoring_or_importing_event_id", "40, 43"),
        ("Authored", "authoring_event_id", "40"),
        ("WorkPackageReceived", "submission_event_id", "90, 91"),
        ("SendingGuarantee", "guarantee_built_event_id", "105"),
        ("GuaranteeSent", "sending_event_id", "106"),
        ("AssuranceSent", "distributing_event_id", "126"),
    ] {
        let (bad, total) = dangling(conn, source, field, targets).await;
        assert!(total > 0, "some {source} events were sent");
        assert_eq!(bad, 0, "{bad} of {total} {source} events point elsewhere");
    }

    // And every reference of every stored event, by the spec's table.
    let events: Vec<StoredEvent> =
        diesel::sql_query("SELECT session_id, event_id, event_type, data FROM decoded_events")
            .load(conn)
            .await
            .unwrap();
    let types: HashMap<(i64, i64), i16> = events
        .iter()
        .map(|e| ((e.session_id, e.event_id), e.event_type))
        .collect();
    let mut checked = 0;
    for stored in &events {
        let mut event: Event = serde_json::from_value(stored.data.clone()).unwrap();
        let Some((target, allowed)) = event.reference_mut() else {
            continue;
        };
        assert!(*target < stored.event_id as u64, "references point back");
        let found = types.get(&(stored.session_id, *target as i64));
        assert!(
            found.is_some_and(|t| allowed.contains(&(*t as u8))),
            "event {} ({}) → {target}: {found:?}, expected one of {allowed:?}",
            stored.event_id,
            stored.event_type
        );
        checked += 1;
    }
    assert!(checked > 500, "only {checked} references checked");
    assert_eq!(ids_not_advanced_by_dropped(&db).await, 0);
}

/// Dropped events whose next stored event (same session) does not have the ID N further on.
async fn ids_not_advanced_by_dropped(db: &TestDb) -> i64 {
    let conn = &mut db.connect().await;
    decode_stored(conn).await;
    count(
        conn,
        "SELECT count(*) AS n FROM decoded_events d WHERE d.event_type = 0 AND $1 = $1 AND \
         (SELECT min(x.event_id) FROM decoded_events x WHERE x.session_id = d.session_id \
          AND x.event_id > d.event_id) \
         <> d.event_id + (d.data->'Dropped'->>'num_dropped')::int8",
        "",
    )
    .await
}

#[tokio::test]
async fn each_node_sends_about_the_rate_asked() {
    let db = TestDb::new();
    let mut config = test_config(&db);
    config.rate_limit_per_sec = 0;
    let server = TestServer::start(config).await;
    let report = Simulation::new(SimConfig {
        rate: Some(50.0),
        duration: Some(Duration::from_secs(3)),
        ..sim_config(&server, 4, Params::Tiny)
    })
    .run(CancellationToken::new())
    .await;
    all_stored(&db, &report).await;
    let secs = report.elapsed.as_secs_f64();
    for node in &report.nodes {
        let rate = node.events_sent as f64 / secs;
        assert!(
            (30.0..=70.0).contains(&rate),
            "node {} stored {rate:.1} events/s, asked 50",
            node.node_id
        );
    }
}

#[tokio::test]
async fn nodes_reconnect_when_the_server_comes_back_on_the_same_port() {
    let db = TestDb::new();
    let first = TestServer::start(test_config(&db)).await;
    let addr = first.telemetry_addr;
    let sim = Running::start(sim_config(&first, 3, Params::Tiny));
    let node_ids = sim.node_ids.clone();
    for node_id in &node_ids {
        assert!(eventually(WAIT, || async { events_of(&db, node_id).await > 0 }).await);
    }
    first.shutdown().await.expect("clean shutdown");

    let mut config = test_config(&db);
    config.telemetry_bind = addr.to_string();
    let second = TestServer::start(config).await;
    assert_eq!(second.telemetry_addr, addr);
    for node_id in &node_ids {
        assert!(
            eventually(WAIT, || async {
                stored(
                    &db,
                    "SELECT count(DISTINCT session_id) AS n FROM events WHERE node_id = $1",
                    node_id,
                )
                .await
                    == 2
            })
            .await,
            "node {node_id} sends on a second session"
        );
    }
    let report = sim.finish().await;
    assert_eq!(report.reconnects(), 3, "one reconnect per node");
    decode_stored(&mut db.connect().await).await;
    for node in &report.nodes {
        // What the first connection never delivered opens the second as Dropped(N), ID 0.
        let opened_with = stored(
            &db,
            "SELECT coalesce((SELECT (data->'Dropped'->>'num_dropped')::int8 FROM decoded_events \
             WHERE node_id = $1 AND event_id = 0 AND event_type = 0 AND session_id = \
             (SELECT max(session_id) FROM node_sessions WHERE node_id = $1)), 0) AS n",
            &node.node_id,
        )
        .await;
        assert_eq!(opened_with, node.events_lost as i64);
    }
    assert_eq!(ids_not_advanced_by_dropped(&db).await, 0);
    for node_id in &node_ids {
        assert_eq!(
            stored(
                &db,
                "SELECT count(*) AS n FROM node_sessions WHERE node_id = $1",
                node_id
            )
            .await,
            2
        );
    }
    drop(second);
}

//! Protocol versions 0 and 1, both JAM Parameters layouts and emitters that bend the spec, end to
//! end: real TCP node connections into a real server writing to a real PostgreSQL database, read
//! back through SQL, the REST API and the WebSocket.

mod harness;

use diesel::sql_types::{BigInt, Json, Nullable, SmallInt, Text};
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;
use harness::*;
use serde_json::Value;
use tart_backend::jip3::generate::Generator;
use tart_backend::jip3::types::{ClosedStream, HexBytes};
use tart_backend::jip3::{
    Event, JamParameters, JamParams, NodeInformation, ParamsLayout, ProtocolVersion, TimedEvent,
};
use tart_backend::sim::gp_version;

/// A node with Peer ID `[seed; 32]` speaking `version`, announcing `params` in `layout`.
fn node_in(
    seed: u8,
    version: ProtocolVersion,
    params: JamParameters,
    layout: ParamsLayout,
) -> NodeInformation {
    NodeInformation {
        protocol_version: version,
        params: JamParams::Known(params.in_layout(layout)),
        gp_version: gp_version(layout).into(),
        ..node_info(seed, 2)
    }
}

/// One event of every type in `version`, timestamped 1 ms apart, numbered 0..115 (Dropped
/// counts 1). Event 61 in version 1 names the ID of the event 60 before it.
fn every_event_type(seed: u64, cores: u16, version: ProtocolVersion) -> Vec<TimedEvent> {
    let mut generator = Generator::new(seed, cores).with_version(version);
    let opened_at = Event::DISCRIMINATORS.iter().position(|&d| d == 60).unwrap() as u64;
    Event::DISCRIMINATORS
        .iter()
        .enumerate()
        .map(|(i, &d)| {
            let mut event = Event::generate(d, &mut generator).unwrap();
            match &mut event {
                Event::Dropped { num_dropped, .. } => *num_dropped = 1,
                Event::BlockAnnouncementStreamClosed {
                    stream: ClosedStream::OpenedEvent(id),
                    ..
                } => *id = opened_at,
                _ => {}
            }
            TimedEvent {
                timestamp: jam_now(i as u64 * 1000),
                event,
            }
        })
        .collect()
}

#[derive(QueryableByName, Debug)]
struct Row {
    #[diesel(sql_type = BigInt)]
    event_id: i64,
    #[diesel(sql_type = SmallInt)]
    event_type: i16,
    #[diesel(sql_type = Json)]
    data: Value,
}

async fn stored(db: &TestDb, node_id: &str) -> Vec<Row> {
    let conn = &mut db.connect().await;
    decode_stored(conn).await;
    diesel::sql_query(
        "SELECT event_id, event_type, data FROM decoded_events WHERE node_id = $1 \
         ORDER BY event_id",
    )
    .bind::<Text, _>(node_id)
    .load(conn)
    .await
    .unwrap()
}

#[derive(QueryableByName, Debug)]
struct SessionRow {
    #[diesel(sql_type = Nullable<Text>)]
    node_id: Option<String>,
    #[diesel(sql_type = Nullable<SmallInt>)]
    protocol_version: Option<i16>,
    #[diesel(sql_type = Nullable<Text>)]
    gp_version: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    params_layout: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    refusal: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    disconnect_reason: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    claimed_node_id: Option<String>,
}

async fn sessions(db: &TestDb) -> Vec<SessionRow> {
    diesel::sql_query(
        "SELECT node_id, protocol_version, gp_version, params_layout, refusal, \
         disconnect_reason, claimed_node_id FROM node_sessions ORDER BY session_id",
    )
    .load(&mut db.connect().await)
    .await
    .unwrap()
}

/// The stored event 61 of `node_id` and, for version 1, the event its reference resolves to
/// within the same session.
#[derive(QueryableByName, Debug)]
struct ClosedLink {
    #[diesel(sql_type = Json)]
    closed: Value,
    #[diesel(sql_type = Nullable<SmallInt>)]
    target_type: Option<i16>,
}

async fn closed_link(db: &TestDb, node_id: &str) -> ClosedLink {
    let conn = &mut db.connect().await;
    decode_stored(conn).await;
    diesel::sql_query(
        "SELECT c.data AS closed, o.event_type AS target_type FROM decoded_events c \
         LEFT JOIN decoded_events o ON o.session_id = c.session_id AND o.event_id = \
           (c.data -> 'BlockAnnouncementStreamClosed' ->> 'opened_event_id')::bigint \
         WHERE c.node_id = $1 AND c.event_type = 61",
    )
    .bind::<Text, _>(node_id)
    .get_result(conn)
    .await
    .unwrap()
}

/// A version-0 node with GP 0.7 parameters, a version-1 node with GP 0.8 ones and a version-1
/// node with GP 0.7 ones, connected at once, each sending all 115 event types: everything is
/// stored with the right fields, each node shows what it speaks, and event 61 links to its
/// event 60 in version 1.
#[actix_web::test]
async fn three_dialects_side_by_side_store_every_event_type() {
    let db = TestDb::new();
    let server = TestServer::start(unlimited_config(&db)).await;
    let api = server.api_addr;
    let (ws, _) = ws_connect(api).await;
    let cases = [
        (
            31,
            ProtocolVersion::V0,
            JamParameters::tiny(),
            ParamsLayout::Gp07,
        ),
        (
            32,
            ProtocolVersion::V1,
            JamParameters::full(),
            ParamsLayout::Gp08,
        ),
        (
            33,
            ProtocolVersion::V1,
            JamParameters::tiny(),
            ParamsLayout::Gp07,
        ),
    ];
    let mut nodes = Vec::new();
    for (seed, version, params, layout) in cases {
        let cores = params.core_count;
        let info = node_in(seed, version, params.clone(), layout);
        let mut node = FakeNode::connect(server.telemetry_addr, info).await;
        let events = every_event_type(u64::from(seed), cores, version);
        node.send_events(&events).await;
        nodes.push((node, version, params, layout, events));
    }

    for (node, version, params, layout, sent) in &nodes {
        let id = node.node_id();
        assert!(
            eventually(WAIT, || async { stored(&db, &id).await.len() == 115 }).await,
            "all 115 events of {version:?}/{layout:?} stored"
        );
        let rows = stored(&db, &id).await;
        for (i, (row, event)) in rows.iter().zip(sent).enumerate() {
            assert_eq!(row.event_id, i as i64);
            assert_eq!(row.event_type, i16::from(event.event.discriminator()));
            assert_eq!(row.data, serde_json::to_value(&event.event).unwrap());
        }
        let link = closed_link(&db, &id).await;
        let fields = &link.closed["BlockAnnouncementStreamClosed"];
        match version {
            ProtocolVersion::V0 => {
                assert!(fields["peer_id"].is_string(), "{fields}");
                assert!(fields.get("opened_event_id").is_none(), "{fields}");
                assert_eq!(link.target_type, None);
            }
            ProtocolVersion::V1 => {
                assert!(fields["opened_event_id"].is_u64(), "{fields}");
                assert!(fields.get("peer_id").is_none(), "{fields}");
                assert_eq!(link.target_type, Some(60), "61 links to its event 60");
            }
        }

        let (status, detail) = get_json(api, &format!("/api/nodes/{id}")).await;
        assert_eq!(status, 200);
        assert_eq!(detail["protocol_version"], version.as_u8());
        assert_eq!(detail["params_layout"], layout.name());
        assert_eq!(detail["gp_version"], gp_version(*layout));
        let constants = &detail["node_info"]["params"];
        assert_eq!(constants["core_count"], params.core_count);
        match layout {
            ParamsLayout::Gp08 => {
                assert!(constants["validator_count"].is_null(), "{constants}");
                assert!(constants["ticket_entries"].is_null(), "{constants}");
            }
            _ => assert_eq!(
                constants["validator_count"],
                params.validator_count.unwrap()
            ),
        }
        let raw = detail["node_info"]["params_raw"].as_str().unwrap();
        assert_eq!(raw.len(), 2 + 2 * layout.encoded_len().unwrap());
    }

    let recorded = sessions(&db).await;
    assert_eq!(recorded.len(), 3);
    for (node, version, _, layout, _) in &nodes {
        let session = recorded
            .iter()
            .find(|s| s.node_id.as_deref() == Some(&node.node_id()))
            .unwrap();
        assert_eq!(session.protocol_version, Some(i16::from(version.as_u8())));
        assert_eq!(session.params_layout.as_deref(), Some(layout.name()));
        assert!(session.gp_version.is_some());
        assert_eq!(session.refusal, None);
    }
    for (version, layout) in [("0", "gp-0.7"), ("1", "gp-0.8"), ("1", "gp-0.7")] {
        let name = format!(
            "telemetry_handshakes_total{{params_layout=\"{layout}\",protocol_version=\"{version}\"}}"
        );
        assert!(server.metric(&name) >= 1.0, "{name}");
    }

    // A WebSocket client that connects is told what each connected node speaks (the node list
    // comes from the stats snapshot, refreshed every few seconds).
    drop(ws);
    let deadline = std::time::Instant::now() + WAIT;
    let greeting = loop {
        let greeting = ws_connect(api).await.1;
        if greeting["data"]["nodes"].as_array().map(Vec::len) == Some(3) {
            break greeting;
        }
        assert!(std::time::Instant::now() < deadline, "{greeting}");
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    };
    let listed = greeting["data"]["nodes"].as_array().unwrap();
    for (node, version, _, layout, _) in &nodes {
        let entry = listed
            .iter()
            .find(|n| n["node_id"] == node.node_id())
            .unwrap();
        assert_eq!(entry["protocol_version"], version.as_u8());
        assert_eq!(entry["params_layout"], layout.name());
    }
}

/// A version TART does not speak is refused with a reason that names the versions it does,
/// counted by version and reason, and recorded as a session without a node.
#[tokio::test]
async fn a_version_2_node_is_refused_counted_and_recorded() {
    let db = TestDb::new();
    let server = TestServer::start(test_config(&db)).await;
    let info = node_info(34, 2);
    let mut body = info.to_bytes();
    body[0] = 2;
    let mut node = FakeNode::connect_sending(server.telemetry_addr, info, &body).await;
    assert!(node.closed_by_server(WAIT).await);
    assert!(
        eventually(WAIT, || async { !sessions(&db).await.is_empty() }).await,
        "the refusal is recorded"
    );
    let session = &sessions(&db).await[0];
    assert_eq!(session.node_id, None);
    assert_eq!(session.refusal.as_deref(), Some("unsupported_version"));
    assert_eq!(session.protocol_version, Some(2));
    assert_eq!(
        session.claimed_node_id.as_deref(),
        Some(node.node_id().as_str())
    );
    let reason = session.disconnect_reason.as_deref().unwrap();
    assert!(
        reason.contains("version 2") && reason.contains("versions 0 and 1"),
        "{reason}"
    );
    assert_eq!(
        server.metric("telemetry_protocol_versions_refused_total{version=\"2\"}"),
        1.0
    );
    assert_eq!(
        server.metric("telemetry_handshakes_refused_total{reason=\"unsupported_version\"}"),
        1.0
    );
    assert_eq!(
        server.metric("telemetry_connections_closed{reason=\"bad_handshake\"}"),
        1.0
    );
    let conn = &mut db.connect().await;
    assert_eq!(
        count(conn, "SELECT count(*) AS n FROM nodes WHERE $1 = $1", "").await,
        0
    );
}

/// A NodeInformation without JAM parameters (as one real node sent it): accepted, marked
/// unknown with a diagnosis, no constant invented, and the per-core fields of its events sized
/// by their frames.
#[actix_web::test]
async fn a_node_whose_parameters_fit_no_layout_is_accepted_and_marked() {
    let db = TestDb::new();
    let server = TestServer::start(unlimited_config(&db)).await;
    let info = node_info(35, 3);
    let full = info.to_bytes();
    let params_len = info.params.to_bytes().len();
    let mut body = vec![full[0]];
    body.extend_from_slice(&full[1 + params_len..]);
    let mut node = FakeNode::connect_sending(server.telemetry_addr, info, &body).await;
    let mut g = Generator::new(9, 3);
    let status = TimedEvent {
        timestamp: jam_now(0),
        event: Event::generate(10, &mut g).unwrap(),
    };
    let assurance = TimedEvent {
        timestamp: jam_now(1),
        event: Event::generate(126, &mut g).unwrap(),
    };
    node.send_events(&[status.clone(), assurance.clone()]).await;
    let id = node.node_id();
    assert!(eventually(WAIT, || async { stored(&db, &id).await.len() == 2 }).await);
    let rows = stored(&db, &id).await;
    assert_eq!(rows[0].data, serde_json::to_value(&status.event).unwrap());
    assert_eq!(
        rows[1].data,
        serde_json::to_value(&assurance.event).unwrap()
    );
    assert_eq!(
        rows[0].data["Status"]["guarantees_by_core"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    let (_, detail) = get_json(server.api_addr, &format!("/api/nodes/{id}")).await;
    assert_eq!(detail["params_layout"], "unknown");
    assert!(detail["node_info"]["params"].is_null(), "{detail}");
    assert_eq!(detail["node_info"]["params_raw"], "0x");
    let diagnosis = detail["node_info"]["params_diagnosis"].as_str().unwrap();
    assert!(
        diagnosis.contains("bytes expected, 0 present"),
        "{diagnosis}"
    );
    let conn = &mut db.connect().await;
    assert_eq!(
        count(
            conn,
            "SELECT count(*) AS n FROM nodes WHERE node_id = $1 AND core_count IS NULL \
             AND validator_count IS NULL AND jam_params IS NULL",
            &id
        )
        .await,
        1
    );
    assert_eq!(server.metric("telemetry_unknown_params_layouts_total"), 1.0);
}

/// The four discriminators one emitter sends that JIP-3 does not define, between defined
/// events: each kept with its bytes and one event ID, counted per discriminator in /metrics and
/// per session, and the connection goes on.
#[tokio::test]
async fn undefined_discriminators_are_counted_and_the_connection_lives() {
    let db = TestDb::new();
    let server = TestServer::start(unlimited_config(&db)).await;
    let mut node = FakeNode::connect(server.telemetry_addr, node_info(36, 2)).await;
    let undefined = |discriminator: u8, len: usize| TimedEvent {
        timestamp: jam_now(0),
        event: Event::Unknown {
            discriminator,
            raw: HexBytes(vec![0xab; len]),
        },
    };
    let best = |slot: u32| TimedEvent {
        timestamp: jam_now(0),
        event: Event::BestBlockChanged {
            slot,
            header_hash: tart_backend::jip3::types::Hash([7; 32]),
        },
    };
    // Body sizes as that emitter writes them, less the 9-byte header (C = 2 for 133).
    let sent = [
        best(1),
        undefined(48, 36),
        undefined(71, 40),
        best(2),
        undefined(132, 140),
        undefined(133, 99),
        undefined(133, 99),
        best(3),
    ];
    node.send_events(&sent).await;
    let id = node.node_id();
    assert!(eventually(WAIT, || async { stored(&db, &id).await.len() == 8 }).await);
    let rows = stored(&db, &id).await;
    let ids: Vec<i64> = rows.iter().map(|r| r.event_id).collect();
    assert_eq!(ids, (0..8).collect::<Vec<_>>(), "one event ID each");
    assert_eq!(rows[1].event_type, 48);
    assert_eq!(
        rows[1].data["Unknown"]["raw"],
        format!("0x{}", "ab".repeat(36))
    );
    for (discriminator, expected) in [(48, 1.0), (71, 1.0), (132, 1.0), (133, 2.0)] {
        let name = format!("telemetry_unknown_events{{discriminator=\"{discriminator}\"}}");
        assert_eq!(server.metric(&name), expected, "{name}");
    }
    #[derive(QueryableByName, Debug, PartialEq)]
    struct Undefined {
        #[diesel(sql_type = SmallInt)]
        discriminator: i16,
        #[diesel(sql_type = BigInt)]
        event_count: i64,
    }
    let per_session = || async {
        diesel::sql_query(
            "SELECT discriminator, event_count FROM session_undefined_events \
             WHERE node_id = $1 ORDER BY discriminator",
        )
        .bind::<Text, _>(&id)
        .load::<Undefined>(&mut db.connect().await)
        .await
        .unwrap()
    };
    let expected: Vec<Undefined> = [(48, 1), (71, 1), (132, 1), (133, 2)]
        .into_iter()
        .map(|(discriminator, event_count)| Undefined {
            discriminator,
            event_count,
        })
        .collect();
    assert!(
        eventually(WAIT, || async { per_session().await == expected }).await,
        "counted per session: {:?}",
        per_session().await
    );

    // Still connected: a later event is stored with the next ID.
    assert!(
        !node
            .closed_by_server(std::time::Duration::from_millis(200))
            .await
    );
    node.send_events(&[best(4)]).await;
    assert!(eventually(WAIT, || async { stored(&db, &id).await.len() == 9 }).await);
    assert_eq!(stored(&db, &id).await[8].event_id, 8);
}

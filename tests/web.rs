//! The web dashboard in a real headless Chromium (through chromedriver), against a real TART on
//! ephemeral ports with a real PostgreSQL, fed by the simulator over TCP. Each test saves
//! screenshots under `target/screenshots/` and checks that the page logged no errors.

mod harness;

use std::time::Duration;

use harness::browser::Browser;
use harness::*;
use tart_backend::config::Config;
use tart_backend::sim::{Faults, SimConfig, SimReport, Simulation, SLOPPY_IMPLEMENTATION};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(20);
const NODES: usize = 6;
const FAILING: usize = 1;
const SLOPPY: usize = 2;

fn dashboard_config(db: &TestDb) -> Config {
    Config {
        hourly_stats_interval_ms: 200,
        ..unlimited_config(db)
    }
}

/// The simulator with a node failing a quarter of its outbound connections and a sloppy one,
/// at 100 ms slots; it runs until `stop` is cancelled or `duration` passes.
fn simulation(server: &TestServer, duration: Option<Duration>) -> SimConfig {
    SimConfig {
        nodes: NODES,
        seed: 11,
        slot_duration: Duration::from_millis(100),
        max_backoff: Duration::from_millis(200),
        duration,
        faults: Faults {
            failing_outbound: vec![(FAILING, 0.25)],
            sloppy: vec![SLOPPY],
            ..Faults::default()
        },
        ..SimConfig::new(server.telemetry_addr)
    }
}

/// Starts the simulation in the background; cancel the token to stop it.
fn simulate(config: SimConfig) -> (CancellationToken, tokio::task::JoinHandle<SimReport>) {
    let stop = CancellationToken::new();
    let run = Simulation::new(config).run(stop.clone());
    (stop, actix_web::rt::spawn(run))
}

/// Runs the simulation for `duration`, then waits until TART stored all that every node sent.
async fn simulate_for(server: &TestServer, db: &TestDb, duration: Duration) -> SimReport {
    simulate_until_stored(db, simulation(server, Some(duration))).await
}

async fn no_page_errors(browser: &Browser) {
    no_page_errors_but(browser, |_| false).await;
}

/// Like [`no_page_errors`], leaving out the errors `expected` picks.
async fn no_page_errors_but(browser: &Browser, expected: impl Fn(&str) -> bool) {
    let errors: Vec<String> = browser
        .page_errors()
        .await
        .into_iter()
        .filter(|e| !expected(e))
        .collect();
    assert!(errors.is_empty(), "the page logged errors: {errors:#?}");
}

/// The table's rows as node ids, top to bottom.
async fn table_order(browser: &Browser) -> Vec<String> {
    browser
        .js("return [...document.querySelectorAll('#node-table tbody tr')].map(r => r.dataset.node)")
        .await
}

async fn wait_for_rows(browser: &Browser, css: &str, expected: impl Fn(usize) -> bool, what: &str) {
    if !eventually(WAIT, || async { expected(browser.count(css).await) }).await {
        browser
            .screenshot(&format!("failed-{}", what.replace(' ', "-")))
            .await;
        panic!("{what}: {} rows of `{css}`", browser.count(css).await);
    }
}

#[actix_web::test]
async fn the_network_page_lists_sorts_filters_and_pins_the_simulated_nodes() {
    let db = TestDb::new();
    let server = TestServer::start(dashboard_config(&db)).await;
    let (stop, sim) = simulate(simulation(&server, None));
    let api = server.api_addr;
    assert!(
        eventually(WAIT, || async {
            get_json(api, "/api/nodes?connected=true").await.1["total"] == NODES
        })
        .await,
        "all simulated nodes connected"
    );
    let (_, listed) = get_json(api, "/api/nodes").await;
    let mut known: Vec<String> = listed["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node_id"].as_str().unwrap().to_owned())
        .collect();
    known.sort();

    let browser = Browser::start().await;
    browser.goto(&format!("http://{api}/")).await;
    wait_for_rows(
        &browser,
        "#node-table tbody tr",
        |n| n == NODES,
        "the node table",
    )
    .await;
    let mut listed_on_page = table_order(&browser).await;
    listed_on_page.sort();
    assert_eq!(
        listed_on_page, known,
        "the table lists exactly the simulated nodes"
    );
    browser
        .wait_for_text("#tile-nodes .big", WAIT, |t| {
            t == format!("{NODES} / {NODES}")
        })
        .await;
    browser
        .wait_for_text("#tile-impls", WAIT, |t| t.contains(SLOPPY_IMPLEMENTATION))
        .await;
    // Peers and best slots come from the nodes' Status and block events.
    browser
        .wait_for_text(
            "#node-table tbody tr:first-child td:nth-child(8)",
            WAIT,
            |t| t.parse::<u64>().is_ok(),
        )
        .await;

    // Sorting by implementation: ascending, then descending on a second click.
    browser.click("[data-sort=impl]").await;
    browser
        .wait_for_text("#node-table th[aria-sort=ascending]", WAIT, |t| {
            t.contains("Implementation")
        })
        .await;
    let ascending = table_cells(&browser, "#node-table", 2).await;
    let mut sorted = ascending.clone();
    sorted.sort();
    assert_eq!(ascending, sorted, "ascending by implementation");
    browser.click("[data-sort=impl]").await;
    browser
        .wait_for_text("#node-table th[aria-sort=descending]", WAIT, |t| {
            t.contains("Implementation")
        })
        .await;
    let descending = table_cells(&browser, "#node-table", 2).await;
    sorted.reverse();
    assert_eq!(descending, sorted, "descending by implementation");

    // Filtering as you type.
    browser.type_into("#node-filter", "sloppy").await;
    wait_for_rows(
        &browser,
        "#node-table tbody tr",
        |n| n == 1,
        "the filtered table",
    )
    .await;
    assert!(table_cells(&browser, "#node-table", 2).await[0].starts_with(SLOPPY_IMPLEMENTATION));
    browser.type_into("#node-filter", "").await;
    wait_for_rows(
        &browser,
        "#node-table tbody tr",
        |n| n == NODES,
        "the unfiltered table",
    )
    .await;

    // Pinning the bottom row brings it to the top, and it stays there after a reload.
    let bottom = table_order(&browser).await.pop().unwrap();
    browser.click(&format!("[data-pin='{bottom}']")).await;
    assert_eq!(
        table_order(&browser).await[0],
        bottom,
        "a pinned node is on top"
    );
    browser.client().refresh().await.unwrap();
    wait_for_rows(
        &browser,
        "#node-table tbody tr",
        |n| n == NODES,
        "the reloaded table",
    )
    .await;
    assert_eq!(
        table_order(&browser).await[0],
        bottom,
        "the pin outlives a reload"
    );
    assert_eq!(
        browser
            .text_of("#node-table th[aria-sort=descending]")
            .await
            .trim_end_matches(" ▼"),
        "Implementation",
        "the sort outlives a reload"
    );
    browser.screenshot("network").await;
    no_page_errors(&browser).await;
    browser.close().await;
    stop.cancel();
    sim.await.unwrap();
    server.shutdown().await.unwrap();
}

#[actix_web::test]
async fn the_node_page_shows_its_information_events_and_linked_events() {
    let db = TestDb::new();
    let server = TestServer::start(dashboard_config(&db)).await;
    let api = server.api_addr;
    let report = simulate_for(&server, &db, Duration::from_secs(4)).await;
    let failing = &report.nodes[FAILING];

    // A failed outbound connection points at its attempt: both ends are one click apart.
    let (_, page) = get_json(
        api,
        &format!(
            "/api/nodes/{}/events?type=ConnectOutFailed&limit=1",
            failing.node_id
        ),
    )
    .await;
    let failure_row = page["events"][0]["id"]
        .as_i64()
        .expect("a ConnectOutFailed");

    let browser = Browser::start().await;
    browser
        .goto(&format!("http://{api}/#/node/{}", failing.node_id))
        .await;
    browser
        .wait_for_text("#node-info", WAIT, |t| t.contains("tart-sim node"))
        .await;
    browser
        .wait_for_text("#node-status", WAIT, |t| t.contains("num_peers"))
        .await;
    browser
        .wait_for_text("#node-counters", WAIT, |t| {
            t.contains(&format!("sessions {}", failing.connections))
        })
        .await;
    wait_for_rows(
        &browser,
        "#event-page tbody tr",
        |n| n == 50,
        "a page of events",
    )
    .await;
    browser.screenshot("node").await;

    // The explorer's filter and paging, kept in the URL.
    browser
        .type_into("#event-filters [name=type]", "ConnectOutFailed")
        .await;
    browser.click("#event-filters button[type=submit]").await;
    browser
        .wait_for_text("#event-page tbody", WAIT, |t| {
            !t.is_empty() && t.lines().all(|l| !l.contains("Status"))
        })
        .await;
    let types: Vec<String> = browser
        .js("return [...document.querySelectorAll('#event-page tbody tr')].map(r => r.cells[2].textContent)")
        .await;
    assert!(
        types.iter().all(|t| t.starts_with("ConnectOutFailed")),
        "{types:?}"
    );
    let url = browser.client().current_url().await.unwrap();
    assert!(url.as_str().contains("type=ConnectOutFailed"), "{url}");
    let first_page: Vec<String> = table_cells(&browser, "#event-page", 0).await;
    if browser.count("[data-page=older]").await > 0 {
        browser.click("[data-page=older]").await;
        browser
            .wait_for_text("#event-page", WAIT, |t| t.contains("Newest"))
            .await;
        let second_page = table_cells(&browser, "#event-page", 0).await;
        let oldest_first: i64 = first_page.last().unwrap().parse().unwrap();
        assert!(
            second_page
                .iter()
                .all(|id| id.parse::<i64>().unwrap() < oldest_first),
            "the older page holds only older events"
        );
    }

    // Linked events: the failure's reference, then back through "referred to by".
    browser
        .goto(&format!("http://{api}/#/event/{failure_row}"))
        .await;
    let reference = browser
        .wait_for_text("#reference", WAIT, |t| t.contains("ConnectingOut"))
        .await;
    assert!(!reference.contains("dangling"), "{reference}");
    browser.click("#reference a").await;
    browser
        .wait_for_text("#referred-by", WAIT, |t| {
            t.contains(&format!("#{failure_row}"))
        })
        .await;
    browser.screenshot("linked-events").await;
    no_page_errors(&browser).await;
    browser.close().await;
    server.shutdown().await.unwrap();
}

/// A column of a table inside `scope`, top to bottom.
async fn table_cells(browser: &Browser, scope: &str, column: usize) -> Vec<String> {
    browser
        .js(&format!(
            "return [...document.querySelectorAll('{scope} tbody tr')].map(r => r.cells[{column}].textContent.trim())"
        ))
        .await
}

/// The highest row id the live table shows (0 when empty).
async fn newest_live_row(browser: &Browser) -> i64 {
    table_cells(browser, "#live-table", 0)
        .await
        .iter()
        .filter_map(|id| id.parse().ok())
        .max()
        .unwrap_or(0)
}

async fn wait_for_newer_live_row(browser: &Browser, than: i64, what: &str) -> i64 {
    let newest = std::cell::Cell::new(0);
    let newer = eventually(WAIT, || async {
        newest.set(newest_live_row(browser).await);
        newest.get() > than
    })
    .await;
    if !newer {
        browser.screenshot(&format!("failed-{what}")).await;
        panic!("{what}: no live event newer than {than}");
    }
    newest.get()
}

#[actix_web::test]
async fn the_live_stream_shows_new_events_pauses_filters_and_survives_a_restart() {
    let db = TestDb::new();
    let server = TestServer::start(dashboard_config(&db)).await;
    let (api, telemetry) = (server.api_addr, server.telemetry_addr);
    let (stop, sim) = simulate(simulation(&server, None));

    let browser = Browser::start().await;
    browser.goto(&format!("http://{api}/#/live")).await;
    browser
        .wait_for_text("#live-state", WAIT, |t| t == "connected")
        .await;
    let first = wait_for_newer_live_row(&browser, 0, "first-live-events").await;
    let later = wait_for_newer_live_row(&browser, first, "newer-live-events").await;
    assert!(later > first);
    browser.screenshot("live").await;

    // Paused: the rows stay as they are while events keep arriving.
    browser.click("#live-pause").await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let frozen = table_cells(&browser, "#live-table", 0).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        table_cells(&browser, "#live-table", 0).await,
        frozen,
        "paused"
    );
    browser.click("#live-pause").await;
    wait_for_newer_live_row(&browser, later, "resumed-live-events").await;

    // Filtered by type: only Status rows.
    browser.type_into("#live-type", "Status").await;
    browser
        .wait_for_text("#live-table tbody", WAIT, |t| !t.is_empty())
        .await;
    let types = table_cells(&browser, "#live-table", 3).await;
    assert!(types.iter().all(|t| t == "Status"), "{types:?}");

    // The backend restarts on the same ports: the page says so, then reconnects by itself.
    let before_restart = newest_live_row(&browser).await;
    server.shutdown().await.unwrap();
    browser
        .wait_for_text("#live-state", WAIT, |t| t.contains("reconnecting"))
        .await;
    let server = TestServer::start(Config {
        api_bind: api.to_string(),
        telemetry_bind: telemetry.to_string(),
        ..dashboard_config(&db)
    })
    .await;
    browser
        .wait_for_text("#live-state", WAIT, |t| t == "connected")
        .await;
    wait_for_newer_live_row(&browser, before_restart, "live-events-after-a-restart").await;
    // While the server was down, Chromium itself logs each refused reconnection attempt.
    no_page_errors_but(&browser, |e| {
        e.contains("WebSocket connection") && e.contains("ERR_CONNECTION_REFUSED")
    })
    .await;
    browser.close().await;
    stop.cancel();
    sim.await.unwrap();
    server.shutdown().await.unwrap();
}

#[actix_web::test]
async fn the_failures_and_implementations_pages_show_the_planted_figures() {
    let db = TestDb::new();
    let server = TestServer::start(dashboard_config(&db)).await;
    let api = server.api_addr;
    let report = simulate_for(&server, &db, Duration::from_secs(6)).await;
    let failing = &report.nodes[FAILING];
    let all_failed: u64 = report
        .nodes
        .iter()
        .map(|n| n.sent_of("ConnectOutFailed"))
        .sum();
    assert!(
        eventually(WAIT, || async {
            let (_, r) = get_json(api, "/api/failures").await;
            r["failures"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["name"] == "ConnectOutFailed" && f["count"] == all_failed)
        })
        .await,
        "TART counted the {all_failed} outbound failures"
    );
    let (failed, attempts) = (
        failing.sent_of("ConnectOutFailed"),
        failing.sent_of("ConnectingOut"),
    );
    assert!(attempts > 0 && failed > 0, "{failed} of {attempts}");

    let browser = Browser::start().await;
    browser.goto(&format!("http://{api}/#/failures")).await;
    let count = browser
        .wait_for_text("[data-failure=ConnectOutFailed] .count", WAIT, |t| {
            !t.is_empty()
        })
        .await;
    assert_eq!(count.replace(',', ""), all_failed.to_string());
    let node_rate = browser
        .text_of(&format!(
            "[data-failure=ConnectOutFailed] tr[data-node='{}'] .rate",
            failing.node_id
        ))
        .await;
    let shown: f64 = node_rate
        .trim_end_matches('%')
        .parse()
        .expect("a percentage");
    let planted = 100.0 * failed as f64 / attempts as f64;
    assert!(
        (shown - planted).abs() <= 0.051,
        "the failing node's rate: {failed} of {attempts} is {planted:.2}%, the page says {node_rate}"
    );
    browser.screenshot("failures").await;

    browser
        .goto(&format!("http://{api}/#/implementations"))
        .await;
    browser
        .wait_for_text("#impl-table", WAIT, |t| t.contains(SLOPPY_IMPLEMENTATION))
        .await;
    browser
        .click(&format!("tr[data-impl='{SLOPPY_IMPLEMENTATION}'] a"))
        .await;
    let sloppy = &report.nodes[SLOPPY];
    let undefined = sloppy.sent_by_type.get(&250).copied().unwrap_or(0);
    assert!(undefined > 0, "the sloppy node sent discriminator 250");
    browser
        .wait_for_text("#impl-undefined-list", WAIT, |t| {
            t.replace(',', "").contains(&format!("250 {undefined}"))
                || t.replace(',', "").contains(&format!("250\t{undefined}"))
        })
        .await;
    let never_sent = browser.text_of(".never-sent").await;
    for name in [
        "PreimageAnnounced",
        "AnnouncedPreimageForgotten",
        "PreimageDiscarded",
    ] {
        assert!(never_sent.contains(name), "{name} never sent: {never_sent}");
    }
    let (_, implementation) = get_json(
        api,
        &format!("/api/implementations/{SLOPPY_IMPLEMENTATION}"),
    )
    .await;
    let never_count = implementation["versions"][0]["types_never_sent"]
        .as_array()
        .map(Vec::len);
    assert_eq!(
        browser
            .text_of("#never-sent-count")
            .await
            .parse::<usize>()
            .ok(),
        never_count
    );
    browser.screenshot("implementation").await;
    no_page_errors(&browser).await;
    browser.close().await;
    server.shutdown().await.unwrap();
}

/// Every route of the page loads without errors, and an unknown file is a JSON 404.
#[actix_web::test]
async fn every_view_loads_and_the_files_are_served_with_their_types() {
    let db = TestDb::new();
    let server = TestServer::start(dashboard_config(&db)).await;
    let api = server.api_addr;
    let header = |headers: &awc::http::header::HeaderMap, name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (status, headers, body) = get(api, "/", &[]).await;
    assert_eq!(status, 200);
    assert!(
        String::from_utf8_lossy(&body).contains(r#"<script type="module" src="/assets/app.js">"#)
    );
    assert!(header(&headers, "content-type").starts_with("text/html"));
    let (status, headers, _) = get(api, "/assets/app.js", &[]).await;
    assert_eq!(status, 200);
    assert!(header(&headers, "content-type").starts_with("text/javascript"));
    let etag = header(&headers, "etag");
    assert!(!etag.is_empty(), "an ETag");
    let (status, _, _) = get(api, "/assets/app.js", &[("If-None-Match", etag.as_str())]).await;
    assert_eq!(status, 304, "an unchanged file is not sent again");
    let (status, _, body) = get(api, "/assets/nothing.js", &[]).await;
    assert_eq!(status, 404);
    assert!(String::from_utf8_lossy(&body).contains("error"));

    let browser = Browser::start().await;
    for route in [
        "",
        "#/live",
        "#/failures",
        "#/implementations",
        "#/timeseries",
        "#/slots",
        "#/work-packages",
        "#/peers",
        "#/nowhere",
    ] {
        browser.goto(&format!("http://{api}/{route}")).await;
        browser
            .wait_for_text("#view", WAIT, |t| !t.contains("Loading"))
            .await;
    }
    assert!(browser.text_of("#view").await.contains("No such page"));
    no_page_errors(&browser).await;
    browser.close().await;
    server.shutdown().await.unwrap();
}

/// The block pages against a simulation with a node that learns of blocks 250 ms late and every
/// fourth slot forked: the slot list marks the forks, and a slot's page draws one step per node
/// reached and shows the late node's delay.
#[actix_web::test]
async fn the_block_pages_show_the_forks_and_the_late_nodes_delay() {
    const LATE: usize = 3;
    const LATE_MS: f64 = 250.0;
    let db = TestDb::new();
    let server = TestServer::start(dashboard_config(&db)).await;
    let api = server.api_addr;
    let config = SimConfig {
        slot_duration: Duration::from_millis(400),
        duration: Some(Duration::from_secs(6)),
        faults: Faults {
            late_blocks: vec![(LATE, LATE_MS as u64)],
            forks_every: Some(4),
            ..Faults::default()
        },
        ..simulation(&server, None)
    };
    let report = simulate_until_stored(&db, config).await;
    let late = &report.nodes[LATE].node_id;
    let slots = || async { get_json(api, "/api/slots").await.1["slots"].clone() };
    // A fork in the middle of the run, and an ordinary slot that the late node did not author.
    let (fork, ordinary) = {
        assert!(
            eventually(WAIT, || async {
                slots()
                    .await
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|s| s["fork"] == true)
            })
            .await
        );
        let all = slots().await;
        let all = all.as_array().unwrap();
        let pick = |forked: bool| {
            all[2..all.len() - 4]
                .iter()
                .find(|s| {
                    s["fork"] == forked
                        && s["blocks"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .all(|b| b["author"].is_string() && b["author"] != late.as_str())
                })
                .map(|s| s["slot"].as_i64().unwrap())
                .expect("such a slot")
        };
        (pick(true), pick(false))
    };

    let browser = Browser::start().await;
    browser.goto(&format!("http://{api}/#/slots")).await;
    let marked = browser
        .wait_for_text(&format!("tr[data-slot='{fork}'] .bad"), WAIT, |t| {
            !t.is_empty()
        })
        .await;
    assert_eq!(marked, "fork");
    assert_eq!(
        browser.count(&format!("tr[data-slot='{fork}']")).await,
        2,
        "both blocks of the forked slot are listed"
    );
    browser.screenshot("slots").await;
    browser
        .click(&format!("tr[data-slot='{ordinary}'] a[href^='#/slot/']"))
        .await;
    let points = browser
        .wait_for_text(".block", WAIT, |t| t.contains("nodes reached"))
        .await;
    assert!(points.contains("author"), "{points}");
    let steps: String = browser
        .js("return document.querySelector('.block svg.reach').dataset.points")
        .await;
    assert_eq!(steps, (NODES - 1).to_string(), "one step per node reached");
    let delay = |text: String| -> f64 {
        text.trim_end_matches(" ms")
            .replace(',', "")
            .parse()
            .unwrap()
    };
    let late_delay = delay(
        browser
            .text_of(&format!("tr[data-node='{late}'] .delay"))
            .await,
    );
    assert!(
        (LATE_MS..LATE_MS + 0.15 * 400.0 + 1.0).contains(&late_delay),
        "the late node's delay: {late_delay} ms"
    );
    let others: Vec<String> = browser
        .js("return [...document.querySelectorAll('tr[data-node]:not(.author) .delay')].map(c => c.textContent)")
        .await;
    assert_eq!(others.len(), NODES - 1);
    assert_eq!(
        others
            .iter()
            .filter(|t| delay((*t).clone()) >= LATE_MS)
            .count(),
        1,
        "only the late node is late: {others:?}"
    );
    browser.screenshot("slot").await;
    no_page_errors(&browser).await;
    browser.close().await;
    server.shutdown().await.unwrap();
}

/// The work-package pages against a simulation in which every package of core 1 fails once
/// authorized: the core table and the funnel show the failures TART counted, a guaranteed
/// package's journey has a lane per guarantor with one guarantee built, and a failed one a
/// failure on each lane.
#[actix_web::test]
async fn the_work_package_pages_show_the_failing_core_and_the_journeys() {
    let db = TestDb::new();
    let server = TestServer::start(dashboard_config(&db)).await;
    let api = server.api_addr;
    let config = SimConfig {
        slot_duration: Duration::from_millis(400),
        duration: Some(Duration::from_secs(8)),
        faults: Faults {
            failing_core: Some((1, 1.0)),
            ..Faults::default()
        },
        ..simulation(&server, None)
    };
    simulate_until_stored(&db, config).await;
    let list = || async { get_json(api, "/api/work-packages?limit=1000").await.1 };
    let settled = || async {
        let (_, cores) = get_json(api, "/api/cores").await;
        cores["cores"][1]["packages"]["failed"]
            .as_u64()
            .unwrap_or(0)
    };
    assert!(eventually(WAIT, || async { settled().await > 3 }).await);
    let failed = settled().await;
    let packages = list().await["packages"].as_array().unwrap().clone();
    let guaranteed = packages
        .iter()
        .find(|p| p["status"] == "guaranteed" && p["guarantee_receivers"].as_u64() > Some(0))
        .expect("a guaranteed package")
        .clone();
    let failing = packages
        .iter()
        .find(|p| p["core"] == 1 && p["nodes"] == 3 && p["duplicates"] == 0)
        .expect("a package of the failing core")
        .clone();

    let browser = Browser::start().await;
    browser.goto(&format!("http://{api}/#/work-packages")).await;
    let shown = browser
        .wait_for_text("#core-table tr[data-core='1'] .failed", WAIT, |t| {
            !t.is_empty()
        })
        .await;
    assert_eq!(shown, failed.to_string());
    // The planted core's Status reports count no guarantee in the pools.
    let pool = browser
        .wait_for_text("#core-table tr[data-core='1'] .pool", WAIT, |t| {
            !t.is_empty()
        })
        .await;
    assert_eq!(pool, "0.00");
    let tile = browser.text_of("[data-stage=failed] .big").await;
    assert!(
        tile.replace(',', "").parse::<u64>().unwrap() >= failed,
        "{tile}"
    );
    browser.screenshot("work-packages").await;

    browser
        .goto(&format!(
            "http://{api}/#/work-package/{}",
            guaranteed["hash"].as_str().unwrap()
        ))
        .await;
    browser
        .wait_for_text("#package-status", WAIT, |t| t == "guaranteed")
        .await;
    assert_eq!(
        browser.count("svg.journey .lane").await,
        3,
        "a lane per guarantor"
    );
    assert_eq!(
        browser
            .count("svg.journey .stage[data-stage=guarantee_built]")
            .await,
        1,
        "the primary built the guarantee"
    );
    assert_eq!(
        browser.count("#receipts li").await as u64,
        guaranteed["guarantee_receivers"].as_u64().unwrap()
    );
    browser.screenshot("work-package").await;

    browser
        .goto(&format!(
            "http://{api}/#/work-package/{}",
            failing["hash"].as_str().unwrap()
        ))
        .await;
    browser
        .wait_for_text("#package-status", WAIT, |t| t == "failed")
        .await;
    assert_eq!(
        browser.count("svg.journey .stage.failed").await,
        3,
        "every guarantor failed it"
    );
    assert_eq!(
        browser
            .count("svg.journey .stage[data-stage=refined]")
            .await,
        0
    );
    no_page_errors(&browser).await;
    browser.close().await;
    server.shutdown().await.unwrap();
}

/// The peers page against a simulation in which node 0's link to node 1 flaps every slot: it
/// tops the most flapping links, its peer shown as node 1, with the counts TART reports.
#[actix_web::test]
async fn the_peers_page_shows_the_flapping_link() {
    let db = TestDb::new();
    let server = TestServer::start(dashboard_config(&db)).await;
    let api = server.api_addr;
    let config = SimConfig {
        params: tart_backend::sim::Params::Full,
        slot_duration: Duration::from_millis(300),
        duration: Some(Duration::from_secs(5)),
        faults: Faults {
            flapping_link: Some((0, 1)),
            ..Faults::default()
        },
        ..simulation(&server, None)
    };
    let report = simulate_until_stored(&db, config).await;
    let (flapper, peer) = (&report.nodes[0].node_id, &report.nodes[1].node_id);
    let top = || async { get_json(api, "/api/peers").await.1["flapping"][0].clone() };
    assert!(
        eventually(WAIT, || async {
            top().await["node_id"] == flapper.as_str()
        })
        .await
    );
    let browser = Browser::start().await;
    browser.goto(&format!("http://{api}/#/peers")).await;
    let first: String = browser
        .wait_for_text("#flapping-table tbody tr", WAIT, |t| !t.is_empty())
        .await;
    assert!(!first.contains("No link"), "{first}");
    let row: Vec<String> = browser
        .js(
            "const r = document.querySelector('#flapping-table tbody tr'); \
             return [r.dataset.node, r.querySelector('td:nth-child(2) a').title, \
                     r.querySelector('.disconnects').textContent]",
        )
        .await;
    assert_eq!(row[0], *flapper);
    assert_eq!(row[1], *peer, "the peer is shown as the node it is");
    let top = top().await;
    assert_eq!(row[2], top["disconnects"].to_string());
    browser.screenshot("peers").await;
    no_page_errors(&browser).await;
    browser.close().await;
    server.shutdown().await.unwrap();
}

/// With an API token the page and its files load without it (they hold no data); data does not.
#[actix_web::test]
async fn the_page_loads_without_the_token_and_its_data_needs_it() {
    let db = TestDb::new();
    let server = TestServer::start(Config {
        api_token: "s3cret".into(),
        ..dashboard_config(&db)
    })
    .await;
    let api = server.api_addr;
    for path in ["/", "/assets/app.js", "/assets/network.js"] {
        assert_eq!(get(api, path, &[]).await.0, 200, "{path} without a token");
    }
    assert_eq!(get(api, "/api/nodes", &[]).await.0, 401);
    let bearer = [("Authorization", "Bearer s3cret")];
    assert_eq!(get(api, "/api/nodes", &bearer).await.0, 200);
    server.shutdown().await.unwrap();
}

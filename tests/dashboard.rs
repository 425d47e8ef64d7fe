//! tart-dash against a real TART: the dashboard's own feed (REST polling and the WebSocket)
//! talks to a real server on ephemeral ports with a real PostgreSQL, fake nodes send events over
//! TCP, and the screen is rendered into ratatui's `TestBackend` and read back as text.

mod harness;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chrono::Utc;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use harness::*;
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use tart_backend::config::Config;
use tart_backend::dash::app::{App, Msg, Settings, View};
use tart_backend::dash::feed::{self, Feed, FeedConfig};
use tart_backend::dash::ui;
use tart_backend::jip3::types::{CoreCounts, Hash};
use tart_backend::jip3::{Event, NodeInformation, TimedEvent};
use tokio::sync::{mpsc, watch};

/// The dashboard as `tart-dash` runs it, with a `TestBackend` for a terminal.
struct Dash {
    app: App,
    rx: mpsc::Receiver<Msg>,
    watched: watch::Sender<Option<String>>,
    terminal: Terminal<TestBackend>,
    _feed: Feed,
}

impl Dash {
    fn start(api: SocketAddr, token: Option<&str>) -> Dash {
        let url = format!("http://{api}");
        let token = token.map(str::to_owned);
        let (tx, rx) = mpsc::channel(4096);
        let (watched, watch_rx) = watch::channel(None);
        let feed = feed::start(
            FeedConfig {
                url: url.clone(),
                token: token.clone(),
                refresh: Duration::from_millis(200),
                max_backoff: Duration::from_millis(500),
            },
            tx,
            watch_rx,
        );
        let settings = Settings {
            url,
            stale_after: Duration::from_secs(600),
            token,
        };
        Dash {
            app: App::new(settings, Utc::now()),
            rx,
            watched,
            terminal: Terminal::new(TestBackend::new(120, 32)).unwrap(),
            _feed: feed,
        }
    }

    fn press(&mut self, code: KeyCode) {
        self.app
            .update(Msg::Key(KeyEvent::new(code, KeyModifiers::NONE)));
        self.watched.send_replace(self.app.watched_node());
    }

    fn type_text(&mut self, text: &str) {
        text.chars().for_each(|c| self.press(KeyCode::Char(c)));
    }

    /// Applies what the feed sent, ticks the clock, and renders.
    fn screen(&mut self) -> String {
        while let Ok(msg) = self.rx.try_recv() {
            self.app.update(msg);
        }
        self.app.update(Msg::Tick(Utc::now()));
        self.terminal
            .draw(|frame| ui::render(&self.app, frame))
            .unwrap();
        let buffer = self.terminal.backend().buffer();
        buffer
            .content()
            .chunks(usize::from(buffer.area.width))
            .map(|row| row.iter().map(|cell| cell.symbol()).collect::<String>())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The screen once `check` holds; fails with the screen if it does not within [`WAIT`].
    async fn until(&mut self, what: &str, check: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let screen = self.screen();
            if check(&screen) {
                return screen;
            }
            assert!(Instant::now() < deadline, "{what}; the screen:\n{screen}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The screen line that mentions `needle`.
fn line_of<'a>(screen: &'a str, needle: &str) -> &'a str {
    screen
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in\n{screen}"))
}

/// Table lines of the node table that name a test node, top to bottom.
fn node_order(screen: &str, names: &[&str]) -> Vec<String> {
    screen
        .lines()
        .filter_map(|l| names.iter().find(|n| l.contains(&format!(" {n} "))))
        .map(|n| n.to_string())
        .collect()
}

fn named(seed: u8, cores: u16, name: &str) -> NodeInformation {
    let mut info = node_info(seed, cores);
    info.implementation_name = name.into();
    info.implementation_version = "0.1.0".into();
    info.gp_version = "0.7.2".into();
    info
}

fn timed(event: Event) -> TimedEvent {
    TimedEvent {
        timestamp: jam_now(0),
        event,
    }
}

fn best(slot: u32) -> TimedEvent {
    timed(Event::BestBlockChanged {
        slot,
        header_hash: Hash([slot as u8; 32]),
    })
}

fn finalized(slot: u32) -> TimedEvent {
    timed(Event::FinalizedBlockChanged {
        slot,
        header_hash: Hash([slot as u8; 32]),
    })
}

fn status(peers: u32, cores: usize) -> TimedEvent {
    timed(Event::Status {
        num_peers: peers,
        num_validator_peers: 1,
        num_block_announcement_peers: 1,
        guarantees_by_core: CoreCounts(vec![0; cores]),
        num_shards: 0,
        shards_total_size: 0,
        num_preimages: 0,
        preimages_total_size: 0,
    })
}

#[actix_web::test]
async fn shows_the_nodes_marks_the_disconnected_one_and_details_a_node() {
    let db = TestDb::new();
    let server = TestServer::start(unlimited_config(&db)).await;
    let mut alpha = FakeNode::connect(server.telemetry_addr, named(31, 3, "alpha")).await;
    let mut beta = FakeNode::connect(server.telemetry_addr, named(32, 2, "beta")).await;
    let mut gamma = FakeNode::connect(server.telemetry_addr, named(33, 2, "gamma")).await;
    gamma.send_events(&[best(3)]).await;
    let mut dash = Dash::start(server.api_addr, None);
    dash.until("gamma is listed", |s| s.contains(" gamma "))
        .await;
    drop(gamma);
    alpha
        .send_events(&[best(41), finalized(39), status(12, 3)])
        .await;
    beta.send_events(&[best(40)]).await;

    let screen = dash
        .until("gamma marked down, alpha's blocks shown", |s| {
            s.contains(" gamma ")
                && line_of(s, " gamma ").contains("down")
                && line_of(s, " alpha ").contains("#41")
        })
        .await;
    assert!(line_of(&screen, " alpha ").contains("up"), "{screen}");
    assert!(line_of(&screen, " alpha ").contains("#39"), "{screen}");
    assert!(line_of(&screen, " beta ").contains("up"), "{screen}");
    let header = line_of(&screen, "connected");
    assert!(header.contains("nodes 2/3 connected"), "{header}");
    assert!(line_of(&screen, "TART").contains("healthy"), "{screen}");
    // The slot at least half the connected nodes reached (alpha 41, beta 40), as /api/stats.
    dash.until("the network's best block from the live stream", |s| {
        line_of(s, "connected").contains("best #40")
    })
    .await;

    // A connected node with no event for longer than the stale limit is marked.
    dash.app.settings.stale_after = Duration::ZERO;
    let screen = dash.screen();
    assert!(line_of(&screen, " beta ").contains("stale"), "{screen}");
    assert!(line_of(&screen, " gamma ").contains("down"), "{screen}");
    dash.app.settings.stale_after = Duration::from_secs(600);

    // Details of alpha: NodeInformation, its latest Status, its events, then live ones.
    dash.press(KeyCode::Char('/'));
    dash.type_text("alpha");
    dash.press(KeyCode::Enter);
    dash.press(KeyCode::Enter);
    assert_eq!(dash.app.view, View::Detail);
    let screen = dash
        .until("alpha's details", |s| {
            s.contains("cores 3") && s.contains("num_peers=12")
        })
        .await;
    let software = line_of(&screen, "Software");
    assert!(
        software.contains("alpha 0.1.0   GP 0.7.2   protocol 1, params gp-0.7   flags"),
        "{software}"
    );
    assert!(line_of(&screen, "Node ID").contains(&alpha.node_id()));
    assert!(line_of(&screen, "Blocks").contains("best #41"), "{screen}");
    assert!(
        line_of(&screen, "Blocks").contains("finalized #39"),
        "{screen}"
    );
    assert!(
        line_of(&screen, "FinalizedBlockChanged").contains("slot=39"),
        "{screen}"
    );
    alpha.send_events(&[best(42)]).await;
    beta.send_events(&[best(4242)]).await;
    let screen = dash
        .until("alpha's live event", |s| s.contains("slot=42 "))
        .await;
    assert!(
        !screen.contains("slot=4242"),
        "beta's events stay out:\n{screen}"
    );

    // No size breaks it: tiny, narrow, flat, with help open, in every view.
    for view in ['2', '1'] {
        dash.press(KeyCode::Char(view));
        for (w, h) in [(10, 3), (1, 1), (59, 40), (200, 11), (60, 12), (120, 32)] {
            dash.terminal.backend_mut().resize(w, h);
            let screen = dash.screen();
            if w < ui::MIN_WIDTH || h < ui::MIN_HEIGHT {
                assert!(screen.contains("Term") || w * h < 8, "{w}x{h}:\n{screen}");
            }
            dash.press(KeyCode::Char('?'));
            dash.screen();
            dash.press(KeyCode::Esc);
        }
    }
}

#[actix_web::test]
async fn keys_navigate_sort_filter_and_switch_views() {
    let db = TestDb::new();
    let server = TestServer::start(unlimited_config(&db)).await;
    let names = ["alpha", "beta", "gamma"];
    let mut nodes = Vec::new();
    // alpha sends 1 event, beta 3, gamma 2.
    for (i, (name, count)) in names.iter().zip([1u32, 3, 2]).enumerate() {
        let mut node = FakeNode::connect(server.telemetry_addr, named(40 + i as u8, 2, name)).await;
        let events: Vec<TimedEvent> = (0..count).map(|s| best(100 * (i as u32 + 1) + s)).collect();
        node.send_events(&events).await;
        nodes.push(node);
    }
    let mut dash = Dash::start(server.api_addr, None);
    dash.until("all events counted", |s| {
        let counted = |name: &str, n: &str| {
            s.contains(&format!(" {name} "))
                && line_of(s, &format!(" {name} ")).contains(&format!(" {n} "))
        };
        counted("alpha", "1") && counted("beta", "3") && counted("gamma", "2")
    })
    .await;

    // Sorting: State first (all up, then by name); `s` to the next columns; Events sorts
    // highest first, `r` reverses.
    assert_eq!(
        node_order(&dash.screen(), &names),
        ["alpha", "beta", "gamma"]
    );
    while dash.app.sort.title() != "Events" {
        dash.press(KeyCode::Char('s'));
    }
    let screen = dash.screen();
    assert_eq!(node_order(&screen, &names), ["beta", "gamma", "alpha"]);
    assert!(screen.contains("Events▼"), "{screen}");
    dash.press(KeyCode::Char('r'));
    let screen = dash.screen();
    assert_eq!(node_order(&screen, &names), ["alpha", "gamma", "beta"]);
    assert!(screen.contains("Events▲"), "{screen}");

    // Navigation: the highlight moves and stays in the table.
    assert!(line_of(&screen, "▶").contains(" alpha "), "{screen}");
    dash.press(KeyCode::Down);
    dash.press(KeyCode::Char('j'));
    assert!(line_of(&dash.screen(), "▶").contains(" beta "));
    dash.press(KeyCode::Down);
    assert!(
        line_of(&dash.screen(), "▶").contains(" beta "),
        "stops at the end"
    );
    dash.press(KeyCode::Home);
    assert!(line_of(&dash.screen(), "▶").contains(" alpha "));
    dash.press(KeyCode::End);
    dash.press(KeyCode::Up);
    assert!(line_of(&dash.screen(), "▶").contains(" gamma "));

    // Filtering by typing; Esc clears.
    dash.press(KeyCode::Char('/'));
    dash.type_text("AMM");
    let screen = dash.screen();
    assert_eq!(node_order(&screen, &names), ["gamma"]);
    assert!(screen.contains("filter: AMM"), "{screen}");
    assert!(screen.contains("Nodes 1/3"), "{screen}");
    dash.press(KeyCode::Backspace);
    dash.press(KeyCode::Backspace);
    dash.press(KeyCode::Char('l'));
    assert_eq!(node_order(&dash.screen(), &names), ["alpha"]);
    dash.press(KeyCode::Enter);
    dash.press(KeyCode::Char('q'));
    assert!(dash.app.quit, "after Enter keys are commands again");
    dash.app.quit = false;
    dash.press(KeyCode::Esc);
    assert_eq!(node_order(&dash.screen(), &names).len(), 3);

    // Views: Tab to the events, filter them by name, back with 1; Enter and Esc for details;
    // ? for help, closed by any key.
    dash.press(KeyCode::Tab);
    let screen = dash.screen();
    assert!(screen.contains("Live events"), "{screen}");
    assert!(
        line_of(&screen, "BestBlockChanged").contains("slot="),
        "{screen}"
    );
    dash.press(KeyCode::Char('/'));
    dash.type_text("status");
    dash.press(KeyCode::Enter);
    let screen = dash.screen();
    assert!(!screen.contains("BestBlockChanged"), "{screen}");
    nodes[0].send_events(&[status(7, 2)]).await;
    dash.until("the Status event passes the filter", |s| {
        s.contains("num_peers=7")
    })
    .await;
    dash.press(KeyCode::Char('1'));
    assert!(dash.screen().contains("Nodes 3/3"));
    dash.press(KeyCode::Enter);
    assert_eq!(dash.app.view, View::Detail);
    dash.press(KeyCode::Esc);
    assert_eq!(dash.app.view, View::Nodes);
    dash.press(KeyCode::Char('?'));
    assert!(dash.screen().contains("pause / resume"));
    dash.press(KeyCode::Char('x'));
    assert!(!dash.screen().contains("pause / resume"));
    assert!(!dash.app.quit);
    dash.app.update(Msg::Key(KeyEvent::new(
        KeyCode::Char('c'),
        KeyModifiers::CONTROL,
    )));
    assert!(dash.app.quit, "Ctrl-C quits");
}

#[actix_web::test]
async fn live_events_pause_and_resume() {
    let db = TestDb::new();
    let server = TestServer::start(unlimited_config(&db)).await;
    let mut node = FakeNode::connect(server.telemetry_addr, named(50, 2, "alpha")).await;
    let mut dash = Dash::start(server.api_addr, None);
    dash.press(KeyCode::Char('2'));
    node.send_events(&[best(501)]).await;
    dash.until("the live event", |s| s.contains("slot=501"))
        .await;
    dash.press(KeyCode::Char('p'));
    node.send_events(&[best(502), best(503)]).await;
    let screen = dash
        .until("two events held", |s| s.contains("PAUSED, 2 new held"))
        .await;
    assert!(!screen.contains("slot=502"), "{screen}");
    assert!(screen.contains("resume"), "the footer offers resume");
    dash.press(KeyCode::Char('p'));
    let screen = dash.screen();
    let rows: Vec<&str> = screen.lines().filter(|l| l.contains("slot=50")).collect();
    assert_eq!(rows.len(), 3, "{screen}");
    assert!(rows[0].contains("slot=503") && rows[2].contains("slot=501"));
}

#[actix_web::test]
async fn survives_the_backend_going_away_and_coming_back() {
    let db = TestDb::new();
    // With a read token: the dashboard sends it on its REST polls and its WebSocket.
    let config = Config {
        shutdown_timeout_secs: 5,
        api_token: "dash-token".into(),
        ..unlimited_config(&db)
    };
    let server = TestServer::start(config.clone()).await;
    let api = server.api_addr;
    let mut node = FakeNode::connect(server.telemetry_addr, named(60, 2, "alpha")).await;
    node.send_events(&[best(601)]).await;
    let mut dash = Dash::start(api, Some("dash-token"));
    dash.until("alpha listed", |s| s.contains(" alpha ")).await;
    assert!(!dash.screen().contains("unreachable"));

    drop(node);
    server.shutdown().await.expect("clean shutdown");
    let screen = dash
        .until("the outage banner", |s| {
            s.contains("TART unreachable") && s.contains("live stream lost")
        })
        .await;
    assert!(line_of(&screen, "TART").contains("unreachable"), "{screen}");
    assert!(screen.contains(" alpha "), "the last data stays:\n{screen}");

    // Same address and database: the dashboard finds it again by itself.
    let server = TestServer::start(Config {
        api_bind: api.to_string(),
        ..config
    })
    .await;
    let screen = dash
        .until("recovered", |s| {
            !s.contains("unreachable") && !s.contains("lost") && s.contains("healthy")
        })
        .await;
    assert!(screen.contains(" alpha "), "{screen}");
    let mut node = FakeNode::connect(server.telemetry_addr, named(61, 2, "beta")).await;
    node.send_events(&[best(602)]).await;
    dash.press(KeyCode::Char('2'));
    dash.until("live events flow again", |s| s.contains("slot=602"))
        .await;
}

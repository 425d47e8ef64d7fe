//! The dashboard's state and the one place it changes: [`App::update`] with a [`Msg`] (data
//! from the feed, a key, a clock tick). No I/O here, so every behaviour is testable by feeding
//! messages and looking at the state or at a rendering of it.

use std::cmp::Ordering;
use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::data::{Event, Health, Node, NodeDetail, Snapshot, Stats};
use super::rate::Rate;
use crate::robust::lower_median;

/// Live events kept for the events view.
pub const EVENTS_KEPT: usize = 1000;
/// Events kept for the node in the detail view.
const DETAIL_EVENTS_KEPT: usize = 200;
/// Seconds of events/s history: the header's sparkline spans the last five minutes.
const HISTORY_SECONDS: usize = 300;
/// Per-node history: enough for [`RATE_WINDOW`].
const NODE_HISTORY_SECONDS: usize = 10;
/// Events/s is the mean of this many whole seconds: steady to read, still live.
pub const RATE_WINDOW: usize = 5;
/// Rows PageUp / PageDown move.
const PAGE: isize = 10;

/// Everything that changes the dashboard.
#[derive(Debug)]
pub enum Msg {
    /// A REST poll succeeded.
    Snapshot(Box<Snapshot>),
    /// A REST poll failed; the next try is in `retry_in`.
    PollFailed {
        error: String,
        retry_in: Duration,
    },
    /// The node in the detail view, with its newest stored events.
    Detail(Box<NodeDetail>, Vec<Event>),
    /// The WebSocket is connected.
    LiveUp,
    /// An event from the WebSocket, with the server's clock when it was sent.
    LiveEvent(Box<Event>, DateTime<Utc>),
    /// Events from just before the WebSocket connected, newest first: shown, not counted.
    LiveRecent(Vec<Event>),
    /// The WebSocket is gone; the next try is in `retry_in`.
    LiveDown {
        error: String,
        retry_in: Duration,
    },
    Key(KeyEvent),
    /// The terminal changed size: only a redraw.
    Resize,
    /// The clock moved on (local time).
    Tick(DateTime<Utc>),
    /// A signal asked the dashboard to stop.
    Quit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Nodes,
    Events,
    Detail,
}

/// The state of one connection to the backend (REST or WebSocket).
#[derive(Debug, Clone, PartialEq)]
pub enum Link {
    Connecting,
    Up,
    Down {
        error: String,
        retry_in: Duration,
        /// Local time of the first failure in a row.
        since: DateTime<Utc>,
    },
}

impl Link {
    fn fail(&mut self, error: String, retry_in: Duration, now: DateTime<Utc>) {
        let since = match self {
            Link::Down { since, .. } => *since,
            _ => now,
        };
        *self = Link::Down {
            error,
            retry_in,
            since,
        };
    }
}

/// A column of the node table, which is also what it can be sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    Name,
    Version,
    Peer,
    State,
    Best,
    Finalized,
    Events,
    Rate,
    LastSeen,
}

impl Column {
    pub const ALL: [Column; 9] = [
        Column::Name,
        Column::Version,
        Column::Peer,
        Column::State,
        Column::Best,
        Column::Finalized,
        Column::Events,
        Column::Rate,
        Column::LastSeen,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Column::Name => "Name",
            Column::Version => "Version",
            Column::Peer => "Peer ID",
            Column::State => "State",
            Column::Best => "Best",
            Column::Finalized => "Final",
            Column::Events => "Events",
            Column::Rate => "Ev/s",
            Column::LastSeen => "Seen",
        }
    }

    fn next(self) -> Column {
        let i = Column::ALL.iter().position(|c| *c == self).unwrap_or(0);
        Column::ALL[(i + 1) % Column::ALL.len()]
    }

    /// Numbers and times are most useful highest / newest first.
    fn descending_first(self) -> bool {
        matches!(
            self,
            Column::Best | Column::Finalized | Column::Events | Column::Rate | Column::LastSeen
        )
    }
}

/// How a node is doing, in the order the State column sorts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum NodeState {
    Up,
    /// Connected, but no event for longer than `stale_after`.
    Stale,
    Down,
}

/// What the live stream told about one node.
#[derive(Debug, Clone)]
struct Live {
    best: Option<i64>,
    finalized: Option<i64>,
    /// The server's clock when it sent the node's latest event.
    seen: Option<DateTime<Utc>>,
    rate: Rate,
}

impl Live {
    fn new() -> Live {
        Live {
            best: None,
            finalized: None,
            seen: None,
            rate: Rate::new(NODE_HISTORY_SECONDS),
        }
    }
}

/// One line of the node table: the REST view of the node with what the live stream added.
#[derive(Debug)]
pub struct NodeRow<'a> {
    pub node: &'a Node,
    pub state: NodeState,
    pub best: Option<i64>,
    pub finalized: Option<i64>,
    pub rate: f64,
    pub last_seen: Option<DateTime<Utc>>,
}

/// The node shown in the detail view.
#[derive(Debug)]
pub struct Detail {
    pub node_id: String,
    /// `None` until the first answer.
    pub info: Option<Box<NodeDetail>>,
    /// Newest first, stored and live merged by row id.
    pub events: VecDeque<Event>,
}

/// What the dashboard is started with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The backend, e.g. `http://localhost:8080`.
    pub url: String,
    /// A connected node with no event for this long is shown as stale.
    pub stale_after: Duration,
    /// The backend's `api_token`, when it has one.
    pub token: Option<String>,
}

#[derive(Debug)]
pub struct App {
    pub settings: Settings,
    pub view: View,
    pub help: bool,
    /// Keys go to the current view's filter.
    pub typing: bool,
    pub quit: bool,
    /// Local time, from the last tick.
    now: DateTime<Utc>,
    /// The server's clock minus ours: node ages are measured in the server's time, so a skewed
    /// clock on the operator's machine does not mark every node stale.
    clock_offset: TimeDelta,
    pub rest: Link,
    pub live: Link,
    pub health: Option<Health>,
    pub stats: Stats,
    nodes: Vec<Node>,
    live_nodes: HashMap<String, Live>,
    pub total_rate: Rate,
    /// Live events, newest first.
    pub events: VecDeque<Event>,
    /// Events that arrived while paused, newest first.
    pub held: VecDeque<Event>,
    pub paused: bool,
    /// Rows of the events view scrolled past.
    pub events_scroll: usize,
    pub nodes_filter: String,
    pub events_filter: String,
    pub sort: Column,
    pub descending: bool,
    /// The selected node, by id, so the selection stays on it when the table reorders.
    selected: Option<String>,
    pub detail: Option<Detail>,
}

impl App {
    pub fn new(settings: Settings, now: DateTime<Utc>) -> App {
        App {
            settings,
            view: View::Nodes,
            help: false,
            typing: false,
            quit: false,
            now,
            clock_offset: TimeDelta::zero(),
            rest: Link::Connecting,
            live: Link::Connecting,
            health: None,
            stats: Stats::default(),
            nodes: Vec::new(),
            live_nodes: HashMap::new(),
            total_rate: Rate::new(HISTORY_SECONDS),
            events: VecDeque::new(),
            held: VecDeque::new(),
            paused: false,
            events_scroll: 0,
            nodes_filter: String::new(),
            events_filter: String::new(),
            sort: Column::State,
            descending: false,
            selected: None,
            detail: None,
        }
    }

    pub fn update(&mut self, msg: Msg) {
        match msg {
            Msg::Snapshot(snapshot) => {
                let Snapshot {
                    health,
                    stats,
                    nodes,
                    received,
                } = *snapshot;
                self.clock_offset = health.timestamp - received;
                self.health = Some(health);
                self.stats = stats;
                self.nodes = nodes;
                self.rest = Link::Up;
            }
            Msg::PollFailed { error, retry_in } => self.rest.fail(error, retry_in, self.now),
            Msg::Detail(detail, stored) => self.on_detail(detail, stored),
            Msg::LiveUp => self.live = Link::Up,
            Msg::LiveEvent(event, sent) => self.on_event(*event, sent),
            // From before this connection: they fill the list (or, after an outage, the gap)
            // by row id, paused or not; only live events are held while paused.
            Msg::LiveRecent(events) => merge(&mut self.events, events, EVENTS_KEPT),
            Msg::LiveDown { error, retry_in } => {
                self.live.fail(error, retry_in, self.now);
                // Blocks reported while disconnected were missed: the REST values are newer.
                for live in self.live_nodes.values_mut() {
                    live.best = None;
                    live.finalized = None;
                }
            }
            Msg::Key(key) => self.on_key(key),
            Msg::Resize => {}
            Msg::Tick(now) => {
                self.now = now;
                let second = now.timestamp();
                self.total_rate.roll(second);
                for live in self.live_nodes.values_mut() {
                    live.rate.roll(second);
                }
            }
            Msg::Quit => self.quit = true,
        }
    }

    /// The node whose details the feed should fetch.
    pub fn watched_node(&self) -> Option<String> {
        self.detail.as_ref().map(|d| d.node_id.clone())
    }

    /// Now, on the server's clock.
    pub fn server_now(&self) -> DateTime<Utc> {
        // A server clock near the ends of time must not panic the UI.
        self.now
            .checked_add_signed(self.clock_offset)
            .unwrap_or(self.now)
    }

    /// Local time, as of the last tick.
    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    pub fn connected_count(&self) -> usize {
        self.nodes.iter().filter(|n| n.is_connected).count()
    }

    /// The network's best and finalized slots as most connected nodes see them (the lower
    /// median, as `/api/stats` has it), with what the live stream has shown since; the server's
    /// (cached) figures while no connected node has reported one.
    pub fn network_blocks(&self) -> (i64, i64) {
        let (mut best, mut finalized) = (Vec::new(), Vec::new());
        for node in self.nodes.iter().filter(|n| n.is_connected) {
            let live = self.live_nodes.get(&node.node_id);
            best.extend(node.best_slot.max(live.and_then(|l| l.best)));
            finalized.extend(node.finalized_slot.max(live.and_then(|l| l.finalized)));
        }
        let robust = |slots: Vec<i64>, server: i64| {
            if slots.is_empty() {
                server
            } else {
                lower_median(slots)
            }
        };
        (
            robust(best, self.stats.best_block),
            robust(finalized, self.stats.finalized_block),
        )
    }

    fn row<'a>(&self, node: &'a Node) -> NodeRow<'a> {
        let live = self.live_nodes.get(&node.node_id);
        let last_seen = match (node.last_seen_at, live.and_then(|l| l.seen)) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let quiet_for = last_seen
            .or(node.connected_at)
            .map(|t| self.server_now() - t);
        let stale_after = TimeDelta::from_std(self.settings.stale_after).unwrap_or(TimeDelta::MAX);
        let state = if !node.is_connected {
            NodeState::Down
        } else if quiet_for.is_some_and(|q| q > stale_after) {
            NodeState::Stale
        } else {
            NodeState::Up
        };
        NodeRow {
            node,
            state,
            best: live.and_then(|l| l.best).or(node.best_slot),
            finalized: live.and_then(|l| l.finalized).or(node.finalized_slot),
            rate: live.map_or(0.0, |l| l.rate.per_second(RATE_WINDOW)),
            last_seen,
        }
    }

    /// The node table as shown: filtered, then sorted.
    pub fn node_rows(&self) -> Vec<NodeRow<'_>> {
        let filter = self.nodes_filter.to_lowercase();
        let mut rows: Vec<NodeRow<'_>> = self
            .nodes
            .iter()
            .filter(|n| {
                filter.is_empty()
                    || [
                        &n.implementation_name,
                        &n.implementation_version,
                        &n.node_id,
                    ]
                    .iter()
                    .any(|field| field.to_lowercase().contains(&filter))
            })
            .map(|n| self.row(n))
            .collect();
        rows.sort_by(|a, b| {
            compare(self.sort, a, b)
                .then_with(|| a.node.implementation_name.cmp(&b.node.implementation_name))
                .then_with(|| a.node.node_id.cmp(&b.node.node_id))
        });
        if self.descending {
            rows.reverse();
        }
        rows
    }

    /// Where the selection is in `rows` (the first row if the selected node is not there).
    pub fn selected_index(&self, rows: &[NodeRow<'_>]) -> usize {
        self.selected
            .as_ref()
            .and_then(|id| rows.iter().position(|r| &r.node.node_id == id))
            .unwrap_or(0)
    }

    /// The live events as shown: filtered, newest first.
    pub fn shown_events(&self) -> impl Iterator<Item = &Event> {
        let filter = self.events_filter.to_lowercase();
        let number: Option<i64> = filter.parse().ok();
        self.events.iter().filter(move |e| {
            filter.is_empty()
                || number == Some(e.event_type)
                || e.event_name.to_lowercase().contains(&filter)
        })
    }

    /// A node's name as the tables show it, if the node is known.
    pub fn node_name(&self, node_id: &str) -> Option<&str> {
        self.nodes
            .iter()
            .find(|n| n.node_id == node_id)
            .map(|n| n.implementation_name.as_str())
    }

    fn on_event(&mut self, event: Event, sent: DateTime<Utc>) {
        let second = self.now.timestamp();
        self.total_rate.add(second, 1);
        let live = self
            .live_nodes
            .entry(event.node_id.clone())
            .or_insert_with(Live::new);
        live.rate.add(second, 1);
        live.seen = Some(live.seen.map_or(sent, |seen| seen.max(sent)));
        match event.event_name.as_str() {
            "BestBlockChanged" => live.best = event.slot().or(live.best),
            "FinalizedBlockChanged" => live.finalized = event.slot().or(live.finalized),
            _ => {}
        }
        if let Some(detail) = self.detail.as_mut().filter(|d| d.node_id == event.node_id) {
            detail.events.push_front(event.clone());
            detail.events.truncate(DETAIL_EVENTS_KEPT);
        }
        if self.paused {
            self.held.push_front(event);
            self.held.truncate(EVENTS_KEPT);
        } else {
            self.events.push_front(event);
            self.events.truncate(EVENTS_KEPT);
            if self.events_scroll > 0 {
                // Keep the rows being read where they are.
                self.events_scroll = (self.events_scroll + 1).min(EVENTS_KEPT - 1);
            }
        }
    }

    fn on_detail(&mut self, info: Box<NodeDetail>, stored: Vec<Event>) {
        let Some(detail) = self
            .detail
            .as_mut()
            .filter(|d| d.node_id == info.node.node_id)
        else {
            return;
        };
        detail.info = Some(info);
        merge(&mut detail.events, stored, DETAIL_EVENTS_KEPT);
    }

    fn on_key(&mut self, key: KeyEvent) {
        if key.kind == KeyEventKind::Release {
            return;
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && matches!(key.code, KeyCode::Char('c') | KeyCode::Char('C')) {
            self.quit = true;
            return;
        }
        if self.typing {
            return self.on_filter_key(key.code);
        }
        if self.help {
            // Any key closes the help; `q` still quits.
            self.help = false;
            self.quit = key.code == KeyCode::Char('q');
            return;
        }
        match key.code {
            KeyCode::Char('q') => self.quit = true,
            KeyCode::Char('?') => self.help = true,
            KeyCode::Tab => self.show(match self.view {
                View::Nodes => View::Events,
                View::Events | View::Detail => View::Nodes,
            }),
            KeyCode::Char('1') => self.show(View::Nodes),
            KeyCode::Char('2') => self.show(View::Events),
            KeyCode::Char('/') if self.view != View::Detail => self.typing = true,
            code => match self.view {
                View::Nodes => self.on_nodes_key(code),
                View::Events => self.on_events_key(code),
                View::Detail => {
                    if matches!(
                        code,
                        KeyCode::Esc | KeyCode::Backspace | KeyCode::Left | KeyCode::Char('h')
                    ) {
                        self.show(View::Nodes);
                    }
                }
            },
        }
    }

    fn show(&mut self, view: View) {
        self.view = view;
        if view != View::Detail {
            self.detail = None;
        }
    }

    /// The filter of the current view.
    pub fn filter(&self) -> &str {
        match self.view {
            View::Events => &self.events_filter,
            View::Nodes | View::Detail => &self.nodes_filter,
        }
    }

    fn filter_mut(&mut self) -> &mut String {
        match self.view {
            View::Events => &mut self.events_filter,
            View::Nodes | View::Detail => &mut self.nodes_filter,
        }
    }

    fn on_filter_key(&mut self, code: KeyCode) {
        match code {
            KeyCode::Enter => self.typing = false,
            KeyCode::Esc => {
                self.typing = false;
                self.filter_mut().clear();
            }
            KeyCode::Backspace => {
                self.filter_mut().pop();
            }
            KeyCode::Char(c) => self.filter_mut().push(c),
            _ => {}
        }
        if self.view == View::Events {
            self.events_scroll = 0;
        }
    }

    fn on_nodes_key(&mut self, code: KeyCode) {
        match code {
            KeyCode::Up | KeyCode::Char('k') => self.move_selection(-1),
            KeyCode::Down | KeyCode::Char('j') => self.move_selection(1),
            KeyCode::PageUp => self.move_selection(-PAGE),
            KeyCode::PageDown => self.move_selection(PAGE),
            KeyCode::Home | KeyCode::Char('g') => self.move_selection(isize::MIN),
            KeyCode::End | KeyCode::Char('G') => self.move_selection(isize::MAX),
            KeyCode::Char('s') => {
                self.sort = self.sort.next();
                self.descending = self.sort.descending_first();
            }
            KeyCode::Char('r') => self.descending = !self.descending,
            KeyCode::Esc => self.nodes_filter.clear(),
            KeyCode::Enter => {
                let rows = self.node_rows();
                let Some(row) = rows.get(self.selected_index(&rows)) else {
                    return;
                };
                let node_id = row.node.node_id.clone();
                let events = self
                    .events
                    .iter()
                    .filter(|e| e.node_id == node_id)
                    .take(DETAIL_EVENTS_KEPT)
                    .cloned()
                    .collect();
                self.selected = Some(node_id.clone());
                self.detail = Some(Detail {
                    node_id,
                    info: None,
                    events,
                });
                self.view = View::Detail;
            }
            _ => {}
        }
    }

    fn move_selection(&mut self, by: isize) {
        let rows = self.node_rows();
        if rows.is_empty() {
            return;
        }
        let at = self.selected_index(&rows) as isize;
        let to = at.saturating_add(by).clamp(0, rows.len() as isize - 1);
        self.selected = Some(rows[to as usize].node.node_id.clone());
    }

    fn on_events_key(&mut self, code: KeyCode) {
        let last = self.shown_events().count().saturating_sub(1);
        let scroll = |by: isize| {
            (self.events_scroll as isize)
                .saturating_add(by)
                .clamp(0, last as isize) as usize
        };
        match code {
            KeyCode::Up | KeyCode::Char('k') => self.events_scroll = scroll(-1),
            KeyCode::Down | KeyCode::Char('j') => self.events_scroll = scroll(1),
            KeyCode::PageUp => self.events_scroll = scroll(-PAGE),
            KeyCode::PageDown => self.events_scroll = scroll(PAGE),
            KeyCode::Home | KeyCode::Char('g') => self.events_scroll = 0,
            KeyCode::End | KeyCode::Char('G') => self.events_scroll = last,
            KeyCode::Char('p') | KeyCode::Char(' ') => self.toggle_pause(),
            KeyCode::Esc => self.events_filter.clear(),
            _ => {}
        }
    }

    fn toggle_pause(&mut self) {
        self.paused = !self.paused;
        if !self.paused {
            let held = std::mem::take(&mut self.held);
            merge(&mut self.events, held.into(), EVENTS_KEPT);
        }
    }
}

/// Adds `more` to `list` (both newest first), once each by row id, keeping the newest `keep`.
fn merge(list: &mut VecDeque<Event>, more: Vec<Event>, keep: usize) {
    let mut merged: Vec<Event> = list.drain(..).chain(more).collect();
    merged.sort_by_key(|e| std::cmp::Reverse(e.id));
    merged.dedup_by_key(|e| e.id);
    merged.truncate(keep);
    *list = merged.into();
}

fn compare(column: Column, a: &NodeRow<'_>, b: &NodeRow<'_>) -> Ordering {
    let (x, y) = (a.node, b.node);
    match column {
        Column::Name => x.implementation_name.cmp(&y.implementation_name),
        Column::Version => x.implementation_version.cmp(&y.implementation_version),
        Column::Peer => x.node_id.cmp(&y.node_id),
        Column::State => a.state.cmp(&b.state),
        Column::Best => a.best.cmp(&b.best),
        Column::Finalized => a.finalized.cmp(&b.finalized),
        Column::Events => x.event_count.cmp(&y.event_count),
        Column::Rate => a.rate.total_cmp(&b.rate),
        Column::LastSeen => a.last_seen.cmp(&b.last_seen),
    }
}

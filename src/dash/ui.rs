//! Drawing: [`render`] turns an [`App`] into a frame and nothing else, so what it draws can be
//! checked in a `TestBackend`.

use chrono::{DateTime, TimeDelta, Utc};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Clear, Paragraph, Row, Sparkline, Table, TableState, Wrap};
use ratatui::Frame;
use serde_json::Value;

use super::app::{App, Column, Link, NodeState, View, RATE_WINDOW};
use super::data::Event;

/// Below this the layout cannot show a table row; a message is shown instead.
pub const MIN_WIDTH: u16 = 60;
pub const MIN_HEIGHT: u16 = 12;
/// Hex strings in event details are cut to this many characters.
const HEX_SHOWN: usize = 12;

pub fn render(app: &App, frame: &mut Frame) {
    let area = frame.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        let text = format!(
            "Terminal too small ({}x{}): tart-dash needs {MIN_WIDTH}x{MIN_HEIGHT}. q quits.",
            area.width, area.height
        );
        frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: true }), area);
        return;
    }
    let banner = banner(app);
    let [header, banner_area, body, footer] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Length(banner.len() as u16),
        Constraint::Fill(1),
        Constraint::Length(1),
    ])
    .areas(area);
    render_header(app, frame, header);
    frame.render_widget(Paragraph::new(banner), banner_area);
    match app.view {
        View::Nodes => render_nodes(app, frame, body),
        View::Events => render_events(app, frame, body),
        View::Detail => render_detail(app, frame, body),
    }
    frame.render_widget(footer_line(app), footer);
    if app.help {
        render_help(frame, area);
    }
}

fn render_header(app: &App, frame: &mut Frame, area: Rect) {
    let spark_width = (area.width / 4).min(60);
    let [text, spark] =
        Layout::horizontal([Constraint::Fill(1), Constraint::Length(spark_width)]).areas(area);
    let health = match (&app.rest, &app.health) {
        (Link::Up, Some(h)) => {
            let color = match h.status.as_str() {
                "healthy" => Color::Green,
                "degraded" => Color::Yellow,
                _ => Color::Red,
            };
            Span::styled(format!("● {}", h.status), Style::new().fg(color))
        }
        (Link::Connecting, _) => Span::styled("◌ connecting", Style::new().fg(Color::Yellow)),
        _ => Span::styled("○ unreachable", Style::new().fg(Color::Red)),
    };
    let mut first = vec![
        Span::styled("TART ", Style::new().bold()),
        Span::raw(format!("{}  ", app.settings.url)),
        health,
    ];
    if let Some(h) = &app.health {
        first.push(Span::raw(format!(
            "  v{}  up {}",
            h.version,
            duration(h.uptime_seconds)
        )));
    }
    let (best, finalized) = app.network_blocks();
    let second = Line::from(vec![
        Span::raw("nodes "),
        Span::styled(
            format!("{}/{}", app.connected_count(), app.node_count()),
            Style::new().bold(),
        ),
        Span::raw(" connected   events/s "),
        Span::styled(
            format!("{:.1}", app.total_rate.per_second(RATE_WINDOW)),
            Style::new().bold(),
        ),
        Span::raw("   best "),
        Span::styled(format!("#{best}"), Style::new().bold()),
        Span::raw("   finalized "),
        Span::styled(format!("#{finalized}"), Style::new().bold()),
    ]);
    frame.render_widget(Paragraph::new(vec![Line::from(first), second]), text);
    // Right-aligned: the newest second is always at the right edge.
    let shown = usize::from(spark_width);
    let mut history: Vec<u64> = app.total_rate.last(shown).collect();
    history.splice(0..0, std::iter::repeat_n(0, shown - history.len()));
    frame.render_widget(
        Sparkline::default()
            .data(&history)
            .style(Style::new().fg(Color::Cyan)),
        spark,
    );
}

/// A line for each connection to the backend that is not up.
fn banner(app: &App) -> Vec<Line<'static>> {
    let alert = Style::new().fg(Color::White).bg(Color::Red).bold();
    let mut lines = Vec::new();
    match &app.rest {
        Link::Up => {}
        Link::Connecting => lines.push(Line::styled(
            format!("connecting to {} …", app.settings.url),
            Style::new().fg(Color::Black).bg(Color::Yellow),
        )),
        Link::Down {
            error,
            retry_in,
            since,
        } => lines.push(Line::styled(
            format!(
                "⚠ TART unreachable for {}, showing the last data; next try in {:.1}s: {error}",
                ago(app.now() - *since),
                retry_in.as_secs_f64()
            ),
            alert,
        )),
    }
    if let Link::Down {
        error, retry_in, ..
    } = &app.live
    {
        lines.push(Line::styled(
            format!(
                "⚠ live stream lost; reconnecting in {:.1}s: {error}",
                retry_in.as_secs_f64()
            ),
            alert,
        ));
    }
    lines
}

fn render_nodes(app: &App, frame: &mut Frame, area: Rect) {
    let rows = app.node_rows();
    let selected = app.selected_index(&rows);
    let now = app.server_now();
    let header = Row::new(Column::ALL.map(|c| {
        let arrow = match (c == app.sort, app.descending) {
            (false, _) => "",
            (true, false) => "▲",
            (true, true) => "▼",
        };
        format!("{}{arrow}", c.title())
    }))
    .style(Style::new().bold().underlined());
    let table_rows = rows.iter().map(|r| {
        let (state, color) = match r.state {
            NodeState::Up => ("● up", Color::Green),
            NodeState::Stale => ("◐ stale", Color::Yellow),
            NodeState::Down => ("○ down", Color::Red),
        };
        let row = Row::new([
            Cell::from(r.node.implementation_name.clone()),
            Cell::from(r.node.implementation_version.clone()),
            Cell::from(short_id(&r.node.node_id)),
            Cell::from(state).style(Style::new().fg(color)),
            Cell::from(slot(r.best)),
            Cell::from(slot(r.finalized)),
            Cell::from(r.node.event_count.to_string()),
            Cell::from(format!("{:.1}", r.rate)),
            Cell::from(r.last_seen.map_or("—".into(), |t| ago(now - t))),
        ]);
        match r.state {
            NodeState::Up => row,
            NodeState::Stale => row.style(Style::new().fg(Color::Yellow)),
            NodeState::Down => row.style(Style::new().fg(Color::DarkGray)),
        }
    });
    let title = format!(
        " Nodes {}/{} · sorted by {} {}",
        rows.len(),
        app.node_count(),
        app.sort.title(),
        filter_note(&app.nodes_filter, app.typing)
    );
    let table = Table::new(
        table_rows,
        [
            Constraint::Fill(2),
            Constraint::Fill(1),
            Constraint::Length(9),
            Constraint::Length(7),
            // `#` and a 32-bit slot.
            Constraint::Length(11),
            Constraint::Length(11),
            Constraint::Length(8),
            Constraint::Length(6),
            Constraint::Length(5),
        ],
    )
    .header(header)
    .block(Block::bordered().title(title))
    .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED))
    .highlight_symbol("▶ ");
    let mut state = TableState::default()
        .with_selected(Some(selected))
        .with_offset(centred_offset(selected, rows.len(), area.height));
    frame.render_stateful_widget(table, area, &mut state);
}

/// Keeps the selected row mid-screen once past the first page, so the view does not depend on
/// scroll history.
fn centred_offset(selected: usize, len: usize, height: u16) -> usize {
    // Two borders and the header row.
    let visible = usize::from(height.saturating_sub(3)).max(1);
    selected
        .saturating_sub(visible / 2)
        .min(len.saturating_sub(visible))
}

fn filter_note(filter: &str, typing: bool) -> String {
    match (filter.is_empty(), typing) {
        (true, false) => String::new(),
        (_, true) => format!("· filter: {filter}█ "),
        (false, false) => format!("· filter: {filter} "),
    }
}

fn render_events(app: &App, frame: &mut Frame, area: Rect) {
    let mut title = format!(
        " Live events {}",
        filter_note(&app.events_filter, app.typing)
    );
    if app.paused {
        title.push_str(&format!("· PAUSED, {} new held ", app.held.len()));
    }
    let events = app.shown_events().skip(app.events_scroll);
    frame.render_widget(events_table(app, events, true, title, area.height), area);
}

/// The events table of the events view (`with_node`) and of the node detail.
fn events_table<'a>(
    app: &App,
    events: impl Iterator<Item = &'a Event>,
    with_node: bool,
    title: String,
    height: u16,
) -> Table<'a> {
    let rows = events.take(usize::from(height)).map(|e| {
        let mut cells = vec![Cell::from(e.timestamp.format("%H:%M:%S%.3f").to_string())];
        if with_node {
            let name = app.node_name(&e.node_id).unwrap_or("?");
            cells.push(Cell::from(format!("{name} {}", short_id(&e.node_id))));
        }
        cells.push(Cell::from(e.event_name.clone()).style(Style::new().fg(Color::Cyan)));
        cells.push(Cell::from(summary(e.fields())));
        Row::new(cells)
    });
    let mut widths = vec![Constraint::Length(12)];
    if with_node {
        widths.push(Constraint::Length(24));
    }
    widths.extend([Constraint::Length(24), Constraint::Fill(1)]);
    let mut titles = vec!["Time"];
    if with_node {
        titles.push("Node");
    }
    titles.extend(["Event", "Details"]);
    Table::new(rows, widths)
        .header(Row::new(titles).style(Style::new().bold().underlined()))
        .block(Block::bordered().title(title))
}

fn render_detail(app: &App, frame: &mut Frame, area: Rect) {
    let Some(detail) = &app.detail else {
        return;
    };
    let [info_area, status_area, events_area] = Layout::vertical([
        Constraint::Length(9),
        Constraint::Length(5),
        Constraint::Fill(1),
    ])
    .areas(area);
    let label = |text: &'static str| Span::styled(format!("{text:<13}"), Style::new().bold());
    let now = app.server_now();
    let (title, info_lines, status_lines) = match &detail.info {
        None => (
            format!(" Node {} ", short_id(&detail.node_id)),
            vec![Line::raw("loading …")],
            Vec::new(),
        ),
        Some(d) => {
            let n = &d.node;
            let i = &d.node_info;
            let state = if n.is_connected {
                format!("connected since {}", time(n.connected_at))
            } else {
                format!("disconnected at {}", time(n.disconnected_at))
            };
            let seen = n.last_seen_at.map_or("no event yet".into(), |t| {
                format!("last event {} ago", ago(now - t))
            });
            // Null: the node's parameter layout has no such constant (V in GP 0.8).
            let param = |name: &str| match i.params.get(name) {
                Some(Value::Null) => "n/a".into(),
                Some(value) => value.to_string(),
                None => "?".into(),
            };
            let protocol = match (n.protocol_version, n.params_layout.as_deref()) {
                (Some(version), Some(layout)) => format!("protocol {version}, params {layout}"),
                _ => "protocol ?".into(),
            };
            let flags = if i.flags & 1 == 1 {
                "PVM recompiler"
            } else {
                "PVM interpreter"
            };
            let address = match i.address["ip"].as_str().unwrap_or("?") {
                ip if ip.contains(':') => format!("[{ip}]:{}", i.address["port"]),
                ip => format!("{ip}:{}", i.address["port"]),
            };
            let mut info = vec![
                Line::from(vec![label("State"), Span::raw(format!("{state}, {seen}"))]),
                Line::from(vec![label("Node ID"), Span::raw(n.node_id.clone())]),
                Line::from(vec![
                    label("Software"),
                    Span::raw(format!(
                        "{} {}   GP {}   {protocol}   flags {:#x} ({flags})",
                        n.implementation_name, n.implementation_version, i.gp_version, i.flags
                    )),
                ]),
                Line::from(vec![
                    label("JAM params"),
                    Span::raw(format!(
                        "cores {}   validators {}   epoch {} slots of {}s",
                        param("core_count"),
                        param("validator_count"),
                        param("epoch_length"),
                        param("slot_seconds")
                    )),
                ]),
                Line::from(vec![
                    label("Address"),
                    Span::raw(format!(
                        "{address}   connected from {}",
                        d.remote_address.as_deref().unwrap_or("?")
                    )),
                ]),
                Line::from(vec![
                    label("Blocks"),
                    Span::raw(format!(
                        "best {}   finalized {}   {} events",
                        slot(n.best_slot),
                        slot(n.finalized_slot),
                        n.event_count
                    )),
                ]),
                Line::from(vec![label("Note"), Span::raw(i.note.clone())]),
            ];
            if let Some(diagnosis) = &i.params_diagnosis {
                info.push(Line::from(vec![
                    label("Params"),
                    Span::styled(diagnosis.clone(), Style::default().fg(Color::Yellow)),
                ]));
            }
            let status = match &d.latest_status {
                None => vec![Line::raw("no Status event yet")],
                Some(s) => vec![
                    Line::from(vec![
                        label("Reported"),
                        Span::raw(format!(
                            "{} ({} ago)",
                            time(Some(s.timestamp)),
                            ago(now - s.timestamp)
                        )),
                    ]),
                    Line::raw(summary(s.data.get("Status").unwrap_or(&s.data))),
                ],
            };
            (
                format!(
                    " Node {} {} ",
                    n.implementation_name, n.implementation_version
                ),
                info,
                status,
            )
        }
    };
    frame.render_widget(
        Paragraph::new(info_lines).block(Block::bordered().title(title)),
        info_area,
    );
    frame.render_widget(
        Paragraph::new(status_lines)
            .wrap(Wrap { trim: true })
            .block(Block::bordered().title(" Latest status ")),
        status_area,
    );
    let title = format!(" Events of this node ({}) ", detail.events.len());
    frame.render_widget(
        events_table(app, detail.events.iter(), false, title, events_area.height),
        events_area,
    );
}

fn footer_line(app: &App) -> Line<'static> {
    let keys: &[(&str, &str)] = if app.typing {
        &[
            ("Enter", "keep filter"),
            ("Esc", "clear filter"),
            ("Ctrl-C", "quit"),
        ]
    } else {
        match app.view {
            View::Nodes => &[
                ("q", "quit"),
                ("?", "help"),
                ("Tab", "events"),
                ("↑↓", "select"),
                ("Enter", "details"),
                ("s", "sort"),
                ("r", "reverse"),
                ("/", "filter"),
            ],
            View::Events => &[
                ("q", "quit"),
                ("?", "help"),
                ("Tab", "nodes"),
                ("↑↓", "scroll"),
                ("p", if app.paused { "resume" } else { "pause" }),
                ("/", "filter"),
            ],
            View::Detail => &[("q", "quit"), ("?", "help"), ("Esc", "back")],
        }
    };
    Line::from(
        keys.iter()
            .flat_map(|(key, what)| {
                [
                    Span::styled(format!(" {key} "), Style::new().reversed()),
                    Span::raw(format!(" {what}  ")),
                ]
            })
            .collect::<Vec<_>>(),
    )
}

const HELP: &[(&str, &str)] = &[
    ("q, Ctrl-C", "quit"),
    ("?", "this help (any key closes it)"),
    ("Tab, 1, 2", "nodes / live events"),
    ("↑ ↓ k j", "move (PgUp PgDn Home End g G)"),
    ("Enter", "details of the selected node"),
    ("Esc", "back from details; clear the filter"),
    ("s", "sort by the next column"),
    ("r", "reverse the sort"),
    (
        "/",
        "filter: nodes by name, version or ID; events by name or type number",
    ),
    ("p, space", "pause / resume the live events"),
];

fn render_help(frame: &mut Frame, area: Rect) {
    let width = area.width.min(76);
    let height = area.height.min(HELP.len() as u16 + 4);
    let popup = Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    };
    let mut lines: Vec<Line> = HELP
        .iter()
        .map(|(key, what)| {
            Line::from(vec![
                Span::styled(format!("{key:<11}"), Style::new().bold()),
                Span::raw(*what),
            ])
        })
        .collect();
    lines.push(Line::raw(""));
    lines.push(Line::raw(
        "Stale: connected, but no event for a while. Down: disconnected.",
    ));
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: true })
            .block(Block::bordered().title(" Keys ")),
        popup,
    );
}

/// `abcdef12…`: enough to tell nodes apart by eye.
fn short_id(id: &str) -> String {
    match id.get(..8) {
        Some(head) if id.len() > 8 => format!("{head}…"),
        _ => id.to_owned(),
    }
}

fn slot(slot: Option<i64>) -> String {
    slot.map_or("—".into(), |s| format!("#{s}"))
}

fn time(t: Option<DateTime<Utc>>) -> String {
    t.map_or("?".into(), |t| t.format("%Y-%m-%d %H:%M:%S").to_string())
}

/// A short age: `42s`, `5m`, `3h`, `2d`.
fn ago(delta: TimeDelta) -> String {
    let s = delta.num_seconds().max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

/// `3d 04:05:06`, or `04:05:06` under a day.
fn duration(seconds: u64) -> String {
    let (d, h, m, s) = (
        seconds / 86400,
        seconds / 3600 % 24,
        seconds / 60 % 60,
        seconds % 60,
    );
    if d > 0 {
        format!("{d}d {h:02}:{m:02}:{s:02}")
    } else {
        format!("{h:02}:{m:02}:{s:02}")
    }
}

/// An event's fields on one line, plain values before lists and structures (which are long):
/// `slot=5 header_hash=0xabababab…`.
fn summary(fields: &Value) -> String {
    match fields {
        Value::Object(map) => {
            let mut pairs: Vec<(&String, &Value)> = map.iter().collect();
            pairs.sort_by_key(|(_, v)| v.is_array() || v.is_object());
            pairs
                .iter()
                .map(|(k, v)| format!("{k}={}", compact(v)))
                .collect::<Vec<_>>()
                .join(" ")
        }
        other => compact(other),
    }
}

fn compact(value: &Value) -> String {
    match value {
        Value::String(s) if s.len() > HEX_SHOWN && is_hex(s) => format!("{}…", &s[..HEX_SHOWN]),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `0x` and hex digits only (so it can be cut anywhere); other strings come from nodes as is.
fn is_hex(s: &str) -> bool {
    s.strip_prefix("0x")
        .is_some_and(|digits| digits.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_forms() {
        assert_eq!(short_id(&"ab".repeat(32)), "abababab…");
        assert_eq!(short_id("abc"), "abc");
        assert_eq!(ago(TimeDelta::seconds(-5)), "0s");
        assert_eq!(ago(TimeDelta::seconds(59)), "59s");
        assert_eq!(ago(TimeDelta::seconds(7200)), "2h");
        assert_eq!(duration(3 * 86400 + 3661), "3d 01:01:01");
        let fields = serde_json::json!({"cores": [1, 2], "slot": 5, "header_hash": format!("0x{}", "ab".repeat(32))});
        assert_eq!(
            summary(&fields),
            "header_hash=0xababababab… slot=5 cores=[1,2]"
        );
        let reason = serde_json::json!("0x🦀 not hex, from a node");
        assert_eq!(compact(&reason), "0x🦀 not hex, from a node");
    }
}

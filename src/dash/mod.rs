//! `tart-dash`, the operators' terminal dashboard. It talks to a running TART over its REST API
//! and WebSocket only, so it works from any machine that reaches the API port.
//!
//! Model, update, view: [`app::App`] is the whole state and changes only in
//! [`app::App::update`], one [`app::Msg`] at a time; [`ui::render`] draws it; [`feed`] is the
//! network side, feeding messages over a channel. [`run`] wires them to a real terminal; tests
//! wire the same parts to a `TestBackend`.

pub mod app;
pub mod data;
pub mod feed;
pub mod rate;
pub mod ui;

use std::io;
use std::time::Duration;

use chrono::Utc;
use crossterm::event::Event as TermEvent;
use ratatui::backend::Backend;
use ratatui::Terminal;
use tokio::sync::{mpsc, watch};

use app::{App, Msg, Settings};
use feed::FeedConfig;

/// How often the clock ticks: rates roll over and the screen redraws with the latest data.
const TICK: Duration = Duration::from_millis(250);
/// Messages queued between the feed and the UI; a full queue slows the WebSocket reader, not
/// the UI.
const QUEUE: usize = 4096;

/// The API's base URL: `--host`/`--port` if either is given, else `TART_URL` (`url`), else
/// `http://localhost:8080`.
pub fn base_url(host: Option<&str>, port: Option<u16>, url: Option<&str>) -> String {
    match (host, port, url) {
        (None, None, Some(url)) => url.trim_end_matches('/').to_owned(),
        (host, port, _) => format!(
            "http://{}:{}",
            host.unwrap_or("localhost"),
            port.unwrap_or(8080)
        ),
    }
}

/// Runs the dashboard in the terminal until the operator quits. Call inside an actix runtime.
pub async fn run(settings: Settings, refresh: Duration) -> io::Result<()> {
    let (tx, mut rx) = mpsc::channel(QUEUE);
    let (watch_tx, watch_rx) = watch::channel(None);
    let _feed = feed::start(
        FeedConfig {
            url: settings.url.clone(),
            token: settings.token.clone(),
            refresh,
            max_backoff: Duration::from_secs(10),
        },
        tx.clone(),
        watch_rx,
    );
    read_terminal_events(tx.clone());
    quit_on_signals(tx)?;
    let mut app = App::new(settings, Utc::now());
    // Raw mode, the alternate screen, and a panic hook that restores the terminal.
    let mut terminal = ratatui::try_init()?;
    let result = event_loop(&mut terminal, &mut app, &mut rx, &watch_tx).await;
    ratatui::restore();
    result
}

async fn event_loop<B: Backend>(
    terminal: &mut Terminal<B>,
    app: &mut App,
    rx: &mut mpsc::Receiver<Msg>,
    watched: &watch::Sender<Option<String>>,
) -> io::Result<()>
where
    io::Error: From<B::Error>,
{
    let mut ticks = tokio::time::interval(TICK);
    let mut redraw = true;
    while !app.quit {
        if redraw {
            terminal.draw(|frame| ui::render(app, frame))?;
        }
        let msg = tokio::select! {
            msg = rx.recv() => msg.unwrap_or(Msg::Quit),
            _ = ticks.tick() => Msg::Tick(Utc::now()),
        };
        // Data alone waits for the next tick to be drawn: a busy stream must not redraw
        // thousands of times a second.
        redraw = matches!(msg, Msg::Key(_) | Msg::Resize | Msg::Tick(_));
        app.update(msg);
        while let Ok(msg) = rx.try_recv() {
            redraw |= matches!(msg, Msg::Key(_) | Msg::Resize);
            app.update(msg);
        }
        watched.send_if_modified(|node| {
            let want = app.watched_node();
            let changed = *node != want;
            *node = want;
            changed
        });
    }
    Ok(())
}

/// Keys and resizes, read on a thread of their own: crossterm's reads block.
fn read_terminal_events(tx: mpsc::Sender<Msg>) {
    std::thread::spawn(move || loop {
        let msg = match crossterm::event::read() {
            Ok(TermEvent::Key(key)) => Msg::Key(key),
            Ok(TermEvent::Resize(..)) => Msg::Resize,
            Ok(_) => continue,
            Err(_) => Msg::Quit,
        };
        if tx.blocking_send(msg).is_err() {
            return;
        }
    });
}

/// SIGINT, SIGTERM and SIGHUP (the SSH session went away) end the dashboard the same way `q`
/// does, so the terminal is restored. (In raw mode Ctrl-C arrives as a key instead.)
fn quit_on_signals(tx: mpsc::Sender<Msg>) -> io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut signals = [
        signal(SignalKind::interrupt())?,
        signal(SignalKind::terminate())?,
        signal(SignalKind::hangup())?,
    ];
    actix_web::rt::spawn(async move {
        let [a, b, c] = &mut signals;
        tokio::select! {
            _ = a.recv() => {}
            _ = b.recv() => {}
            _ = c.recv() => {}
        }
        let _ = tx.send(Msg::Quit).await;
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_tart_url_which_wins_over_the_default() {
        assert_eq!(base_url(None, None, None), "http://localhost:8080");
        assert_eq!(
            base_url(None, None, Some("https://tart.example:443/")),
            "https://tart.example:443"
        );
        assert_eq!(
            base_url(None, Some(9090), Some("http://x:1")),
            "http://localhost:9090"
        );
        assert_eq!(base_url(Some("tart"), None, None), "http://tart:8080");
    }
}

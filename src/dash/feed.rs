//! The dashboard's network side: one task polls the REST API every refresh interval, one holds
//! the WebSocket. Both turn what they get into [`Msg`]s on a channel and retry with backoff when
//! the backend is away, so the UI never waits on the network.
//!
//! Uses awc, so the tasks need an actix runtime (`actix_web::rt::System`, `#[actix_web::test]`).

use std::time::Duration;

use actix_web::rt::task::JoinHandle;
use awc::ws::{Frame, Message};
use awc::Client;
use futures_util::{SinkExt, StreamExt};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use tokio::sync::{mpsc, watch};

use super::app::{Msg, EVENTS_KEPT};
use super::data::{Event, Health, LiveMessage, Node, NodeDetail, Snapshot, Stats};

/// The first retry after a failure; each further one waits twice as long, up to `max_backoff`.
const FIRST_RETRY: Duration = Duration::from_millis(250);
/// How long one HTTP request or WebSocket handshake may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The server pings every few seconds (`ws_heartbeat_ms`) and sends stats: this much silence
/// means the connection is dead even if no FIN arrived (a dropped network, a suspended host).
const LIVE_SILENCE: Duration = Duration::from_secs(30);
/// Large enough for a thousand nodes in `/api/nodes`, or a big event.
const BODY_LIMIT: usize = 64 << 20;
/// Stored events fetched for the node in the detail view.
const DETAIL_EVENTS: usize = 50;

#[derive(Debug, Clone)]
pub struct FeedConfig {
    /// `http://host:port` of the backend's API.
    pub url: String,
    /// Sent as a bearer token with every request when set.
    pub token: Option<String>,
    /// Time between REST polls while the backend answers.
    pub refresh: Duration,
    /// The longest wait between retries while it does not.
    pub max_backoff: Duration,
}

/// The running feed tasks; dropping it stops them.
pub struct Feed {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Feed {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Starts polling and streaming into `out`. `watched` names the node whose details to fetch too.
pub fn start(
    config: FeedConfig,
    out: mpsc::Sender<Msg>,
    watched: watch::Receiver<Option<String>>,
) -> Feed {
    let poll = actix_web::rt::spawn(poll(config.clone(), out.clone(), watched));
    let live = actix_web::rt::spawn(live(config, out));
    Feed {
        tasks: vec![poll, live],
    }
}

/// Waits that double after each failure.
struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    fn new(max: Duration) -> Backoff {
        Backoff {
            next: FIRST_RETRY.min(max),
            max,
        }
    }

    fn failed(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(self.max);
        wait
    }

    fn reset(&mut self) {
        self.next = FIRST_RETRY.min(self.max);
    }
}

fn client(token: Option<&str>) -> Client {
    let builder = Client::builder().timeout(REQUEST_TIMEOUT);
    match token {
        Some(token) => builder.bearer_auth(token).finish(),
        None => builder.finish(),
    }
}

async fn poll(
    config: FeedConfig,
    out: mpsc::Sender<Msg>,
    mut watched: watch::Receiver<Option<String>>,
) {
    let client = client(config.token.as_deref());
    let mut backoff = Backoff::new(config.max_backoff);
    loop {
        let (msg, wait) = match snapshot(&client, &config.url).await {
            Ok(snapshot) => {
                backoff.reset();
                (Msg::Snapshot(Box::new(snapshot)), config.refresh)
            }
            Err(error) => {
                let retry_in = backoff.failed();
                (Msg::PollFailed { error, retry_in }, retry_in)
            }
        };
        let reachable = matches!(msg, Msg::Snapshot(_));
        if out.send(msg).await.is_err() {
            return;
        }
        let node = watched.borrow_and_update().clone();
        if let Some(node_id) = node.filter(|_| reachable) {
            // A failure here (say, the node is not stored yet) only leaves the detail as it was.
            if let Ok((detail, events)) = detail(&client, &config.url, &node_id).await {
                if out
                    .send(Msg::Detail(Box::new(detail), events))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            // Another node opened: fetch it now rather than at the next refresh.
            changed = watched.changed() => if changed.is_err() { return },
        }
    }
}

async fn snapshot(client: &Client, url: &str) -> Result<Snapshot, String> {
    #[derive(Deserialize)]
    struct Nodes {
        nodes: Vec<Node>,
    }
    let (health, stats, nodes) = futures_util::try_join!(
        get::<Health>(client, url, "/api/health/detailed"),
        get::<Stats>(client, url, "/api/stats"),
        get::<Nodes>(client, url, "/api/nodes"),
    )?;
    Ok(Snapshot {
        health,
        stats,
        nodes: nodes.nodes,
        received: chrono::Utc::now(),
    })
}

async fn detail(
    client: &Client,
    url: &str,
    node_id: &str,
) -> Result<(NodeDetail, Vec<Event>), String> {
    #[derive(Deserialize)]
    struct Events {
        events: Vec<Event>,
    }
    let node_path = format!("/api/nodes/{node_id}");
    let events_path = format!("{node_path}/events?limit={DETAIL_EVENTS}");
    let (detail, events) = futures_util::try_join!(
        get::<NodeDetail>(client, url, &node_path),
        get::<Events>(client, url, &events_path),
    )?;
    Ok((detail, events.events))
}

/// GETs `path` and reads its JSON. A body in the expected shape is an answer whatever the status
/// (the detailed health check says `unhealthy` with a 503); anything else is an error naming the
/// path and the server's `error` message.
async fn get<T: DeserializeOwned>(client: &Client, url: &str, path: &str) -> Result<T, String> {
    let mut response = client
        .get(format!("{url}{path}"))
        .send()
        .await
        .map_err(|e| format!("GET {path}: {e}"))?;
    let body = response
        .body()
        .limit(BODY_LIMIT)
        .await
        .map_err(|e| format!("GET {path}: {e}"))?;
    serde_json::from_slice(&body).map_err(|e| {
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or_else(|| e.to_string());
        format!("GET {path}: {} {message}", response.status())
    })
}

async fn live(config: FeedConfig, out: mpsc::Sender<Msg>) {
    let client = client(config.token.as_deref());
    let mut backoff = Backoff::new(config.max_backoff);
    loop {
        let Err(error) = stream(&client, &config.url, &out, &mut backoff).await else {
            return;
        };
        let retry_in = backoff.failed();
        if out.send(Msg::LiveDown { error, retry_in }).await.is_err() {
            return;
        }
        tokio::time::sleep(retry_in).await;
    }
}

/// Holds one WebSocket connection until it fails (`Err`) or the dashboard is gone (`Ok`).
async fn stream(
    client: &Client,
    url: &str,
    out: &mpsc::Sender<Msg>,
    backoff: &mut Backoff,
) -> Result<(), String> {
    let (_, mut ws) = client
        .ws(format!("{url}/api/ws"))
        .max_frame_size(BODY_LIMIT)
        .connect()
        .await
        .map_err(|e| format!("WebSocket: {e}"))?;
    if out.send(Msg::LiveUp).await.is_err() {
        return Ok(());
    }
    // What happened just before: the events view is not empty on start or after an outage.
    let ask = format!(r#"{{"type":"GetRecentEvents","limit":{EVENTS_KEPT}}}"#);
    ws.send(Message::Text(ask.into()))
        .await
        .map_err(|e| e.to_string())?;
    loop {
        let frame = match tokio::time::timeout(LIVE_SILENCE, ws.next()).await {
            Err(_) => return Err(format!("nothing heard for {}s", LIVE_SILENCE.as_secs())),
            Ok(None) => return Err("the server closed the connection".into()),
            Ok(Some(frame)) => frame.map_err(|e| e.to_string())?,
        };
        // Only a connection that delivers starts the next failure's backoff afresh.
        backoff.reset();
        let msg = match frame {
            Frame::Text(text) => match std::str::from_utf8(&text).map(LiveMessage::parse) {
                Ok(Ok(LiveMessage::Event(event, sent))) => Msg::LiveEvent(event, sent),
                Ok(Ok(LiveMessage::Recent(events))) => Msg::LiveRecent(events),
                _ => continue,
            },
            Frame::Ping(payload) => {
                // The server closes clients it does not hear from.
                ws.send(Message::Pong(payload))
                    .await
                    .map_err(|e| e.to_string())?;
                continue;
            }
            Frame::Close(reason) => {
                let why = reason.and_then(|r| r.description).unwrap_or_default();
                return Err(format!("the server closed the connection {why}")
                    .trim_end()
                    .to_owned());
            }
            Frame::Binary(_) | Frame::Pong(_) | Frame::Continuation(_) => continue,
        };
        if out.send(msg).await.is_err() {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_max_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(1));
        let waits: Vec<u128> = (0..5).map(|_| b.failed().as_millis()).collect();
        assert_eq!(waits, [250, 500, 1000, 1000, 1000]);
        b.reset();
        assert_eq!(b.failed().as_millis(), 250);
    }
}

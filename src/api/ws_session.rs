//! One actor per WebSocket client of `/api/ws` (actix-web-actors), on the HTTP worker thread of
//! its connection.
//!
//! Client messages (JSON text, tagged by `type`): `Subscribe` with a `filter` (`{"type":"All"}`
//! or `{"type":"Node","node_id":"…"}`), `Unsubscribe`, `GetRecentEvents` with a `limit`, `Ping`.
//! A session starts subscribed to all events, as the first TART did.
//!
//! Server messages are `{"type", "data", "timestamp"}`: `connected`, `event`, `stats` (every
//! `ws_stats_interval_ms`), `pong`, `subscribed`, `unsubscribed`, `recent_events`, and `error` for
//! a message that could not be understood (the connection stays open).
//!
//! Events come through a queue from the broadcaster, bounded in bytes there. Requests that wait
//! for the broadcaster (`Subscribe`, `GetRecentEvents`) use `ctx.wait`, which also stops this
//! session reading its client meanwhile: a client cannot pile up replies faster than they go out.

use std::fmt::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web_actors::ws::{self, CloseCode, CloseReason};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;

use crate::api::{self, ApiContext};
use crate::jip3::{time, Event};
use crate::live::broadcaster::RECENT_EVENTS;
use crate::messages::{
    Filter, GetStats, Join, Leave, LiveBatch, LiveEvent, Recent, SessionLink, SetFilter,
};
use crate::store::Pool;

/// Events `GetRecentEvents` returns without a `limit`.
const DEFAULT_RECENT: usize = 100;

#[derive(Debug, Deserialize)]
#[serde(tag = "type")]
enum ClientMessage {
    Subscribe { filter: FilterSpec },
    Unsubscribe,
    GetRecentEvents { limit: Option<usize> },
    Ping,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type")]
enum FilterSpec {
    All,
    Node { node_id: String },
}

type Queue = (
    mpsc::UnboundedSender<LiveBatch>,
    mpsc::UnboundedReceiver<LiveBatch>,
);

pub struct WsSession {
    api: Arc<ApiContext>,
    /// The pool of this session's worker thread.
    pool: Pool,
    link: Arc<SessionLink>,
    /// Until `started` hands the sender to the broadcaster and subscribes to the receiver.
    queue: Option<Queue>,
    session: u64,
    subscription: Option<Filter>,
    events_sent: u64,
    opened_at: Instant,
    last_heard: Instant,
}

impl WsSession {
    pub fn new(api: Arc<ApiContext>, pool: Pool, link: Arc<SessionLink>) -> WsSession {
        WsSession {
            api,
            pool,
            link,
            queue: Some(mpsc::unbounded_channel()),
            session: 0,
            subscription: Some(Filter::All),
            events_sent: 0,
            opened_at: Instant::now(),
            last_heard: Instant::now(),
        }
    }

    fn send(&self, ctx: &mut ws::WebsocketContext<Self>, kind: &str, data: serde_json::Value) {
        ctx.text(
            json!({ "type": kind, "data": data, "timestamp": crate::time::now() }).to_string(),
        );
    }

    fn send_error(&self, ctx: &mut ws::WebsocketContext<Self>, message: String) {
        log::debug!("WebSocket client {}: {message}", self.session);
        self.send(ctx, "error", json!({ "message": message }));
    }

    /// Registers with the broadcaster and greets the client, before anything else is handled.
    fn join(
        &mut self,
        sender: mpsc::UnboundedSender<LiveBatch>,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        let (api, pool, link) = (self.api.clone(), self.pool.clone(), self.link.clone());
        // The (cached) database read first: events start queueing only once the session joins.
        let greeting = async move {
            let snapshot = api.stats.get(&pool).await;
            let join = Join {
                queue: sender,
                link,
            };
            (api.live.join.send(join).await, snapshot)
        };
        ctx.wait(
            greeting
                .into_actor(self)
                .map(|(joined, snapshot), act, ctx| {
                    let ack = match joined {
                        Ok(ack) => ack,
                        Err(e) => {
                            log::error!("WebSocket session cannot join the broadcaster: {e}");
                            close(
                                ctx,
                                CloseCode::Error,
                                "the live stream is not running".into(),
                            );
                            return;
                        }
                    };
                    act.session = ack.session;
                    log::info!("WebSocket client {} connected", act.session);
                    let nodes = snapshot.as_ref().map(|s| &s.connected_nodes).ok();
                    let total_nodes = nodes.map(Vec::len);
                    act.send(
                        ctx,
                        "connected",
                        json!({
                            "message": "Connected to TART telemetry",
                            "recent_events": ack.stats.recent_events,
                            "total_nodes": total_nodes,
                            // Per connected node: protocol version, GP version, layout.
                            "nodes": nodes,
                            "broadcaster_stats": ack.stats,
                            "subscription": filter_json(&act.subscription),
                        }),
                    );
                }),
        );
    }

    fn on_text(&mut self, text: &str, ctx: &mut ws::WebsocketContext<Self>) {
        let message = match serde_json::from_str::<ClientMessage>(text) {
            Ok(message) => message,
            Err(e) => return self.send_error(ctx, format!("invalid message: {e}")),
        };
        match message {
            ClientMessage::Subscribe { filter } => match filter {
                FilterSpec::All => self.subscribe(Some(Filter::All), ctx),
                FilterSpec::Node { node_id } => match api::parse_node_id(&node_id) {
                    Ok(node_id) => self.subscribe(Some(Filter::Node(node_id)), ctx),
                    Err(e) => self.send_error(ctx, e.to_string()),
                },
            },
            ClientMessage::Unsubscribe => self.subscribe(None, ctx),
            ClientMessage::GetRecentEvents { limit } => {
                let limit = limit.unwrap_or(DEFAULT_RECENT).min(RECENT_EVENTS);
                let recent = self.api.live.recent.send(Recent {
                    session: self.session,
                    limit,
                });
                ctx.wait(
                    recent
                        .into_actor(self)
                        .map(|events, act, ctx| match events {
                            Ok(events) => ctx.text(recent_message(&events)),
                            Err(e) => {
                                act.send_error(ctx, format!("the live stream is not running: {e}"))
                            }
                        }),
                );
            }
            ClientMessage::Ping => self.send(
                ctx,
                "pong",
                json!({
                    "events_received": self.events_sent,
                    "uptime_ms": self.opened_at.elapsed().as_millis() as u64,
                }),
            ),
        }
    }

    /// Changes the filter at the broadcaster, then acknowledges. Events already queued under the
    /// old filter are filtered here too, so none that do not match arrive after the ack.
    fn subscribe(&mut self, filter: Option<Filter>, ctx: &mut ws::WebsocketContext<Self>) {
        let set = self.api.live.set_filter.send(SetFilter {
            session: self.session,
            filter: filter.clone(),
        });
        ctx.wait(set.into_actor(self).map(move |result, act, ctx| {
            if let Err(e) = result {
                return act.send_error(ctx, format!("the live stream is not running: {e}"));
            }
            act.subscription = filter;
            let (kind, message) = match act.subscription {
                Some(_) => ("subscribed", "subscription updated"),
                None => ("unsubscribed", "no live events until the next Subscribe"),
            };
            let data = json!({ "filter": filter_json(&act.subscription), "message": message });
            act.send(ctx, kind, data);
        }));
    }

    fn heartbeat(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        self.link.mark_alive();
        let timeout = self.api.config.ws_client_timeout();
        if self.last_heard.elapsed() > timeout {
            log::info!(
                "closing WebSocket client {}: nothing heard for {} ms",
                self.session,
                timeout.as_millis()
            );
            let why = format!("no message or pong within {} ms", timeout.as_millis());
            close(ctx, CloseCode::Policy, why);
        } else {
            ctx.ping(b"");
        }
    }

    fn send_stats(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        let (api, pool) = (self.api.clone(), self.pool.clone());
        let gather = async move {
            let broadcaster = api.live.stats.send(GetStats).await;
            (broadcaster, api.stats.get(&pool).await)
        };
        ctx.spawn(
            gather
                .into_actor(self)
                .map(|(broadcaster, snapshot), act, ctx| {
                    let (database, connections) = match snapshot {
                        Ok(s) => (
                            json!(s.blocks),
                            json!({
                                "total": s.connected_nodes.len(),
                                "nodes": s.connected_nodes.iter().map(|n| &n.node_id).collect::<Vec<_>>(),
                            }),
                        ),
                        Err(e) => (json!({ "error": e.to_string() }), serde_json::Value::Null),
                    };
                    let broadcaster = broadcaster.map_or(serde_json::Value::Null, |b| json!(b));
                    act.send(
                        ctx,
                        "stats",
                        json!({
                            "database": database,
                            "broadcaster": broadcaster,
                            "connections": connections,
                        }),
                    );
                }),
        );
    }
}

fn close(ctx: &mut ws::WebsocketContext<WsSession>, code: CloseCode, why: String) {
    ctx.close(Some(CloseReason {
        code,
        description: Some(why),
    }));
    ctx.stop();
}

fn filter_json(filter: &Option<Filter>) -> serde_json::Value {
    match filter {
        Some(Filter::All) => json!({ "type": "All" }),
        Some(Filter::Node(node_id)) => json!({ "type": "Node", "node_id": node_id }),
        None => serde_json::Value::Null,
    }
}

/// Writes an event's fields as `{"id":…,…,"event":…`, leaving the object open. The event's JSON
/// is made once for all sessions (on first use) and copied, never parsed again; the other values
/// need no escaping (numbers, hex, RFC 3339 times, event names).
fn write_event(out: &mut String, e: &LiveEvent) {
    let _ = write!(
        out,
        r#"{{"id":{},"node_id":"{}","event_id":{},"event_type":{},"event_name":"{}","timestamp":"{}","event":{}"#,
        e.id,
        e.node_id,
        e.event_id,
        e.discriminator,
        Event::type_name(e.discriminator),
        time::to_rfc3339(e.timestamp),
        e.json(),
    );
}

fn event_message(e: &LiveEvent, latency: Duration, sent_at: &str) -> String {
    let mut out = String::with_capacity(e.json().len() + 320);
    out.push_str(r#"{"type":"event","data":"#);
    write_event(&mut out, e);
    // Milliseconds with three decimals, from integers (float formatting cost more than the rest).
    let micros = latency.as_micros();
    let _ = write!(
        out,
        r#","latency_ms":{}.{:03}}},"timestamp":"{sent_at}"}}"#,
        micros / 1000,
        micros % 1000,
    );
    out
}

fn recent_message(events: &[Arc<LiveEvent>]) -> String {
    let size: usize = events.iter().map(|e| e.json().len() + 256).sum();
    let mut out = String::with_capacity(size + 128);
    let _ = write!(
        out,
        r#"{{"type":"recent_events","data":{{"count":{},"events":["#,
        events.len()
    );
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_event(&mut out, e);
        out.push('}');
    }
    let _ = write!(out, r#"]}},"timestamp":"{}"}}"#, crate::time::now());
    out
}

impl Actor for WsSession {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.api.metrics.ws_sessions.inc();
        let (sender, receiver) = self.queue.take().expect("started once");
        let events = futures_util::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|event| (event, receiver))
        });
        ctx.add_stream(events);
        self.join(sender, ctx);
        ctx.run_interval(self.api.config.ws_heartbeat(), |act, ctx| {
            act.heartbeat(ctx)
        });
        ctx.run_interval(self.api.config.ws_stats_interval(), |act, ctx| {
            act.send_stats(ctx)
        });
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.api.metrics.ws_sessions.dec();
        self.link.mark_stopped();
        // Policy: one message per session lifetime; the broadcaster handles it in O(1).
        self.api.live.leave.do_send(Leave {
            session: self.session,
        });
        log::info!(
            "WebSocket client {} disconnected after {} events",
            self.session,
            self.events_sent
        );
    }
}

/// Events from the broadcaster.
impl StreamHandler<LiveBatch> for WsSession {
    fn handle(&mut self, events: LiveBatch, ctx: &mut Self::Context) {
        // One clock reading and one formatted "now" for the batch: they are sent together.
        let (now, sent_at) = (Instant::now(), crate::time::now());
        for event in events {
            self.link.took(&event);
            if !self
                .subscription
                .as_ref()
                .is_some_and(|f| f.matches(&event))
            {
                continue;
            }
            let latency = now.saturating_duration_since(event.read_at);
            self.api
                .metrics
                .broadcast_latency
                .observe(latency.as_secs_f64());
            ctx.text(event_message(&event, latency, &sent_at));
            self.events_sent += 1;
        }
    }

    /// The broadcaster dropped the queue: this client was too slow, or the server is stopping.
    fn finished(&mut self, ctx: &mut Self::Context) {
        if self.link.was_evicted() {
            let why = format!(
                "client too slow: more than {} bytes of events waiting",
                self.api.config.ws_client_queue_bytes
            );
            close(ctx, CloseCode::Policy, why);
        } else {
            close(ctx, CloseCode::Away, "server shutting down".into());
        }
    }
}

/// Frames from the client.
impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for WsSession {
    fn handle(&mut self, frame: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        self.last_heard = Instant::now();
        match frame {
            Ok(ws::Message::Text(text)) => self.on_text(&text, ctx),
            Ok(ws::Message::Binary(_)) => self.send_error(
                ctx,
                "binary messages are not supported; send JSON text".into(),
            ),
            Ok(ws::Message::Continuation(_)) => {
                // Not reassembled (browsers send each message as one frame).
                log::info!(
                    "WebSocket client {} sent a fragmented message",
                    self.session
                );
                close(
                    ctx,
                    CloseCode::Unsupported,
                    "fragmented messages are not supported".into(),
                );
            }
            Ok(ws::Message::Ping(payload)) => ctx.pong(&payload),
            Ok(ws::Message::Close(reason)) => {
                log::debug!("WebSocket client {} closed: {reason:?}", self.session);
                ctx.close(reason);
                ctx.stop();
            }
            Ok(ws::Message::Pong(_) | ws::Message::Nop) => {}
            Err(e) => {
                log::info!("WebSocket client {}: protocol error: {e}", self.session);
                close(ctx, CloseCode::Protocol, e.to_string());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_messages_are_valid_json_with_the_stored_form() {
        let event = LiveEvent {
            id: 42,
            node_id: "ab".repeat(32).into(),
            event_id: 7,
            discriminator: 11,
            timestamp: 27_900_000_123_456,
            fields: [&5u32.to_le_bytes()[..], &[0; 32]].concat().into(),
            dialect: crate::jip3::Dialect::v1(2),
            json: Default::default(),
            read_at: Instant::now(),
        };
        let message: serde_json::Value = serde_json::from_str(&event_message(
            &event,
            Duration::from_micros(1500),
            &crate::time::now(),
        ))
        .unwrap();
        assert_eq!(message["type"], "event");
        assert_eq!(message["data"]["id"], 42);
        assert_eq!(message["data"]["event_type"], 11);
        assert_eq!(message["data"]["event_name"], "BestBlockChanged");
        assert_eq!(message["data"]["latency_ms"], 1.5);
        assert_eq!(message["data"]["timestamp"], "2025-11-20T10:00:00.123456Z");
        assert_eq!(message["data"]["event"]["BestBlockChanged"]["slot"], 5);
        let events = [Arc::new(event)];
        let recent: serde_json::Value = serde_json::from_str(&recent_message(&events)).unwrap();
        assert_eq!(recent["data"]["count"], 1);
        assert_eq!(recent["data"]["events"][0]["node_id"], "ab".repeat(32));
        let empty: serde_json::Value = serde_json::from_str(&recent_message(&[])).unwrap();
        assert_eq!(empty["data"]["events"], json!([]));
    }
}

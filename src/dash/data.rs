//! What the dashboard reads from TART, as the REST API and the WebSocket write it (see
//! `api::rest`, `api::health` and `api::ws_session`). Only the fields the dashboard shows;
//! everything else in the JSON is ignored, so a newer server with more fields still works.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

/// A node as `GET /api/nodes` lists it.
#[derive(Debug, Clone, Deserialize)]
pub struct Node {
    pub node_id: String,
    pub implementation_name: String,
    pub implementation_version: String,
    pub is_connected: bool,
    pub event_count: i64,
    pub connected_at: Option<DateTime<Utc>>,
    pub last_seen_at: Option<DateTime<Utc>>,
    pub disconnected_at: Option<DateTime<Utc>>,
    /// Absent from servers older than the dashboard.
    #[serde(default)]
    pub best_slot: Option<i64>,
    #[serde(default)]
    pub finalized_slot: Option<i64>,
    /// What its latest handshake said; absent from TART servers that spoke version 0 only.
    #[serde(default)]
    pub protocol_version: Option<i64>,
    #[serde(default)]
    pub params_layout: Option<String>,
}

/// `GET /api/nodes/{node_id}`.
#[derive(Debug, Clone, Deserialize)]
pub struct NodeDetail {
    #[serde(flatten)]
    pub node: Node,
    pub node_info: NodeInfo,
    pub remote_address: Option<String>,
    #[serde(default)]
    pub latest_status: Option<StatusReport>,
}

/// The node's NodeInformation.
#[derive(Debug, Clone, Deserialize)]
pub struct NodeInfo {
    /// The JAM parameters (`core_count`, `validator_count`, ...): a constant the layout lacks
    /// is null, and the whole is null for an unknown layout.
    pub params: Value,
    /// For an unknown layout: what the server found wrong with the parameters.
    #[serde(default)]
    pub params_diagnosis: Option<String>,
    pub flags: i64,
    pub gp_version: String,
    pub note: String,
    /// `{"ip", "port"}`.
    pub address: Value,
}

/// The latest Status event of a node.
#[derive(Debug, Clone, Deserialize)]
pub struct StatusReport {
    pub timestamp: DateTime<Utc>,
    /// `{"Status": {...}}`, the event's JSON form.
    pub data: Value,
}

/// `GET /api/health/detailed` (200 when healthy or degraded, 503 with the same body when not).
#[derive(Debug, Clone, Deserialize)]
pub struct Health {
    /// `healthy`, `degraded` or `unhealthy`.
    pub status: String,
    /// The server's clock when it answered.
    pub timestamp: DateTime<Utc>,
    pub uptime_seconds: u64,
    pub version: String,
}

/// `GET /api/stats`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Stats {
    pub best_block: i64,
    pub finalized_block: i64,
}

/// An event, from the REST API (`data`) or the WebSocket (`event`).
#[derive(Debug, Clone, Deserialize)]
pub struct Event {
    /// The row id, the same in both, so the two can be merged.
    pub id: i64,
    pub node_id: String,
    pub event_type: i64,
    pub event_name: String,
    /// The node's own time for the event.
    pub timestamp: DateTime<Utc>,
    /// `{"BestBlockChanged": {"slot": ..., ...}}`.
    #[serde(alias = "event")]
    pub data: Value,
}

impl Event {
    /// The event's fields without the name around them.
    pub fn fields(&self) -> &Value {
        self.data.get(&self.event_name).unwrap_or(&self.data)
    }

    pub fn slot(&self) -> Option<i64> {
        self.fields().get("slot").and_then(Value::as_i64)
    }
}

/// One REST poll: everything the header and the node table show.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub health: Health,
    pub stats: Stats,
    pub nodes: Vec<Node>,
    /// Our clock when the answers arrived, to compare with the server's.
    pub received: DateTime<Utc>,
}

/// A message of `/api/ws` the dashboard cares about.
#[derive(Debug)]
pub enum LiveMessage {
    /// An event, with the server's clock when it sent it.
    Event(Box<Event>, DateTime<Utc>),
    /// The answer to `GetRecentEvents`: events from before the connection, newest first.
    Recent(Vec<Event>),
    /// Anything else (`connected`, `stats`, `pong`, ...).
    Other,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    data: Value,
    timestamp: DateTime<Utc>,
}

impl LiveMessage {
    pub fn parse(text: &str) -> Result<LiveMessage, serde_json::Error> {
        let envelope: Envelope = serde_json::from_str(text)?;
        Ok(match envelope.kind.as_str() {
            "event" => LiveMessage::Event(
                Box::new(serde_json::from_value(envelope.data)?),
                envelope.timestamp,
            ),
            "recent_events" => {
                #[derive(Deserialize)]
                struct Recent {
                    events: Vec<Event>,
                }
                LiveMessage::Recent(serde_json::from_value::<Recent>(envelope.data)?.events)
            }
            _ => LiveMessage::Other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_events_parse_and_other_messages_are_skipped() {
        let event = r#"{"id":42,"node_id":"ab","event_id":7,"event_type":11,
            "event_name":"BestBlockChanged","timestamp":"2025-11-20T10:00:00.123456Z",
            "event":{"BestBlockChanged":{"slot":5,"header_hash":"0x00"}},"latency_ms":1.5}"#;
        let sent_at = r#""timestamp":"2025-11-20T10:00:01Z""#;
        let text = format!(r#"{{"type":"event","data":{event},{sent_at}}}"#);
        let LiveMessage::Event(parsed, sent) = LiveMessage::parse(&text).unwrap() else {
            panic!("an event");
        };
        assert_eq!(parsed.id, 42);
        assert_eq!(parsed.slot(), Some(5));
        assert_eq!(sent.to_rfc3339(), "2025-11-20T10:00:01+00:00");
        let recent = format!(
            r#"{{"type":"recent_events","data":{{"count":1,"events":[{event}]}},{sent_at}}}"#
        );
        let LiveMessage::Recent(events) = LiveMessage::parse(&recent).unwrap() else {
            panic!("recent events");
        };
        assert_eq!(events[0].id, 42);
        let stats = format!(r#"{{"type":"stats","data":{{}},{sent_at}}}"#);
        assert!(matches!(
            LiveMessage::parse(&stats).unwrap(),
            LiveMessage::Other
        ));
        assert!(LiveMessage::parse("not json").is_err());
    }
}

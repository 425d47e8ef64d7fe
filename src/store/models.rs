//! Rows as the ingest path writes them.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::schema::{blocks, decode_failures, node_sessions, nodes, rate_limit_gaps};
use crate::jip3::{Dialect, ProtocolVersion};

/// A node's row as (re)written when it connects: its NodeInformation and connection state.
/// Counters and `first_seen_at` of an existing row are kept.
#[derive(Debug, Clone, Insertable, AsChangeset)]
#[diesel(table_name = nodes)]
pub struct NodeConnection {
    pub node_id: String,
    pub peer_id: Vec<u8>,
    pub implementation_name: String,
    pub implementation_version: String,
    pub gp_version: String,
    pub node_flags: i64,
    pub note: String,
    pub genesis_hash: String,
    /// The named constants of a known layout (null where the layout lacks one); NULL for an
    /// unknown layout.
    #[diesel(treat_none_as_null = true)]
    pub jam_params: Option<serde_json::Value>,
    #[diesel(treat_none_as_null = true)]
    pub core_count: Option<i32>,
    #[diesel(treat_none_as_null = true)]
    pub validator_count: Option<i32>,
    pub protocol_version: i16,
    pub params_layout: &'static str,
    pub jam_params_raw: Option<Vec<u8>>,
    pub peer_address: serde_json::Value,
    pub remote_address: Option<String>,
    pub current_session_id: Option<i64>,
    pub is_connected: bool,
    pub connected_at: Option<DateTime<Utc>>,
    pub last_seen_at: Option<DateTime<Utc>>,
    #[diesel(treat_none_as_null = true)]
    pub disconnected_at: Option<DateTime<Utc>>,
}

/// A session as its handshake starts it: accepted (with its node), or refused (no node; the
/// refusal, and what the node claimed to be when that could be read).
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = node_sessions)]
pub struct NewSession {
    pub session_id: i64,
    pub node_id: Option<String>,
    pub remote_address: Option<String>,
    pub connected_at: DateTime<Utc>,
    /// The version byte as sent, also when it was refused.
    pub protocol_version: Option<i16>,
    pub gp_version: Option<String>,
    pub params_layout: Option<&'static str>,
    /// Its core count for reading its events; None when its parameters' layout is unknown.
    pub core_count: Option<i32>,
    pub refusal: Option<&'static str>,
    pub disconnected_at: Option<DateTime<Utc>>,
    pub disconnect_reason: Option<String>,
    pub claimed_node_id: Option<String>,
    pub claimed_implementation: Option<String>,
}

impl NewSession {
    /// The session of a node whose handshake was accepted.
    pub fn accepted(
        info: &crate::jip3::NodeInformation,
        session_id: i64,
        remote_address: Option<String>,
        at: DateTime<Utc>,
    ) -> Self {
        NewSession {
            session_id,
            node_id: Some(info.node_id()),
            remote_address,
            connected_at: at,
            protocol_version: Some(i16::from(info.protocol_version.as_u8())),
            gp_version: Some(info.gp_version.storable().into_owned()),
            params_layout: Some(info.params.layout().name()),
            core_count: info.dialect().core_count.map(i32::from),
            refusal: None,
            disconnected_at: None,
            disconnect_reason: None,
            claimed_node_id: None,
            claimed_implementation: None,
        }
    }
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = decode_failures)]
pub struct NewDecodeFailure {
    pub id: i64,
    pub node_id: String,
    pub session_id: i64,
    pub event_id: i64,
    pub created_at: DateTime<Utc>,
    pub error: String,
    pub raw: Vec<u8>,
}

/// A run of consecutive events of one session that the rate limiter did not admit.
#[derive(Debug, Clone, PartialEq, Insertable, Queryable, Selectable)]
#[diesel(table_name = rate_limit_gaps)]
pub struct RateLimitGap {
    pub session_id: i64,
    pub first_event_id: i64,
    pub node_id: String,
    pub last_event_id: i64,
    pub first_timestamp: DateTime<Utc>,
    pub last_timestamp: DateTime<Utc>,
    pub event_count: i64,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = blocks)]
pub struct NewBlock {
    pub event_row: i64,
    pub node_id: String,
    pub kind: &'static str,
    pub slot: Option<i64>,
    pub header_hash: Option<String>,
    pub timestamp: DateTime<Utc>,
}

impl NodeConnection {
    /// The node row for a connection that just sent `info`.
    pub fn new(
        info: &crate::jip3::NodeInformation,
        session_id: i64,
        remote_address: Option<String>,
        at: DateTime<Utc>,
    ) -> Self {
        NodeConnection {
            node_id: info.node_id(),
            peer_id: info.peer_id.0.to_vec(),
            implementation_name: info.implementation_name.storable().into_owned(),
            implementation_version: info.implementation_version.storable().into_owned(),
            gp_version: info.gp_version.storable().into_owned(),
            node_flags: i64::from(info.node_flags),
            note: info.note.storable().into_owned(),
            genesis_hash: crate::jip3::types::to_hex(&info.genesis_header_hash.0),
            jam_params: info
                .params
                .constants()
                .map(|c| serde_json::to_value(c).expect("parameters serialise")),
            core_count: info.core_count().map(i32::from),
            validator_count: info
                .params
                .constants()
                .and_then(|c| c.validator_count)
                .map(i32::from),
            protocol_version: i16::from(info.protocol_version.as_u8()),
            params_layout: info.params.layout().name(),
            jam_params_raw: Some(info.params.to_bytes()),
            peer_address: serde_json::to_value(info.peer_address).expect("address serialises"),
            remote_address,
            current_session_id: Some(session_id),
            is_connected: true,
            connected_at: Some(at),
            last_seen_at: Some(at),
            disconnected_at: None,
        }
    }
}

/// The dialect a session's events are read in, from its row's protocol version and core count.
pub fn session_dialect(protocol_version: Option<i16>, core_count: Option<i32>) -> Dialect {
    Dialect {
        version: if protocol_version == Some(0) {
            ProtocolVersion::V0
        } else {
            ProtocolVersion::V1
        },
        core_count: core_count.and_then(|c| u16::try_from(c).ok()),
    }
}

/// An event as a query selects it for reading (`event_type`, `body`, and its session's
/// `protocol_version` and `core_count`): everything making its JSON needs.
#[derive(Debug, QueryableByName)]
pub struct StoredEvent {
    #[diesel(sql_type = diesel::sql_types::SmallInt)]
    pub event_type: i16,
    #[diesel(sql_type = diesel::sql_types::Bytea)]
    pub body: Vec<u8>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::SmallInt>)]
    pub protocol_version: Option<i16>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Integer>)]
    pub core_count: Option<i32>,
}

impl StoredEvent {
    fn dialect(&self) -> crate::jip3::Dialect {
        session_dialect(self.protocol_version, self.core_count)
    }

    /// The event's JSON, as the codec writes it.
    pub fn json(&self) -> String {
        crate::jip3::stored::json(self.event_type as u8, &self.body, self.dialect())
    }

    /// The Event ID its reference field holds, if it has one (and decodes).
    pub fn reference_target(&self) -> Option<u64> {
        let mut event =
            crate::jip3::stored::decode(self.event_type as u8, &self.body, self.dialect()).ok()?;
        event.reference_mut().map(|(id, _)| *id)
    }
}

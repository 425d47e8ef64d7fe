//! The node and event endpoints of the REST API.
//!
//! Events carry `event_type` as the JIP-3 discriminator (a number, as existing clients filter on
//! it, e.g. `event_type == 11`) and `event_name` as its name (`"BestBlockChanged"`).

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use super::{parse_node_id, read, ApiError, ApiPool};
use crate::jip3::Event;
use crate::store::queries::{self, EventRow, NodeFilter};

/// Events returned when `limit` is not given.
pub const DEFAULT_LIMIT: u64 = 50;
/// Larger `limit`s are capped to this.
pub const MAX_LIMIT: u64 = 1000;

/// Nodes listed when `limit` is not given, and at most: JAM's full validator set fits one page.
pub const NODES_PAGE: u64 = 1024;

#[derive(Deserialize)]
pub struct NodesQuery {
    limit: Option<String>,
    offset: Option<String>,
    connected: Option<String>,
    implementation: Option<String>,
}

impl NodesQuery {
    fn filter(&self) -> Result<NodeFilter, ApiError> {
        let connected = match self.connected.as_deref() {
            None => None,
            Some("true") => Some(true),
            Some("false") => Some(false),
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "invalid connected `{other}`: expected true or false"
                )))
            }
        };
        Ok(NodeFilter {
            connected,
            implementation: self.implementation.clone(),
            limit: whole_number("limit", self.limit.as_deref(), NODES_PAGE, NODES_PAGE)?,
            offset: whole_number("offset", self.offset.as_deref(), 0, i64::MAX as u64)?,
        })
    }
}

/// A query parameter that must be a whole number: `default` when absent, capped at `max`.
fn whole_number(name: &str, text: Option<&str>, default: u64, max: u64) -> Result<i64, ApiError> {
    let Some(text) = text else {
        return Ok(default as i64);
    };
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::bad_request(format!(
            "invalid {name} `{text}`: expected a whole number (at most {max})"
        )));
    }
    // All digits: only too large to parse can fail, and that is capped like any large value.
    Ok(text.parse::<u64>().unwrap_or(u64::MAX).min(max) as i64)
}

/// `GET /api/nodes?limit=&offset=&connected=&implementation=` → `{"nodes": [...], "total": N}`,
/// connected first, then by last seen; each with the slot of its latest best and finalized
/// block. `total` counts every node the filters select; a page holds at most 1,024.
pub async fn nodes(
    query: web::Query<NodesQuery>,
    pool: web::Data<ApiPool>,
) -> Result<HttpResponse, ApiError> {
    let filter = query.filter()?;
    let (nodes, total) = read(&pool.0, async |conn| {
        queries::list_nodes(conn, &filter).await
    })
    .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "nodes": nodes, "total": total })))
}

/// `GET /api/nodes/{node_id}` → the node with its `node_info` and `latest_status` (null before
/// any Status event); 400 for a malformed id, 404 for an unknown node.
pub async fn node(
    path: web::Path<String>,
    pool: web::Data<ApiPool>,
) -> Result<HttpResponse, ApiError> {
    let node_id = parse_node_id(&path)?;
    match read(&pool.0, async |conn| queries::node(conn, &node_id).await).await? {
        Some(node) => Ok(HttpResponse::Ok().json(node)),
        None => Err(unknown_node(&node_id)),
    }
}

#[derive(Deserialize)]
pub struct EventsQuery {
    limit: Option<String>,
}

impl EventsQuery {
    /// `limit`: a whole number, capped at [`MAX_LIMIT`]; anything else is a 400.
    fn limit(&self) -> Result<i64, ApiError> {
        whole_number("limit", self.limit.as_deref(), DEFAULT_LIMIT, MAX_LIMIT)
    }
}

/// An event with its name beside its discriminator.
#[derive(Serialize)]
struct EventOut {
    #[serde(flatten)]
    row: EventRow,
    event_name: &'static str,
}

/// A page of events.
#[derive(Serialize)]
struct EventsPage {
    events: Vec<EventOut>,
    truncated: bool,
}

/// `{"events": [...], "truncated": bool}`: `truncated` when the page was cut to its byte bound
/// (fewer events than asked for although there are more).
fn events_response(rows: Vec<EventRow>) -> HttpResponse {
    let truncated = rows
        .first()
        .is_some_and(|r| r.available > rows.len() as i64);
    let events: Vec<EventOut> = rows
        .into_iter()
        .map(|row| EventOut {
            event_name: u8::try_from(row.event_type)
                .ok()
                .and_then(Event::name_of)
                .unwrap_or("Unknown"),
            row,
        })
        .collect();
    HttpResponse::Ok().json(EventsPage { events, truncated })
}

/// `GET /api/events?limit=N` → the newest events of all nodes, newest first.
pub async fn events(
    query: web::Query<EventsQuery>,
    pool: web::Data<ApiPool>,
) -> Result<HttpResponse, ApiError> {
    let limit = query.limit()?;
    let rows = read(&pool.0, async |conn| {
        queries::recent_events(conn, None, limit).await
    })
    .await?;
    Ok(events_response(rows))
}

/// `GET /api/nodes/{node_id}/events?limit=N` → the node's newest events, newest first; 400 for a
/// malformed id, 404 for an unknown node.
pub async fn node_events(
    path: web::Path<String>,
    query: web::Query<EventsQuery>,
    pool: web::Data<ApiPool>,
) -> Result<HttpResponse, ApiError> {
    let node_id = parse_node_id(&path)?;
    let limit = query.limit()?;
    let rows = read(&pool.0, async |conn| {
        let rows = queries::recent_events(conn, Some(&node_id), limit).await?;
        // Only an empty answer needs telling "no events yet" from "no such node".
        let known = !rows.is_empty() || queries::node_exists(conn, &node_id).await?;
        Ok(known.then_some(rows))
    })
    .await?;
    rows.map(events_response)
        .ok_or_else(|| unknown_node(&node_id))
}

fn unknown_node(node_id: &str) -> ApiError {
    ApiError::not_found(format!("no node {node_id}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(text: Option<&str>) -> Result<i64, ApiError> {
        EventsQuery {
            limit: text.map(str::to_owned),
        }
        .limit()
    }

    #[test]
    fn limit_defaults_caps_and_refuses_non_numbers() {
        assert_eq!(limit(None).unwrap(), 50);
        assert_eq!(limit(Some("7")).unwrap(), 7);
        assert_eq!(limit(Some("5000")).unwrap(), 1000);
        assert_eq!(limit(Some("99999999999999999999999")).unwrap(), 1000);
        for bad in ["", "ten", "-1", "1.5", " 3"] {
            assert!(limit(Some(bad)).is_err(), "{bad:?}");
        }
    }
}

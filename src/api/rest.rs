//! The node and event endpoints of the REST API.
//!
//! Events carry `event_type` as the JIP-3 discriminator (a number, as existing clients filter on
//! it, e.g. `event_type == 11`) and `event_name` as its name (`"BestBlockChanged"`).

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use super::{parse_node_id, read, ApiError, ApiPool};
use crate::jip3::Event;
use crate::store::queries::{self, EventRow};

/// Events returned when `limit` is not given.
pub const DEFAULT_LIMIT: u64 = 50;
/// Larger `limit`s are capped to this.
pub const MAX_LIMIT: u64 = 1000;

/// `GET /api/nodes` → `{"nodes": [...]}`, connected first, then by last seen; each with the
/// slot of its latest best and finalized block.
pub async fn nodes(pool: web::Data<ApiPool>) -> Result<HttpResponse, ApiError> {
    let nodes = read(&pool.0, async |conn| queries::list_nodes(conn).await).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "nodes": nodes })))
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
        let Some(text) = self.limit.as_deref() else {
            return Ok(DEFAULT_LIMIT as i64);
        };
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ApiError::bad_request(format!(
                "invalid limit `{text}`: expected a whole number (at most {MAX_LIMIT} are returned)"
            )));
        }
        // All digits: only too large to parse can fail, and that is capped like any large value.
        Ok(text.parse::<u64>().unwrap_or(u64::MAX).min(MAX_LIMIT) as i64)
    }
}

/// An event with its name beside its discriminator.
#[derive(Serialize)]
struct EventOut {
    #[serde(flatten)]
    row: EventRow,
    event_name: &'static str,
}

fn events_response(rows: Vec<EventRow>) -> HttpResponse {
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
    HttpResponse::Ok().json(serde_json::json!({ "events": events }))
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

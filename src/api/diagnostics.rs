//! Per node, what its implementer needs to see what it does wrong: its sessions (connected,
//! refused, disconnected, with reasons), its decode failures (error, claimed type, raw bytes) and
//! its failure counters.

use actix_web::{web, HttpResponse};

use super::params::{whole_number, Params};
use super::rest::read_of_node;
use super::{parse_node_id, ApiError, ApiPool};
use crate::store::diagnostics;

/// Rows a page holds when `limit` is not given, and at most.
const DEFAULT_LIMIT: u64 = 100;
const MAX_LIMIT: u64 = 1000;

/// `limit` and `before` (the cursor: the last id of the previous page).
fn page(query: &[(String, String)]) -> Result<(Option<i64>, i64), ApiError> {
    let params = Params::new(query, &["limit", "before"], &[])?;
    let before = params.before()?;
    let limit = whole_number("limit", params.one("limit"), DEFAULT_LIMIT, MAX_LIMIT)?;
    Ok((before, limit))
}

/// The next page's cursor: the last row's id when the page is full.
fn next_before(
    ids: impl DoubleEndedIterator<Item = i64> + ExactSizeIterator,
    limit: i64,
) -> Option<i64> {
    let full = ids.len() as i64 == limit;
    ids.last().filter(|_| full)
}

/// `GET /api/nodes/{node_id}/sessions?limit=&before=` → `{"sessions": [...], "counters": {...},
/// "next_before"}`: the node's connections and the refused handshakes that claimed its id, newest
/// first, each with its state, reasons, handshake facts, counters and `clock_skew` (p50/p99 of
/// receive time − event time, as in the implementation report); `counters` sums them over all of
/// the node's sessions. 404 for an unknown node.
#[utoipa::path(get, path = "/api/nodes/{node_id}/sessions", tag = "nodes",
    params(("node_id" = String, Path, description = "64 hex digits"),
        ("limit" = Option<u64>, Query, description = "Default 100, at most 1,000"),
        ("before" = Option<i64>, Query, description = "Cursor: only sessions with smaller ids")),
    responses((status = 200, description = "{sessions, counters, next_before}"),
        (status = 400, description = "A bad parameter"), (status = 404, description = "An unknown node")))]
pub async fn sessions(
    path: web::Path<String>,
    query: web::Query<Vec<(String, String)>>,
    pool: web::Data<ApiPool>,
) -> Result<HttpResponse, ApiError> {
    let node_id = parse_node_id(&path)?;
    let (before, limit) = page(&query)?;
    let (sessions, counters) = read_of_node(
        &pool.0,
        &node_id,
        async |conn| {
            let sessions = diagnostics::sessions(conn, &node_id, before, limit).await?;
            let counters = diagnostics::failure_counters(conn, &node_id).await?;
            Ok((sessions, counters))
        },
        |(sessions, _)| sessions.is_empty(),
    )
    .await?;
    let next = next_before(sessions.iter().map(|s| s.row.session_id), limit);
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "sessions": sessions,
        "counters": counters,
        "next_before": next,
    })))
}

/// `GET /api/nodes/{node_id}/failures?limit=&before=` → `{"failures": [...], "next_before"}`: the
/// node's frames that did not decode, newest first: `error`, `claimed_type` and `claimed_name`
/// (the discriminator the frame carried), `raw` (its bytes as hex, the first 4 KiB;
/// `raw_truncated`, `raw_bytes`). 404 for an unknown node.
#[utoipa::path(get, path = "/api/nodes/{node_id}/failures", tag = "nodes",
    params(("node_id" = String, Path, description = "64 hex digits"),
        ("limit" = Option<u64>, Query, description = "Default 100, at most 1,000"),
        ("before" = Option<i64>, Query, description = "Cursor: only failures with smaller ids")),
    responses((status = 200, description = "{failures, next_before}"),
        (status = 400, description = "A bad parameter"), (status = 404, description = "An unknown node")))]
pub async fn failures(
    path: web::Path<String>,
    query: web::Query<Vec<(String, String)>>,
    pool: web::Data<ApiPool>,
) -> Result<HttpResponse, ApiError> {
    let node_id = parse_node_id(&path)?;
    let (before, limit) = page(&query)?;
    let failures = read_of_node(
        &pool.0,
        &node_id,
        async |conn| diagnostics::failures(conn, &node_id, before, limit).await,
        Vec::is_empty,
    )
    .await?;
    let next = next_before(failures.iter().map(|f| f.row.id), limit);
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "failures": failures,
        "next_before": next,
    })))
}

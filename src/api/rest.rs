//! The node and event endpoints of the REST API.
//!
//! Events carry `event_type` as the JIP-3 discriminator (a number, as existing clients filter on
//! it, e.g. `event_type == 11`) and `event_name` as its name (`"BestBlockChanged"`).

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use super::params::{ordered, whole_number, Params};
use diesel_async::AsyncPgConnection;

use super::{parse_node_id, read, ApiError, ApiPool};
use crate::jip3::Event;
use crate::store::queries::{self, EventFilter, EventRow, NodeFilter};
use crate::store::{Pool, StoreError};

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

/// `GET /api/nodes?limit=&offset=&connected=&implementation=` → `{"nodes": [...], "total": N}`,
/// connected first, then by last seen; each with the slot of its latest best and finalized
/// block. `total` counts every node the filters select; a page holds at most 1,024.
#[utoipa::path(get, path = "/api/nodes", tag = "nodes",
    params(("limit" = Option<u64>, Query, description = "At most 1,024"),
        ("offset" = Option<u64>, Query),
        ("connected" = Option<bool>, Query),
        ("implementation" = Option<String>, Query, description = "Implementation name")),
    responses((status = 200, description = "{nodes, total}"), (status = 400, description = "A bad parameter")))]
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
#[utoipa::path(get, path = "/api/nodes/{node_id}", tag = "nodes",
    params(("node_id" = String, Path, description = "64 hex digits")),
    responses((status = 200, description = "The node with node_info and latest_status"),
        (status = 400, description = "A malformed id"), (status = 404, description = "An unknown node")))]
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

/// The event explorer's query parameters, as `(name, value)` pairs: `type` may be repeated.
pub type EventsQuery = web::Query<Vec<(String, String)>>;

/// Reads the explorer's filters: `limit`, `type` (numbers or names, repeated or comma-separated),
/// `node` (only where the path does not name one), `from` and `to` (receive time, RFC 3339,
/// `from` inclusive and `to` exclusive) and `before` (an event id: the cursor). Any other
/// parameter, a repeated one (but `type`) or a bad value is a 400 that says which and why.
fn event_filter(
    pairs: &[(String, String)],
    path_node: Option<String>,
) -> Result<EventFilter, ApiError> {
    let accepted: &[&str] = if path_node.is_some() {
        &["limit", "type", "from", "to", "before"]
    } else {
        &["limit", "type", "node", "from", "to", "before"]
    };
    let params = Params::new(pairs, accepted, &["type"])?;
    let mut types = Vec::new();
    for text in params.all("type").flat_map(|v| v.split(',')).map(str::trim) {
        let discriminator = Event::type_from_text(text).ok_or_else(|| {
            ApiError::bad_request(format!(
                "invalid type `{text}`: expected an event number (0-255) or an event name such \
                 as BestBlockChanged"
            ))
        })?;
        if !types.contains(&discriminator) {
            types.push(discriminator);
        }
    }
    let filter = EventFilter {
        node_id: match params.one("node") {
            Some(text) => Some(parse_node_id(text)?),
            None => path_node,
        },
        types,
        from: params.instant("from")?,
        to: params.instant("to")?,
        before: params.before()?,
        limit: whole_number("limit", params.one("limit"), DEFAULT_LIMIT, MAX_LIMIT)?,
    };
    if let (Some(from), Some(to)) = (filter.from, filter.to) {
        ordered(from, to)?;
    }
    Ok(filter)
}

/// An event with its name beside its discriminator.
#[derive(Serialize)]
struct EventOut {
    #[serde(flatten)]
    row: EventRow,
    event_name: &'static str,
}

impl From<EventRow> for EventOut {
    fn from(row: EventRow) -> Self {
        EventOut {
            event_name: u8::try_from(row.event_type).map_or("Unknown", Event::type_name),
            row,
        }
    }
}

/// Where an event's Event ID field points.
#[derive(Serialize)]
struct ReferenceOut {
    /// The Event ID the field holds (an ID on the event's own connection).
    event_id: u64,
    /// `resolved` (`event` is the event it points at), `dangling` (its connection sent no event
    /// of a type it may point at with that ID, or one too long before to be remembered, or that
    /// event is past retention) or `unresolved` (stored before links were resolved, or pointing
    /// at a type JIP-3 leaves undefined).
    state: &'static str,
    event: Option<EventOut>,
}

/// `GET /api/events/{id}` → `{"event", "reference", "referred_by", "referred_by_searched"}`: the
/// event; `reference`, where its Event ID field points (null when it has none), resolved when it
/// arrived; `referred_by`, the events that point at it (newest first, at most 100), looked for
/// among the next `referred_by_searched` events of its node. 400 for a bad id, 404 for an unknown.
#[utoipa::path(get, path = "/api/events/{id}", tag = "events",
    params(("id" = i64, Path, description = "The event's row id")),
    responses((status = 200, description = "{event, reference, referred_by, referred_by_searched}"),
        (status = 400, description = "A bad id"), (status = 404, description = "An unknown event")))]
pub async fn event(
    path: web::Path<String>,
    pool: web::Data<ApiPool>,
) -> Result<HttpResponse, ApiError> {
    let id = whole_number("id", Some(&path), 0, i64::MAX as u64)?;
    let linked = read(&pool.0, async |conn| queries::linked_event(conn, id).await)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no event {id}")))?;
    let reference = linked.target_event_id.map(|event_id| ReferenceOut {
        event_id,
        state: match (linked.ref_id, &linked.refers_to) {
            (_, Some(_)) => "resolved",
            (Some(_), None) => "dangling",
            (None, None) => "unresolved",
        },
        event: linked.refers_to.map(EventOut::from),
    });
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "event": EventOut::from(linked.event),
        "reference": reference,
        "referred_by": linked.referred_by.into_iter().map(EventOut::from).collect::<Vec<_>>(),
        "referred_by_searched": queries::REFERRERS_SEARCHED,
    })))
}

/// A page of events.
#[derive(Serialize)]
struct EventsPage {
    events: Vec<EventOut>,
    truncated: bool,
    next_before: Option<i64>,
}

/// `{"events": [...], "truncated": bool, "next_before": id|null}`: `truncated` when the page was
/// cut to its byte bound (fewer events than asked for although there are more); `next_before`
/// is the cursor for the next (older) page, null when this page holds the last of them.
fn events_response(rows: Vec<EventRow>, limit: i64) -> HttpResponse {
    let truncated = rows
        .first()
        .is_some_and(|r| r.available > rows.len() as i64);
    let more = truncated || rows.len() as i64 == limit;
    let next_before = rows.last().filter(|_| more).map(|r| r.id);
    let events: Vec<EventOut> = rows.into_iter().map(EventOut::from).collect();
    HttpResponse::Ok().json(EventsPage {
        events,
        truncated,
        next_before,
    })
}

/// `GET /api/events?limit=&type=&node=&from=&to=&before=` → the events the filters select
/// (all nodes unless `node`), newest first; see [`event_filter`].
#[utoipa::path(get, path = "/api/events", tag = "events",
    params(("limit" = Option<u64>, Query, description = "Default 50, at most 1,000"),
        ("type" = Option<Vec<String>>, Query, description = "Event numbers or names; repeat or comma-separate"),
        ("node" = Option<String>, Query, description = "64 hex digits"),
        ("from" = Option<String>, Query, description = "Receive time, RFC 3339, inclusive"),
        ("to" = Option<String>, Query, description = "Receive time, RFC 3339, exclusive"),
        ("before" = Option<i64>, Query, description = "Cursor: only events with smaller ids")),
    responses((status = 200, description = "{events, truncated, next_before}"), (status = 400, description = "A bad filter")))]
pub async fn events(
    query: EventsQuery,
    pool: web::Data<ApiPool>,
) -> Result<HttpResponse, ApiError> {
    let filter = event_filter(&query, None)?;
    let rows = read(&pool.0, async |conn| {
        queries::recent_events(conn, &filter).await
    })
    .await?;
    Ok(events_response(rows, filter.limit))
}

/// `GET /api/nodes/{node_id}/events?limit=&type=&from=&to=&before=` → the node's events the
/// filters select, newest first; 400 for a malformed id or filter, 404 for an unknown node.
#[utoipa::path(get, path = "/api/nodes/{node_id}/events", tag = "events",
    params(("node_id" = String, Path, description = "64 hex digits"),
        ("limit" = Option<u64>, Query, description = "Default 50, at most 1,000"),
        ("type" = Option<Vec<String>>, Query, description = "Event numbers or names; repeat or comma-separate"),
        ("from" = Option<String>, Query, description = "Receive time, RFC 3339, inclusive"),
        ("to" = Option<String>, Query, description = "Receive time, RFC 3339, exclusive"),
        ("before" = Option<i64>, Query, description = "Cursor: only events with smaller ids")),
    responses((status = 200, description = "{events, truncated, next_before}"),
        (status = 400, description = "A bad filter"), (status = 404, description = "An unknown node")))]
pub async fn node_events(
    path: web::Path<String>,
    query: EventsQuery,
    pool: web::Data<ApiPool>,
) -> Result<HttpResponse, ApiError> {
    let node_id = parse_node_id(&path)?;
    let filter = event_filter(&query, Some(node_id.clone()))?;
    let rows = read_of_node(
        &pool.0,
        &node_id,
        async |conn| queries::recent_events(conn, &filter).await,
        Vec::is_empty,
    )
    .await?;
    Ok(events_response(rows, filter.limit))
}

/// What `query` reads of the node `node_id`, or a 404 if there is no such node. Only an empty
/// answer needs telling "nothing yet" from "no such node", so only then is the node looked up.
pub(super) async fn read_of_node<T>(
    pool: &Pool,
    node_id: &str,
    query: impl AsyncFnOnce(&mut AsyncPgConnection) -> Result<T, StoreError>,
    is_empty: impl Fn(&T) -> bool,
) -> Result<T, ApiError> {
    read(pool, async |conn| {
        let found = query(conn).await?;
        let known = !is_empty(&found) || queries::node_exists(conn, node_id).await?;
        Ok(known.then_some(found))
    })
    .await?
    .ok_or_else(|| unknown_node(node_id))
}

fn unknown_node(node_id: &str) -> ApiError {
    ApiError::not_found(format!("no node {node_id}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(query: &str) -> Result<EventFilter, ApiError> {
        let pairs: Vec<(String, String)> = query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                (name.to_owned(), value.to_owned())
            })
            .collect();
        event_filter(&pairs, None)
    }

    #[test]
    fn limit_defaults_caps_and_refuses_non_numbers() {
        assert_eq!(filter("").unwrap().limit, 50);
        assert_eq!(filter("limit=7").unwrap().limit, 7);
        assert_eq!(filter("limit=5000").unwrap().limit, 1000);
        assert_eq!(filter("limit=99999999999999999999999").unwrap().limit, 1000);
        for bad in ["", "ten", "-1", "1.5", " 3"] {
            assert!(filter(&format!("limit={bad}")).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn types_are_numbers_or_names_repeated_or_listed() {
        let f = filter("type=10&type=BestBlockChanged,12&type=10").unwrap();
        assert_eq!(f.types, vec![10, 11, 12]);
        for bad in ["type=256", "type=Bogus", "type=", "type=10,,11"] {
            assert!(filter(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_times_cursors_nodes_and_names_are_refused() {
        let f = filter("from=2026-12-01T10:00:00Z&to=2026-12-01T12:00:00+01:00&before=9").unwrap();
        assert_eq!(f.before, Some(9));
        assert!(f.from.is_some() && f.to.is_some());
        for bad in [
            "from=yesterday",
            "from=2026-12-01T11:00:00Z&to=2026-12-01T10:00:00Z",
            "before=-3",
            "node=abc",
            "limit=1&limit=2",
            "nodes=1",
        ] {
            let error = filter(bad).unwrap_err();
            assert!(!error.to_string().is_empty(), "{bad}");
        }
        let on_path = event_filter(&[("node".into(), "a".repeat(64))], Some("b".repeat(64)));
        assert!(on_path.is_err(), "node is given by the path");
    }
}

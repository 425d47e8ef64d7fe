//! Peers: who is connected to whom as the nodes' own events say (peers mapped to the nodes TART
//! knows, unknown ones shown as such), the links that flap most, each node's peer counts from
//! its latest Status, and churn over time. Read from the peer tracker's tables
//! (`store::peers`), never from raw events.

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use chrono::{TimeDelta, Utc};
use serde::Serialize;

use super::params::{ordered, whole_number, Params};
use super::{parse_node_id, read, ApiError, ApiPool};
use crate::store::peers::{self, ReportedPeers};
use crate::time::{round_down, round_up};

/// Links listed among the most flapping.
const TOP_FLAPPING: i64 = 20;
/// Links listed by default and at most (all of them count in `nodes`).
const DEFAULT_LINKS: u64 = 1000;
const MAX_LINKS: u64 = 10_000;

#[derive(Serialize)]
struct NodePeers {
    node_id: String,
    /// Its links changed in the range; those its events say are up now, and of those, to peers
    /// TART does not know.
    links: i64,
    connected: i64,
    unknown: i64,
    /// Its latest Status's counts (null before any).
    reported: Option<ReportedPeers>,
}

/// `GET /api/peers?since=&node=&limit=`: the connection graph: the `limit` links changed last
/// since `since` (RFC 3339; default a day ago) as their nodes' events tell them (`peer_node_id`
/// null for a peer that does not report to TART), per node its links (all of them counted) and
/// its latest Status peer counts, and the links that flap most (connects + disconnects).
#[utoipa::path(get, path = "/api/peers", tag = "jam",
    params(("since" = Option<String>, Query, description = "RFC 3339; default a day ago"),
        ("node" = Option<String>, Query, description = "Only this node's links (64 hex digits)"),
        ("limit" = Option<u64>, Query, description = "Links listed, at most 10,000; default 1,000")),
    responses((status = 200, description = "{since, nodes, links, flapping}"),
        (status = 400, description = "A bad parameter")))]
pub async fn graph(
    query: web::Query<Vec<(String, String)>>,
    pool: web::Data<ApiPool>,
) -> Result<HttpResponse, ApiError> {
    let params = Params::new(&query, &["since", "node", "limit"], &[])?;
    let since = params
        .instant("since")?
        .unwrap_or_else(|| Utc::now() - TimeDelta::days(1));
    let node = params.one("node").map(parse_node_id).transpose()?;
    let limit = whole_number("limit", params.one("limit"), DEFAULT_LINKS, MAX_LINKS)?;
    let node = node.as_deref();
    let (links, flapping, counts, reported) = read(&pool.0, async |conn| {
        Ok((
            peers::links(conn, since, node, limit, false).await?,
            peers::links(conn, since, node, TOP_FLAPPING, true).await?,
            peers::link_counts(conn, since, node).await?,
            peers::reported_peers(conn).await?,
        ))
    })
    .await?;
    let mut nodes: BTreeMap<String, NodePeers> = counts
        .into_iter()
        .map(|c| {
            let entry = NodePeers {
                node_id: c.node_id.clone(),
                links: c.links,
                connected: c.connected,
                unknown: c.unknown,
                reported: None,
            };
            (c.node_id, entry)
        })
        .collect();
    for counts in reported {
        if node.is_some_and(|n| n != counts.node_id) {
            continue;
        }
        let id = counts.node_id.clone();
        nodes
            .entry(id.clone())
            .or_insert_with(|| NodePeers {
                node_id: id,
                links: 0,
                connected: 0,
                unknown: 0,
                reported: None,
            })
            .reported = Some(counts);
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "since": crate::time::format(&since),
        "nodes": nodes.into_values().collect::<Vec<_>>(),
        "links": links,
        "flapping": flapping,
    })))
}

/// `GET /api/peers/churn?from=&to=`: connects and disconnects per minute, all nodes together
/// (RFC 3339; default the last hour; widened to whole minutes).
#[utoipa::path(get, path = "/api/peers/churn", tag = "jam",
    params(("from" = Option<String>, Query, description = "RFC 3339; default an hour before to"),
        ("to" = Option<String>, Query, description = "RFC 3339; default now")),
    responses((status = 200, description = "{from, to, minutes: [{minute, connects, disconnects}]}"),
        (status = 400, description = "A bad parameter")))]
pub async fn churn(
    query: web::Query<Vec<(String, String)>>,
    pool: web::Data<ApiPool>,
) -> Result<HttpResponse, ApiError> {
    let params = Params::new(&query, &["from", "to"], &[])?;
    let to = params.instant("to")?.unwrap_or_else(Utc::now);
    let from = params.instant("from")?.unwrap_or(to - TimeDelta::hours(1));
    ordered(from, to)?;
    let (from, to) = (
        round_down(from, TimeDelta::minutes(1)),
        round_up(to, TimeDelta::minutes(1)),
    );
    let minutes = read(&pool.0, async |conn| peers::churn(conn, from, to).await).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "from": crate::time::format(&from),
        "to": crate::time::format(&to),
        "minutes": minutes,
    })))
}

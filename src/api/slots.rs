//! Slots and blocks: who authored each block, when every node learned of it, how far and how fast
//! it spread, forks, import and execution failures, finalization lag. Read from the block
//! tracker's tables (`store::blocks`), never from raw events.

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use super::params::{ordered, whole_number, Params};
use super::{read, ApiError, ApiPool};
use crate::store::blocks::{self, AuthoringFailure, BlockSummary, NodeSighting};

/// Slots listed by default, and at most, in one `/api/slots` answer.
const DEFAULT_SLOTS: i64 = 50;
const MAX_SLOTS: i64 = 1000;
/// A node that reported blocks this many slots either side of a slot, but none of it, was never
/// reached by it.
const NEIGHBOUR_SLOTS: i64 = 3;
/// Buckets of the propagation series, by default and at most.
const DEFAULT_BUCKETS: i64 = 120;
const MAX_BUCKETS: i64 = 1440;

/// What the delays are measured from, as every answer states it.
const MEASURED: &str = "milliseconds from the author's Authored event (or, when the author is \
     not connected to TART, from the first node's sighting) to each node's first event about \
     the block (announcement, import, best block...), in the nodes' own clocks";

#[derive(Serialize)]
struct Slot {
    slot: i64,
    /// More than one block (header hash) was seen for it.
    fork: bool,
    blocks: Vec<BlockSummary>,
    authoring_failures: Vec<AuthoringFailure>,
}

/// Groups blocks and authoring failures by slot, newest slot first.
fn by_slot(blocks: Vec<BlockSummary>, failures: Vec<AuthoringFailure>) -> Vec<Slot> {
    let mut slots: BTreeMap<i64, Slot> = BTreeMap::new();
    fn slot(slots: &mut BTreeMap<i64, Slot>, number: i64) -> &mut Slot {
        slots.entry(number).or_insert_with(|| Slot {
            slot: number,
            fork: false,
            blocks: Vec::new(),
            authoring_failures: Vec::new(),
        })
    }
    for block in blocks {
        slot(&mut slots, block.slot).blocks.push(block);
    }
    for failure in failures {
        slot(&mut slots, failure.slot)
            .authoring_failures
            .push(failure);
    }
    slots
        .into_values()
        .rev()
        .map(|mut slot| {
            slot.fork = slot.blocks.len() > 1;
            slot
        })
        .collect()
}

/// `GET /api/slots?from=&to=`: the blocks of slots `from..=to` (slot numbers; default the newest
/// 50 slots seen, at most 1,000), newest first: author, header hashes (several: a fork), nodes
/// reached, propagation delay p50/p90/max, finalization lag, import and execution failures,
/// authoring failures.
#[utoipa::path(get, path = "/api/slots", tag = "jam",
    params(("from" = Option<u64>, Query, description = "First slot; default to − 49"),
        ("to" = Option<u64>, Query, description = "Last slot; default the newest seen")),
    responses((status = 200, description = "{from, to, measured, slots: [{slot, fork, blocks, authoring_failures}]}"),
        (status = 400, description = "A bad parameter")))]
pub async fn list(
    query: web::Query<Vec<(String, String)>>,
    pool: web::Data<ApiPool>,
) -> Result<HttpResponse, ApiError> {
    let params = Params::new(&query, &["from", "to"], &[])?;
    let slot = |name: &str| {
        params
            .one(name)
            .map(|text| whole_number(name, Some(text), 0, u32::MAX.into()))
            .transpose()
    };
    let (from, to) = (slot("from")?, slot("to")?);
    let answer = read(&pool.0, async |conn| {
        let to = match to {
            Some(to) => to,
            None => blocks::newest_slot(conn).await?.unwrap_or(0),
        };
        let from = from.unwrap_or((to - (DEFAULT_SLOTS - 1)).max(0));
        if from > to || to - from >= MAX_SLOTS {
            return Ok(Err((from, to)));
        }
        let found = blocks::blocks_of_slots(conn, from, to).await?;
        let failures = blocks::authoring_failures(conn, from, to).await?;
        Ok(Ok((from, to, by_slot(found, failures))))
    })
    .await?;
    let (from, to, slots) = answer.map_err(|(from, to)| {
        ApiError::bad_request(format!(
            "slots {from} to {to}: from must not be after to, and at most {MAX_SLOTS} slots \
             are listed at once"
        ))
    })?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "from": from,
        "to": to,
        "measured": MEASURED,
        "slots": slots,
    })))
}

#[derive(Serialize)]
struct Reached {
    delay_ms: f64,
    /// Share of the nodes expected to learn of the block (those reached and those never
    /// reached) that had by then.
    share: f64,
}

#[derive(Serialize)]
struct BlockDetail {
    #[serde(flatten)]
    summary: BlockSummary,
    /// The share of nodes reached over time, one point per node reached.
    reached: Vec<Reached>,
    nodes: Vec<NodeSighting>,
}

/// `GET /api/slots/{slot}`: each block of the slot with every node's sighting (when it learned
/// of the block, and how: announced, importing, executed, best, finalized, each relative to the
/// author's time; failures with their reason), the share of nodes reached over time, the nodes
/// it never reached (they reported blocks of the slots around it but none of it) and authoring
/// failures.
#[utoipa::path(get, path = "/api/slots/{slot}", tag = "jam",
    params(("slot" = u64, Path, description = "The slot number")),
    responses((status = 200, description = "{slot, fork, measured, blocks: [{…, reached, nodes}], never_reached, authoring_failures}"),
        (status = 400, description = "Not a slot number"),
        (status = 404, description = "Nothing is known of the slot")))]
pub async fn detail(
    path: web::Path<String>,
    pool: web::Data<ApiPool>,
) -> Result<HttpResponse, ApiError> {
    let text = path.into_inner();
    let slot = whole_number("slot", Some(&text), 0, u32::MAX.into())?;
    let (summaries, sightings, failures, never_reached) = read(&pool.0, async |conn| {
        Ok((
            blocks::blocks_of_slots(conn, slot, slot).await?,
            blocks::sightings_of_slot(conn, slot).await?,
            blocks::authoring_failures(conn, slot, slot).await?,
            blocks::nodes_without_slot(conn, slot, NEIGHBOUR_SLOTS).await?,
        ))
    })
    .await?;
    if summaries.is_empty() && failures.is_empty() {
        return Err(ApiError::not_found(format!(
            "no node reported a block of slot {slot}, nor failing to author one"
        )));
    }
    let blocks: Vec<BlockDetail> = summaries
        .into_iter()
        .map(|summary| {
            let nodes: Vec<NodeSighting> = sightings
                .iter()
                .filter(|s| s.header_hash == summary.header_hash)
                .cloned()
                .collect();
            let mut delays: Vec<f64> = nodes
                .iter()
                .filter(|n| !n.author)
                .map(|n| n.delay_ms)
                .collect();
            delays.sort_by(f64::total_cmp);
            let expected = (delays.len() + never_reached.len()).max(1) as f64;
            let reached = delays
                .iter()
                .enumerate()
                .map(|(i, &delay_ms)| Reached {
                    delay_ms,
                    share: (i + 1) as f64 / expected,
                })
                .collect();
            BlockDetail {
                summary,
                reached,
                nodes,
            }
        })
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "slot": slot,
        "fork": blocks.len() > 1,
        "measured": MEASURED,
        "blocks": blocks,
        "never_reached": never_reached,
        "authoring_failures": failures,
    })))
}

#[derive(Serialize)]
struct PropagationBucket {
    #[serde(with = "crate::time::rfc3339")]
    start: DateTime<Utc>,
    blocks: usize,
    /// Medians over the bucket's blocks of each block's p50 and p90, the largest max.
    delay_p50_ms: Option<f64>,
    delay_p90_ms: Option<f64>,
    delay_max_ms: Option<f64>,
    finalization_lag_ms: Option<f64>,
    /// Slots with more than one block among the bucket's.
    forks: usize,
}

/// `GET /api/slots/propagation?from=&to=&step=`: block propagation delay over time, per bucket of
/// `step` seconds (default about 120 buckets; at most 1,440) between `from` and `to` (RFC 3339;
/// default the last hour): blocks first seen, the median of their p50 and p90 delays, the
/// largest delay, the median finalization lag, and slots with more than one block.
#[utoipa::path(get, path = "/api/slots/propagation", tag = "jam",
    params(("from" = Option<String>, Query, description = "RFC 3339; default an hour before to"),
        ("to" = Option<String>, Query, description = "RFC 3339; default now"),
        ("step" = Option<u64>, Query, description = "Seconds")),
    responses((status = 200, description = "{from, to, step_seconds, measured, buckets}"),
        (status = 400, description = "A bad parameter")))]
pub async fn propagation(
    query: web::Query<Vec<(String, String)>>,
    pool: web::Data<ApiPool>,
) -> Result<HttpResponse, ApiError> {
    let params = Params::new(&query, &["from", "to", "step"], &[])?;
    let to = params.instant("to")?.unwrap_or_else(Utc::now);
    let from = params.instant("from")?.unwrap_or(to - TimeDelta::hours(1));
    ordered(from, to)?;
    let span = (to - from).num_seconds().max(1);
    let step = match params.one("step") {
        Some(text) => whole_number("step", Some(text), 0, u32::MAX.into())?,
        None => (span / DEFAULT_BUCKETS).max(6),
    };
    if step == 0 || (span + step - 1) / step > MAX_BUCKETS {
        return Err(ApiError::bad_request(format!(
            "step {step}: give a step of at least one second and at most {MAX_BUCKETS} buckets"
        )));
    }
    let found = read(&pool.0, async |conn| {
        blocks::blocks_seen_between(conn, from, to).await
    })
    .await?;
    let count = ((span + step - 1) / step) as usize;
    let mut cells: Vec<Vec<&BlockSummary>> = vec![Vec::new(); count];
    for block in &found {
        let i = ((block.first_seen_at - from).num_seconds() / step) as usize;
        if let Some(cell) = cells.get_mut(i) {
            cell.push(block);
        }
    }
    let buckets: Vec<PropagationBucket> = cells
        .iter()
        .enumerate()
        .map(|(i, cell)| {
            let values = |f: fn(&BlockSummary) -> Option<f64>| -> Vec<f64> {
                let mut v: Vec<f64> = cell.iter().filter_map(|b| f(b)).collect();
                v.sort_by(f64::total_cmp);
                v
            };
            let mut blocks_per_slot: BTreeMap<i64, usize> = BTreeMap::new();
            for block in cell {
                *blocks_per_slot.entry(block.slot).or_default() += 1;
            }
            PropagationBucket {
                start: from + TimeDelta::seconds(step * i as i64),
                blocks: cell.len(),
                delay_p50_ms: median(&values(|b| b.delay_p50_ms)),
                delay_p90_ms: median(&values(|b| b.delay_p90_ms)),
                delay_max_ms: values(|b| b.delay_max_ms).last().copied(),
                finalization_lag_ms: median(&values(|b| b.finalization_lag_ms)),
                forks: blocks_per_slot.values().filter(|&&n| n > 1).count(),
            }
        })
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "from": crate::time::format(&from),
        "to": crate::time::format(&to),
        "step_seconds": step,
        "measured": MEASURED,
        "buckets": buckets,
    })))
}

/// The (lower) median of sorted values.
fn median(sorted: &[f64]) -> Option<f64> {
    (!sorted.is_empty()).then(|| sorted[(sorted.len() - 1) / 2])
}

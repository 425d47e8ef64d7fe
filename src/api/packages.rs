//! Work-packages, cores and guarantees: each package's journey across its guarantors, where it
//! stalled or failed and why, the funnel of packages reaching each stage (and its time series),
//! per-core figures and per-guarantor guarantee counts. Read from the work-package tracker's
//! tables (`store::packages`), never from raw events.

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use super::params::{ordered, whole_number, Params};
use super::{read, ApiError, ApiPool};
use crate::store::packages::{self, FunnelRow, PackageSummary, Stage, Status};
use crate::time::{round_down, round_up};

/// Packages (or guarantor rows) listed by default and at most.
const DEFAULT_LIMIT: u64 = 100;
const MAX_LIMIT: u64 = 1000;
/// Guarantor nodes listed per core in `/api/cores` (they all count in `guarantors`).
const TOP_GUARANTORS: u32 = 5;
/// A package with neither a guarantee nor a failure this long after it was first seen stalled.
const STALLED_AFTER: TimeDelta = TimeDelta::seconds(30);
const MAX_BUCKETS: i64 = 1440;

const COUNTED: &str = "distinct work-packages (by hash), each counted once per stage it reached \
     on any of its guarantors; times are the guarantors' own, in ms from the package's first \
     sighting";

/// `from`/`to` (RFC 3339; default the last hour) of a request.
fn range(params: &Params<'_>) -> Result<(DateTime<Utc>, DateTime<Utc>), ApiError> {
    let to = params.instant("to")?.unwrap_or_else(Utc::now);
    let from = params.instant("from")?.unwrap_or(to - TimeDelta::hours(1));
    ordered(from, to)?;
    Ok((from, to))
}

/// The request's range widened to whole `unit`s: the tier its counts are kept in.
fn whole_range(
    params: &Params<'_>,
    unit: TimeDelta,
) -> Result<(DateTime<Utc>, DateTime<Utc>), ApiError> {
    let (from, to) = range(params)?;
    Ok((round_down(from, unit), round_up(to, unit)))
}

fn core(params: &Params<'_>) -> Result<Option<i32>, ApiError> {
    params
        .one("core")
        .map(|text| whole_number("core", Some(text), 0, u16::MAX.into()).map(|c| c as i32))
        .transpose()
}

#[derive(Serialize)]
struct Package {
    #[serde(flatten)]
    summary: PackageSummary,
    /// `guaranteed`, `failed`, `in progress` or `stalled`.
    status: &'static str,
    /// The furthest stage any guarantor reached (`failed` aside).
    furthest_stage: Option<&'static str>,
}

impl Package {
    fn of(summary: PackageSummary, now: DateTime<Utc>) -> Package {
        let reached = [
            (Stage::Distributed, summary.stages.distributed_ms),
            (Stage::GuaranteeBuilt, summary.stages.guarantee_built_ms),
            (Stage::ReportBuilt, summary.stages.report_built_ms),
            (Stage::Refined, summary.stages.refined_ms),
            (Stage::Authorized, summary.stages.authorized_ms),
            (Stage::Received, summary.stages.received_ms),
        ];
        let furthest_stage = reached
            .iter()
            .find(|(_, ms)| ms.is_some())
            .map(|(stage, _)| stage.name());
        let status = if summary.stages.guarantee_built_ms.is_some() {
            "guaranteed"
        } else if summary.stages.failed_ms.is_some() {
            "failed"
        } else if now - summary.first_seen_at > STALLED_AFTER {
            "stalled"
        } else {
            "in progress"
        };
        Package {
            summary,
            status,
            furthest_stage,
        }
    }
}

/// Sums the funnel rows per stage.
fn funnel_totals(rows: &[FunnelRow]) -> BTreeMap<&'static str, i64> {
    let mut totals: BTreeMap<&'static str, i64> =
        Stage::ALL.iter().map(|s| (s.name(), 0)).collect();
    for row in rows {
        if let Some(stage) = row.stage() {
            *totals.entry(stage.name()).or_default() += row.packages;
        }
    }
    totals
}

/// `GET /api/work-packages?from=&to=&core=&status=&limit=`: the packages first seen in the range
/// (RFC 3339; default the last hour), newest first (`limit` default 100, at most 1,000), each
/// with its stages' first times, status (`guaranteed`, `failed`, `in progress`, `stalled`: no
/// guarantee nor failure 30 s on) and furthest stage; and the `funnel`: how many packages reached
/// each stage in the range.
#[utoipa::path(get, path = "/api/work-packages", tag = "jam",
    params(("from" = Option<String>, Query, description = "RFC 3339; default an hour before to"),
        ("to" = Option<String>, Query, description = "RFC 3339; default now"),
        ("core" = Option<u16>, Query, description = "Only this core's packages"),
        ("status" = Option<String>, Query, description = "guaranteed, failed or pending"),
        ("limit" = Option<u64>, Query, description = "At most 1,000; default 100")),
    responses((status = 200, description = "{from, to, counted, funnel, packages}"),
        (status = 400, description = "A bad parameter")))]
pub async fn list(
    query: web::Query<Vec<(String, String)>>,
    pool: web::Data<ApiPool>,
) -> Result<HttpResponse, ApiError> {
    let params = Params::new(&query, &["from", "to", "core", "status", "limit"], &[])?;
    let (from, to) = range(&params)?;
    let core = core(&params)?;
    let status = match params.one("status") {
        None => None,
        Some("guaranteed") => Some(Status::Guaranteed),
        Some("failed") => Some(Status::Failed),
        Some("pending") => Some(Status::Pending),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "invalid status `{other}`: expected guaranteed, failed or pending"
            )))
        }
    };
    let limit = whole_number("limit", params.one("limit"), DEFAULT_LIMIT, MAX_LIMIT)?;
    let (found, funnel) = read(&pool.0, async |conn| {
        Ok((
            packages::list(conn, from, to, core, status, limit).await?,
            packages::funnel(
                conn,
                round_down(from, TimeDelta::minutes(1)),
                round_up(to, TimeDelta::minutes(1)),
                core,
            )
            .await?,
        ))
    })
    .await?;
    let now = Utc::now();
    let listed: Vec<Package> = found.into_iter().map(|p| Package::of(p, now)).collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "from": crate::time::format(&from),
        "to": crate::time::format(&to),
        "counted": COUNTED,
        "funnel": funnel_totals(&funnel),
        "packages": listed,
    })))
}

/// Buckets of `step` seconds over whole minutes `[from, to)`: the `step` parameter (a whole
/// number of minutes, in seconds), by default about 120 buckets, at most `MAX_BUCKETS`.
struct MinuteBuckets {
    from: DateTime<Utc>,
    step: i64,
    count: usize,
}

impl MinuteBuckets {
    fn new(params: &Params<'_>, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Self, ApiError> {
        let span = (to - from).num_seconds().max(60);
        let step = match params.one("step") {
            Some(text) => whole_number("step", Some(text), 0, u32::MAX.into())?,
            None => ((span / 120 + 59) / 60).max(1) * 60,
        };
        if step == 0 || step % 60 != 0 || (span + step - 1) / step > MAX_BUCKETS {
            return Err(ApiError::bad_request(format!(
                "step {step}: give a whole number of minutes (in seconds), at most {MAX_BUCKETS} \
                 buckets"
            )));
        }
        Ok(MinuteBuckets {
            from,
            step,
            count: ((span + step - 1) / step) as usize,
        })
    }

    /// The bucket of a minute in the range.
    fn of(&self, minute: DateTime<Utc>) -> Option<usize> {
        usize::try_from((minute - self.from).num_seconds() / self.step)
            .ok()
            .filter(|&i| i < self.count)
    }

    fn starts(&self) -> Vec<String> {
        (0..self.count as i64)
            .map(|i| crate::time::format(&(self.from + TimeDelta::seconds(self.step * i))))
            .collect()
    }
}

/// `GET /api/work-packages/funnel?from=&to=&step=&core=`: packages reaching each stage per
/// bucket of `step` seconds (a whole number of minutes; default about 120 buckets, at most
/// 1,440), from the funnel counted per minute and core.
#[utoipa::path(get, path = "/api/work-packages/funnel", tag = "jam",
    params(("from" = Option<String>, Query, description = "RFC 3339; default an hour before to"),
        ("to" = Option<String>, Query, description = "RFC 3339; default now"),
        ("step" = Option<u64>, Query, description = "Seconds, a whole number of minutes"),
        ("core" = Option<u16>, Query, description = "Only this core's packages")),
    responses((status = 200, description = "{from, to, step_seconds, buckets, series: {stage: [n per bucket]}}"),
        (status = 400, description = "A bad parameter")))]
pub async fn funnel(
    query: web::Query<Vec<(String, String)>>,
    pool: web::Data<ApiPool>,
) -> Result<HttpResponse, ApiError> {
    let params = Params::new(&query, &["from", "to", "step", "core"], &[])?;
    let (from, to) = whole_range(&params, TimeDelta::minutes(1))?;
    let core = core(&params)?;
    let buckets = MinuteBuckets::new(&params, from, to)?;
    let rows = read(&pool.0, async |conn| {
        packages::funnel(conn, from, to, core).await
    })
    .await?;
    let count = buckets.count;
    let mut series: BTreeMap<&'static str, Vec<i64>> = Stage::ALL
        .iter()
        .map(|s| (s.name(), vec![0; count]))
        .collect();
    for row in &rows {
        let (Some(stage), Some(i)) = (row.stage(), buckets.of(row.minute)) else {
            continue;
        };
        if let Some(cell) = series.get_mut(stage.name()).and_then(|v| v.get_mut(i)) {
            *cell += row.packages;
        }
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "from": crate::time::format(&from),
        "to": crate::time::format(&to),
        "step_seconds": buckets.step,
        "counted": COUNTED,
        "buckets": buckets.starts(),
        "series": series,
    })))
}

/// `GET /api/work-packages/{hash}`: one package: its summary, every guarantor's journey (role,
/// each stage in ms from the first sighting, failure and reason, shares that failed, guarantees
/// sent and failed, refine gas and time) and the nodes that received its guarantee (ms after it
/// was built).
#[utoipa::path(get, path = "/api/work-packages/{hash}", tag = "jam",
    params(("hash" = String, Path, description = "The work-package hash, 64 hex digits (0x optional)")),
    responses((status = 200, description = "{package, journeys, guarantee_receipts, counted}"),
        (status = 400, description = "Not a hash"),
        (status = 404, description = "No guarantor reported it")))]
pub async fn detail(
    path: web::Path<String>,
    pool: web::Data<ApiPool>,
) -> Result<HttpResponse, ApiError> {
    let text = path.into_inner();
    let hash = parse_hash(&text)?;
    let (summary, journeys, receipts) = read(&pool.0, async |conn| {
        Ok((
            packages::summary(conn, &hash).await?,
            packages::journeys(conn, &hash).await?,
            packages::receipts(conn, &hash).await?,
        ))
    })
    .await?;
    let Some(summary) = summary else {
        return Err(ApiError::not_found(format!(
            "no guarantor reported the work-package {text}"
        )));
    };
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "package": Package::of(summary, Utc::now()),
        "journeys": journeys,
        "guarantee_receipts": receipts,
        "counted": COUNTED,
    })))
}

fn parse_hash(text: &str) -> Result<Vec<u8>, ApiError> {
    let hex = text.strip_prefix("0x").unwrap_or(text);
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::bad_request(format!(
            "invalid work-package hash `{text}`: expected 64 hex digits"
        )));
    }
    Ok((0..32)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex digits"))
        .collect())
}

#[derive(Serialize, Default)]
struct CoreFigures {
    core: i32,
    /// Packages reaching each stage in the range.
    packages: BTreeMap<&'static str, i64>,
    refine_gas: i64,
    refine_ns: i64,
    /// Per refined package (sums over its guarantors' Refined events).
    mean_refine_gas: Option<f64>,
    mean_refine_ms: Option<f64>,
    /// How many nodes built guarantees for the core in the range (whole hours)...
    guarantors: i64,
    /// ...and those that built most, most first.
    top_guarantors: Vec<String>,
}

/// `GET /api/cores?from=&to=`: per core, the packages received, authorized, refined, guaranteed
/// and failed (distinct packages), refine gas and time (total and per refined package), and the
/// guarantor nodes seen building its guarantees (how many, and the most building ones).
#[utoipa::path(get, path = "/api/cores", tag = "jam",
    params(("from" = Option<String>, Query, description = "RFC 3339; default an hour before to"),
        ("to" = Option<String>, Query, description = "RFC 3339; default now")),
    responses((status = 200, description = "{from, to, counted, cores: [...]}"),
        (status = 400, description = "A bad parameter")))]
pub async fn cores(
    query: web::Query<Vec<(String, String)>>,
    pool: web::Data<ApiPool>,
) -> Result<HttpResponse, ApiError> {
    let params = Params::new(&query, &["from", "to"], &[])?;
    let (from, to) = range(&params)?;
    let (funnel, guarantors) = read(&pool.0, async |conn| {
        Ok((
            packages::funnel(
                conn,
                round_down(from, TimeDelta::minutes(1)),
                round_up(to, TimeDelta::minutes(1)),
                None,
            )
            .await?,
            packages::core_guarantors(
                conn,
                round_down(from, TimeDelta::hours(1)),
                round_up(to, TimeDelta::hours(1)),
                TOP_GUARANTORS,
            )
            .await?,
        ))
    })
    .await?;
    fn figures(cores: &mut BTreeMap<i32, CoreFigures>, core: i32) -> &mut CoreFigures {
        cores.entry(core).or_insert_with(|| CoreFigures {
            core,
            packages: Stage::ALL.iter().map(|s| (s.name(), 0)).collect(),
            ..CoreFigures::default()
        })
    }
    let mut cores: BTreeMap<i32, CoreFigures> = BTreeMap::new();
    for row in &funnel {
        let Some(stage) = row.stage() else { continue };
        let core = figures(&mut cores, row.core);
        *core.packages.entry(stage.name()).or_default() += row.packages;
        core.refine_gas = core.refine_gas.saturating_add(row.refine_gas);
        core.refine_ns = core.refine_ns.saturating_add(row.refine_ns);
    }
    for g in guarantors {
        let core = figures(&mut cores, g.core);
        core.guarantors = g.guarantors;
        core.top_guarantors = g.top;
    }
    let cores: Vec<CoreFigures> = cores
        .into_values()
        .map(|mut core| {
            let refined = core.packages["refined"];
            if refined > 0 {
                core.mean_refine_gas = Some(core.refine_gas as f64 / refined as f64);
                core.mean_refine_ms = Some(core.refine_ns as f64 / refined as f64 / 1e6);
            }
            core
        })
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "from": crate::time::format(&from),
        "to": crate::time::format(&to),
        "counted": COUNTED,
        "cores": cores,
    })))
}

/// `GET /api/guarantees?from=&to=&node=&limit=`: over whole hours, per guarantor node and core
/// the guarantees built, sent and failed to send (most built first), and per receiving node
/// those received, failed to receive and discarded, whatever their core (the next authors
/// receive every core's). The reasons of discards are in `/api/failures` (GuaranteeDiscarded).
#[utoipa::path(get, path = "/api/guarantees", tag = "jam",
    params(("from" = Option<String>, Query, description = "RFC 3339; default an hour before to"),
        ("to" = Option<String>, Query, description = "RFC 3339; default now"),
        ("node" = Option<String>, Query, description = "Only this guarantor node's rows"),
        ("limit" = Option<u64>, Query, description = "Guarantor rows, at most 1,000; default 100")),
    responses((status = 200, description = "{from, to, counted, guarantors: [...], receivers: [...]}"),
        (status = 400, description = "A bad parameter")))]
pub async fn guarantees(
    query: web::Query<Vec<(String, String)>>,
    pool: web::Data<ApiPool>,
) -> Result<HttpResponse, ApiError> {
    let params = Params::new(&query, &["from", "to", "node", "limit"], &[])?;
    let (from, to) = whole_range(&params, TimeDelta::hours(1))?;
    let node = params.one("node");
    let limit = whole_number("limit", params.one("limit"), DEFAULT_LIMIT, MAX_LIMIT)?;
    let (guarantors, receivers) = read(&pool.0, async |conn| {
        Ok((
            packages::guarantors(conn, from, to, node, limit).await?,
            packages::receivers(conn, from, to).await?,
        ))
    })
    .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "from": crate::time::format(&from),
        "to": crate::time::format(&to),
        "counted": "guarantee events per reporting node",
        "guarantors": guarantors,
        "receivers": receivers,
    })))
}

/// `GET /api/cores/status?from=&to=&step=&core=`: what the nodes' Status events say of each
/// core's guarantees over time: per bucket (as the funnel's), the mean count a Status report gave
/// for the core (null where no report was sampled) and the reports sampled (each node's latest
/// Status about once a second).
#[utoipa::path(get, path = "/api/cores/status", tag = "jam",
    params(("from" = Option<String>, Query, description = "RFC 3339; default an hour before to"),
        ("to" = Option<String>, Query, description = "RFC 3339; default now"),
        ("step" = Option<u64>, Query, description = "Seconds, a whole number of minutes"),
        ("core" = Option<u16>, Query, description = "Only this core")),
    responses((status = 200, description = "{from, to, step_seconds, buckets, cores: [{core, mean_guarantees, samples}]}"),
        (status = 400, description = "A bad parameter")))]
pub async fn core_status(
    query: web::Query<Vec<(String, String)>>,
    pool: web::Data<ApiPool>,
) -> Result<HttpResponse, ApiError> {
    let params = Params::new(&query, &["from", "to", "step", "core"], &[])?;
    let (from, to) = whole_range(&params, TimeDelta::minutes(1))?;
    let core = core(&params)?;
    let buckets = MinuteBuckets::new(&params, from, to)?;
    let rows = read(&pool.0, async |conn| {
        packages::core_status(conn, from, to, core).await
    })
    .await?;
    // Per core and bucket: (reports sampled, guarantees they counted).
    let mut sums: BTreeMap<i32, Vec<(i64, i64)>> = BTreeMap::new();
    for row in &rows {
        let Some(i) = buckets.of(row.minute) else {
            continue;
        };
        let cells = sums
            .entry(row.core)
            .or_insert_with(|| vec![(0, 0); buckets.count]);
        cells[i].0 += row.samples;
        cells[i].1 += row.guarantees;
    }
    let cores: Vec<_> = sums
        .into_iter()
        .map(|(core, cells)| {
            let mean: Vec<Option<f64>> = cells
                .iter()
                .map(|&(samples, guarantees)| {
                    (samples > 0).then(|| guarantees as f64 / samples as f64)
                })
                .collect();
            let samples: Vec<i64> = cells.iter().map(|c| c.0).collect();
            serde_json::json!({ "core": core, "mean_guarantees": mean, "samples": samples })
        })
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "from": crate::time::format(&from),
        "to": crate::time::format(&to),
        "step_seconds": buckets.step,
        "counted": "each node's latest Status at each rollup (about once a second), per core",
        "buckets": buckets.starts(),
        "cores": cores,
    })))
}

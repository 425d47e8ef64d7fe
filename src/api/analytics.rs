//! Analytics read from the aggregates kept as events arrive (never from raw events).
//!
//! Every count is per reporting node: an event that three nodes report (three guarantors of one
//! work package) counts three times. Each response says so in `counted`.

use std::collections::HashMap;

use actix_web::{web, HttpResponse};
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use super::params::{ordered, whole_number, Params};
use super::{read, ApiContext, ApiError, ApiPool};
use crate::jip3::failures;
use crate::store::aggregates::{self, GroupBy, Series, SeriesRange, Tier};
use crate::store::{implementations, network};
use crate::time::{round_down, round_up};

/// What every count in these responses means.
const COUNTED: &str = "events stored, as each reporting node sent them (an event reported by \
                       several nodes counts once per node)";

/// A default step gives about this many buckets.
const DEFAULT_BUCKETS: i64 = 120;
/// At most this many buckets in one series.
const MAX_BUCKETS: usize = 1440;

#[derive(Serialize)]
struct TimeSeries {
    metric: &'static str,
    group_by: GroupBy,
    /// Which aggregate the series were read from: `minute` or `hour` counts.
    tier: Tier,
    #[serde(with = "crate::time::rfc3339")]
    from: DateTime<Utc>,
    #[serde(with = "crate::time::rfc3339")]
    to: DateTime<Utc>,
    step_seconds: i64,
    /// The start of each bucket, oldest first; each series has one value per bucket.
    buckets: Vec<String>,
    counted: &'static str,
    series: Vec<Series>,
}

/// `GET /api/timeseries?metric=events&group_by=type|node|implementation&from=&to=&step=`: events
/// stored per bucket, one series per event type, node or implementation. `to` defaults to now,
/// `from` to an hour before `to`, `step` (seconds) to about 120 buckets. The minute counts serve
/// ranges that start within their retention at steps under an hour; the hourly counts serve the
/// rest, and the step is then a whole number of hours. The range is widened to whole units of the
/// tier it is read from.
#[utoipa::path(get, path = "/api/timeseries", tag = "analytics",
    params(("metric" = Option<String>, Query, description = "events"),
        ("group_by" = Option<String>, Query, description = "type, node or implementation"),
        ("from" = Option<String>, Query, description = "RFC 3339; default an hour before to"),
        ("to" = Option<String>, Query, description = "RFC 3339; default now"),
        ("step" = Option<u64>, Query, description = "Seconds; a whole number of the tier's unit")),
    responses((status = 200, description = "{metric, group_by, tier, from, to, step_seconds, buckets, counted, series}"),
        (status = 400, description = "A bad parameter")))]
pub async fn timeseries(
    query: web::Query<Vec<(String, String)>>,
    api: web::Data<ApiContext>,
    pool: web::Data<ApiPool>,
) -> Result<HttpResponse, ApiError> {
    let params = Params::new(&query, &["metric", "group_by", "from", "to", "step"], &[])?;
    let metric = match params.one("metric").unwrap_or("events") {
        "events" => "events",
        other => {
            return Err(ApiError::bad_request(format!(
                "unknown metric `{other}`: the one metric is `events`"
            )))
        }
    };
    let group_by = match params.one("group_by").unwrap_or("type") {
        "type" => GroupBy::Type,
        "node" => GroupBy::Node,
        "implementation" => GroupBy::Implementation,
        other => {
            return Err(ApiError::bad_request(format!(
                "invalid group_by `{other}`: expected type, node or implementation"
            )))
        }
    };
    let now = Utc::now();
    let to = params.instant("to")?.unwrap_or(now);
    let from = params.instant("from")?.unwrap_or(to - TimeDelta::hours(1));
    let step = params
        .one("step")
        .map(|text| whole_number("step", Some(text), 0, u32::MAX.into()))
        .transpose()?
        .map(TimeDelta::seconds);
    let minutes_kept = TimeDelta::days(api.config.minute_stats_retention_days.into());
    let range = series_range(from, to, step, now - minutes_kept)?;
    let series = read(&pool.0, async |conn| {
        aggregates::event_series(conn, group_by, &range).await
    })
    .await?;
    let buckets = (0..range.buckets() as i32)
        .map(|i| crate::time::format(&(range.from + range.step * i)))
        .collect();
    Ok(HttpResponse::Ok().json(TimeSeries {
        metric,
        group_by,
        tier: range.tier,
        from: range.from,
        to: range.to,
        step_seconds: range.step.num_seconds(),
        buckets,
        counted: COUNTED,
        series,
    }))
}

/// `GET /api/network`: nodes connected and known by implementation and version, protocol
/// version and GP version; best and finalized slot over the connected nodes (highest, median,
/// lowest, spread) and the nodes behind the median; events stored per second; decode failures,
/// undefined discriminators, node-reported drops, rate-limited events and refused handshakes of
/// the sessions active in the last day.
#[utoipa::path(get, path = "/api/network", tag = "analytics",
    responses((status = 200, description = "Nodes by implementation and version, slots, nodes behind, events/s, problems")))]
pub async fn network(pool: web::Data<ApiPool>) -> Result<HttpResponse, ApiError> {
    let overview = read(&pool.0, async |conn| network::overview(conn).await).await?;
    let mut body = serde_json::to_value(overview).expect("plain data");
    body["counted"] = COUNTED.into();
    Ok(HttpResponse::Ok().json(body))
}

/// `GET /api/implementations`: every implementation and version its nodes reported, most nodes
/// first: nodes known and connected, sessions and reconnects, events stored, decode failures,
/// undefined discriminators, drops the nodes reported, refused handshakes that claimed it.
#[utoipa::path(get, path = "/api/implementations", tag = "analytics",
    responses((status = 200, description = "{implementations, counted}")))]
pub async fn implementations(pool: web::Data<ApiPool>) -> Result<HttpResponse, ApiError> {
    let summaries = read(&pool.0, async |conn| {
        implementations::summaries(conn, None).await
    })
    .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "implementations": summaries,
        "counted": COUNTED,
    })))
}

/// `GET /api/implementations/{name}`: a conformance report per version of `name`: the figures of
/// the list plus which event types its nodes sent (with counts) and which never, decode failures
/// by error and by claimed type, undefined discriminators, refused handshakes by reason. 404 when
/// no node reported that implementation.
#[utoipa::path(get, path = "/api/implementations/{name}", tag = "analytics",
    params(("name" = String, Path, description = "The implementation name its nodes report")),
    responses((status = 200, description = "{name, versions, counted}: a conformance report per version"),
        (status = 404, description = "No node reported it")))]
pub async fn implementation(
    path: web::Path<String>,
    pool: web::Data<ApiPool>,
) -> Result<HttpResponse, ApiError> {
    let name = path.into_inner();
    let reports = read(&pool.0, async |conn| {
        implementations::reports(conn, &name).await
    })
    .await?;
    if reports.is_empty() {
        return Err(ApiError::not_found(format!(
            "no node reported the implementation `{name}`"
        )));
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "name": name,
        "versions": reports,
        "counted": COUNTED,
    })))
}

/// Failures per node listed per failure type, and reasons listed per type, at most this many.
const TOP_NODES: usize = 20;
const TOP_REASONS: usize = 10;

#[derive(Serialize)]
struct NodeFailures {
    node_id: String,
    count: i64,
    attempts: i64,
    rate: Option<f64>,
}

#[derive(Serialize)]
struct ReasonShare {
    reason: String,
    count: i64,
}

#[derive(Serialize)]
struct FailureType {
    event_type: u8,
    name: &'static str,
    count: i64,
    /// The attempt types this failure answers (the types its Event ID refers to).
    answers: Vec<&'static str>,
    /// Events of those types in the same range: the attempts.
    attempts: i64,
    /// count / attempts (null when it answers no attempt or none was made).
    rate: Option<f64>,
    nodes_failing: usize,
    nodes: Vec<NodeFailures>,
    reasons: Vec<ReasonShare>,
}

/// Counts per (type, node key), summed over the hours.
fn sum_by_type_and_node(rows: &[aggregates::TypeNodeCount]) -> HashMap<(i16, i32), i64> {
    let mut sums = HashMap::new();
    for row in rows.iter().filter(|r| r.events > 0) {
        *sums.entry((row.event_type, row.node_key)).or_default() += row.events;
    }
    sums
}

/// Per failure type, the [`TOP_NODES`] nodes with most of it (most first, then by key).
fn most_failing(failed: &HashMap<(i16, i32), i64>) -> HashMap<i16, Vec<(i32, i64)>> {
    let mut by_type: HashMap<i16, Vec<(i32, i64)>> = HashMap::new();
    for (&(event_type, node_key), &count) in failed {
        by_type
            .entry(event_type)
            .or_default()
            .push((node_key, count));
    }
    for nodes in by_type.values_mut() {
        nodes.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        nodes.truncate(TOP_NODES);
    }
    by_type
}

fn rate(count: i64, attempts: i64) -> Option<f64> {
    (attempts > 0).then(|| count as f64 / attempts as f64)
}

/// `GET /api/failures?from=&to=`: every failure event type (`…Failed`, refused, misbehaved,
/// discarded) that occurred in the range, most frequent first: its count, the attempts it
/// answers and the rate against them, the nodes with most of them (each with its own rate) and
/// the most frequent reasons. From the hourly counts by node and type and the failure reasons, so
/// the range is widened to whole hours. Default: the last hour.
#[utoipa::path(get, path = "/api/failures", tag = "analytics",
    params(("from" = Option<String>, Query, description = "RFC 3339; default an hour before to"),
        ("to" = Option<String>, Query, description = "RFC 3339; default now")),
    responses((status = 200, description = "{from, to, counted, failures}"),
        (status = 400, description = "A bad parameter")))]
pub async fn failures(
    query: web::Query<Vec<(String, String)>>,
    pool: web::Data<ApiPool>,
) -> Result<HttpResponse, ApiError> {
    let params = Params::new(&query, &["from", "to"], &[])?;
    let now = Utc::now();
    let to = params.instant("to")?.unwrap_or(now);
    let from = params.instant("from")?.unwrap_or(to - TimeDelta::hours(1));
    ordered(from, to)?;
    let hour = TimeDelta::hours(1);
    let (from, to) = (round_down(from, hour), round_up(to, hour));
    let answered: Vec<(u8, &'static [u8])> = failures::FAILURE_TYPES
        .iter()
        .map(|&d| (d, failures::attempts_of(d)))
        .collect();
    let failure_types: Vec<i16> = failures::FAILURE_TYPES.map(i16::from).to_vec();
    let attempt_types: Vec<i16> = failures::COUNTED_TYPES
        .iter()
        .filter(|&&d| !failures::is_failure(d))
        .map(|&d| i16::from(d))
        .collect();
    let counted_types: Vec<i16> = failures::COUNTED_TYPES
        .iter()
        .map(|&d| i16::from(d))
        .collect();
    // Only the (type, node) pairs that failed are read; attempts per node only for the nodes
    // listed, and the totals per type from the counts by type.
    let (failed, listed, attempts, totals, reasons, ids) = read(&pool.0, async |conn| {
        let rows = aggregates::failure_counts(conn, from, to, &failure_types, None).await?;
        let failed = sum_by_type_and_node(&rows);
        let listed = most_failing(&failed);
        let mut keys: Vec<i32> = listed.values().flatten().map(|(key, _)| *key).collect();
        keys.sort_unstable();
        keys.dedup();
        let rows = aggregates::failure_counts(conn, from, to, &attempt_types, Some(&keys)).await?;
        let attempts = sum_by_type_and_node(&rows);
        let totals = aggregates::type_totals(conn, from, to, &counted_types).await?;
        let reasons = aggregates::failure_reasons(conn, from, to).await?;
        let ids = aggregates::node_ids(conn, &keys).await?;
        Ok((failed, listed, attempts, totals, reasons, ids))
    })
    .await?;
    let mut nodes_failing: HashMap<i16, usize> = HashMap::new();
    for (event_type, _) in failed.keys() {
        *nodes_failing.entry(*event_type).or_default() += 1;
    }
    let total = |event_type: u8| totals.get(&i16::from(event_type)).copied().unwrap_or(0);
    let mut report: Vec<FailureType> = Vec::new();
    for (event_type, attempt_types) in answered {
        let count = total(event_type);
        if count == 0 {
            continue;
        }
        let nodes: Vec<NodeFailures> = listed
            .get(&i16::from(event_type))
            .into_iter()
            .flatten()
            .map(|&(node_key, count)| {
                let attempts = attempt_types
                    .iter()
                    .map(|&a| {
                        attempts
                            .get(&(i16::from(a), node_key))
                            .copied()
                            .unwrap_or(0)
                    })
                    .sum();
                NodeFailures {
                    node_id: ids.get(&node_key).cloned().unwrap_or_default(),
                    count,
                    attempts,
                    rate: rate(count, attempts),
                }
            })
            .collect();
        let attempts = attempt_types.iter().map(|&a| total(a)).sum();
        report.push(FailureType {
            event_type,
            name: crate::jip3::Event::type_name(event_type),
            count,
            answers: attempt_types
                .iter()
                .filter_map(|&a| crate::jip3::Event::name_of(a))
                .collect(),
            attempts,
            rate: rate(count, attempts),
            nodes_failing: nodes_failing
                .get(&i16::from(event_type))
                .copied()
                .unwrap_or(0),
            nodes,
            reasons: reasons
                .iter()
                .filter(|r| r.event_type == i16::from(event_type))
                .take(TOP_REASONS)
                .map(|r| ReasonShare {
                    reason: r.reason.clone(),
                    count: r.events,
                })
                .collect(),
        });
    }
    report.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then_with(|| a.event_type.cmp(&b.event_type))
    });
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "from": crate::time::format(&from),
        "to": crate::time::format(&to),
        "counted": COUNTED,
        "failures": report,
    })))
}

/// Picks the tier for `[from, to)` (minute counts are kept since `minutes_since`) and checks the
/// step against it.
fn series_range(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    step: Option<TimeDelta>,
    minutes_since: DateTime<Utc>,
) -> Result<SeriesRange, ApiError> {
    ordered(from, to)?;
    let span = to - from;
    let wanted = step.unwrap_or_else(|| span / DEFAULT_BUCKETS as i32);
    let tier = if from >= minutes_since && wanted < TimeDelta::hours(1) {
        Tier::Minute
    } else {
        Tier::Hour
    };
    let unit = tier.unit().num_seconds();
    let step = match step {
        Some(step) if step.num_seconds() == 0 || step.num_seconds() % unit != 0 => {
            return Err(ApiError::bad_request(format!(
                "invalid step {}: this range is read from the {} counts, so the step must be a \
                 whole number of {} seconds",
                step.num_seconds(),
                match tier {
                    Tier::Minute => "minute",
                    Tier::Hour => "hourly",
                },
                unit
            )))
        }
        Some(step) => step,
        // Rounded up to whole units.
        None => TimeDelta::seconds(((wanted.num_seconds() + unit - 1) / unit).max(1) * unit),
    };
    let range = SeriesRange {
        tier,
        from: round_down(from, tier.unit()),
        to: round_up(to, tier.unit()),
        step,
    };
    if range.buckets() > MAX_BUCKETS {
        return Err(ApiError::bad_request(format!(
            "{} buckets of {} seconds: at most {MAX_BUCKETS}; give a larger step or a shorter range",
            range.buckets(),
            step.num_seconds()
        )));
    }
    Ok(range)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn the_tier_follows_the_range_and_the_step() {
        let kept_since = at("2026-12-01T00:00:00Z");
        let recent = series_range(
            at("2026-12-01T10:00:30Z"),
            at("2026-12-01T11:00:00Z"),
            None,
            kept_since,
        )
        .unwrap();
        assert_eq!(recent.tier, Tier::Minute);
        assert_eq!(
            recent.from,
            at("2026-12-01T10:00:00Z"),
            "widened to whole minutes"
        );
        assert_eq!(recent.step, TimeDelta::minutes(1));
        assert_eq!(recent.buckets(), 60);

        let old = series_range(
            at("2026-11-20T10:00:00Z"),
            at("2026-11-21T10:00:00Z"),
            None,
            kept_since,
        )
        .unwrap();
        assert_eq!((old.tier, old.step), (Tier::Hour, TimeDelta::hours(1)));

        let hourly_step = series_range(
            at("2026-12-01T10:00:00Z"),
            at("2026-12-01T20:00:00Z"),
            Some(TimeDelta::hours(2)),
            kept_since,
        )
        .unwrap();
        assert_eq!((hourly_step.tier, hourly_step.buckets()), (Tier::Hour, 5));
    }

    #[test]
    fn steps_that_do_not_fit_the_tier_and_too_many_buckets_are_refused() {
        let kept_since = at("2026-12-01T00:00:00Z");
        let (from, to) = (at("2026-12-01T10:00:00Z"), at("2026-12-01T11:00:00Z"));
        for step in [0, 90] {
            assert!(series_range(from, to, Some(TimeDelta::seconds(step)), kept_since).is_err());
        }
        let old = at("2026-11-01T00:00:00Z");
        assert!(series_range(old, to, Some(TimeDelta::minutes(30)), kept_since).is_err());
        assert!(series_range(old, to, Some(TimeDelta::hours(1)), kept_since).is_ok());
        let long = at("2025-01-01T00:00:00Z");
        assert!(series_range(long, to, Some(TimeDelta::hours(1)), kept_since).is_err());
        assert!(series_range(to, from, None, kept_since).is_err());
    }
}

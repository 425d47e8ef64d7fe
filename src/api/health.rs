//! Health checks and the Prometheus endpoint.

use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::Serialize;
use serde_json::json;

use super::{ApiContext, ApiPool};
use crate::messages::GetStats;
use crate::time::now;

/// A database round trip slower than this makes the database `degraded`.
const SLOW_DATABASE: Duration = Duration::from_millis(500);
/// How long the health check waits for the database, and for the broadcaster.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);
/// System memory use from which memory is `degraded`.
const MEMORY_DEGRADED_PERCENT: f64 = 90.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    Healthy,
    Degraded,
    Unhealthy,
}

/// `GET /api/health`: the process answers.
#[utoipa::path(get, path = "/api/health", tag = "health",
    responses((status = 200, description = "The service is up: status, service, version")))]
pub async fn basic() -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "status": "ok",
        "service": "tart-backend",
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

/// `GET /api/health/detailed`: the database (a real round trip), the broadcaster and memory.
/// 200 when healthy or degraded, 503 when unhealthy (the database is out of reach).
#[utoipa::path(get, path = "/api/health/detailed", tag = "health",
    responses((status = 200, description = "Healthy or degraded: database latency, subscribers, memory"),
        (status = 503, description = "Unhealthy: the database is unreachable")))]
pub async fn detailed(api: web::Data<ApiContext>, pool: web::Data<ApiPool>) -> HttpResponse {
    let (database_status, database) = check_database(&pool).await;
    let (broadcaster_status, broadcaster) = check_broadcaster(&api).await;
    let (memory_status, memory) = check_memory();
    let status = database_status.max(broadcaster_status).max(memory_status);
    let code = match status {
        Status::Unhealthy => StatusCode::SERVICE_UNAVAILABLE,
        Status::Healthy | Status::Degraded => StatusCode::OK,
    };
    if status != Status::Healthy {
        log::warn!(
            "health check: {status:?} (database {database_status:?}, broadcaster \
             {broadcaster_status:?}, memory {memory_status:?})"
        );
    }
    HttpResponse::build(code).json(json!({
        "status": status,
        "timestamp": now(),
        "components": {
            "database": database,
            "broadcaster": broadcaster,
            "memory": memory,
        },
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": api.started_at.elapsed().as_secs(),
    }))
}

async fn check_database(pool: &ApiPool) -> (Status, serde_json::Value) {
    let started = Instant::now();
    let result = tokio::time::timeout(CHECK_TIMEOUT, crate::store::ping(&pool.0)).await;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let (status, message) = match result {
        Ok(Ok(())) if latency_ms > SLOW_DATABASE.as_millis() as f64 => {
            (Status::Degraded, "PostgreSQL answers slowly".to_owned())
        }
        Ok(Ok(())) => (Status::Healthy, "connected to PostgreSQL".to_owned()),
        Ok(Err(e)) => (Status::Unhealthy, e.to_string()),
        Err(_) => (
            Status::Unhealthy,
            format!("PostgreSQL did not answer within {CHECK_TIMEOUT:?}"),
        ),
    };
    let component = json!({
        "status": status,
        "latency_ms": (latency_ms * 1000.0).round() / 1000.0,
        "message": message,
    });
    (status, component)
}

/// The broadcaster answering proves it runs; without it only the live stream is down, so that
/// is `degraded`.
async fn check_broadcaster(api: &ApiContext) -> (Status, serde_json::Value) {
    match tokio::time::timeout(CHECK_TIMEOUT, api.live.stats.send(GetStats)).await {
        Ok(Ok(stats)) => (
            Status::Healthy,
            json!({
                "status": Status::Healthy,
                "subscribers": stats.subscribers,
                "message": format!(
                    "broadcasting events ({} so far, {} shed)",
                    stats.total_broadcast, stats.events_shed
                ),
            }),
        ),
        Ok(Err(e)) => broadcaster_down(e.to_string()),
        Err(_) => broadcaster_down(format!("no answer within {CHECK_TIMEOUT:?}")),
    }
}

fn broadcaster_down(why: String) -> (Status, serde_json::Value) {
    let component = json!({
        "status": Status::Degraded,
        "subscribers": 0,
        "message": format!("the live stream is down: {why}"),
    });
    (Status::Degraded, component)
}

/// The machine's memory in use (from /proc/meminfo), and this process's resident size.
fn check_memory() -> (Status, serde_json::Value) {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let status_file = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let usage = match (kib(&meminfo, "MemTotal:"), kib(&meminfo, "MemAvailable:")) {
        (Some(total), Some(available)) if total > 0 => {
            Some(100.0 * (total - available.min(total)) as f64 / total as f64)
        }
        _ => None,
    };
    let status = match usage {
        Some(percent) if percent < MEMORY_DEGRADED_PERCENT => Status::Healthy,
        Some(_) => Status::Degraded,
        None => {
            log::warn!("health check: cannot read /proc/meminfo");
            Status::Degraded
        }
    };
    let component = json!({
        "status": status,
        "usage_percent": usage.map(|p| (p * 10.0).round() / 10.0),
        "process_rss_bytes": kib(&status_file, "VmRSS:").map(|k| k * 1024),
    });
    (status, component)
}

/// The value of a `Key:   1234 kB` line.
fn kib(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// `GET /metrics`: every metric in the Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(api: web::Data<ApiContext>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(prometheus::TEXT_FORMAT)
        .body(api.metrics.render())
}

/// `GET /metrics/network`: what the nodes tell of the chain, per node and network-wide, in the
/// Prometheus text format (apart from `/metrics`, so the service's own stays small).
#[utoipa::path(get, path = "/metrics/network", tag = "health",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn network_metrics(api: web::Data<ApiContext>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(prometheus::TEXT_FORMAT)
        .body(api.metrics.network.render())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_lines_parse() {
        let text = "MemTotal:       16000000 kB\nMemAvailable:    4000000 kB\n";
        assert_eq!(kib(text, "MemTotal:"), Some(16_000_000));
        assert_eq!(kib(text, "MemAvailable:"), Some(4_000_000));
        assert_eq!(kib(text, "Swap:"), None);
    }
}

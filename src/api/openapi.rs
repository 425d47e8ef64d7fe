//! The machine-readable description of every route, `GET /api/openapi.json`, made by utoipa from
//! the annotations on the handlers themselves; a test fails when the routes and it disagree.

use actix_web::HttpResponse;
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "TART",
        description = "Telemetry for JAM networks (JIP-3): nodes, events, analytics. Errors are \
                       JSON {\"error\": \"...\"}; times are RFC 3339 UTC; counts in the analytics \
                       are per reporting node."
    ),
    paths(
        super::health::basic,
        super::health::detailed,
        super::health::metrics,
        super::health::network_metrics,
        super::stats::get,
        super::rest::nodes,
        super::rest::node,
        super::rest::node_events,
        super::rest::events,
        super::rest::event,
        super::diagnostics::sessions,
        super::diagnostics::failures,
        super::analytics::timeseries,
        super::analytics::failures,
        super::analytics::network,
        super::analytics::implementations,
        super::analytics::implementation,
        super::slots::list,
        super::slots::propagation,
        super::slots::detail,
        super::packages::list,
        super::packages::funnel,
        super::packages::detail,
        super::packages::cores,
        super::packages::core_status,
        super::packages::guarantees,
        super::peers::graph,
        super::peers::churn,
        super::ws::connect,
        document,
    )
)]
pub struct ApiDoc;

#[utoipa::path(get, path = "/api/openapi.json", tag = "health",
    responses((status = 200, description = "This document")))]
pub async fn document() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}

//! The HTTP side of TART on `api_bind`: the REST API, the WebSocket live stream (`/api/ws`),
//! Prometheus metrics (`/metrics`) and health checks, served by actix-web.
//!
//! actix-web runs one runtime per worker thread, and a PostgreSQL connection stays on the
//! runtime that made it, so each worker builds its own small pool ([`ApiPool`]); the DB writer's
//! pool is not shared. Every error is JSON, `{"error": "..."}`, with its status code.

pub mod analytics;
pub mod client;
pub mod diagnostics;
pub mod guard;
pub mod health;
pub mod openapi;
pub mod packages;
mod params;
mod peers;
pub mod rest;
pub mod slots;
pub mod stats;
pub mod ws;
pub mod ws_session;

use std::fmt;
use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_cors::Cors;
use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{ServerHandle, ServiceResponse};
use actix_web::http::{header, StatusCode};
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers};
use actix_web::{web, App, HttpResponse, HttpServer, ResponseError};

use crate::config::Config;
use crate::messages::LiveSessions;
use crate::metrics::Metrics;
use crate::store::{queries, Pool, StoreError};

/// How long a database read of the API may take before the request fails with 503.
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);
/// On shutdown, how long requests in progress may take to finish.
const HTTP_SHUTDOWN_GRACE: u64 = 5;

/// What every handler and WebSocket session shares, one per server.
pub struct ApiContext {
    pub config: Arc<Config>,
    pub metrics: Arc<Metrics>,
    /// The live wing, as WebSocket sessions and the health check talk to it.
    pub live: LiveSessions,
    pub stats: stats::StatsCache,
    pub started_at: Instant,
    pub client_limits: guard::ClientLimits,
}

/// One worker thread's database pool (see the module comment).
pub struct ApiPool(pub Pool);

/// The running HTTP server.
pub struct HttpApi {
    pub addr: SocketAddr,
    handle: ServerHandle,
}

/// Binds the API's address, so a taken port fails start-up before anything else runs.
pub fn bind(config: &Config) -> std::io::Result<TcpListener> {
    TcpListener::bind(&config.api_bind)
}

impl HttpApi {
    /// Starts the workers on `listener`. Call from inside the actix `System`.
    pub fn start(listener: TcpListener, api: ApiContext) -> std::io::Result<HttpApi> {
        let addr = listener.local_addr()?;
        let config = api.config.clone();
        let workers = config.api_workers;
        let api = web::Data::new(api);
        let mut server = HttpServer::new(move || {
            let (url, size) = (config.database_url.clone(), config.api_pool_size);
            App::new()
                .app_data(api.clone())
                .data_factory(move || {
                    let url = url.clone();
                    async move {
                        Ok::<_, std::convert::Infallible>(ApiPool(queries::api_pool(&url, size)))
                    }
                })
                .app_data(web::QueryConfig::default().error_handler(|e, _| bad_request(e)))
                .app_data(web::PathConfig::default().error_handler(|e, _| bad_request(e)))
                .wrap(actix_web::middleware::from_fn(guard::check))
                .wrap(ErrorHandlers::new().default_handler(json_error_body))
                .wrap(cors(&config))
                .configure(routes)
                .configure(crate::web::routes)
        })
        .disable_signals()
        .shutdown_timeout(HTTP_SHUTDOWN_GRACE)
        .on_connect(ws::remember_socket);
        if workers > 0 {
            server = server.workers(workers);
        }
        let server = server.listen(listener)?.run();
        let handle = server.handle();
        actix::spawn(async move {
            if let Err(e) = server.await {
                log::error!("the HTTP API stopped with an error: {e}");
            }
        });
        Ok(HttpApi { addr, handle })
    }

    /// Stops accepting, lets requests in progress finish (at most a few seconds), closes
    /// connections.
    pub async fn stop(&self) {
        self.handle.stop(true).await;
    }
}

/// One resource per path, so a wrong method is 405 and an unknown path 404 (both made JSON by
/// [`json_error_body`]).
fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/api/health").get(health::basic))
        .service(web::resource("/api/health/detailed").get(health::detailed))
        .service(web::resource("/api/stats").get(stats::get))
        .service(web::resource("/api/nodes").get(rest::nodes))
        .service(web::resource("/api/nodes/{node_id}").get(rest::node))
        .service(web::resource("/api/nodes/{node_id}/events").get(rest::node_events))
        .service(web::resource("/api/nodes/{node_id}/sessions").get(diagnostics::sessions))
        .service(web::resource("/api/nodes/{node_id}/failures").get(diagnostics::failures))
        .service(web::resource("/api/events").get(rest::events))
        .service(web::resource("/api/events/{id}").get(rest::event))
        .service(web::resource("/api/timeseries").get(analytics::timeseries))
        .service(web::resource("/api/network").get(analytics::network))
        .service(web::resource("/api/failures").get(analytics::failures))
        .service(web::resource("/api/implementations").get(analytics::implementations))
        .service(web::resource("/api/implementations/{name}").get(analytics::implementation))
        .service(web::resource("/api/slots").get(slots::list))
        .service(web::resource("/api/slots/propagation").get(slots::propagation))
        .service(web::resource("/api/slots/{slot}").get(slots::detail))
        .service(web::resource("/api/work-packages").get(packages::list))
        .service(web::resource("/api/work-packages/funnel").get(packages::funnel))
        .service(web::resource("/api/work-packages/{hash}").get(packages::detail))
        .service(web::resource("/api/cores").get(packages::cores))
        .service(web::resource("/api/cores/status").get(packages::core_status))
        .service(web::resource("/api/guarantees").get(packages::guarantees))
        .service(web::resource("/api/peers").get(peers::graph))
        .service(web::resource("/api/peers/churn").get(peers::churn))
        .service(web::resource("/api/ws").get(ws::connect))
        .service(web::resource("/api/openapi.json").get(openapi::document))
        .service(web::resource("/metrics").get(health::metrics))
        .service(web::resource("/metrics/network").get(health::network_metrics));
}

/// CORS from `cors_allowed_origins`: any origin by default, else only those listed. The API is
/// read-only, so only GET (and preflight) is allowed, without credentials.
fn cors(config: &Config) -> Cors {
    let cors = Cors::default()
        .allowed_methods(["GET", "OPTIONS"])
        .allow_any_header()
        .max_age(3600);
    match config.cors_origins() {
        None => cors.allow_any_origin().send_wildcard(),
        Some(origins) => origins
            .into_iter()
            .fold(cors, |cors, origin| cors.allowed_origin(origin)),
    }
}

/// An API error: its status and the message of the JSON body.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }

    pub fn too_many_requests(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::TOO_MANY_REQUESTS, message)
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        match self.status {
            StatusCode::UNAUTHORIZED => {
                response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            StatusCode::TOO_MANY_REQUESTS => {
                response.insert_header((header::RETRY_AFTER, "1"));
            }
            _ => {}
        }
        response.json(serde_json::json!({ "error": self.message }))
    }
}

impl From<StoreError> for ApiError {
    /// The database being out of reach is 503 (try again later); any other failure is 500.
    fn from(e: StoreError) -> ApiError {
        log::error!("API database read failed: {e}");
        let status = match e {
            StoreError::Pool(_) | StoreError::Connect { .. } => StatusCode::SERVICE_UNAVAILABLE,
            StoreError::Query(_) | StoreError::Migrations(_) | StoreError::MigrationTask(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        ApiError::new(status, format!("database: {e}"))
    }
}

/// Runs one database read with a connection from `pool`, bounded by [`QUERY_TIMEOUT`].
pub async fn read<T, F>(pool: &Pool, query: F) -> Result<T, ApiError>
where
    F: AsyncFnOnce(&mut diesel_async::AsyncPgConnection) -> Result<T, StoreError>,
{
    let work = async {
        let mut conn = pool.get().await.map_err(StoreError::from)?;
        query(&mut *conn).await
    };
    bounded(work).await
}

/// Fails a database future that takes longer than [`QUERY_TIMEOUT`].
pub async fn bounded<T>(work: impl Future<Output = Result<T, StoreError>>) -> Result<T, ApiError> {
    match tokio::time::timeout(QUERY_TIMEOUT, work).await {
        Ok(result) => Ok(result?),
        Err(_) => {
            log::error!("API database read took longer than {QUERY_TIMEOUT:?}");
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the database did not answer within {QUERY_TIMEOUT:?}"),
            ))
        }
    }
}

fn bad_request(e: impl fmt::Display) -> actix_web::Error {
    log::debug!("bad API request: {e}");
    ApiError::bad_request(e.to_string()).into()
}

/// Gives every error response that is not JSON yet (404 of a wrong path, 405 of a wrong method,
/// a refused WebSocket handshake, ...) the JSON body `{"error": "..."}`.
fn json_error_body<B: MessageBody + 'static>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let message = res
        .response()
        .error()
        .map(|e| e.to_string())
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned());
    log::debug!(
        "{} {}: {status} {message}",
        res.request().method(),
        res.request().path()
    );
    let body = serde_json::json!({ "error": message }).to_string();
    let res = res.map_body(|head, _| {
        head.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/json"),
        );
        EitherBody::<B, BoxBody>::right(BoxBody::new(body))
    });
    Ok(ErrorHandlerResponse::Response(res))
}

/// A node id from a request: 64 hex characters, taken in lowercase as nodes are stored.
pub fn parse_node_id(text: &str) -> Result<String, ApiError> {
    if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(text.to_ascii_lowercase())
    } else {
        Err(ApiError::bad_request(format!(
            "invalid node_id `{text}`: expected 64 hexadecimal characters"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_are_64_hex_characters() {
        let upper = "AB".repeat(32);
        assert_eq!(parse_node_id(&upper).unwrap(), "ab".repeat(32));
        assert!(parse_node_id("abc").is_err());
        assert!(parse_node_id(&"zz".repeat(32)).is_err());
        assert!(parse_node_id(&"é".repeat(32)).is_err());
    }
}

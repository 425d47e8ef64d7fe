//! Who may read the HTTP side: an optional token (`api_token`) for everything but the liveness
//! check, and a request rate per client address (`api_requests_per_ip_per_sec`), so one client
//! cannot take the API pools from the rest.
//!
//! The token goes in `Authorization: Bearer <token>`, or for a browser's WebSocket (which cannot
//! set headers) in `?token=<token>`. Behind a reverse proxy every request comes from the proxy's
//! address: list it in `api_trusted_proxies` and the client in its `X-Forwarded-For` is limited.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{web, Error};

use ipnet::IpNet;

use super::{ApiContext, ApiError};
use crate::config::{networks, Config, ConfigError};

/// Paths anyone may read: a load balancer's or Kubernetes' liveness probe has no token, and the
/// dashboard's page and files hold no data (the page asks for the token, then sends it).
fn is_open(path: &str) -> bool {
    path == "/api/health" || crate::web::is_page_path(path)
}
/// Past this many client addresses, those whose buckets are full again are forgotten.
const MAX_TRACKED_CLIENTS: usize = 10_000;

/// Token buckets per client address.
#[derive(Debug)]
pub struct ClientLimits {
    per_sec: f64,
    burst: f64,
    trusted_proxies: Vec<IpNet>,
    clients: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl ClientLimits {
    /// `api_requests_per_ip_per_sec` (0 turns limiting off) with a burst of ten times that, and
    /// the proxies whose `X-Forwarded-For` is believed.
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        let per_sec = config.api_requests_per_ip_per_sec;
        Ok(ClientLimits {
            per_sec: f64::from(per_sec),
            burst: f64::from(per_sec.saturating_mul(10).max(1)),
            trusted_proxies: networks("api_trusted_proxies", &config.api_trusted_proxies)?,
            clients: Mutex::new(HashMap::new()),
        })
    }

    fn trusted(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.trusted_proxies.iter().any(|n| n.contains(&ip))
    }

    /// Whom a request is from: its peer, or behind a trusted proxy the nearest address in
    /// `forwarded` (an `X-Forwarded-For` value) that is not a trusted proxy too.
    fn client(&self, peer: IpAddr, forwarded: Option<&str>) -> IpAddr {
        if !self.trusted(peer) {
            return peer;
        }
        forwarded
            .into_iter()
            .flat_map(|header| header.rsplit(','))
            .map_while(|entry| entry.trim().parse::<IpAddr>().ok())
            .find(|ip| !self.trusted(*ip))
            .unwrap_or(peer)
    }

    /// True if `ip` may make one more request at `now`.
    fn admit(&self, ip: IpAddr, now: Instant) -> bool {
        if self.per_sec == 0.0 {
            return true;
        }
        let mut clients = self.clients.lock().expect("not poisoned");
        if clients.len() >= MAX_TRACKED_CLIENTS {
            let (per_sec, burst) = (self.per_sec, self.burst);
            clients.retain(|_, (tokens, at)| {
                *tokens + now.saturating_duration_since(*at).as_secs_f64() * per_sec < burst
            });
        }
        let (tokens, at) = clients.entry(ip).or_insert((self.burst, now));
        *tokens = (*tokens + now.saturating_duration_since(*at).as_secs_f64() * self.per_sec)
            .min(self.burst);
        *at = now;
        if *tokens < 1.0 {
            return false;
        }
        *tokens -= 1.0;
        true
    }
}

/// Compares in time independent of where the first difference is.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}

fn presented_token(req: &ServiceRequest) -> Option<String> {
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    bearer.or_else(|| {
        web::Query::<HashMap<String, String>>::from_query(req.query_string())
            .ok()
            .and_then(|q| q.get("token").cloned())
    })
}

/// The middleware: 401 without the token when one is set, 429 over the client's rate.
pub async fn check(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let api = req
        .app_data::<web::Data<ApiContext>>()
        .expect("the API context is registered")
        .clone();
    if let Some(peer) = req.peer_addr().map(|a| a.ip()) {
        let forwarded = req
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok());
        let ip = api.client_limits.client(peer, forwarded);
        if !api.client_limits.admit(ip, Instant::now()) {
            api.metrics.api_requests_limited.inc();
            return Err(ApiError::too_many_requests(format!(
                "more than {} requests per second from {ip} (api_requests_per_ip_per_sec); \
                 retry in a second",
                api.config.api_requests_per_ip_per_sec
            ))
            .into());
        }
    }
    let expected = api.config.api_token.as_bytes();
    if !expected.is_empty() && !is_open(req.path()) {
        let given = presented_token(&req);
        if !given.is_some_and(|t| same_secret(t.as_bytes(), expected)) {
            api.metrics.api_requests_unauthorized.inc();
            return Err(ApiError::unauthorized(
                "a token is required: send `Authorization: Bearer <api_token>` (or `?token=` \
                 on a WebSocket URL)",
            )
            .into());
        }
    }
    next.call(req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limits(per_sec: &str, proxies: &str) -> ClientLimits {
        let overrides = [
            ("api_requests_per_ip_per_sec".to_owned(), per_sec.to_owned()),
            ("api_trusted_proxies".to_owned(), proxies.to_owned()),
        ];
        ClientLimits::from_config(&Config::load(None, &overrides).unwrap()).unwrap()
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let limits = limits("1", "10.1.0.0/16");
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let header = Some("203.0.113.5, 198.51.100.7, 10.1.2.3");
        assert_eq!(limits.client(ip("10.1.0.1"), header), ip("198.51.100.7"));
        assert_eq!(limits.client(ip("192.0.2.1"), header), ip("192.0.2.1"));
        assert_eq!(limits.client(ip("10.1.0.1"), None), ip("10.1.0.1"));
        assert_eq!(limits.client(ip("10.1.0.1"), Some("junk")), ip("10.1.0.1"));
    }

    #[test]
    fn each_client_has_its_own_bucket() {
        // 1/s: a burst of 10.
        let limits = limits("1", "");
        let (a, b) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let t0 = Instant::now();
        for _ in 0..10 {
            assert!(limits.admit(a, t0));
        }
        assert!(!limits.admit(a, t0));
        assert!(limits.admit(b, t0));
        assert!(limits.admit(a, t0 + Duration::from_secs(1)));
        assert!(super::tests::limits("0", "").admit(a, t0));
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"s3cret", b"s3cret"));
        assert!(!same_secret(b"s3cre", b"s3cret"));
        assert!(!same_secret(b"s3creT", b"s3cret"));
    }
}

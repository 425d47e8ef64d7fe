//! Settings, layered: built-in defaults < `--config FILE` (TOML) < environment < command-line
//! flags. `config/default.toml` documents every key with its default and why.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// Every setting of the server. Field names are the TOML keys and, upper-cased with a `TART_`
/// prefix, the environment variables (`TART_BATCH_SIZE`); a few have the conventional names too.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub database_url: String,
    pub telemetry_bind: String,
    pub api_bind: String,
    pub max_connections: usize,
    pub handshake_timeout_ms: u64,
    pub idle_timeout_ms: u64,
    pub max_frame_bytes: usize,
    pub max_connections_per_ip: usize,
    pub handshakes_per_ip_per_sec: u32,
    pub allowed_networks: String,
    pub allowed_peer_ids: String,
    pub expected_genesis: String,
    pub rate_limit_per_sec: u32,
    pub rate_limit_burst: u32,
    pub batch_size: usize,
    pub flush_interval_ms: u64,
    pub pool_size: u32,
    pub queue_capacity: usize,
    pub queue_bytes: usize,
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    pub breaker_threshold: u32,
    pub breaker_probe_ms: u64,
    pub rollup_interval_ms: u64,
    pub hourly_stats_interval_ms: u64,
    pub retention_days: u32,
    pub minute_stats_retention_days: u32,
    pub hourly_stats_retention_days: u32,
    pub vacuum_interval_secs: u64,
    pub partitions_ahead_days: u32,
    pub shutdown_timeout_secs: u64,
    pub cors_allowed_origins: String,
    pub api_token: String,
    pub api_requests_per_ip_per_sec: u32,
    pub api_trusted_proxies: String,
    pub api_workers: usize,
    pub api_pool_size: u32,
    pub broadcast_queue_bytes: usize,
    pub ws_client_queue_bytes: usize,
    pub ws_heartbeat_ms: u64,
    pub ws_client_timeout_ms: u64,
    pub ws_stats_interval_ms: u64,
    pub network_metrics_forget_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            database_url: "postgres://postgres@127.0.0.1:5432/tart_telemetry".into(),
            telemetry_bind: "0.0.0.0:9000".into(),
            api_bind: "0.0.0.0:8080".into(),
            max_connections: 1024,
            handshake_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            max_frame_bytes: crate::jip3::codec::DEFAULT_MAX_FRAME,
            max_connections_per_ip: 0,
            handshakes_per_ip_per_sec: 100,
            allowed_networks: String::new(),
            allowed_peer_ids: String::new(),
            expected_genesis: String::new(),
            rate_limit_per_sec: 100,
            rate_limit_burst: 1000,
            batch_size: 1000,
            flush_interval_ms: 20,
            pool_size: 4,
            queue_capacity: 100_000,
            queue_bytes: 256 << 20,
            retry_base_ms: 100,
            retry_max_ms: 5_000,
            breaker_threshold: 5,
            breaker_probe_ms: 1_000,
            rollup_interval_ms: 1_000,
            hourly_stats_interval_ms: 30_000,
            retention_days: 30,
            minute_stats_retention_days: 7,
            hourly_stats_retention_days: 400,
            vacuum_interval_secs: 60,
            partitions_ahead_days: 3,
            shutdown_timeout_secs: 30,
            cors_allowed_origins: "*".into(),
            api_token: String::new(),
            api_requests_per_ip_per_sec: 100,
            api_trusted_proxies: String::new(),
            api_workers: 0,
            api_pool_size: 4,
            broadcast_queue_bytes: 32 << 20,
            ws_client_queue_bytes: 4 << 20,
            ws_heartbeat_ms: 5_000,
            ws_client_timeout_ms: 30_000,
            ws_stats_interval_ms: 5_000,
            network_metrics_forget_secs: 3_600,
        }
    }
}

/// Conventional environment names accepted besides `TART_<KEY>`.
const ENV_ALIASES: &[(&str, &str)] = &[
    ("DATABASE_URL", "database_url"),
    ("TELEMETRY_BIND", "telemetry_bind"),
    ("API_BIND", "api_bind"),
];

impl Config {
    /// Builds the configuration from its layers. `overrides` are `key=value` pairs from flags.
    pub fn load(file: Option<&str>, overrides: &[(String, String)]) -> Result<Config, ConfigError> {
        let mut table = toml::Table::try_from(Config::default()).expect("defaults serialise");
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?;
            let from_file: toml::Table = text
                .parse()
                .map_err(|e| ConfigError::Invalid(format!("{path}: {e}")))?;
            table.extend(from_file);
        }
        let keys: Vec<String> = table.keys().cloned().collect();
        for key in &keys {
            if let Ok(value) = std::env::var(format!("TART_{}", key.to_uppercase())) {
                table.insert(key.clone(), Self::typed_like(&table[key], &value)?);
            }
        }
        for (env, key) in ENV_ALIASES {
            if let Ok(value) = std::env::var(env) {
                table.insert((*key).into(), toml::Value::String(value));
            }
        }
        for (key, value) in overrides {
            let current = table
                .get(key)
                .ok_or_else(|| ConfigError::Invalid(format!("unknown setting `{key}`")))?;
            let typed = Self::typed_like(current, value)?;
            table.insert(key.clone(), typed);
        }
        let config: Config = table
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Parses a text value into the TOML type the setting already has.
    fn typed_like(current: &toml::Value, text: &str) -> Result<toml::Value, ConfigError> {
        match current {
            toml::Value::Integer(_) => text
                .trim()
                .parse()
                .map(toml::Value::Integer)
                .map_err(|_| ConfigError::Invalid(format!("`{text}` is not a whole number"))),
            toml::Value::Boolean(_) => text
                .trim()
                .parse()
                .map(toml::Value::Boolean)
                .map_err(|_| ConfigError::Invalid(format!("`{text}` is not true or false"))),
            _ => Ok(toml::Value::String(text.to_owned())),
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("batch_size", self.batch_size as u64),
            ("pool_size", u64::from(self.pool_size)),
            ("queue_capacity", self.queue_capacity as u64),
            ("queue_bytes", self.queue_bytes as u64),
            ("max_frame_bytes", self.max_frame_bytes as u64),
            ("flush_interval_ms", self.flush_interval_ms),
            ("rollup_interval_ms", self.rollup_interval_ms),
            ("hourly_stats_interval_ms", self.hourly_stats_interval_ms),
            (
                "minute_stats_retention_days",
                u64::from(self.minute_stats_retention_days),
            ),
            (
                "hourly_stats_retention_days",
                u64::from(self.hourly_stats_retention_days),
            ),
            ("api_pool_size", u64::from(self.api_pool_size)),
            ("broadcast_queue_bytes", self.broadcast_queue_bytes as u64),
            ("ws_client_queue_bytes", self.ws_client_queue_bytes as u64),
            ("ws_heartbeat_ms", self.ws_heartbeat_ms),
            ("ws_client_timeout_ms", self.ws_client_timeout_ms),
            ("ws_stats_interval_ms", self.ws_stats_interval_ms),
            // 0 would probe a down database in a tight loop, or retry at once for ever.
            ("breaker_probe_ms", self.breaker_probe_ms),
            ("retry_base_ms", self.retry_base_ms),
            ("handshake_timeout_ms", self.handshake_timeout_ms),
            ("idle_timeout_ms", self.idle_timeout_ms),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(ConfigError::Invalid(format!("{key} must be above 0")));
        }
        if self.retry_base_ms > self.retry_max_ms {
            return Err(ConfigError::Invalid(format!(
                "retry_base_ms ({}) must not be above retry_max_ms ({}): the backoff starts at \
                 the one and is capped at the other",
                self.retry_base_ms, self.retry_max_ms
            )));
        }
        if self.queue_capacity > u32::MAX as usize {
            return Err(ConfigError::Invalid("queue_capacity is too large".into()));
        }
        // One acquisition takes at most u32::MAX permits.
        if self.queue_bytes > u32::MAX as usize {
            return Err(ConfigError::Invalid(
                "queue_bytes is too large (4 GiB at most)".into(),
            ));
        }
        if self.queue_bytes < self.max_frame_bytes {
            return Err(ConfigError::Invalid(format!(
                "queue_bytes ({}) must not be below max_frame_bytes ({}): the queue would hold \
                 less than one largest frame",
                self.queue_bytes, self.max_frame_bytes
            )));
        }
        Ok(())
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms)
    }

    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_millis(self.handshake_timeout_ms)
    }

    pub fn flush_interval(&self) -> Duration {
        Duration::from_millis(self.flush_interval_ms)
    }

    pub fn rollup_interval(&self) -> Duration {
        Duration::from_millis(self.rollup_interval_ms)
    }

    pub fn network_metrics_forget_after(&self) -> Duration {
        Duration::from_secs(self.network_metrics_forget_secs)
    }

    pub fn hourly_stats_interval(&self) -> Duration {
        Duration::from_millis(self.hourly_stats_interval_ms)
    }

    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout_secs)
    }

    pub fn ws_heartbeat(&self) -> Duration {
        Duration::from_millis(self.ws_heartbeat_ms)
    }

    pub fn ws_client_timeout(&self) -> Duration {
        Duration::from_millis(self.ws_client_timeout_ms)
    }

    pub fn ws_stats_interval(&self) -> Duration {
        Duration::from_millis(self.ws_stats_interval_ms)
    }

    /// The CORS origins: `*` for any, else the comma-separated list.
    pub fn cors_origins(&self) -> Option<Vec<&str>> {
        let origins: Vec<&str> = list(&self.cors_allowed_origins).collect();
        (!origins.contains(&"*")).then_some(origins)
    }
}

/// The items of a comma-separated setting, trimmed, empty ones left out.
pub fn list(text: &str) -> impl Iterator<Item = &str> {
    text.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// A comma-separated setting of addresses and CIDR ranges (`10.0.0.0/8, 192.168.1.7`).
pub fn networks(key: &str, text: &str) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    list(text)
        .map(|net| {
            net.parse::<ipnet::IpNet>()
                .or_else(|_| net.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    ConfigError::Invalid(format!(
                        "{key}: `{net}` is not an address or a CIDR range"
                    ))
                })
        })
        .collect()
}

/// The database URL with any password replaced, for log lines and error messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_and_are_typed() {
        let cfg = Config::load(
            None,
            &[
                ("batch_size".into(), "250".into()),
                ("telemetry_bind".into(), "127.0.0.1:0".into()),
            ],
        )
        .unwrap();
        assert_eq!(cfg.batch_size, 250);
        assert_eq!(cfg.telemetry_bind, "127.0.0.1:0");
        assert!(Config::load(None, &[("batch_size".into(), "many".into())]).is_err());
        assert!(Config::load(None, &[("no_such_key".into(), "1".into())]).is_err());
    }

    #[test]
    fn shipped_default_file_matches_built_in_defaults() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/default.toml");
        let text = std::fs::read_to_string(path).unwrap();
        let from_file: Config = toml::from_str(&text).unwrap();
        assert_eq!(from_file, Config::default());
    }

    #[test]
    fn settings_that_would_spin_or_invert_the_backoff_are_refused() {
        let load = |key: &str, value: &str| Config::load(None, &[(key.into(), value.into())]);
        let error = load("breaker_probe_ms", "0").unwrap_err().to_string();
        assert!(
            error.contains("breaker_probe_ms must be above 0"),
            "{error}"
        );
        assert!(load("retry_base_ms", "0").is_err());
        let error = load("retry_base_ms", "10000").unwrap_err().to_string();
        assert!(error.contains("retry_max_ms"), "{error}");
        assert!(
            load("retry_base_ms", "5000").is_ok(),
            "equal to the cap is fine"
        );
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
    }
}

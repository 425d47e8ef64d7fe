//! Starting and stopping a whole TART instance inside an actix `System`: database preparation,
//! the ingest, persist and live wings, the telemetry listener and the HTTP API.
//! `main` and the tests both use this.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use thiserror::Error;
use tokio::net::TcpListener;

use crate::api::{self, ApiContext, HttpApi};
use crate::config::{redact_url, Config, ConfigError};
use crate::ingest::access::AccessRules;
use crate::ingest::budget::QueueBudget;
use crate::ingest::listener::{CloseConnections, Listener};
use crate::ingest::rate_limiter::RateLimiter;
use crate::ingest::IngestContext;
use crate::live::broadcaster::{self, Broadcaster};
use crate::messages::{self, Drain};
use crate::metrics::Metrics;
use crate::persist::writer::{self, DbWriter};
use crate::store::{self, aggregates, ids::IdAllocator, partitions, StoreError};

/// How often partitions are created ahead, expired ones dropped and old event counts deleted.
const UPKEEP: Duration = Duration::from_secs(3600);

#[derive(Debug, Error)]
pub enum StartError {
    #[error(
        "{0}\n  Is PostgreSQL running? Start a local one with \
         `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` \
         (or `sudo systemctl start postgresql`), or point DATABASE_URL at yours."
    )]
    Database(#[from] StoreError),
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
}

#[derive(Debug, Error)]
#[error("shutdown did not finish within {timeout:?}: {pending} events were not written")]
pub struct ShutdownTimedOut {
    pub timeout: Duration,
    pub pending: usize,
}

/// A running instance.
pub struct Server {
    pub telemetry_addr: SocketAddr,
    /// Where the REST API, the WebSocket and /metrics listen.
    pub api_addr: SocketAddr,
    pub metrics: Arc<Metrics>,
    pub config: Arc<Config>,
    listener: Addr<Listener>,
    db_writer: Addr<DbWriter>,
    broadcaster: Addr<Broadcaster>,
    http: HttpApi,
    budget: Arc<QueueBudget>,
    writer_arbiter: Arbiter,
    broadcaster_arbiter: Arbiter,
}

impl Server {
    /// Prepares the database and starts everything. Call from inside an actix `System`.
    pub async fn start(config: Config) -> Result<Server, StartError> {
        let started_at = Instant::now();
        // The access lists are parsed first: a typo in one fails the start before anything runs.
        let access = AccessRules::from_config(&config)?;
        let client_limits = api::guard::ClientLimits::from_config(&config)?;
        let config = Arc::new(config);
        let metrics = Arc::new(Metrics::new());
        metrics.set_limits(&config);
        log::info!("using database {}", redact_url(&config.database_url));
        store::prepare(&config.database_url).await?;
        let api_socket = api::bind(&config).map_err(|source| StartError::Bind {
            addr: config.api_bind.clone(),
            source,
        })?;

        let service_pool = store::create_pool(&config.database_url, 1).await?;
        store::close_stale_sessions(&service_pool).await?;
        partitions::maintain(
            &service_pool,
            config.partitions_ahead_days,
            config.retention_days,
        )
        .await?;
        let ids = Arc::new(IdAllocator::from_database(&service_pool).await?);
        spawn_legacy_conversion(service_pool.clone());
        spawn_upkeep(service_pool, &config);

        let budget = Arc::new(QueueBudget::from_config(&config, &metrics));

        // The writer gets a thread of its own: its pool's connections live on that runtime, and
        // encoding batches there leaves the main thread to the sockets and decoding.
        let writer_arbiter = Arbiter::new();
        let (writer_tx, writer_rx) = tokio::sync::oneshot::channel();
        {
            let (config, budget, metrics) = (config.clone(), budget.clone(), metrics.clone());
            writer_arbiter.spawn(async move {
                let result = store::create_pool(&config.database_url, config.pool_size)
                    .await
                    .map(|pool| DbWriter::new(pool, &config, budget, metrics).start());
                let _ = writer_tx.send(result);
            });
        }
        let db_writer = writer_rx.await.expect("writer arbiter is running")?;

        // The broadcaster's fan-out and ring buffer get a thread of their own too, away from the
        // sockets and decoding on the main thread.
        let broadcaster_arbiter = Arbiter::new();
        let (broadcaster, live_feed) =
            Broadcaster::spawn(&config, metrics.clone(), &broadcaster_arbiter.handle());

        let rate_limiter = RateLimiter::new(
            config.rate_limit_per_sec,
            config.rate_limit_burst,
            writer::inbox_of(&db_writer),
            live_feed,
            budget.clone(),
            metrics.clone(),
        )
        .start();

        let socket = bind_telemetry(&config.telemetry_bind)
            .await
            .map_err(|source| StartError::Bind {
                addr: config.telemetry_bind.clone(),
                source,
            })?;
        let telemetry_addr = socket.local_addr().map_err(|source| StartError::Bind {
            addr: config.telemetry_bind.clone(),
            source,
        })?;
        let ingest = Arc::new(IngestContext {
            config: config.clone(),
            metrics: metrics.clone(),
            ids,
            budget: budget.clone(),
            rate_limiter,
            writer: writer::inbox_of(&db_writer),
            refusal_records: Default::default(),
            access,
            claims: Default::default(),
        });
        let listener = Listener::new(ingest, socket).start();
        log::info!("telemetry: listening for JAM nodes on {telemetry_addr}");

        let http = HttpApi::start(
            api_socket,
            ApiContext {
                config: config.clone(),
                metrics: metrics.clone(),
                live: broadcaster::sessions_of(&broadcaster),
                stats: api::stats::StatsCache::default(),
                started_at,
                client_limits,
            },
        )
        .map_err(|source| StartError::Bind {
            addr: config.api_bind.clone(),
            source,
        })?;
        let api_addr = http.addr;
        log::info!("API: REST, WebSocket (/api/ws) and /metrics on http://{api_addr}");

        Ok(Server {
            telemetry_addr,
            api_addr,
            metrics,
            config,
            listener,
            db_writer,
            broadcaster,
            http,
            budget,
            writer_arbiter,
            broadcaster_arbiter,
        })
    }

    /// Closes WebSocket clients and stops the HTTP API, then stops accepting nodes, closes node
    /// connections, writes everything queued. Bounded by `shutdown_timeout_secs`.
    pub async fn shutdown(self) -> Result<(), ShutdownTimedOut> {
        let timeout = self.config.shutdown_timeout();
        let listener = self.listener.clone();
        let db_writer = self.db_writer.clone();
        let broadcaster = self.broadcaster.clone();
        let http = &self.http;
        let drain = async move {
            let _ = broadcaster.send(messages::CloseAll).await;
            http.stop().await;
            let _ = listener.send(CloseConnections).await;
            let _ = db_writer.send(Drain).await;
        };
        let result = match tokio::time::timeout(timeout, drain).await {
            Ok(()) => {
                log::info!("shutdown complete: everything queued is written");
                Ok(())
            }
            Err(_) => Err(ShutdownTimedOut {
                timeout,
                pending: self.budget.pending().events,
            }),
        };
        self.writer_arbiter.stop();
        self.broadcaster_arbiter.stop();
        result
    }
}

/// Converts events an older TART kept as JSON, in the background (see `store::legacy`).
fn spawn_legacy_conversion(pool: store::Pool) {
    actix::spawn(async move {
        match store::legacy::convert(&pool).await {
            Ok(done) if done.events + done.kept_as_failures > 0 => log::info!(
                "converted {} events kept as JSON to wire form ({} kept as decode failures)",
                done.events,
                done.kept_as_failures
            ),
            Ok(_) => {}
            Err(e) => log::error!(
                "converting events kept as JSON stopped ({e}); the rest stay in legacy_events \
                 and are converted at the next start"
            ),
        }
    });
}

/// Every [`UPKEEP`]: makes and drops the daily event partitions (start-up made them already) and
/// deletes event counts past their retention (README, "Storage").
fn spawn_upkeep(pool: store::Pool, config: &Config) {
    let (ahead, retention) = (config.partitions_ahead_days, config.retention_days);
    let pool_for_vacuum = pool.clone();
    let (minute_days, hour_days) = (
        config.minute_stats_retention_days,
        config.hourly_stats_retention_days,
    );
    actix::spawn(async move {
        let mut ticks = tokio::time::interval(UPKEEP);
        let mut first = true;
        loop {
            ticks.tick().await;
            if !std::mem::take(&mut first) {
                if let Err(e) = partitions::maintain(&pool, ahead, retention).await {
                    log::error!(
                        "partition upkeep failed (rows still land in event_rows_default): {e}"
                    );
                }
            }
            let pruned = match pool.get().await {
                Ok(mut conn) => prune_derived(&mut conn, minute_days, hour_days).await,
                Err(e) => Err(e.into()),
            };
            match pruned {
                Ok((minutes, hours, protocol)) if minutes + hours + protocol > 0 => log::info!(
                    "retention: deleted {minutes} minute and {hours} hourly event counts, \
                     {protocol} rows of the JAM views"
                ),
                Ok(_) => {}
                Err(e) => log::error!("deleting event counts past their retention failed: {e}"),
            }
        }
    });
    if config.vacuum_interval_secs > 0 {
        spawn_vacuum(
            pool_for_vacuum,
            Duration::from_secs(config.vacuum_interval_secs),
        );
    }
}

/// Deletes the event counts and the rows of the JAM views past their retention: the per-node
/// rows are kept as long as the minute counts, the summaries as the hourly ones.
async fn prune_derived(
    conn: &mut diesel_async::AsyncPgConnection,
    minute_days: u32,
    hour_days: u32,
) -> Result<(usize, usize, usize), store::StoreError> {
    let (minutes, hours) = aggregates::prune(conn, minute_days, hour_days).await?;
    let protocol = store::blocks::prune(conn, minute_days, hour_days).await?
        + store::packages::prune(conn, minute_days, hour_days).await?
        + store::peers::prune(conn, minute_days, hour_days).await?;
    Ok((minutes, hours, protocol))
}

/// Vacuums the bookkeeping tables every `interval` (see `aggregates::vacuum_bookkeeping`).
fn spawn_vacuum(pool: store::Pool, interval: Duration) {
    actix::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            let vacuumed = match pool.get().await {
                Ok(mut conn) => aggregates::vacuum_bookkeeping(&mut conn).await,
                Err(e) => Err(e.into()),
            };
            // At most one line per interval: no throttle needed.
            if let Err(e) = vacuumed {
                log::warn!("vacuuming the bookkeeping tables failed: {e}");
            }
        }
    });
}

/// Room for every node to reconnect at once (after a restart all of them do): with the default
/// backlog of 1,024, a storm of 1,024 connects overflowed the kernel's queues here ("possible SYN
/// flooding") and some nodes were reset after they had started sending. The kernel caps it at
/// `net.core.somaxconn`.
const TELEMETRY_BACKLOG: u32 = 4096;

/// Binds the first address of `addr` that can be bound, as `TcpListener::bind` does.
async fn bind_telemetry(addr: &str) -> std::io::Result<TcpListener> {
    let mut last_error = None;
    for addr in tokio::net::lookup_host(addr).await? {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        let bound = socket
            .set_reuseaddr(true)
            .and_then(|()| socket.bind(addr))
            .and_then(|()| socket.listen(TELEMETRY_BACKLOG));
        match bound {
            Ok(listener) => return Ok(listener),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address to bind")
    }))
}

//! `GET /api/stats` and the database part of the WebSocket `stats` message, from one in-memory
//! snapshot refreshed at most every [`TTL`]: however many clients poll, the database sees about
//! one stats read per TTL.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{web, HttpResponse};
use tokio::sync::Mutex;

use super::{read, ApiContext, ApiError, ApiPool};
use crate::store::queries::{self, BlockStats, ConnectedNode};
use crate::store::Pool;

/// How long a snapshot is served before the next request refreshes it.
pub const TTL: Duration = Duration::from_secs(5);

/// Block stats and the connected nodes, as of the last refresh.
#[derive(Debug)]
pub struct Snapshot {
    pub blocks: BlockStats,
    pub connected_nodes: Vec<ConnectedNode>,
}

/// The cached snapshot, shared by every worker thread.
#[derive(Default)]
pub struct StatsCache {
    /// An async lock held while refreshing, so concurrent misses wait for one read instead of
    /// each making their own.
    latest: Mutex<Option<(Instant, Arc<Snapshot>)>>,
}

impl StatsCache {
    /// The snapshot, refreshed with a connection from `pool` (the caller's thread's) if it is
    /// older than the TTL.
    pub async fn get(&self, pool: &Pool) -> Result<Arc<Snapshot>, ApiError> {
        let mut latest = self.latest.lock().await;
        if let Some((taken, snapshot)) = &*latest {
            if taken.elapsed() < TTL {
                return Ok(snapshot.clone());
            }
        }
        let snapshot = Arc::new(
            read(pool, async |conn| {
                Ok(Snapshot {
                    blocks: queries::block_stats(conn).await?,
                    connected_nodes: queries::connected_nodes(conn).await?,
                })
            })
            .await?,
        );
        *latest = Some((Instant::now(), snapshot.clone()));
        Ok(snapshot)
    }
}

/// `GET /api/stats` → `{"total_blocks_authored", "best_block", "finalized_block"}`.
#[utoipa::path(get, path = "/api/stats", tag = "network",
    responses((status = 200, description = "Blocks authored, median best and finalized slots, outliers (cached 5 s)")))]
pub async fn get(
    api: web::Data<ApiContext>,
    pool: web::Data<ApiPool>,
) -> Result<HttpResponse, ApiError> {
    let snapshot = api.stats.get(&pool.0).await?;
    Ok(HttpResponse::Ok().json(&snapshot.blocks))
}

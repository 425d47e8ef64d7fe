//! PostgreSQL storage through diesel-async: connecting (and creating the database), migrations,
//! row ids, partition upkeep, and the writes of the ingest path.

pub mod aggregates;
pub mod blocks;
pub mod decoded;
pub mod diagnostics;
pub mod ids;
pub mod implementations;
pub mod legacy;
pub mod models;
pub mod network;
pub mod node_keys;
pub mod packages;
pub mod partitions;
pub mod peers;
pub mod queries;
pub mod schema;
pub mod write;

use diesel::prelude::*;
use diesel::sql_types::{Bool, Text};
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use thiserror::Error;

use crate::config::redact_url;

pub type Pool = bb8::Pool<AsyncDieselConnectionManager<AsyncPgConnection>>;

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database query failed: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("cannot connect to PostgreSQL at {url}: {message}")]
    Connect { url: String, message: String },
    #[error("database pool: {0}")]
    Pool(#[from] bb8::RunError<diesel_async::pooled_connection::PoolError>),
    #[error("migrations failed: {0}")]
    Migrations(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("the migration task failed: {0}")]
    MigrationTask(#[from] tokio::task::JoinError),
}

/// Retention: deletes the rows of each (table, time column, days) whose time is more than that
/// many days ago; returns how many went. Each time column has an index (or leads the key).
pub async fn delete_older_than(
    conn: &mut AsyncPgConnection,
    tables: &[(&str, &str, u32)],
) -> Result<usize, StoreError> {
    let mut deleted = 0;
    for &(table, time, days) in tables {
        deleted += diesel::sql_query(format!(
            "DELETE FROM {table} WHERE {time} < now() - make_interval(days => $1)"
        ))
        .bind::<diesel::sql_types::Integer, _>(days as i32)
        .execute(conn)
        .await?;
    }
    Ok(deleted)
}

/// The URL of the same server's `postgres` maintenance database, and the target database name.
fn maintenance_url(url: &str) -> Option<(String, String)> {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let authority_start = base.find("://")? + 3;
    let slash = base.rfind('/').filter(|&i| i >= authority_start)?;
    let name = base[slash + 1..].to_owned();
    let mut maintenance = format!("{}/postgres", &base[..slash]);
    if let Some(q) = query {
        maintenance = format!("{maintenance}?{q}");
    }
    (!name.is_empty()).then_some((maintenance, name))
}

async fn connect(url: &str) -> Result<AsyncPgConnection, StoreError> {
    match AsyncPgConnection::establish(url).await {
        Ok(conn) => Ok(conn),
        Err(e) => Err(StoreError::Connect {
            url: redact_url(url),
            message: match tcp_problem(url).await {
                Some(problem) => format!("{e} ({problem})"),
                None => e.to_string(),
            },
        }),
    }
}

/// The driver's error is often just "error connecting to server"; a plain TCP connect to the
/// URL's host and port tells the operator why (refused, unknown host, timeout).
async fn tcp_problem(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let target = if host_port.contains(':') {
        host_port.to_owned()
    } else {
        format!("{host_port}:5432")
    };
    let attempt = tokio::time::timeout(
        std::time::Duration::from_secs(3),
        tokio::net::TcpStream::connect(&target),
    )
    .await;
    match attempt {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(format!("{target}: {e}")),
        Err(_) => Some(format!("{target}: no answer within 3 s")),
    }
}

#[derive(QueryableByName)]
struct Exists {
    #[diesel(sql_type = Bool)]
    exists: bool,
}

/// Creates the database if it does not exist, so a newcomer needs only a running PostgreSQL.
pub async fn create_database_if_missing(url: &str) -> Result<(), StoreError> {
    let Some((maintenance, name)) = maintenance_url(url) else {
        return Ok(());
    };
    // If the database already exists, connecting to it is enough (and needs no CREATEDB right).
    match connect(url).await {
        Ok(_) => return Ok(()),
        Err(StoreError::Connect { message, .. }) if message.contains("does not exist") => {}
        Err(e) => return Err(e),
    }
    let mut conn = connect(&maintenance).await?;
    let found: Exists =
        diesel::sql_query("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS exists")
            .bind::<Text, _>(&name)
            .get_result(&mut conn)
            .await?;
    if !found.exists {
        let quoted = name.replace('"', "\"\"");
        match diesel::sql_query(format!("CREATE DATABASE \"{quoted}\""))
            .execute(&mut conn)
            .await
        {
            Ok(_) => log::info!("created database {name}"),
            // Another process created it in the meantime.
            Err(diesel::result::Error::DatabaseError(_, info))
                if info.message().contains("already exists") => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Drops a database (tests and the benchmark make throwaway ones).
pub async fn drop_database(url: &str) -> Result<(), StoreError> {
    let Some((maintenance, name)) = maintenance_url(url) else {
        return Ok(());
    };
    let mut conn = connect(&maintenance).await?;
    let quoted = name.replace('"', "\"\"");
    diesel::sql_query(format!("DROP DATABASE IF EXISTS \"{quoted}\" WITH (FORCE)"))
        .execute(&mut conn)
        .await?;
    Ok(())
}

/// Runs the embedded migrations. The harness is synchronous, so it runs on a blocking thread
/// through the async connection wrapper (it would panic on actix's single-threaded runtime).
pub async fn run_migrations(url: &str) -> Result<(), StoreError> {
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut conn =
            <AsyncConnectionWrapper<AsyncPgConnection> as diesel::Connection>::establish(&url)
                .map_err(|e| StoreError::Connect {
                    url: redact_url(&url),
                    message: e.to_string(),
                })?;
        conn.run_pending_migrations(MIGRATIONS)
            .map(|applied| {
                for m in applied {
                    log::info!("applied migration {m}");
                }
            })
            .map_err(StoreError::Migrations)
    })
    .await?
}

/// Creates, migrates and checks the database: everything the server needs before it listens.
pub async fn prepare(url: &str) -> Result<(), StoreError> {
    create_database_if_missing(url).await?;
    run_migrations(url).await
}

/// A pool of `size` connections. Built on the runtime that will use it: a PostgreSQL connection
/// stays tied to the runtime that created it.
pub async fn create_pool(url: &str, size: u32) -> Result<Pool, StoreError> {
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(url);
    bb8::Pool::builder()
        .max_size(size)
        .connection_timeout(std::time::Duration::from_secs(5))
        // No `SELECT 1` before each use: it was one more round trip in every batch write. A
        // connection that died fails its next query, that write is retried, and the pool drops
        // the connection (diesel-async marks it broken) and opens a new one.
        .test_on_check_out(false)
        .build(manager)
        .await
        .map_err(|e| StoreError::Connect {
            url: redact_url(url),
            message: e.to_string(),
        })
}

/// Marks every node disconnected and every open session ended: after a restart no connection
/// from before is alive, whatever the last run managed to write.
pub async fn close_stale_sessions(pool: &Pool) -> Result<(), StoreError> {
    let mut conn = pool.get().await?;
    let reconciled = reconcile_open_sessions(&mut conn).await?;
    if reconciled.sessions > 0 {
        log::warn!(
            "{} sessions were left open by an unclean stop: their stored-event counters were \
             {} below the rows in `event_rows` and are corrected (events still in memory at the \
             stop are lost; see the README's failure table)",
            reconciled.sessions,
            reconciled.missing
        );
    }
    diesel::sql_query(
        "UPDATE node_sessions SET disconnected_at = now(), disconnect_reason = 'server restarted' \
         WHERE disconnected_at IS NULL",
    )
    .execute(&mut conn)
    .await?;
    diesel::sql_query(
        "UPDATE nodes SET is_connected = FALSE, disconnected_at = now(), current_session_id = NULL \
         WHERE is_connected",
    )
    .execute(&mut conn)
    .await?;
    Ok(())
}

#[derive(Debug, QueryableByName)]
struct Reconciled {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    sessions: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    missing: i64,
}

/// After an unclean stop (SIGKILL, a crash, the machine lost) the sessions still open have
/// counters from the last rollup, behind the rows written after it. Their stored counts are
/// recounted from `event_rows` (an index range per session: the node's rows from the session's id
/// on, see `ids`), and each node's event count is raised by what its sessions missed.
async fn reconcile_open_sessions(conn: &mut AsyncPgConnection) -> Result<Reconciled, StoreError> {
    Ok(diesel::sql_query(
        "WITH actual AS ( \
             SELECT s.session_id, s.node_id, s.events_stored, \
                 (SELECT count(*) FROM event_rows e \
                  WHERE e.node_key = (SELECT k.node_key FROM node_keys k \
                                      WHERE k.node_id = s.node_id) \
                    AND e.id >= s.session_id AND e.session_id = s.session_id) AS stored \
             FROM node_sessions s WHERE s.disconnected_at IS NULL AND s.node_id IS NOT NULL), \
         fixed AS ( \
             UPDATE node_sessions s SET events_stored = a.stored FROM actual a \
             WHERE s.session_id = a.session_id AND a.stored > a.events_stored \
             RETURNING s.node_id, a.stored - a.events_stored AS missing), \
         per_node AS ( \
             UPDATE nodes n SET event_count = n.event_count + f.missing \
             FROM (SELECT node_id, sum(missing)::bigint AS missing FROM fixed GROUP BY node_id) f \
             WHERE n.node_id = f.node_id) \
         SELECT count(*) AS sessions, COALESCE(sum(missing), 0)::bigint AS missing FROM fixed",
    )
    .get_result(conn)
    .await?)
}

/// One round trip, for probes and health checks.
pub async fn ping(pool: &Pool) -> Result<(), StoreError> {
    let mut conn = pool.get().await?;
    diesel::sql_query("SELECT 1").execute(&mut conn).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maintenance_url_swaps_the_database() {
        assert_eq!(
            maintenance_url("postgres://u:p@h:5432/tart?sslmode=disable"),
            Some((
                "postgres://u:p@h:5432/postgres?sslmode=disable".into(),
                "tart".into()
            ))
        );
        assert_eq!(maintenance_url("postgres://h:5432"), None);
    }
}

//! Peers: each node's links to its peers as its own events tell them (`peer_links`), churn per
//! minute and node, and the queries of `/api/peers`. Peers are mapped to the nodes TART knows by
//! Peer ID (a node's id is its Peer ID in hex). No query here reads raw events.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use diesel::sql_types::{Array, BigInt, Bool, Bytea, Nullable, Text, Timestamptz};
use diesel::QueryableByName;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;

use super::StoreError;

/// What one node's events said of its link to one peer since the last rollup.
#[derive(Debug, Clone, Copy)]
pub struct LinkChange {
    pub first_at: DateTime<Utc>,
    /// The newest event's time and what it said.
    pub changed_at: DateTime<Utc>,
    pub connected: bool,
    pub connects: i64,
    pub disconnects: i64,
}

/// What the peer tracker hands to the rollup.
#[derive(Debug, Default)]
pub struct PeerChanges {
    /// (node, peer id) → the change.
    pub links: HashMap<(Arc<str>, [u8; 32]), LinkChange>,
    /// (minute, node) → (connects, disconnects).
    pub churn: HashMap<(DateTime<Utc>, Arc<str>), (i64, i64)>,
}

impl PeerChanges {
    pub fn is_empty(&self) -> bool {
        self.links.is_empty() && self.churn.is_empty()
    }

    /// The churn counts taken out, to be written with a later rollup.
    pub fn take_counts(&mut self) -> PeerChanges {
        PeerChanges {
            churn: std::mem::take(&mut self.churn),
            ..PeerChanges::default()
        }
    }

    /// Adds the counts of `held` (from [`PeerChanges::take_counts`]) to these.
    pub fn add_counts(&mut self, held: PeerChanges) {
        for (key, (connects, disconnects)) in held.churn {
            let sum = self.churn.entry(key).or_default();
            sum.0 += connects;
            sum.1 += disconnects;
        }
    }
}

const UPSERT_LINKS: &str = "\
INSERT INTO peer_links (node_key, peer_id, first_at, changed_at, connected, connects, disconnects)
SELECT k.node_key, v.peer_id, v.first_at, v.changed_at, v.connected, v.connects, v.disconnects
FROM unnest($1::text[], $2::bytea[], $3::timestamptz[], $4::timestamptz[], $5::bool[],
    $6::int8[], $7::int8[]) AS v(node_id, peer_id, first_at, changed_at, connected, connects,
    disconnects)
JOIN node_keys k ON k.node_id = v.node_id
ON CONFLICT (node_key, peer_id) DO UPDATE SET
    first_at = LEAST(peer_links.first_at, EXCLUDED.first_at),
    connected = CASE WHEN EXCLUDED.changed_at >= peer_links.changed_at
                     THEN EXCLUDED.connected ELSE peer_links.connected END,
    changed_at = GREATEST(peer_links.changed_at, EXCLUDED.changed_at),
    connects = peer_links.connects + EXCLUDED.connects,
    disconnects = peer_links.disconnects + EXCLUDED.disconnects";

const UPSERT_CHURN: &str = "\
INSERT INTO peer_churn_minute (minute, node_key, connects, disconnects)
SELECT v.minute, k.node_key, v.connects, v.disconnects
FROM unnest($1::timestamptz[], $2::text[], $3::int8[], $4::int8[])
    AS v(minute, node_id, connects, disconnects)
JOIN node_keys k ON k.node_id = v.node_id
ON CONFLICT (minute, node_key) DO UPDATE SET
    connects = peer_churn_minute.connects + EXCLUDED.connects,
    disconnects = peer_churn_minute.disconnects + EXCLUDED.disconnects";

/// Writes the changes, rows in key order. Inside the rollup's transaction.
pub async fn write(
    conn: &mut AsyncPgConnection,
    changes: &PeerChanges,
) -> Result<(), diesel::result::Error> {
    if !changes.links.is_empty() {
        let rows: BTreeMap<_, _> = changes.links.iter().collect();
        diesel::sql_query(UPSERT_LINKS)
            .bind::<Array<Text>, _>(rows.keys().map(|k| &*k.0).collect::<Vec<_>>())
            .bind::<Array<Bytea>, _>(rows.keys().map(|k| k.1.to_vec()).collect::<Vec<_>>())
            .bind::<Array<Timestamptz>, _>(rows.values().map(|l| l.first_at).collect::<Vec<_>>())
            .bind::<Array<Timestamptz>, _>(rows.values().map(|l| l.changed_at).collect::<Vec<_>>())
            .bind::<Array<Bool>, _>(rows.values().map(|l| l.connected).collect::<Vec<_>>())
            .bind::<Array<BigInt>, _>(rows.values().map(|l| l.connects).collect::<Vec<_>>())
            .bind::<Array<BigInt>, _>(rows.values().map(|l| l.disconnects).collect::<Vec<_>>())
            .execute(conn)
            .await?;
    }
    if !changes.churn.is_empty() {
        let rows: BTreeMap<_, _> = changes.churn.iter().collect();
        diesel::sql_query(UPSERT_CHURN)
            .bind::<Array<Timestamptz>, _>(rows.keys().map(|k| k.0).collect::<Vec<_>>())
            .bind::<Array<Text>, _>(rows.keys().map(|k| &*k.1).collect::<Vec<_>>())
            .bind::<Array<BigInt>, _>(rows.values().map(|c| c.0).collect::<Vec<_>>())
            .bind::<Array<BigInt>, _>(rows.values().map(|c| c.1).collect::<Vec<_>>())
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// Deletes links unchanged for `hour_days` and churn older than `minute_days`.
pub async fn prune(
    conn: &mut AsyncPgConnection,
    minute_days: u32,
    hour_days: u32,
) -> Result<usize, StoreError> {
    super::delete_older_than(
        conn,
        &[
            ("peer_links", "changed_at", hour_days),
            ("peer_churn_minute", "minute", minute_days),
        ],
    )
    .await
}

/// One node's link to one peer.
#[derive(Debug, Clone, Serialize, QueryableByName)]
pub struct Link {
    #[diesel(sql_type = Text)]
    pub node_id: String,
    /// The peer's Peer ID, as hex (the form of a node id).
    #[diesel(sql_type = Text)]
    pub peer_id: String,
    /// The peer as a node TART knows (its id), or null: a peer that does not report to TART.
    #[diesel(sql_type = Nullable<Text>)]
    pub peer_node_id: Option<String>,
    #[diesel(sql_type = Bool)]
    pub connected: bool,
    #[serde(with = "crate::time::rfc3339")]
    #[diesel(sql_type = Timestamptz)]
    pub changed_at: DateTime<Utc>,
    #[diesel(sql_type = BigInt)]
    pub connects: i64,
    #[diesel(sql_type = BigInt)]
    pub disconnects: i64,
}

/// The links changed since $1, each with its node and its peer as a node TART knows (by Peer ID),
/// of one node when $2 is not null.
const LINKS_SINCE: &str = "FROM peer_links l JOIN node_keys k ON k.node_key = l.node_key \
     LEFT JOIN node_keys p ON p.node_id = encode(l.peer_id, 'hex') \
     WHERE l.changed_at >= $1 AND ($2::text IS NULL OR k.node_id = $2)";

/// The links changed since `since` (connected or not), of every node or of one: the `limit`
/// changed last, and when `flapping`, only those that went down at least once, most connects +
/// disconnects first.
pub async fn links(
    conn: &mut AsyncPgConnection,
    since: DateTime<Utc>,
    node: Option<&str>,
    limit: i64,
    flapping: bool,
) -> Result<Vec<Link>, StoreError> {
    let (only, order) = match flapping {
        true => (
            "AND l.disconnects > 0",
            "l.connects + l.disconnects DESC, k.node_id",
        ),
        false => ("", "l.changed_at DESC, k.node_id"),
    };
    Ok(diesel::sql_query(format!(
        "SELECT k.node_id, encode(l.peer_id, 'hex') AS peer_id, p.node_id AS peer_node_id, \
             l.connected, l.changed_at, l.connects, l.disconnects \
         {LINKS_SINCE} {only} ORDER BY {order} LIMIT $3"
    ))
    .bind::<Timestamptz, _>(since)
    .bind::<Nullable<Text>, _>(node)
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await?)
}

/// One node's links changed since a time: all, those up, and of those, to unknown peers.
#[derive(Debug, Clone, QueryableByName)]
pub struct LinkCounts {
    #[diesel(sql_type = Text)]
    pub node_id: String,
    #[diesel(sql_type = BigInt)]
    pub links: i64,
    #[diesel(sql_type = BigInt)]
    pub connected: i64,
    #[diesel(sql_type = BigInt)]
    pub unknown: i64,
}

/// Per node, its links changed since `since`, counted by PostgreSQL (every node's, or one's).
pub async fn link_counts(
    conn: &mut AsyncPgConnection,
    since: DateTime<Utc>,
    node: Option<&str>,
) -> Result<Vec<LinkCounts>, StoreError> {
    Ok(diesel::sql_query(format!(
        "SELECT k.node_id, count(*) AS links, count(*) FILTER (WHERE l.connected) AS connected, \
             count(*) FILTER (WHERE l.connected AND p.node_id IS NULL) AS unknown \
         {LINKS_SINCE} GROUP BY k.node_id"
    ))
    .bind::<Timestamptz, _>(since)
    .bind::<Nullable<Text>, _>(node)
    .load(conn)
    .await?)
}

/// Connects and disconnects of one minute, all nodes together.
#[derive(Debug, Clone, Serialize, QueryableByName)]
pub struct Churn {
    #[serde(with = "crate::time::rfc3339")]
    #[diesel(sql_type = Timestamptz)]
    pub minute: DateTime<Utc>,
    #[diesel(sql_type = BigInt)]
    pub connects: i64,
    #[diesel(sql_type = BigInt)]
    pub disconnects: i64,
}

/// Churn per minute in `[from, to)`, summed over the nodes here (see
/// `aggregates::failure_reasons` for why not by PostgreSQL).
pub async fn churn(
    conn: &mut AsyncPgConnection,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<Churn>, StoreError> {
    let rows: Vec<Churn> = diesel::sql_query(
        "SELECT minute, connects, disconnects FROM peer_churn_minute \
         WHERE minute >= $1 AND minute < $2",
    )
    .bind::<Timestamptz, _>(from)
    .bind::<Timestamptz, _>(to)
    .load(conn)
    .await?;
    let mut sums: BTreeMap<DateTime<Utc>, (i64, i64)> = BTreeMap::new();
    for row in rows {
        let sum = sums.entry(row.minute).or_default();
        sum.0 += row.connects;
        sum.1 += row.disconnects;
    }
    Ok(sums
        .into_iter()
        .map(|(minute, (connects, disconnects))| Churn {
            minute,
            connects,
            disconnects,
        })
        .collect())
}

/// What a node's latest Status says of its peers.
#[derive(Debug, Clone, Serialize, QueryableByName)]
pub struct ReportedPeers {
    #[diesel(sql_type = Text)]
    pub node_id: String,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub num_peers: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub num_validator_peers: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub num_block_announcement_peers: Option<i64>,
}

/// Every node's latest Status peer counts (one row per node).
pub async fn reported_peers(
    conn: &mut AsyncPgConnection,
) -> Result<Vec<ReportedPeers>, StoreError> {
    let field = |name: &str| format!("(s.data->'Status'->>'{name}')::int8 AS {name}");
    Ok(diesel::sql_query(format!(
        "SELECT s.node_id, {}, {}, {} FROM node_status s ORDER BY s.node_id",
        field("num_peers"),
        field("num_validator_peers"),
        field("num_block_announcement_peers")
    ))
    .load(conn)
    .await?)
}

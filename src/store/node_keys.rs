//! `node_keys`: the small number each event row names its node by, instead of the node's
//! 64-character id (which each row used to carry twice). Keys are handed out by PostgreSQL, so
//! several servers writing one database agree on them; each server remembers the keys it has
//! used, so a node costs one extra round trip per server run, on its first write.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use diesel::sql_types::{Array, Integer, Text};
use diesel::QueryableByName;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::StoreError;

#[derive(QueryableByName)]
struct KeyRow {
    #[diesel(sql_type = Integer)]
    node_key: i32,
    #[diesel(sql_type = Text)]
    node_id: String,
}

/// The keys this server knows, shared by its concurrent writes.
#[derive(Debug, Default)]
pub struct NodeKeys {
    known: Mutex<HashMap<Arc<str>, i32>>,
}

impl NodeKeys {
    /// The key of every node in `nodes`, made in the database for those that have none yet.
    pub async fn resolve(
        &self,
        conn: &mut AsyncPgConnection,
        nodes: &[&Arc<str>],
    ) -> Result<HashMap<Arc<str>, i32>, StoreError> {
        let mut keys = HashMap::with_capacity(nodes.len());
        let mut missing: Vec<&str> = Vec::new();
        {
            let known = self.known.lock().expect("node keys lock");
            for node in nodes {
                match known.get(&***node) {
                    Some(&key) => {
                        keys.insert(Arc::clone(node), key);
                    }
                    None if !missing.contains(&&***node) => missing.push(node),
                    None => {}
                }
            }
        }
        if missing.is_empty() {
            return Ok(keys);
        }
        // Two statements: the second's snapshot sees keys another server made meanwhile, which
        // the insert skipped.
        diesel::sql_query(
            "INSERT INTO node_keys (node_id) SELECT unnest($1::text[]) ON CONFLICT (node_id) DO NOTHING",
        )
        .bind::<Array<Text>, _>(&missing)
        .execute(conn)
        .await?;
        let rows: Vec<KeyRow> = diesel::sql_query(
            "SELECT node_key, node_id FROM node_keys WHERE node_id = ANY($1::text[])",
        )
        .bind::<Array<Text>, _>(&missing)
        .load(conn)
        .await?;
        let mut known = self.known.lock().expect("node keys lock");
        for row in rows {
            let node: Arc<str> = row.node_id.into();
            known.insert(node.clone(), row.node_key);
            keys.insert(node, row.node_key);
        }
        // Every node has its key now, or the write fails (and is retried) rather than naming
        // no node.
        match nodes.iter().all(|node| keys.contains_key(&***node)) {
            true => Ok(keys),
            false => Err(diesel::result::Error::NotFound.into()),
        }
    }
}

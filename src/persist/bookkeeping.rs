//! The writer's bookkeeping lane: node connections, refused handshakes, session ends and the
//! rolled-up counters, written serially in the order they happened, one transaction per turn.
//!
//! The lane is bounded. While the database is down it only grows, and a node reconnecting in a
//! loop adds two operations a connection; past [`LANE_LIMIT`] operations the lane is compacted:
//! a session that both started and ended while queued, and is not its node's newest, is set aside
//! (the node's newest connection takes the place of its first in the queue, so the node row
//! exists before any counters queued after that point, and the last state of each node is
//! written when the database is back), and then the oldest refusal records. What is set aside is
//! counted; the events of those sessions are stored as usual, under a session id that then has
//! no `node_sessions` row. The lane keeps each node's newest connection, so it can exceed the
//! limit by about two operations per node that connected during the outage; it is scanned again
//! only after growing by a quarter of the limit, so a lane that cannot shrink costs no quadratic
//! work.

use std::collections::{HashMap, HashSet, VecDeque};

use diesel_async::AsyncConnection;

use crate::messages::{NodeConnected, SessionEnded};
use crate::store::models::NewSession;
use crate::store::write::{self, Rollup};
use crate::store::{Pool, StoreError};

/// Operations the lane holds before it is compacted: at about 600 bytes each (a node row and a
/// session row), a few megabytes.
pub const LANE_LIMIT: usize = 10_000;

/// Work of the serial lane.
pub enum MetaOp {
    Connect(Box<NodeConnected>),
    Refused(Box<NewSession>),
    Disconnect(SessionEnded),
    Rollup(Box<Rollup>),
}

/// What one compaction set aside.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SetAside {
    pub sessions: u64,
    pub refusals: u64,
}

/// The queued operations of the lane, in order.
pub struct Bookkeeping {
    ops: VecDeque<MetaOp>,
    limit: usize,
    /// The lane's length after the last compaction: the next waits until it has grown by a
    /// quarter of the limit beyond the larger of this and the limit.
    compacted_at: usize,
}

impl Bookkeeping {
    pub fn new(limit: usize) -> Self {
        Bookkeeping {
            ops: VecDeque::new(),
            limit,
            compacted_at: 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Queues `op`, compacting the lane if it is over its limit.
    pub fn push(&mut self, op: MetaOp) -> SetAside {
        self.ops.push_back(op);
        self.compact_if_due()
    }

    fn compact_if_due(&mut self) -> SetAside {
        let threshold = self.limit.max(self.compacted_at) + self.limit / 4;
        if self.ops.len() > self.limit && self.ops.len() > threshold.min(2 * self.limit) {
            let set_aside = self.compact();
            self.compacted_at = self.ops.len();
            set_aside
        } else {
            if self.ops.len() <= self.limit {
                self.compacted_at = 0;
            }
            SetAside::default()
        }
    }

    /// Everything queued, to run in one transaction.
    pub fn take_all(&mut self) -> Vec<MetaOp> {
        self.ops.drain(..).collect()
    }

    /// Ops whose transaction failed go back to the front, in order, before anything newer.
    pub fn put_back(&mut self, ops: Vec<MetaOp>) -> SetAside {
        for op in ops.into_iter().rev() {
            self.ops.push_front(op);
        }
        self.compact_if_due()
    }

    fn compact(&mut self) -> SetAside {
        let ops: Vec<MetaOp> = self.ops.drain(..).collect();
        let mut newest: HashMap<&str, (usize, i64)> = HashMap::new();
        let mut first: HashMap<&str, usize> = HashMap::new();
        let mut ended: HashSet<i64> = HashSet::new();
        for (i, op) in ops.iter().enumerate() {
            match op {
                MetaOp::Connect(c) => {
                    let node = c.node.node_id.as_str();
                    newest.insert(node, (i, c.session.session_id));
                    first.entry(node).or_insert(i);
                }
                MetaOp::Disconnect(e) => {
                    ended.insert(e.session_id);
                }
                _ => {}
            }
        }
        let mut set_aside: HashSet<i64> = HashSet::new();
        // Where a node's newest connection goes: the place of its first, if that is set aside.
        let mut moved: HashMap<usize, usize> = HashMap::new();
        for op in &ops {
            if let MetaOp::Connect(c) = op {
                let node = c.node.node_id.as_str();
                let session = c.session.session_id;
                if ended.contains(&session) && newest[node].1 != session {
                    set_aside.insert(session);
                }
            }
        }
        for (node, &(newest_at, _)) in &newest {
            let first_at = first[node];
            let first_set_aside = matches!(
                &ops[first_at],
                MetaOp::Connect(c) if set_aside.contains(&c.session.session_id)
            );
            if first_set_aside {
                moved.insert(first_at, newest_at);
            }
        }
        let mut slots: Vec<Option<MetaOp>> = ops.into_iter().map(Some).collect();
        for i in 0..slots.len() {
            let keep = match &slots[i] {
                None => continue,
                Some(MetaOp::Connect(c)) => !set_aside.contains(&c.session.session_id),
                Some(MetaOp::Disconnect(e)) => !set_aside.contains(&e.session_id),
                Some(_) => true,
            };
            if let Some(&newest_at) = moved.get(&i) {
                // A node's first connection, set aside: its newest takes its place, ahead of
                // every counter queued after it.
                slots[i] = None;
                self.ops.extend(slots[newest_at].take());
            } else if keep {
                self.ops.extend(slots[i].take());
            }
        }
        let mut refusals = 0;
        while self.ops.len() > self.limit {
            let Some(oldest) = self
                .ops
                .iter()
                .position(|op| matches!(op, MetaOp::Refused(_)))
            else {
                break;
            };
            self.ops.remove(oldest);
            refusals += 1;
        }
        SetAside {
            sessions: set_aside.len() as u64,
            refusals,
        }
    }
}

/// An operation the database refused (not: could not be reached): set aside, never retried.
#[derive(Debug)]
pub struct Refused {
    pub kind: &'static str,
    pub error: StoreError,
}

/// A turn stopped by a database that could not be reached: the first `applied` operations are
/// written, the rest are to be put back and tried again.
#[derive(Debug)]
pub struct Interrupted {
    pub applied: usize,
    pub error: StoreError,
}

impl MetaOp {
    /// The kind of operation, as log lines and the metric label name it.
    pub fn kind(&self) -> &'static str {
        match self {
            MetaOp::Connect(_) => "connect",
            MetaOp::Refused(_) => "refusal",
            MetaOp::Disconnect(_) => "disconnect",
            MetaOp::Rollup(_) => "rollup",
        }
    }
}

/// True if the database answered and refused the statement, as opposed to not being reached:
/// running it again would fail again. A lost connection can surface as an error of any kind
/// ("connection closed", "terminating connection due to administrator command"), so the
/// database must also still answer a probe.
async fn refused_by_database(pool: &Pool, error: &StoreError) -> bool {
    use diesel::result::{DatabaseErrorKind, Error};
    let StoreError::Query(Error::DatabaseError(kind, info)) = error else {
        return false;
    };
    let message = info.message();
    let connection_lost = matches!(kind, DatabaseErrorKind::ClosedConnection)
        || message.contains("connection closed")
        || message.contains("terminating connection");
    !connection_lost && database_answers(pool).await
}

async fn database_answers(pool: &Pool) -> bool {
    use diesel_async::RunQueryDsl;
    match pool.get().await {
        Ok(mut conn) => diesel::sql_query("SELECT 1")
            .execute(&mut *conn)
            .await
            .is_ok(),
        Err(_) => false,
    }
}

/// Runs `ops` in one transaction, in order. If the database refuses it, each operation runs in a
/// transaction of its own and those it refuses are set aside: one bad update (a counter past
/// `bigint`, say) must not block every later one for ever.
pub async fn run(pool: &Pool, ops: &[MetaOp]) -> Result<Vec<Refused>, Interrupted> {
    match run_together(pool, ops).await {
        Ok(()) => return Ok(Vec::new()),
        Err(error) if !refused_by_database(pool, &error).await => {
            return Err(Interrupted { applied: 0, error })
        }
        Err(_) => {}
    }
    let mut refused = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        match run_together(pool, std::slice::from_ref(op)).await {
            Ok(()) => {}
            Err(error) if refused_by_database(pool, &error).await => refused.push(Refused {
                kind: op.kind(),
                error,
            }),
            Err(error) => return Err(Interrupted { applied: i, error }),
        }
    }
    Ok(refused)
}

async fn run_together(pool: &Pool, ops: &[MetaOp]) -> Result<(), StoreError> {
    let mut conn = pool.get().await?;
    conn.transaction::<_, diesel::result::Error, _>(async |conn| {
        for op in ops {
            match op {
                MetaOp::Connect(c) => write::record_connect(conn, &c.node, &c.session).await?,
                MetaOp::Refused(session) => write::record_session(conn, session).await?,
                MetaOp::Disconnect(e) => {
                    write::record_disconnect(conn, &e.node_id, e.session_id, e.at, &e.reason)
                        .await?
                }
                MetaOp::Rollup(rollup) => write::write_rollup(conn, rollup).await?,
            }
        }
        Ok(())
    })
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::jip3::generate::{Generate, Generator};
    use crate::jip3::NodeInformation;
    use crate::store::models::NodeConnection;

    fn connect(info: &NodeInformation, session_id: i64, note: &str) -> MetaOp {
        let mut node = NodeConnection::new(info, session_id, None, Utc::now());
        node.note = note.into();
        MetaOp::Connect(Box::new(NodeConnected {
            node,
            session: NewSession::accepted(info, session_id, None, Utc::now()),
        }))
    }

    fn disconnect(info: &NodeInformation, session_id: i64) -> MetaOp {
        MetaOp::Disconnect(SessionEnded {
            node_id: info.node_id().into(),
            session_id,
            at: Utc::now(),
            reason: "closed by the node".into(),
        })
    }

    /// A long outage with 50 nodes reconnecting in a loop (1,000 connections each): the lane
    /// stays within its limit and the quarter it may grow before it is scanned again, and each
    /// node's newest connection, with its newest node row, is still there to be written when the
    /// database is back.
    #[test]
    fn a_long_outage_with_reconnecting_nodes_stays_bounded_and_keeps_each_nodes_last_state() {
        let limit = 500;
        let mut lane = Bookkeeping::new(limit);
        let mut g = Generator::new(1, 2);
        let nodes: Vec<NodeInformation> =
            (0..50).map(|_| NodeInformation::generate(&mut g)).collect();
        let (mut set_aside, mut session) = (SetAside::default(), 0);
        let mut add = |lane: &mut Bookkeeping, op| {
            let now = lane.push(op);
            set_aside.sessions += now.sessions;
            set_aside.refusals += now.refusals;
        };
        for round in 0..1000 {
            for info in &nodes {
                session += 1;
                add(&mut lane, connect(info, session, &format!("round {round}")));
                if round < 999 {
                    add(&mut lane, disconnect(info, session));
                }
            }
            let refusal = NewSession::accepted(&nodes[0], -round, None, Utc::now());
            add(&mut lane, MetaOp::Refused(Box::new(refusal)));
            assert!(
                lane.len() <= limit + limit / 4,
                "round {round}: {} ops",
                lane.len()
            );
        }
        assert_eq!(
            set_aside.sessions,
            50 * 1000 - lane_sessions(&lane) as u64,
            "every session is queued or counted"
        );
        assert!(set_aside.refusals > 0);
        let ops = lane.take_all();
        for info in &nodes {
            let last = ops
                .iter()
                .filter_map(|op| match op {
                    MetaOp::Connect(c) if c.node.node_id == info.node_id() => Some(c),
                    _ => None,
                })
                .next_back()
                .expect("the node's newest connection is kept");
            assert_eq!(last.node.note, "round 999");
            assert_eq!(last.node.current_session_id, Some(last.session.session_id));
        }
    }

    fn lane_sessions(lane: &Bookkeeping) -> usize {
        lane.ops
            .iter()
            .filter(|op| matches!(op, MetaOp::Connect(_)))
            .count()
    }

    /// A node whose first connection is set aside still has its row written before any
    /// counters queued after that first connection: its newest connection takes its place.
    #[test]
    fn a_set_aside_first_connection_is_replaced_in_place_by_the_newest() {
        let mut lane = Bookkeeping::new(3);
        let info = NodeInformation::generate(&mut Generator::new(3, 2));
        lane.push(connect(&info, 1, "first"));
        lane.push(MetaOp::Rollup(Box::default()));
        lane.push(disconnect(&info, 1));
        let set_aside = lane.push(connect(&info, 2, "newest"));
        assert_eq!(set_aside.sessions, 1);
        let ops = lane.take_all();
        assert!(
            matches!(&ops[0], MetaOp::Connect(c) if c.session.session_id == 2),
            "the newest connection comes first"
        );
        assert!(matches!(ops[1], MetaOp::Rollup(_)));
        assert_eq!(ops.len(), 2);
    }

    /// Many distinct nodes cannot be compacted away (each keeps its newest connection): the lane
    /// goes over its limit by about two operations per node, and keeps working.
    #[test]
    fn distinct_nodes_keep_their_newest_connection_past_the_limit() {
        let mut lane = Bookkeeping::new(100);
        let mut g = Generator::new(4, 2);
        for session in 0..1000 {
            let info = NodeInformation::generate(&mut g);
            lane.push(connect(&info, session, "only"));
            lane.push(disconnect(&info, session));
        }
        assert_eq!(lane.len(), 2000);
        assert_eq!(lane_sessions(&lane), 1000);
    }

    #[test]
    fn failed_ops_go_back_in_front_in_order() {
        let mut lane = Bookkeeping::new(10);
        let info = NodeInformation::generate(&mut Generator::new(2, 2));
        lane.push(connect(&info, 1, "a"));
        let taken = lane.take_all();
        lane.push(disconnect(&info, 1));
        lane.put_back(taken);
        let ops = lane.take_all();
        assert!(matches!(ops[0], MetaOp::Connect(_)));
        assert!(matches!(ops[1], MetaOp::Disconnect(_)));
    }
}

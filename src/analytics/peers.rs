//! The peer tracker: each node's links to its peers as its events tell them. Connected in names
//! its peer; Connected out names it only through the Connecting out it answers, so those rows
//! are remembered for a while; Disconnected names its peer.

use chrono::TimeDelta;

use super::blocks::Observed;
use super::RecentRows;
use crate::messages::{Fact, PeerChange, Reference};
use crate::store::peers::{LinkChange, PeerChanges};
use crate::time::round_down;

/// Connecting out rows remembered (~40 bytes each).
const REMEMBERED_ATTEMPTS: usize = 65_536;
/// Links handed to one rollup at most; past this, changes of new links are left out (counted).
pub const MAX_LINKS: usize = 100_000;

const CONNECTED_OUT: u8 = 26;

pub struct PeerTracker {
    attempts: RecentRows<i64, [u8; 32]>,
    changes: PeerChanges,
    left_out: u64,
}

impl Default for PeerTracker {
    fn default() -> Self {
        PeerTracker {
            attempts: RecentRows::new(REMEMBERED_ATTEMPTS),
            changes: PeerChanges::default(),
            left_out: 0,
        }
    }
}

impl PeerTracker {
    pub fn observe(&mut self, event: &Observed<'_>) {
        let (peer, connected) = match (event.fact, event.discriminator, event.reference) {
            (Some(&Fact::Peer { change, peer_id }), _, _) => match change {
                PeerChange::ConnectingOut => {
                    self.attempts.insert(event.row, peer_id);
                    return;
                }
                PeerChange::ConnectedIn => (peer_id, true),
                PeerChange::Disconnected => (peer_id, false),
            },
            (None, CONNECTED_OUT, Reference::Row(row)) => match self.attempts.get(row) {
                Some(&peer) => (peer, true),
                None => return,
            },
            _ => return,
        };
        let key = (event.node.clone(), peer);
        if !self.changes.links.contains_key(&key) && self.changes.links.len() >= MAX_LINKS {
            self.left_out += 1;
            return;
        }
        let link = self.changes.links.entry(key).or_insert(LinkChange {
            first_at: event.at,
            changed_at: event.at,
            connected,
            connects: 0,
            disconnects: 0,
        });
        link.first_at = link.first_at.min(event.at);
        if event.at >= link.changed_at {
            link.changed_at = event.at;
            link.connected = connected;
        }
        let minute = round_down(event.at, TimeDelta::minutes(1));
        let churn = self
            .changes
            .churn
            .entry((minute, event.node.clone()))
            .or_default();
        match connected {
            true => {
                link.connects += 1;
                churn.0 += 1;
            }
            false => {
                link.disconnects += 1;
                churn.1 += 1;
            }
        }
    }

    /// What changed since the last call, and how many changes were left out.
    pub fn take(&mut self) -> (PeerChanges, u64) {
        (
            std::mem::take(&mut self.changes),
            std::mem::take(&mut self.left_out),
        )
    }

    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

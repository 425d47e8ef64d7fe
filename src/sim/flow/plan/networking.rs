//! Networking: peer churn, connections in and out, disconnects, refusals, misbehaving peers,
//! block announcement streams opened and closed.

use rand::Rng;

use super::super::values::NETWORK_ERRORS;
use super::super::{Chain, Delay, Flow, Micros, HOP, NOW};
use crate::jip3::events::Slot;
use crate::jip3::types::*;
use crate::jip3::Event;
use crate::jip3::ProtocolVersion;

impl Flow {
    /// Peer churn: connections in and out, disconnects, the odd refusal or misbehaving peer.
    pub(in crate::sim::flow) fn plan_peers(&mut self, t0: Micros) {
        let at = t0 + self.delay(Delay(0.0, 1.0));
        let peer = self.peer_index();
        let (peer_id, peer_address) = (self.world.peer_id(peer), self.world.peer_address(peer));
        let mut chain = Chain::at(at).optional();
        match self.g.rng.random_range(0..20) {
            0..=3 => {
                let (opener, connected) = if self.chance(0.5) {
                    let connecting = chain.then(NOW, Event::ConnectingIn { peer_address });
                    let failed = |reason| Event::ConnectInFailed {
                        connecting_event_id: 0,
                        reason,
                    };
                    let connected = Event::ConnectedIn {
                        connecting_event_id: 0,
                        peer_id,
                    };
                    let ok = self.outcome(&mut chain, connecting, 5, failed, connected);
                    (ConnectionSide::Remote, ok)
                } else {
                    (ConnectionSide::Local, self.connect_out(&mut chain, peer))
                };
                if connected {
                    chain.then(
                        HOP,
                        Event::BlockAnnouncementStreamOpened { peer_id, opener },
                    );
                }
            }
            4 | 5 => {
                let reason = self.reason(NETWORK_ERRORS);
                let side = self.side();
                // Version 1 names the stream by its opened event (60), found when it is sent.
                let stream = match self.g.version() {
                    ProtocolVersion::V0 => ClosedStream::Peer(peer_id),
                    ProtocolVersion::V1 => ClosedStream::OpenedEvent(0),
                };
                let closed = Event::BlockAnnouncementStreamClosed {
                    stream,
                    closer: side,
                    reason: reason.clone(),
                };
                chain.then(NOW, closed);
                let disconnected = Event::Disconnected {
                    peer_id,
                    terminator: Some(side),
                    reason,
                };
                chain.then(HOP, disconnected);
            }
            6 => {
                chain.then(NOW, Event::ConnectionRefused { peer_address });
            }
            7 if self.one_in(4) => {
                let reason = self.reason(&["invalid block announcement", "invalid ticket"]);
                chain.then(NOW, Event::PeerMisbehaved { peer_id, reason });
            }
            _ => return,
        }
        self.push(chain);
    }

    /// A planted fault: a link that flaps, connected out in even slots and lost in odd ones.
    pub(in crate::sim::flow) fn plan_flapping_link(&mut self, slot: Slot, t0: Micros) {
        let Some(peer) = self.timing.faults.flapping_peer else {
            return;
        };
        let at = t0 + self.delay(Delay(0.4, 0.6));
        let mut chain = Chain::at(at);
        let peer_id = self.world.peer_id(peer);
        if slot.is_multiple_of(2) {
            let connecting = chain.then(
                NOW,
                Event::ConnectingOut {
                    peer_id,
                    peer_address: self.world.peer_address(peer),
                },
            );
            chain.reply(
                HOP,
                connecting,
                Event::ConnectedOut {
                    connecting_event_id: 0,
                },
            );
        } else {
            chain.then(
                NOW,
                Event::Disconnected {
                    peer_id,
                    terminator: Some(ConnectionSide::Remote),
                    reason: "connection reset by peer".into(),
                },
            );
        }
        self.push(chain);
    }

    /// A planted fault: a node whose outbound connections fail at a known rate also tries one
    /// every slot, so that rate shows over few slots. Not optional: a rate does not skip it.
    pub(in crate::sim::flow) fn plan_failing_outbound(&mut self, t0: Micros) {
        if self.timing.faults.outbound_failure_rate.is_none() {
            return;
        }
        let at = t0 + self.delay(Delay(0.0, 1.0));
        let mut chain = Chain::at(at);
        let peer = self.peer_index();
        self.connect_out(&mut chain, peer);
        self.push(chain);
    }

    /// An outbound connection attempt to `peer` and its outcome: it fails one time in five, or
    /// at the planted rate. Returns whether it connected.
    fn connect_out(&mut self, chain: &mut Chain, peer: usize) -> bool {
        let (peer_id, peer_address) = (self.world.peer_id(peer), self.world.peer_address(peer));
        let connecting = chain.then(
            NOW,
            Event::ConnectingOut {
                peer_id,
                peer_address,
            },
        );
        let fails = match self.timing.faults.outbound_failure_rate {
            Some(rate) => self.chance(rate),
            None => self.one_in(5),
        };
        let failed = |reason| Event::ConnectOutFailed {
            connecting_event_id: 0,
            reason,
        };
        let connected = Event::ConnectedOut {
            connecting_event_id: 0,
        };
        self.answer(chain, connecting, fails, failed, connected)
    }
}

//! Availability: shard requests (CE 137), assurances distributed and received (CE 141).

use rand::Rng;

use super::super::values::NETWORK_ERRORS;
use super::super::{Chain, Delay, Flow, Micros, HOP, NOW};
use crate::jip3::events::Slot;
use crate::jip3::generate::Generate;
use crate::jip3::types::*;
use crate::jip3::Event;

impl Flow {
    /// Shards fetched as an assurer (CE 137), the own assurance distributed (CE 141), and the
    /// assurances of others received.
    pub(in crate::sim::flow) fn plan_availability(&mut self, slot: Slot, t0: Micros) {
        for _ in 0..self.g.rng.random_range(1..=2) {
            let at = t0 + self.delay(Delay(0.05, 0.4));
            let chain = self.shard_request_out(at);
            self.push(chain);
        }
        let anchor = self
            .world
            .block_hash(self.block_slot(slot.saturating_sub(1)));
        let mut chain = Chain::at(t0 + self.delay(Delay(0.5, 0.6))).optional();
        let availability = CoreBitfield::generate(&mut self.g);
        let distributing = chain.then(
            NOW,
            Event::DistributingAssurance {
                anchor,
                availability,
            },
        );
        for _ in 0..self.neighbours().min(16) {
            let recipient = self.peer();
            let failed = |reason| Event::AssuranceSendFailed {
                distributing_event_id: 0,
                recipient,
                reason,
            };
            let sent = Event::AssuranceSent {
                distributing_event_id: 0,
                recipient,
            };
            self.outcome(&mut chain, distributing, 40, failed, sent);
        }
        chain.reply(
            HOP,
            distributing,
            Event::AssuranceDistributed {
                distributing_event_id: 0,
            },
        );
        self.push(chain);
        let received = self.neighbours().min(48);
        for _ in 0..self.g.rng.random_range(received / 2..=received) {
            let at = t0 + self.delay(Delay(0.5, 0.7));
            let chain = self.assurance_in(at, slot);
            self.push(chain);
        }
    }

    pub(in crate::sim::flow) fn shard_request_out(&mut self, at: Micros) -> Chain {
        let mut chain = Chain::at(at).optional();
        let (guarantor, erasure_root) = (self.peer(), self.hash());
        let request = chain.then(
            NOW,
            Event::SendingShardRequest {
                guarantor,
                erasure_root,
                shard_index: self.validator,
            },
        );
        chain.reply(
            HOP,
            request,
            Event::ShardRequestSent {
                request_event_id: 0,
            },
        );
        let failed = |reason| Event::ShardRequestFailed {
            request_event_id: 0,
            reason,
        };
        let transferred = Event::ShardsTransferred {
            request_event_id: 0,
        };
        self.outcome(&mut chain, request, 25, failed, transferred);
        chain
    }

    pub(in crate::sim::flow) fn assurance_in(&mut self, at: Micros, slot: Slot) -> Chain {
        let mut chain = Chain::at(at).optional();
        let sender = self.peer();
        let event = if self.one_in(50) {
            Event::AssuranceReceiveFailed {
                sender,
                reason: self.reason(NETWORK_ERRORS),
            }
        } else {
            Event::AssuranceReceived {
                sender,
                anchor: self
                    .world
                    .block_hash(self.block_slot(slot.saturating_sub(1))),
            }
        };
        chain.then(NOW, event);
        chain
    }
}

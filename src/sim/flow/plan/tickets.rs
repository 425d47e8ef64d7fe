//! Safrole tickets: generating them once per epoch and passing them on (CE 131/132).

use rand::Rng;

use super::super::values::NETWORK_ERRORS;
use super::super::{Chain, Delay, Flow, Micros, NOW};
use crate::jip3::events::Slot;
use crate::jip3::Event;
use crate::sim::world::gp07_constant;

impl Flow {
    /// Safrole: tickets for the next epoch at each epoch start (and at the node's start), and
    /// other validators' tickets passing through during the submission window.
    pub(in crate::sim::flow) fn plan_tickets(&mut self, slot: Slot, t0: Micros) {
        let epoch_length = self.params.epoch_length;
        let epoch = slot / epoch_length;
        if slot.is_multiple_of(epoch_length) || std::mem::take(&mut self.just_started) {
            let at = t0 + self.delay(Delay(0.1, 0.2));
            let mut chain = Chain::at(at).optional();
            let generating = chain.then(NOW, Event::GeneratingTickets { epoch: epoch + 1 });
            if self.one_in(20) {
                let reason = self.reason(&["no ring keys for the epoch", "VRF proof failed"]);
                chain.reply(
                    Delay(0.1, 0.3),
                    generating,
                    Event::TicketGenerationFailed {
                        generating_event_id: 0,
                        reason,
                    },
                );
            } else {
                let vrf_outputs = (0..gp07_constant(self.params.ticket_entries))
                    .map(|_| self.hash())
                    .collect();
                chain.reply(
                    Delay(0.1, 0.3),
                    generating,
                    Event::TicketsGenerated {
                        generating_event_id: 0,
                        vrf_outputs,
                    },
                );
            }
            self.push(chain);
        }
        if slot % epoch_length < self.params.epoch_tail_start {
            for _ in 0..self.upto(2) {
                let at = t0 + self.delay(Delay(0.2, 1.0));
                let chain = self.ticket_transfer(at, epoch + 1);
                self.push(chain);
            }
        }
    }

    pub(in crate::sim::flow) fn ticket_transfer(&mut self, at: Micros, epoch: u32) -> Chain {
        let mut chain = Chain::at(at).optional();
        let (peer_id, sender, ce132_used) = (self.peer(), self.side(), self.chance(0.5));
        let event = if self.one_in(30) {
            Event::TicketTransferFailed {
                peer_id,
                sender,
                ce132_used,
                reason: self.reason(NETWORK_ERRORS),
            }
        } else {
            Event::TicketTransferred {
                peer_id,
                sender,
                ce132_used,
                epoch,
                attempt: self.g.rng.random_range(0..2),
                vrf_output: self.hash(),
            }
        };
        chain.then(NOW, event);
        chain
    }
}

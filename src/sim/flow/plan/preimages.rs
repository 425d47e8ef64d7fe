//! Preimages: announced by a peer (CE 142) and fetched (CE 143).

use rand::Rng;

use super::super::{Chain, Flow, Micros, HOP, NOW};
use crate::jip3::types::*;
use crate::jip3::Event;

impl Flow {
    /// A preimage announced by a peer (CE 142) and fetched (CE 143).
    pub(in crate::sim::flow) fn preimage_out(&mut self, at: Micros) -> Chain {
        let mut chain = Chain::at(at).optional();
        let (peer_id, hash, requester) = (self.peer(), self.hash(), self.service());
        let length = self.g.rng.random_range(32..100_000);
        chain.then(
            NOW,
            Event::PreimageAnnounced {
                peer_id,
                announcer: ConnectionSide::Remote,
                requester,
                hash,
                length,
            },
        );
        let request = chain.then(
            HOP,
            Event::SendingPreimageRequest {
                recipient: peer_id,
                hash,
            },
        );
        chain.reply(
            HOP,
            request,
            Event::PreimageRequestSent {
                request_event_id: 0,
            },
        );
        let failed = |reason| Event::PreimageRequestFailed {
            request_event_id: 0,
            reason,
        };
        let transferred = Event::PreimageTransferred {
            request_event_id: 0,
            length,
        };
        self.outcome(&mut chain, request, 15, failed, transferred);
        chain
    }
}

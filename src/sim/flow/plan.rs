//! The JAM side of the flow: what a validator does in a slot, as chains of events. Timings are
//! fractions of a slot; probabilities are per slot unless said otherwise.

use rand::Rng;

use super::values::NETWORK_ERRORS;
use super::{Chain, Delay, Flow, Micros, HOP, NOW, WORK};
use crate::jip3::events::Slot;
use crate::jip3::generate::Generate;
use crate::jip3::types::*;
use crate::jip3::Event;
use crate::jip3::ProtocolVersion;
use crate::sim::world::{gp07_constant, World};

/// Finality trails the best block by this many slots.
const FINALITY_LAG: Slot = 2;

impl Flow {
    pub(super) fn plan_slot(&mut self, k: u64) {
        let t0 = k * self.timing.slot;
        let slot = self.timing.first_slot + k as Slot;
        // Status every third of a slot (2 s at 6 s slots), at a phase of its own per node.
        let phase = self.slot_fraction((self.index % 10) as f64 * 0.03);
        for third in 0..3 {
            let mut chain = Chain::at(t0 + phase + self.timing.slot * third / 3);
            let status = self.status();
            chain.then(NOW, status);
            self.push(chain);
        }
        self.plan_block(slot, t0);
        for _ in 1..self.neighbours() {
            let at = t0 + self.delay(Delay(0.05, 0.3));
            let chain = self.announcement(at, slot);
            self.push(chain);
        }
        if self.chance(0.1) {
            let at = t0 + self.delay(Delay(0.1, 0.9));
            let chain = self.block_request_out(at, slot);
            self.push(chain);
        }
        self.plan_tickets(slot, t0);
        self.plan_guaranteeing(slot, t0);
        self.plan_availability(slot, t0);
        self.plan_peers(t0);
        // Each serving-side chain happens now and then; the pacer uses them as filler too.
        for _ in 0..self.upto(2) {
            let at = t0 + self.delay(Delay(0.0, 1.0));
            let kind = self.g.rng.random_range(0..3);
            let chain = self.serving(at, slot, kind);
            self.push(chain);
        }
        if self.chance(0.2) {
            let at = t0 + self.delay(Delay(0.2, 0.8));
            let chain = self.preimage_out(at);
            self.push(chain);
        }
        if self.one_in(20) {
            let at = t0 + self.delay(Delay(0.0, 1.0));
            let mut chain = Chain::at(at).optional();
            let last_timestamp = self.timing.jam_start + at + self.g.rng.random_range(100..5_000);
            let num_dropped = self.g.rng.random_range(1..=8);
            chain.then(
                NOW,
                Event::Dropped {
                    last_timestamp,
                    num_dropped,
                },
            );
            self.push(chain);
        }
    }

    /// Authoring (the slot's author) or importing (everyone else), execution, best and finalized
    /// block. An empty slot has only the author's failure.
    pub(super) fn plan_block(&mut self, slot: Slot, t0: Micros) {
        let author = self.world.author(slot);
        let hash = self.world.block_hash(slot);
        let outline = self.world.block_outline(slot, &self.params);
        let mut chain = Chain::at(t0);
        let start = if author == self.index {
            let parent = self
                .world
                .block_hash(self.block_slot(slot.saturating_sub(1)));
            let authoring = chain.then(
                Delay(0.0, 0.01),
                Event::Authoring {
                    slot,
                    parent_header_hash: parent,
                },
            );
            if !self.world.has_block(slot) {
                let reason = self.reason(&["no parent", "missed the slot", "state root mismatch"]);
                chain.reply(
                    WORK,
                    authoring,
                    Event::AuthoringFailed {
                        authoring_event_id: 0,
                        reason,
                    },
                );
                return self.push(chain);
            }
            chain.reply(
                WORK,
                authoring,
                Event::Authored {
                    authoring_event_id: 0,
                    outline,
                },
            );
            authoring
        } else {
            if !self.world.has_block(slot) {
                return;
            }
            chain.then(
                Delay(0.05, 0.15),
                Event::BlockAnnounced {
                    peer_id: self.world.peer_id(author),
                    announcer: ConnectionSide::Remote,
                    slot,
                    header_hash: hash,
                },
            );
            let importing = chain.then(HOP, Event::Importing { slot, outline });
            if self.one_in(150) {
                let reason =
                    self.reason(&["bad seal signature", "unknown parent", "bad extrinsic"]);
                chain.reply(
                    WORK,
                    importing,
                    Event::BlockVerificationFailed {
                        importing_event_id: 0,
                        reason,
                    },
                );
                return self.push(chain);
            }
            chain.reply(
                WORK,
                importing,
                Event::BlockVerified {
                    importing_event_id: 0,
                },
            );
            importing
        };
        if self.one_in(300) {
            let reason = self.reason(&["state root mismatch", "out of gas in accumulate"]);
            chain.reply(
                WORK,
                start,
                Event::BlockExecutionFailed {
                    authoring_or_importing_event_id: 0,
                    reason,
                },
            );
            return self.push(chain);
        }
        let services = self.accumulate_costs();
        chain.reply(
            WORK,
            start,
            Event::BlockExecuted {
                authoring_or_importing_event_id: 0,
                services,
            },
        );
        chain.then(
            HOP,
            Event::BestBlockChanged {
                slot,
                header_hash: hash,
            },
        );
        let finalized = self.block_slot(slot.saturating_sub(FINALITY_LAG));
        chain.then(
            NOW,
            Event::FinalizedBlockChanged {
                slot: finalized,
                header_hash: self.world.block_hash(finalized),
            },
        );
        self.push(chain);
    }

    /// Another neighbour announces the slot's block on its UP 0 stream.
    pub(super) fn announcement(&mut self, at: Micros, slot: Slot) -> Chain {
        let slot = self.block_slot(slot);
        let mut chain = Chain::at(at).optional();
        let peer_id = self.peer();
        chain.then(
            NOW,
            Event::BlockAnnounced {
                peer_id,
                announcer: ConnectionSide::Remote,
                slot,
                header_hash: self.world.block_hash(slot),
            },
        );
        chain
    }

    /// Blocks sent for a request, newest first, skipping empty slots.
    pub(super) fn transfer_blocks(
        &mut self,
        chain: &mut Chain,
        request: usize,
        from: Slot,
        count: u32,
    ) {
        let mut slot = from;
        for i in 0..count {
            slot = self.block_slot(slot);
            chain.reply(
                HOP,
                request,
                Event::BlockTransferred {
                    request_event_id: 0,
                    slot,
                    outline: self.world.block_outline(slot, &self.params),
                    last: i + 1 == count,
                },
            );
            slot = slot.saturating_sub(1);
        }
    }

    /// Fetching recent blocks from a peer (CE 128), as after a missed announcement.
    pub(super) fn block_request_out(&mut self, at: Micros, slot: Slot) -> Chain {
        let mut chain = Chain::at(at).optional();
        let from = self.block_slot(slot.saturating_sub(1));
        let max_blocks = self.g.rng.random_range(1..=4);
        let recipient = self.peer();
        let request = chain.then(
            NOW,
            Event::SendingBlockRequest {
                recipient,
                header_hash: self.world.block_hash(from),
                direction: BlockRequestDirection::DescendingInclusive,
                max_blocks,
            },
        );
        let failed = |reason| Event::BlockRequestFailed {
            request_event_id: 0,
            reason,
        };
        let sent = Event::BlockRequestSent {
            request_event_id: 0,
        };
        if self.outcome(&mut chain, request, 8, failed, sent) {
            self.transfer_blocks(&mut chain, request, from, max_blocks);
        }
        chain
    }

    /// Safrole: tickets for the next epoch at each epoch start (and at the node's start), and
    /// other validators' tickets passing through during the submission window.
    pub(super) fn plan_tickets(&mut self, slot: Slot, t0: Micros) {
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

    pub(super) fn ticket_transfer(&mut self, at: Micros, epoch: u32) -> Chain {
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

    /// The work-package of this node's core, if there is one this slot: the full pipeline as
    /// primary guarantor, or the shared part as secondary; and guarantees from other guarantors.
    pub(super) fn plan_guaranteeing(&mut self, slot: Slot, t0: Micros) {
        let core = World::core_of(self.validator, slot, &self.params);
        if let Some((package, primary_rank)) = self.world.work_package(core, slot) {
            let group = World::guarantors(core, slot, &self.params);
            let at = t0 + self.delay(Delay(0.1, 0.3));
            let chain = if group.get(primary_rank) == Some(&self.validator) {
                let secondaries = group.into_iter().filter(|&v| v != self.validator).collect();
                self.primary_guarantor(at, slot, core, package, secondaries)
            } else {
                let primary = self.validator_peer(group[primary_rank]);
                self.secondary_guarantor(at, slot, core, package, primary)
            };
            self.push(chain);
        }
        for _ in 0..self.upto(2) {
            let at = t0 + self.delay(Delay(0.3, 0.9));
            let chain = self.guarantee_in(at, slot);
            self.push(chain);
        }
        if self.one_in(10) {
            let at = t0 + self.delay(Delay(0.0, 1.0));
            let mut chain = Chain::at(at).optional();
            let outline = self.guarantee_outline(slot.saturating_sub(3));
            let reason = GuaranteeDiscardReason::generate(&mut self.g);
            chain.then(NOW, Event::GuaranteeDiscarded { outline, reason });
            self.push(chain);
        }
    }

    /// Received (94) and authorized (95): the start both guarantor roles share. Returns the
    /// number of work items.
    pub(super) fn receive_package(
        &mut self,
        chain: &mut Chain,
        submission: usize,
        core_index: u16,
        outline: WorkPackageOutline,
    ) -> usize {
        let items = outline.work_items.len();
        chain.reply(
            HOP,
            submission,
            Event::WorkPackageReceived {
                submission_event_id: 0,
                core_index,
                outline,
            },
        );
        let total = self.exec(self.params.package_auth_gas);
        let host_calls = self.exec(total.gas / 10);
        let cost = IsAuthorizedCost {
            total,
            load_compile_ns: self.load_ns(),
            host_calls,
        };
        chain.reply(
            WORK,
            submission,
            Event::Authorized {
                submission_event_id: 0,
                cost,
            },
        );
        items
    }

    /// Refined (101) and work-report built (102): the end both guarantor roles share.
    pub(super) fn refine(
        &mut self,
        chain: &mut Chain,
        submission: usize,
        items: usize,
    ) -> WorkReportOutline {
        let costs = (0..items).map(|_| self.refine_cost()).collect();
        chain.reply(
            Delay(0.05, 0.2),
            submission,
            Event::Refined {
                submission_event_id: 0,
                costs,
            },
        );
        let report = WorkReportOutline {
            hash: self.hash(),
            bundle_size: self.g.rng.random_range(2_000..500_000),
            erasure_root: self.hash(),
            segments_root: self.hash(),
        };
        chain.reply(
            HOP,
            submission,
            Event::WorkReportBuilt {
                submission_event_id: 0,
                outline: report.clone(),
            },
        );
        report
    }

    pub(super) fn failed_package(&mut self, chain: &mut Chain, submission: usize) {
        let reason = self.reason(&["authorization failed", "bad work-package", "anchor too old"]);
        chain.reply(
            WORK,
            submission,
            Event::WorkPackageFailed {
                submission_event_id: 0,
                reason,
            },
        );
    }

    /// 90 → 94 → 95 → imports → 98/100 → 101 → 102 → 104 → 105 → 106/108 → 109.
    pub(super) fn primary_guarantor(
        &mut self,
        at: Micros,
        slot: Slot,
        core_index: u16,
        package: Hash,
        secondaries: Vec<u16>,
    ) -> Chain {
        let mut chain = Chain::at(at).optional();
        let builder = self.hash();
        let ce146_used = self.chance(0.3);
        let sub = chain.then(
            NOW,
            Event::WorkPackageSubmission {
                builder,
                ce146_used,
            },
        );
        if self.one_in(40) {
            // The builder sent a package this node already has: nothing more for it.
            chain.reply(
                HOP,
                sub,
                Event::DuplicateWorkPackage {
                    submission_event_id: 0,
                    core_index,
                    work_package_hash: package,
                },
            );
            return chain;
        }
        let outline = self.work_package_outline(package, slot);
        let imports: u16 = outline
            .work_items
            .iter()
            .map(|item| item.imports.len() as u16)
            .sum();
        let items = self.receive_package(&mut chain, sub, core_index, outline);
        if self.one_in(30) {
            self.failed_package(&mut chain, sub);
            return chain;
        }
        chain.reply(
            HOP,
            sub,
            Event::ExtrinsicDataReceived {
                submission_event_id: 0,
            },
        );
        if imports > 0 {
            self.fetch_imports(&mut chain, sub, imports);
        }
        let mut signers = vec![self.validator];
        for &v in &secondaries {
            chain.reply(
                HOP,
                sub,
                Event::SharingWorkPackage {
                    submission_event_id: 0,
                    secondary_guarantor: self.validator_peer(v),
                },
            );
        }
        for &v in &secondaries {
            let secondary_guarantor = self.validator_peer(v);
            let failed = |reason| Event::WorkPackageSharingFailed {
                submission_event_id: 0,
                secondary_guarantor,
                reason,
            };
            let sent = Event::BundleSent {
                submission_event_id: 0,
                secondary_guarantor,
            };
            if self.outcome(&mut chain, sub, 25, failed, sent) {
                signers.push(v);
            }
        }
        let report = self.refine(&mut chain, sub, items);
        for &v in &signers[1..] {
            chain.reply(
                HOP,
                sub,
                Event::WorkReportSignatureReceived {
                    submission_event_id: 0,
                    secondary_guarantor: self.validator_peer(v),
                },
            );
        }
        signers.sort_unstable();
        let built = chain.reply(
            HOP,
            sub,
            Event::GuaranteeBuilt {
                submission_event_id: 0,
                outline: GuaranteeOutline {
                    work_report_hash: report.hash,
                    slot,
                    guarantors: signers,
                },
            },
        );
        // To the authors of the next slots, for inclusion in their blocks.
        for ahead in 1..=2 {
            let recipient = self.world.peer_id(self.world.author(slot + ahead));
            let sending = chain.reply(
                HOP,
                built,
                Event::SendingGuarantee {
                    guarantee_built_event_id: 0,
                    recipient,
                },
            );
            let failed = |reason| Event::GuaranteeSendFailed {
                sending_event_id: 0,
                reason,
            };
            let sent = Event::GuaranteeSent {
                sending_event_id: 0,
            };
            self.outcome(&mut chain, sending, 20, failed, sent);
        }
        chain.reply(
            HOP,
            sub,
            Event::GuaranteesDistributed {
                submission_event_id: 0,
            },
        );
        chain
    }

    /// Segment recovery for a package's imports: map the roots, fetch from the previous
    /// guarantor (CE 148), verify.
    pub(super) fn fetch_imports(&mut self, chain: &mut Chain, sub: usize, imports: u16) {
        let segments_root = self.hash();
        let (work_package_hash, erasure_root) = (self.hash(), self.hash());
        chain.reply(
            HOP,
            sub,
            Event::WorkPackageHashMapped {
                submission_event_id: 0,
                work_package_hash,
                segments_root,
            },
        );
        chain.reply(
            NOW,
            sub,
            Event::SegmentsRootMapped {
                submission_event_id: 0,
                segments_root,
                erasure_root,
            },
        );
        let indices: Vec<u16> = (0..imports).collect();
        let previous_guarantor = self.peer();
        let request = chain.reply(
            HOP,
            sub,
            Event::SendingSegmentRequest {
                submission_event_id: 0,
                previous_guarantor,
                import_indices: indices.clone(),
            },
        );
        chain.reply(
            HOP,
            request,
            Event::SegmentRequestSent {
                request_event_id: 0,
            },
        );
        chain.reply(
            HOP,
            request,
            Event::SegmentsTransferred {
                request_event_id: 0,
            },
        );
        chain.reply(
            WORK,
            sub,
            Event::SegmentsVerified {
                submission_event_id: 0,
                verified_import_indices: indices,
            },
        );
        chain.reply(
            NOW,
            sub,
            Event::ImportsReceived {
                submission_event_id: 0,
            },
        );
    }

    /// 91 → 94 → 95 → 96 → 97 → 101 → 102 → 103.
    pub(super) fn secondary_guarantor(
        &mut self,
        at: Micros,
        slot: Slot,
        core_index: u16,
        package: Hash,
        primary_guarantor: Hash,
    ) -> Chain {
        let mut chain = Chain::at(at).optional();
        let shared = chain.then(NOW, Event::WorkPackageBeingShared { primary_guarantor });
        let outline = self.work_package_outline(package, slot);
        let items = self.receive_package(&mut chain, shared, core_index, outline);
        chain.reply(
            HOP,
            shared,
            Event::ExtrinsicDataReceived {
                submission_event_id: 0,
            },
        );
        chain.reply(
            NOW,
            shared,
            Event::ImportsReceived {
                submission_event_id: 0,
            },
        );
        if self.one_in(30) {
            self.failed_package(&mut chain, shared);
            return chain;
        }
        self.refine(&mut chain, shared, items);
        chain.reply(
            HOP,
            shared,
            Event::WorkReportSignatureSent {
                submission_event_id: 0,
            },
        );
        chain
    }

    /// A guarantee from another guarantor (CE 135), as a potential block author.
    pub(super) fn guarantee_in(&mut self, at: Micros, slot: Slot) -> Chain {
        let mut chain = Chain::at(at).optional();
        let sender = self.peer();
        let receiving = chain.then(NOW, Event::ReceivingGuarantee { sender });
        let failed = |reason| Event::GuaranteeReceiveFailed {
            receiving_event_id: 0,
            reason,
        };
        let received = Event::GuaranteeReceived {
            receiving_event_id: 0,
            outline: self.guarantee_outline(slot),
        };
        self.outcome(&mut chain, receiving, 30, failed, received);
        chain
    }

    /// Shards fetched as an assurer (CE 137), the own assurance distributed (CE 141), and the
    /// assurances of others received.
    pub(super) fn plan_availability(&mut self, slot: Slot, t0: Micros) {
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

    pub(super) fn shard_request_out(&mut self, at: Micros) -> Chain {
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

    pub(super) fn assurance_in(&mut self, at: Micros, slot: Slot) -> Chain {
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

    /// A preimage announced by a peer (CE 142) and fetched (CE 143).
    pub(super) fn preimage_out(&mut self, at: Micros) -> Chain {
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

    /// Answering a peer's request: blocks (CE 128), a shard (CE 137) or a preimage (CE 143).
    /// `kind` 0..3 picks one; the pacer's filler draws it at random.
    pub(super) fn serving(&mut self, at: Micros, slot: Slot, kind: u8) -> Chain {
        let mut chain = Chain::at(at).optional();
        let peer = self.peer();
        match kind {
            0 => {
                let request = chain.then(NOW, Event::ReceivingBlockRequest { sender: peer });
                let from = self.block_slot(slot.saturating_sub(1));
                let max_blocks = self.g.rng.random_range(1..=3);
                chain.reply(
                    HOP,
                    request,
                    Event::BlockRequestReceived {
                        request_event_id: 0,
                        header_hash: self.world.block_hash(from),
                        direction: BlockRequestDirection::DescendingInclusive,
                        max_blocks,
                    },
                );
                self.transfer_blocks(&mut chain, request, from, max_blocks);
            }
            1 => {
                let request = chain.then(NOW, Event::ReceivingShardRequest { assurer: peer });
                let (erasure_root, shard_index) = (
                    self.hash(),
                    self.g
                        .rng
                        .random_range(0..gp07_constant(self.params.validator_count)),
                );
                chain.reply(
                    HOP,
                    request,
                    Event::ShardRequestReceived {
                        request_event_id: 0,
                        erasure_root,
                        shard_index,
                    },
                );
                chain.reply(
                    HOP,
                    request,
                    Event::ShardsTransferred {
                        request_event_id: 0,
                    },
                );
            }
            _ => {
                let request = chain.then(NOW, Event::ReceivingPreimageRequest { sender: peer });
                let hash = self.hash();
                chain.reply(
                    HOP,
                    request,
                    Event::PreimageRequestReceived {
                        request_event_id: 0,
                        hash,
                    },
                );
                let length = self.g.rng.random_range(32..100_000);
                chain.reply(
                    HOP,
                    request,
                    Event::PreimageTransferred {
                        request_event_id: 0,
                        length,
                    },
                );
            }
        }
        chain
    }

    /// Peer churn: connections in and out, disconnects, the odd refusal or misbehaving peer.
    pub(super) fn plan_peers(&mut self, t0: Micros) {
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
                    let connecting = Event::ConnectingOut {
                        peer_id,
                        peer_address,
                    };
                    let connecting = chain.then(NOW, connecting);
                    let failed = |reason| Event::ConnectOutFailed {
                        connecting_event_id: 0,
                        reason,
                    };
                    let connected = Event::ConnectedOut {
                        connecting_event_id: 0,
                    };
                    let ok = self.outcome(&mut chain, connecting, 5, failed, connected);
                    (ConnectionSide::Local, ok)
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

    /// The answer to the event at `to`, a hop later: one time in `one_in` `failed` with a network
    /// error, else `ok`. Returns whether it went well.
    fn outcome(
        &mut self,
        chain: &mut Chain,
        to: usize,
        one_in: u32,
        failed: impl FnOnce(Reason) -> Event,
        ok: Event,
    ) -> bool {
        if self.one_in(one_in) {
            let reason = self.reason(NETWORK_ERRORS);
            chain.reply(HOP, to, failed(reason));
            false
        } else {
            chain.reply(HOP, to, ok);
            true
        }
    }

    /// A short chain of the kind that scales with network size, to pad towards the rate.
    pub(super) fn filler(&mut self, now: Micros) -> Chain {
        let slot = self.timing.first_slot + (now / self.timing.slot) as Slot;
        match self.g.rng.random_range(0..11) {
            0..=3 => self.announcement(now, slot),
            4..=5 => self.assurance_in(now, slot),
            6 => self.guarantee_in(now, slot),
            7 => self.ticket_transfer(now, slot / self.params.epoch_length + 1),
            kind => self.serving(now, slot, kind - 8),
        }
    }
}

//! Guaranteeing: work-packages as primary or secondary guarantor, refining, work-reports,
//! guarantees built, sent and received (CE 133–135), and fetching imports (CE 139/140, 148).

use rand::Rng;

use super::super::{Chain, Delay, Flow, Micros, HOP, NOW, WORK};
use crate::jip3::events::Slot;
use crate::jip3::generate::Generate;
use crate::jip3::types::*;
use crate::jip3::Event;
use crate::sim::world::World;

impl Flow {
    /// The work-package of this node's core, if there is one this slot: the full pipeline as
    /// primary guarantor, or the shared part as secondary; and guarantees from other guarantors.
    pub(in crate::sim::flow) fn plan_guaranteeing(&mut self, slot: Slot, t0: Micros) {
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
    pub(in crate::sim::flow) fn receive_package(
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
    pub(in crate::sim::flow) fn refine(
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

    pub(in crate::sim::flow) fn failed_package(&mut self, chain: &mut Chain, submission: usize) {
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
    pub(in crate::sim::flow) fn primary_guarantor(
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
    pub(in crate::sim::flow) fn fetch_imports(
        &mut self,
        chain: &mut Chain,
        sub: usize,
        imports: u16,
    ) {
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
    pub(in crate::sim::flow) fn secondary_guarantor(
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
    pub(in crate::sim::flow) fn guarantee_in(&mut self, at: Micros, slot: Slot) -> Chain {
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
}

//! Guaranteeing: work-packages as primary or secondary guarantor, refining, work-reports,
//! guarantees built, sent and received (CE 133–135), and fetching imports (CE 139/140, 148).
//!
//! What several nodes see of one package agrees: its work-report, whether it fails (at every
//! guarantor alike) and which guarantees reach which of the next authors are drawn from the
//! world, so the recipients receive exactly the guarantees the primary sent.

use super::super::{Chain, Delay, Flow, Micros, HOP, NOW, WORK};
use crate::jip3::events::Slot;
use crate::jip3::generate::Generate;
use crate::jip3::types::*;
use crate::jip3::Event;
use crate::sim::faults::PLANTED_PACKAGE_FAILURE;
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
        self.receive_guarantees(slot, t0);
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
        package: &Hash,
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
        let report = self.world.work_report(package);
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

    /// Whether `package` of `core` fails once authorized: at every guarantor alike.
    fn package_fails(&self, core: u16, package: &Hash) -> bool {
        let share = match self.timing.faults.failing_core {
            Some((failing, share)) if failing == core => share,
            _ => 1.0 / 30.0,
        };
        self.world.fate(package, 0) < share
    }

    /// Whether the guarantee of `package` sent to the author `ahead` slots on fails to go.
    fn guarantee_send_fails(&self, package: &Hash, ahead: u32) -> bool {
        self.world.fate(package, u64::from(ahead)) < 1.0 / 20.0
    }

    pub(in crate::sim::flow) fn failed_package(
        &mut self,
        chain: &mut Chain,
        submission: usize,
        core: u16,
    ) {
        let reason = match self.timing.faults.failing_core {
            Some((failing, _)) if failing == core => PLANTED_PACKAGE_FAILURE.into(),
            _ => self.reason(&["authorization failed", "bad work-package", "anchor too old"]),
        };
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
        if self.package_fails(core_index, &package) {
            self.failed_package(&mut chain, sub, core_index);
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
        let report = self.refine(&mut chain, sub, items, &package);
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
        if self.timing.faults.silent_guarantor == Some(self.index) {
            // Planted: built, never sent.
            return chain;
        }
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
            let fails = self.guarantee_send_fails(&package, ahead);
            self.answer(&mut chain, sending, fails, failed, sent);
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
        if self.package_fails(core_index, &package) {
            self.failed_package(&mut chain, shared, core_index);
            return chain;
        }
        self.refine(&mut chain, shared, items, &package);
        chain.reply(
            HOP,
            shared,
            Event::WorkReportSignatureSent {
                submission_event_id: 0,
            },
        );
        chain
    }

    /// As the author of one of the next two slots: the guarantees of `slot`'s packages that their
    /// primaries sent this node (CE 135), a little after they were built.
    fn receive_guarantees(&mut self, slot: Slot, t0: Micros) {
        for ahead in 1..=2 {
            if self.world.author(slot + ahead) != self.index {
                continue;
            }
            for core in 0..self.params.core_count {
                let Some((package, rank)) = self.world.work_package(core, slot) else {
                    continue;
                };
                let group = World::guarantors(core, slot, &self.params);
                let primary = usize::from(group[rank]);
                let sent = primary < self.world.nodes
                    && primary != self.index
                    && self.timing.faults.silent_guarantor != Some(primary)
                    && !self.package_fails(core, &package)
                    && !self.guarantee_send_fails(&package, ahead);
                if !sent {
                    continue;
                }
                let at = t0 + self.delay(Delay(0.6, 0.8));
                let mut chain = Chain::at(at).optional();
                let receiving = chain.then(
                    NOW,
                    Event::ReceivingGuarantee {
                        sender: self.world.peer_id(primary),
                    },
                );
                chain.reply(
                    HOP,
                    receiving,
                    Event::GuaranteeReceived {
                        receiving_event_id: 0,
                        outline: GuaranteeOutline {
                            work_report_hash: self.world.work_report(&package).hash,
                            slot,
                            guarantors: group,
                        },
                    },
                );
                self.push(chain);
            }
        }
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

//! The work-package tracker: each guarantor's journey with each work-package (submitted or
//! shared, received, authorized, refined, report built, guarantee built, sent and distributed, or
//! failed and why), the guarantees other nodes received of it (joined by work-report hash), the
//! funnel of packages reaching each stage per minute and core, and guarantee counts per node and
//! core. Most stages name their package only through the submission they refer to, so the
//! submissions, guarantees built and guarantee sendings are remembered for a while.

use chrono::{DateTime, TimeDelta, Utc};

use super::blocks::Observed;
use super::{earliest, RecentRows};
use crate::messages::{Fact, Reference, ReportStage};
use crate::store::packages::{
    GuaranteeCounts, PackageChanges, PackageSighting, ReceiverCounts, Role, Stage,
};
use crate::time::round_down;

/// Submissions, guarantees built and sendings remembered (~60 bytes each): minutes of 1,024
/// nodes with full parameters (about 340 packages a slot, three guarantors each).
const REMEMBERED_ROWS: usize = 262_144;
/// Work-reports and packages remembered, to join guarantees received and to count each package
/// once per stage in the funnel.
const REMEMBERED_PACKAGES: usize = 131_072;
/// Entries handed to one rollup at most (~250 bytes each); past this, new ones are left out
/// (counted in `telemetry_analytics_left_out_total`).
pub const MAX_CHANGES: usize = 100_000;

const SUBMISSION: u8 = 90;
const BEING_SHARED: u8 = 91;
const PACKAGE_FAILED: u8 = 92;
const AUTHORIZED: u8 = 95;
const SHARING_FAILED: u8 = 99;
const SENDING_GUARANTEE: u8 = 106;
const GUARANTEE_SEND_FAILED: u8 = 107;
const GUARANTEE_SENT: u8 = 108;
const DISTRIBUTED: u8 = 109;
const GUARANTEE_RECEIVE_FAILED: u8 = 111;

/// A submission (Work-package submission or being shared): its role, when, and its package once
/// Work-package received names it.
#[derive(Debug, Clone, Copy)]
struct Submission {
    role: Role,
    at: DateTime<Utc>,
    package: Option<([u8; 32], u16)>,
}

pub struct PackageTracker {
    submissions: RecentRows<i64, Submission>,
    /// Guarantee built and Sending guarantee rows → (package, core).
    guarantees: RecentRows<i64, ([u8; 32], u16)>,
    /// Work-report hash → (package, core).
    reports: RecentRows<[u8; 32], ([u8; 32], u16)>,
    /// Package → the stages the funnel has counted it at (a bit per stage).
    counted: RecentRows<[u8; 32], u8>,
    changes: PackageChanges,
    left_out: u64,
}

impl Default for PackageTracker {
    fn default() -> Self {
        PackageTracker {
            submissions: RecentRows::new(REMEMBERED_ROWS),
            guarantees: RecentRows::new(REMEMBERED_ROWS),
            reports: RecentRows::new(REMEMBERED_PACKAGES),
            counted: RecentRows::new(REMEMBERED_PACKAGES),
            changes: PackageChanges::default(),
            left_out: 0,
        }
    }
}

impl PackageTracker {
    /// Folds one event in. `reason` gives a failure event's reason (decoded only when needed).
    pub fn observe(&mut self, event: &Observed<'_>, reason: impl FnOnce() -> Option<String>) {
        let referred = match event.reference {
            Reference::Row(row) => Some(row),
            _ => None,
        };
        match (event.discriminator, event.fact) {
            (SUBMISSION | BEING_SHARED, _) => {
                let role = match event.discriminator {
                    SUBMISSION => Role::Primary,
                    _ => Role::Secondary,
                };
                self.submissions.insert(
                    event.row,
                    Submission {
                        role,
                        at: event.at,
                        package: None,
                    },
                );
            }
            (
                _,
                Some(&Fact::Package {
                    core,
                    hash,
                    duplicate,
                }),
            ) => {
                let Some(submission) = referred.and_then(|r| self.submissions.get_mut(r)) else {
                    return;
                };
                submission.package = Some((hash, core));
                let (role, submitted) = (submission.role, submission.at);
                self.sighting(event, (hash, core), role, |s| {
                    earliest(&mut s.submitted_at, submitted);
                    if duplicate {
                        s.duplicate = true;
                    } else {
                        earliest(s.stage_mut(Stage::Received), event.at);
                    }
                });
                if !duplicate {
                    self.reached(hash, core, Stage::Received, event.at);
                }
            }
            (_, Some(&Fact::Refined { gas, ns })) => {
                let Some((package, role)) = self.package_of(referred) else {
                    return;
                };
                let (gas, ns) = (clamp(gas), clamp(ns));
                self.sighting(event, package, role, |s| {
                    earliest(s.stage_mut(Stage::Refined), event.at);
                    s.refine_gas = s.refine_gas.saturating_add(gas);
                    s.refine_ns = s.refine_ns.saturating_add(ns);
                });
                self.reached(package.0, package.1, Stage::Refined, event.at);
                let minute = round_down(event.at, TimeDelta::minutes(1));
                let cell = self
                    .changes
                    .funnel
                    .entry((minute, package.1, Stage::Refined))
                    .or_default();
                cell.refine_gas = cell.refine_gas.saturating_add(gas);
                cell.refine_ns = cell.refine_ns.saturating_add(ns);
            }
            (_, Some(&Fact::Report { stage, report_hash })) => {
                self.observe_report(event, referred, stage, report_hash)
            }
            (AUTHORIZED | DISTRIBUTED, None) => {
                let Some((package, role)) = self.package_of(referred) else {
                    return;
                };
                let stage = match event.discriminator {
                    AUTHORIZED => Stage::Authorized,
                    _ => Stage::Distributed,
                };
                self.sighting(event, package, role, |s| {
                    earliest(s.stage_mut(stage), event.at)
                });
                self.reached(package.0, package.1, stage, event.at);
            }
            (PACKAGE_FAILED, None) => {
                let Some((package, role)) = self.package_of(referred) else {
                    return;
                };
                let reason = reason();
                self.sighting(event, package, role, |s| {
                    earliest(s.stage_mut(Stage::Failed), event.at);
                    if s.failure_reason.is_none() {
                        s.failure_reason = reason;
                    }
                });
                self.reached(package.0, package.1, Stage::Failed, event.at);
            }
            (SHARING_FAILED, None) => {
                if let Some((package, role)) = self.package_of(referred) {
                    self.sighting(event, package, role, |s| s.shares_failed += 1);
                }
            }
            (SENDING_GUARANTEE, None) => {
                if let Some(&package) = referred.and_then(|r| self.guarantees.get(r)) {
                    self.guarantees.insert(event.row, package);
                }
            }
            (GUARANTEE_SENT | GUARANTEE_SEND_FAILED, None) => {
                let Some(&package) = referred.and_then(|r| self.guarantees.get(r)) else {
                    return;
                };
                let sent = event.discriminator == GUARANTEE_SENT;
                self.sighting(event, package, Role::Primary, |s| match sent {
                    true => s.guarantees_sent += 1,
                    false => s.guarantee_send_failures += 1,
                });
                let counts = self.guarantee_counts(event, i32::from(package.1));
                match sent {
                    true => counts.sent += 1,
                    false => counts.send_failed += 1,
                }
            }
            (GUARANTEE_RECEIVE_FAILED, None) => {
                self.receiver_counts(event).receive_failed += 1;
            }
            _ => {}
        }
    }

    fn observe_report(
        &mut self,
        event: &Observed<'_>,
        referred: Option<i64>,
        stage: ReportStage,
        report_hash: [u8; 32],
    ) {
        match stage {
            ReportStage::Built | ReportStage::GuaranteeBuilt => {
                let Some((package, role)) = self.package_of(referred) else {
                    return;
                };
                self.reports.insert(report_hash, package);
                let stage = match stage {
                    ReportStage::Built => Stage::ReportBuilt,
                    _ => Stage::GuaranteeBuilt,
                };
                self.sighting(event, package, role, |s| {
                    earliest(s.stage_mut(stage), event.at);
                    s.report_hash.get_or_insert(report_hash);
                });
                self.reached(package.0, package.1, stage, event.at);
                if stage == Stage::GuaranteeBuilt {
                    self.guarantees.insert(event.row, package);
                    self.guarantee_counts(event, i32::from(package.1)).built += 1;
                }
            }
            ReportStage::GuaranteeReceived | ReportStage::GuaranteeDiscarded => {
                let package = self.reports.get(report_hash).copied();
                let counts = self.receiver_counts(event);
                if stage == ReportStage::GuaranteeDiscarded {
                    counts.discarded += 1;
                    return;
                }
                counts.received += 1;
                let Some((package, _)) = package else {
                    return;
                };
                if self.full()
                    && !self
                        .changes
                        .receipts
                        .contains_key(&(report_hash, event.node.clone()))
                {
                    self.left_out += 1;
                    return;
                }
                let at = self
                    .changes
                    .receipts
                    .entry((report_hash, event.node.clone()))
                    .or_insert(event.at);
                if event.at < *at {
                    *at = event.at;
                }
                self.changes.received_packages.insert(package);
            }
        }
    }

    /// The package and role of the submission `referred` points at, once it is known.
    fn package_of(&self, referred: Option<i64>) -> Option<(([u8; 32], u16), Role)> {
        let submission = self.submissions.get(referred?)?;
        Some((submission.package?, submission.role))
    }

    fn full(&self) -> bool {
        self.changes.len() >= MAX_CHANGES
    }

    fn sighting(
        &mut self,
        event: &Observed<'_>,
        (hash, core): ([u8; 32], u16),
        role: Role,
        update: impl FnOnce(&mut PackageSighting),
    ) {
        let key = (hash, event.node.clone());
        let full = self.full();
        let sighting = match self.changes.sightings.get_mut(&key) {
            Some(sighting) => sighting,
            None if full => {
                self.left_out += 1;
                return;
            }
            None => self
                .changes
                .sightings
                .entry(key)
                .or_insert_with(|| PackageSighting::new(event.at, role, core)),
        };
        update(sighting);
        let earliest_known = sighting.submitted_at.map_or(event.at, |s| s.min(event.at));
        if earliest_known < sighting.first_at {
            sighting.first_at = earliest_known;
        }
    }

    /// Counts `package` in the funnel at `stage` the first time this tracker sees it get there.
    fn reached(&mut self, package: [u8; 32], core: u16, stage: Stage, at: DateTime<Utc>) {
        let bit = 1u8 << (stage as u8 - 1);
        let seen = self.counted.get(package).copied().unwrap_or(0);
        if seen & bit != 0 {
            return;
        }
        let minute = round_down(at, TimeDelta::minutes(1));
        if self.full() && !self.changes.funnel.contains_key(&(minute, core, stage)) {
            self.left_out += 1;
            return;
        }
        self.counted.insert(package, seen | bit);
        self.changes
            .funnel
            .entry((minute, core, stage))
            .or_default()
            .packages += 1;
    }

    fn guarantee_counts(&mut self, event: &Observed<'_>, core: i32) -> &mut GuaranteeCounts {
        let hour = round_down(event.at, TimeDelta::hours(1));
        self.changes
            .guarantees
            .entry((hour, event.node.clone(), core))
            .or_default()
    }

    fn receiver_counts(&mut self, event: &Observed<'_>) -> &mut ReceiverCounts {
        let hour = round_down(event.at, TimeDelta::hours(1));
        self.changes
            .receivers
            .entry((hour, event.node.clone()))
            .or_default()
    }

    /// What changed since the last call, and how many updates were left out.
    pub fn take(&mut self) -> (PackageChanges, u64) {
        (
            std::mem::take(&mut self.changes),
            std::mem::take(&mut self.left_out),
        )
    }

    /// True if nothing changed since the last [`PackageTracker::take`].
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

/// A node-sent u64 as a `bigint` (a hostile 2^64 − 1 must not wrap).
fn clamp(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn node(name: &str) -> Arc<str> {
        name.into()
    }

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_800_000_000_000 + ms).unwrap()
    }

    fn event<'a>(
        node: &'a Arc<str>,
        row: i64,
        ms: i64,
        discriminator: u8,
        reference: Reference,
        fact: Option<&'a Fact>,
    ) -> Observed<'a> {
        Observed {
            node,
            row,
            at: at(ms),
            discriminator,
            reference,
            fact,
        }
    }

    /// Two guarantors whose submissions have the same row-relative shape: each stage lands on
    /// its own node's package; the guarantee received elsewhere joins by work-report hash.
    #[test]
    fn a_journey_is_followed_through_references_and_joined_by_report_hash() {
        let (a, b, c) = (node("a"), node("b"), node("c"));
        let mut tracker = PackageTracker::default();
        let received = Fact::Package {
            core: 3,
            hash: [7; 32],
            duplicate: false,
        };
        let other = Fact::Package {
            core: 4,
            hash: [8; 32],
            duplicate: false,
        };
        let built = Fact::Report {
            stage: ReportStage::GuaranteeBuilt,
            report_hash: [9; 32],
        };
        let got = Fact::Report {
            stage: ReportStage::GuaranteeReceived,
            report_hash: [9; 32],
        };
        tracker.observe(&event(&a, 1, 0, SUBMISSION, Reference::None, None), || None);
        tracker.observe(
            &event(&b, 2, 5, BEING_SHARED, Reference::None, None),
            || None,
        );
        tracker.observe(
            &event(&a, 3, 10, 94, Reference::Row(1), Some(&received)),
            || None,
        );
        tracker.observe(
            &event(&b, 4, 12, 94, Reference::Row(2), Some(&other)),
            || None,
        );
        tracker.observe(
            &event(&a, 5, 20, AUTHORIZED, Reference::Row(1), None),
            || None,
        );
        tracker.observe(
            &event(&b, 6, 25, PACKAGE_FAILED, Reference::Row(2), None),
            || Some("bad".into()),
        );
        tracker.observe(
            &event(&a, 7, 30, 105, Reference::Row(1), Some(&built)),
            || None,
        );
        tracker.observe(
            &event(&a, 8, 31, SENDING_GUARANTEE, Reference::Row(7), None),
            || None,
        );
        tracker.observe(
            &event(&a, 9, 32, GUARANTEE_SENT, Reference::Row(8), None),
            || None,
        );
        tracker.observe(
            &event(&c, 10, 40, 112, Reference::Row(99), Some(&got)),
            || None,
        );
        let (changes, left_out) = tracker.take();
        assert_eq!(left_out, 0);
        let journey = &changes.sightings[&([7; 32], a.clone())];
        assert_eq!(journey.role, Role::Primary);
        assert_eq!(journey.core, 3);
        assert_eq!(journey.submitted_at, Some(at(0)));
        assert_eq!(journey.first_at, at(0), "the submission starts the journey");
        assert_eq!(journey.stages[Stage::Authorized as usize - 1], Some(at(20)));
        assert_eq!(journey.guarantees_sent, 1);
        assert!(journey.failure_reason.is_none());
        let failed = &changes.sightings[&([8; 32], b.clone())];
        assert_eq!(failed.role, Role::Secondary);
        assert_eq!(failed.failure_reason.as_deref(), Some("bad"));
        assert_eq!(changes.receipts[&([9; 32], c.clone())], at(40));
        assert!(changes.received_packages.contains(&[7; 32]));
        let hour = round_down(at(0), TimeDelta::hours(1));
        assert_eq!(changes.guarantees[&(hour, a, 3)].built, 1);
        assert_eq!(changes.receivers[&(hour, c)].received, 1);
        let minute = round_down(at(0), TimeDelta::minutes(1));
        assert_eq!(changes.funnel[&(minute, 3, Stage::Received)].packages, 1);
        assert_eq!(changes.funnel[&(minute, 4, Stage::Failed)].packages, 1);
    }
}

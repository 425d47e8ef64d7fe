//! Which events refer to an earlier event of the same connection ("Event ID → x/y" in JIP-3), and
//! to which types. The simulator sets these fields; checks of stored data read them.

use super::events::{Event, EventId};
use super::types::ClosedStream;

/// Targets of the events that refer to an auditing event: JIP-3 has not defined those yet.
pub const UNDEFINED_TARGET: &[u8] = &[];

/// Which event types some reference may point at, by discriminator: the events a connection
/// remembers so that later references to them resolve.
static REFERABLE: std::sync::LazyLock<[bool; 256]> = std::sync::LazyLock::new(|| {
    let mut table = [false; 256];
    for version in [super::ProtocolVersion::V0, super::ProtocolVersion::V1] {
        let mut g = super::generate::Generator::new(0, 1).with_version(version);
        for &d in Event::DISCRIMINATORS {
            let mut event = Event::generate(d, &mut g).expect("defined");
            if let Some((_, targets)) = event.reference_mut() {
                for &t in targets {
                    table[usize::from(t)] = true;
                }
            }
        }
    }
    table
});

/// True if some event type may refer to events of `discriminator`.
pub fn is_referable(discriminator: u8) -> bool {
    REFERABLE[usize::from(discriminator)]
}

impl Event {
    /// The event's reference to an earlier event, if it has one (at most one per event), with the
    /// discriminators it may point at.
    pub fn reference_mut(&mut self) -> Option<(&mut EventId, &'static [u8])> {
        use Event::*;
        Some(match self {
            ConnectInFailed {
                connecting_event_id: id,
                ..
            }
            | ConnectedIn {
                connecting_event_id: id,
                ..
            } => (id, &[21]),
            ConnectOutFailed {
                connecting_event_id: id,
                ..
            }
            | ConnectedOut {
                connecting_event_id: id,
            } => (id, &[24]),
            AuthoringFailed {
                authoring_event_id: id,
                ..
            }
            | Authored {
                authoring_event_id: id,
                ..
            } => (id, &[40]),
            BlockVerificationFailed {
                importing_event_id: id,
                ..
            }
            | BlockVerified {
                importing_event_id: id,
            } => (id, &[43]),
            BlockExecutionFailed {
                authoring_or_importing_event_id: id,
                ..
            }
            | BlockExecuted {
                authoring_or_importing_event_id: id,
                ..
            } => (id, &[40, 43]),
            // Version 1 only: version 0 names the stream by the peer's Peer ID instead.
            BlockAnnouncementStreamClosed {
                stream: ClosedStream::OpenedEvent(id),
                ..
            } => (id, &[60]),
            BlockRequestFailed {
                request_event_id: id,
                ..
            }
            | BlockTransferred {
                request_event_id: id,
                ..
            } => (id, &[63, 64]),
            BlockRequestSent {
                request_event_id: id,
            } => (id, &[63]),
            BlockRequestReceived {
                request_event_id: id,
                ..
            } => (id, &[64]),
            TicketGenerationFailed {
                generating_event_id: id,
                ..
            }
            | TicketsGenerated {
                generating_event_id: id,
                ..
            } => (id, &[80]),
            WorkPackageFailed {
                submission_event_id: id,
                ..
            }
            | DuplicateWorkPackage {
                submission_event_id: id,
                ..
            }
            | WorkPackageReceived {
                submission_event_id: id,
                ..
            }
            | Authorized {
                submission_event_id: id,
                ..
            }
            | ExtrinsicDataReceived {
                submission_event_id: id,
            }
            | ImportsReceived {
                submission_event_id: id,
            }
            | Refined {
                submission_event_id: id,
                ..
            }
            | WorkReportBuilt {
                submission_event_id: id,
                ..
            } => (id, &[90, 91]),
            WorkReportSignatureSent {
                submission_event_id: id,
            } => (id, &[91]),
            SharingWorkPackage {
                submission_event_id: id,
                ..
            }
            | WorkPackageSharingFailed {
                submission_event_id: id,
                ..
            }
            | BundleSent {
                submission_event_id: id,
                ..
            }
            | WorkReportSignatureReceived {
                submission_event_id: id,
                ..
            }
            | GuaranteeBuilt {
                submission_event_id: id,
                ..
            }
            | GuaranteesDistributed {
                submission_event_id: id,
            }
            | WorkPackageHashMapped {
                submission_event_id: id,
                ..
            }
            | SegmentsRootMapped {
                submission_event_id: id,
                ..
            }
            | SendingSegmentShardRequest {
                submission_event_id: id,
                ..
            }
            | ReconstructingSegments {
                submission_event_id: id,
                ..
            }
            | SegmentVerificationFailed {
                submission_event_id: id,
                ..
            }
            | SegmentsVerified {
                submission_event_id: id,
                ..
            }
            | SendingSegmentRequest {
                submission_event_id: id,
                ..
            } => (id, &[90]),
            SendingGuarantee {
                guarantee_built_event_id: id,
                ..
            } => (id, &[105]),
            GuaranteeSendFailed {
                sending_event_id: id,
                ..
            }
            | GuaranteeSent {
                sending_event_id: id,
            } => (id, &[106]),
            GuaranteeReceiveFailed {
                receiving_event_id: id,
                ..
            }
            | GuaranteeReceived {
                receiving_event_id: id,
                ..
            } => (id, &[110]),
            ShardRequestFailed {
                request_event_id: id,
                ..
            }
            | ShardsTransferred {
                request_event_id: id,
            } => (id, &[120, 121]),
            ShardRequestSent {
                request_event_id: id,
            } => (id, &[120]),
            ShardRequestReceived {
                request_event_id: id,
                ..
            } => (id, &[121]),
            AssuranceSendFailed {
                distributing_event_id: id,
                ..
            }
            | AssuranceSent {
                distributing_event_id: id,
                ..
            }
            | AssuranceDistributed {
                distributing_event_id: id,
            } => (id, &[126]),
            SendingBundleShardRequest {
                audit_event_id: id, ..
            }
            | ReconstructingBundle {
                audit_event_id: id, ..
            }
            | BundleReconstructed { audit_event_id: id }
            | SendingBundleRequest {
                audit_event_id: id, ..
            } => (id, UNDEFINED_TARGET),
            BundleShardRequestFailed {
                request_event_id: id,
                ..
            }
            | BundleShardTransferred {
                request_event_id: id,
            } => (id, &[140, 141]),
            BundleShardRequestSent {
                request_event_id: id,
            } => (id, &[140]),
            BundleShardRequestReceived {
                request_event_id: id,
                ..
            } => (id, &[141]),
            BundleRequestFailed {
                request_event_id: id,
                ..
            }
            | BundleTransferred {
                request_event_id: id,
            } => (id, &[148, 149]),
            BundleRequestSent {
                request_event_id: id,
            } => (id, &[148]),
            BundleRequestReceived {
                request_event_id: id,
                ..
            } => (id, &[149]),
            SegmentShardRequestFailed {
                request_event_id: id,
                ..
            }
            | SegmentShardsTransferred {
                request_event_id: id,
            } => (id, &[162, 163]),
            SegmentShardRequestSent {
                request_event_id: id,
            } => (id, &[162]),
            SegmentShardRequestReceived {
                request_event_id: id,
                ..
            } => (id, &[163]),
            SegmentReconstructionFailed {
                reconstructing_event_id: id,
                ..
            }
            | SegmentsReconstructed {
                reconstructing_event_id: id,
            } => (id, &[168]),
            SegmentRequestFailed {
                request_event_id: id,
                ..
            }
            | SegmentsTransferred {
                request_event_id: id,
            } => (id, &[173, 174]),
            SegmentRequestSent {
                request_event_id: id,
            } => (id, &[173]),
            SegmentRequestReceived {
                request_event_id: id,
                ..
            } => (id, &[174]),
            PreimageRequestFailed {
                request_event_id: id,
                ..
            }
            | PreimageTransferred {
                request_event_id: id,
                ..
            } => (id, &[193, 194]),
            PreimageRequestSent {
                request_event_id: id,
            } => (id, &[193]),
            PreimageRequestReceived {
                request_event_id: id,
                ..
            } => (id, &[194]),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::jip3::generate::Generator;
    use crate::jip3::{Event, ProtocolVersion};

    /// Every "Event ID" field of the spec table is here, and each points back at lower
    /// discriminators, so emitting types in ascending order can always satisfy a reference.
    /// Version 1 has one more: event 61 names its stream's event 60.
    #[test]
    fn the_targets_of_references_are_referable_and_others_not() {
        use super::is_referable;
        assert!(is_referable(24) && is_referable(40) && is_referable(60));
        assert!(!is_referable(25) && !is_referable(10));
    }

    #[test]
    fn references_point_at_earlier_discriminators() {
        for (version, expected) in [(ProtocolVersion::V0, 76), (ProtocolVersion::V1, 77)] {
            let mut g = Generator::new(1, 2).with_version(version);
            let mut referring = Vec::new();
            for &d in Event::DISCRIMINATORS {
                let mut event = Event::generate(d, &mut g).unwrap();
                if let Some((_, targets)) = event.reference_mut() {
                    referring.push(d);
                    assert!(targets.iter().all(|&t| t < d), "{d} → {targets:?}");
                }
            }
            assert_eq!(referring.len(), expected, "{version:?}");
            assert_eq!(referring.contains(&61), version == ProtocolVersion::V1);
        }
    }
}

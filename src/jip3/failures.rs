//! Failure events: which event types report that something failed, was refused, misbehaved or
//! was discarded; which attempt each answers (the type its Event ID refers to); and its reason.

use super::events::Event;
use super::generate::Generator;

/// Every failure event type, by discriminator.
pub const FAILURE_TYPES: [u8; 27] = [
    20, 22, 25, 28, 41, 44, 46, 65, 81, 83, 92, 99, 107, 111, 113, 122, 127, 130, 142, 150, 164,
    169, 171, 175, 190, 195, 199,
];

/// [`FAILURE_TYPES`] as a table by discriminator: the writer asks for every event it stores.
const IS_FAILURE: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < FAILURE_TYPES.len() {
        table[FAILURE_TYPES[i] as usize] = true;
        i += 1;
    }
    table
};

pub fn is_failure(discriminator: u8) -> bool {
    IS_FAILURE[usize::from(discriminator)]
}

/// The event types whose attempts a failure type answers (a failed outbound connection answers a
/// ConnectingOut): the types its Event ID may refer to. Empty for failures that answer no
/// attempt of the node's own (a refused inbound connection, a misbehaving peer).
pub fn attempts_of(discriminator: u8) -> &'static [u8] {
    let mut event = Event::generate(discriminator, &mut Generator::new(0, 1));
    event
        .as_mut()
        .and_then(Event::reference_mut)
        .map_or(&[], |(_, targets)| targets)
}

impl Event {
    /// Why a failure event says it failed: its Reason string, or the name of its discard reason.
    pub fn failure_reason(&self) -> Option<String> {
        use Event::*;
        match self {
            ConnectInFailed { reason, .. }
            | ConnectOutFailed { reason, .. }
            | PeerMisbehaved { reason, .. }
            | AuthoringFailed { reason, .. }
            | BlockVerificationFailed { reason, .. }
            | BlockExecutionFailed { reason, .. }
            | BlockRequestFailed { reason, .. }
            | TicketGenerationFailed { reason, .. }
            | TicketTransferFailed { reason, .. }
            | WorkPackageFailed { reason, .. }
            | WorkPackageSharingFailed { reason, .. }
            | GuaranteeSendFailed { reason, .. }
            | GuaranteeReceiveFailed { reason, .. }
            | ShardRequestFailed { reason, .. }
            | AssuranceSendFailed { reason, .. }
            | AssuranceReceiveFailed { reason, .. }
            | BundleShardRequestFailed { reason, .. }
            | BundleRequestFailed { reason, .. }
            | SegmentShardRequestFailed { reason, .. }
            | SegmentReconstructionFailed { reason, .. }
            | SegmentVerificationFailed { reason, .. }
            | SegmentRequestFailed { reason, .. }
            | PreimageAnnouncementFailed { reason, .. }
            | PreimageRequestFailed { reason, .. } => Some(reason.0.clone()),
            GuaranteeDiscarded { reason, .. } => Some(format!("{reason:?}")),
            PreimageDiscarded { reason, .. } => Some(format!("{reason:?}")),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_failure_type_is_defined_and_says_why_or_what_it_answers() {
        for &d in &FAILURE_TYPES {
            let name = Event::name_of(d).expect("defined");
            let event = Event::generate(d, &mut Generator::new(7, 2)).unwrap();
            let has_reason = event.failure_reason().is_some();
            assert!(has_reason || d == 20, "{name} has a reason");
        }
        assert_eq!(
            attempts_of(25),
            &[24],
            "ConnectOutFailed answers ConnectingOut"
        );
        assert_eq!(attempts_of(46), &[40, 43]);
        assert!(
            attempts_of(28).is_empty(),
            "PeerMisbehaved answers no attempt"
        );
        assert!(!is_failure(11));
    }
}

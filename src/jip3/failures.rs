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

/// The failure types and the attempt types they answer, sorted: what `failure_counts_hourly`
/// keeps per node.
pub static COUNTED_TYPES: std::sync::LazyLock<Vec<u8>> = std::sync::LazyLock::new(|| {
    let mut types: Vec<u8> = FAILURE_TYPES
        .iter()
        .flat_map(|&d| std::iter::once(d).chain(attempts_of(d).iter().copied()))
        .collect();
    types.sort_unstable();
    types.dedup();
    types
});

/// [`COUNTED_TYPES`] as a table by discriminator: the rollup asks for every count it writes.
static IS_COUNTED: std::sync::LazyLock<[bool; 256]> = std::sync::LazyLock::new(|| {
    let mut table = [false; 256];
    for &d in COUNTED_TYPES.iter() {
        table[usize::from(d)] = true;
    }
    table
});

pub fn is_counted(discriminator: u8) -> bool {
    IS_COUNTED[usize::from(discriminator)]
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

    /// The migration that made `failure_counts_hourly` filled it from the older counts with a
    /// copy of this list.
    #[test]
    fn the_migration_backfilled_the_counted_types() {
        let sql = include_str!("../../migrations/2026-12-01-000006_bookkeeping_reads/up.sql");
        let list = sql
            .split_once("event_type = ANY ('{")
            .and_then(|(_, rest)| rest.split_once('}'))
            .expect("the backfill's type list")
            .0;
        let backfilled: Vec<u8> = list.split(',').map(|t| t.trim().parse().unwrap()).collect();
        assert_eq!(backfilled, *COUNTED_TYPES);
    }

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

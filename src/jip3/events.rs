//! The 115 JIP-3 events: one table below gives each event's discriminator, name and fields in
//! wire order; the macro turns it into the `Event` enum, its decoder, encoder, JSON form and random
//! generator, so the four can never disagree.

use serde::{Deserialize, Serialize};

use super::generate::{Generate, Generator};
use super::types::*;
use super::wire::{DecodeError, Dialect, Reader, Wire};

/// Timestamp: microseconds since the JAM Common Era (2025-01-01 12:00:00 UTC).
pub type Timestamp = u64;
/// The implicit per-connection ID of an earlier event this one refers to.
pub type EventId = u64;
pub type Slot = u32;
pub type EpochIndex = u32;
pub type ServiceId = u32;
pub type CoreIndex = u16;
pub type ShardIndex = u16;
/// A Peer ID (Ed25519 public key).
pub type PeerId = Hash;

macro_rules! events {
    ($($disc:literal $name:ident { $($(#[$fmeta:meta])* $field:ident : $ty:ty),* $(,)? })+) => {
        /// One JIP-3 event (without its timestamp). The JSON form is externally tagged:
        /// `{"BestBlockChanged": {"slot": 1234, "header_hash": "0x…"}}`.
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        pub enum Event {
            $($name { $($(#[$fmeta])* $field: $ty),* },)+
            /// A discriminator this version of TART does not know (e.g. from a newer JIP-3); the
            /// body after the discriminator is kept as it came.
            Unknown { discriminator: u8, raw: HexBytes },
        }

        impl Event {
            /// Every defined discriminator, in ascending order.
            pub const DISCRIMINATORS: &'static [u8] = &[$($disc),+];

            pub fn discriminator(&self) -> u8 {
                match self {
                    $(Event::$name { .. } => $disc,)+
                    Event::Unknown { discriminator, .. } => *discriminator,
                }
            }

            /// The event's name as in its JSON tag (`"Unknown"` for unknown ones).
            pub fn name(&self) -> &'static str {
                Self::type_name(self.discriminator())
            }

            /// The name of a discriminator as the event's JSON tag has it: `"Unknown"` for one
            /// JIP-3 does not define.
            pub fn type_name(discriminator: u8) -> &'static str {
                Self::name_of(discriminator).unwrap_or("Unknown")
            }

            /// The name of a defined discriminator.
            pub fn name_of(discriminator: u8) -> Option<&'static str> {
                match discriminator {
                    $($disc => Some(stringify!($name)),)+
                    _ => None,
                }
            }

            /// An event type as users write it: its number (0-255) or its name.
            pub fn type_from_text(text: &str) -> Option<u8> {
                text.parse::<u8>().ok().or_else(|| Self::discriminator_of(text))
            }

            /// The discriminator of a name (the inverse of `name_of`).
            pub fn discriminator_of(name: &str) -> Option<u8> {
                match name {
                    $(stringify!($name) => Some($disc),)+
                    _ => None,
                }
            }

            /// Decodes the fields after the discriminator. Unknown discriminators never fail.
            pub fn decode_fields(discriminator: u8, r: &mut Reader<'_>) -> Result<Self, DecodeError> {
                Ok(match discriminator {
                    $($disc => Event::$name { $($field: <$ty as Wire>::decode(r)?),* },)+
                    _ => Event::Unknown { discriminator, raw: HexBytes(r.rest().to_vec()) },
                })
            }

            /// Appends the discriminator and the fields.
            pub fn encode(&self, out: &mut Vec<u8>) {
                out.push(self.discriminator());
                match self {
                    $(Event::$name { $($field),* } => { $($field.encode(out);)* })+
                    Event::Unknown { raw, .. } => out.extend_from_slice(&raw.0),
                }
            }

            /// A random valid event of a defined discriminator.
            pub fn generate(discriminator: u8, g: &mut Generator) -> Option<Self> {
                Some(match discriminator {
                    $($disc => Event::$name { $($field: <$ty as Generate>::generate(g)),* },)+
                    _ => return None,
                })
            }
        }
    };
}

events! {
    0 Dropped { last_timestamp: Timestamp, num_dropped: u64 }

    10 Status {
        num_peers: u32,
        num_validator_peers: u32,
        num_block_announcement_peers: u32,
        guarantees_by_core: CoreCounts,
        num_shards: u32,
        shards_total_size: u64,
        num_preimages: u32,
        preimages_total_size: u32,
    }
    11 BestBlockChanged { slot: Slot, header_hash: Hash }
    12 FinalizedBlockChanged { slot: Slot, header_hash: Hash }
    13 SyncStatusChanged { synced: bool }

    20 ConnectionRefused { peer_address: PeerAddress }
    21 ConnectingIn { peer_address: PeerAddress }
    22 ConnectInFailed { connecting_event_id: EventId, reason: Reason }
    23 ConnectedIn { connecting_event_id: EventId, peer_id: PeerId }
    24 ConnectingOut { peer_id: PeerId, peer_address: PeerAddress }
    25 ConnectOutFailed { connecting_event_id: EventId, reason: Reason }
    26 ConnectedOut { connecting_event_id: EventId }
    27 Disconnected { peer_id: PeerId, terminator: Option<ConnectionSide>, reason: Reason }
    28 PeerMisbehaved { peer_id: PeerId, reason: Reason }

    40 Authoring { slot: Slot, parent_header_hash: Hash }
    41 AuthoringFailed { authoring_event_id: EventId, reason: Reason }
    42 Authored { authoring_event_id: EventId, outline: BlockOutline }
    43 Importing { slot: Slot, outline: BlockOutline }
    44 BlockVerificationFailed { importing_event_id: EventId, reason: Reason }
    45 BlockVerified { importing_event_id: EventId }
    46 BlockExecutionFailed { authoring_or_importing_event_id: EventId, reason: Reason }
    47 BlockExecuted { authoring_or_importing_event_id: EventId, services: Vec<ServiceAccumulateCost> }

    60 BlockAnnouncementStreamOpened { peer_id: PeerId, opener: ConnectionSide }
    61 BlockAnnouncementStreamClosed {
        /// `peer_id` in protocol version 0, `opened_event_id` (→60) in version 1.
        #[serde(flatten)]
        stream: ClosedStream,
        closer: ConnectionSide,
        reason: Reason,
    }
    62 BlockAnnounced { peer_id: PeerId, announcer: ConnectionSide, slot: Slot, header_hash: Hash }
    63 SendingBlockRequest {
        recipient: PeerId,
        header_hash: Hash,
        direction: BlockRequestDirection,
        max_blocks: u32,
    }
    64 ReceivingBlockRequest { sender: PeerId }
    65 BlockRequestFailed { request_event_id: EventId, reason: Reason }
    66 BlockRequestSent { request_event_id: EventId }
    67 BlockRequestReceived {
        request_event_id: EventId,
        header_hash: Hash,
        direction: BlockRequestDirection,
        max_blocks: u32,
    }
    68 BlockTransferred { request_event_id: EventId, slot: Slot, outline: BlockOutline, last: bool }

    80 GeneratingTickets { epoch: EpochIndex }
    81 TicketGenerationFailed { generating_event_id: EventId, reason: Reason }
    82 TicketsGenerated { generating_event_id: EventId, vrf_outputs: Vec<Hash> }
    83 TicketTransferFailed { peer_id: PeerId, sender: ConnectionSide, ce132_used: bool, reason: Reason }
    84 TicketTransferred {
        peer_id: PeerId,
        sender: ConnectionSide,
        ce132_used: bool,
        epoch: EpochIndex,
        attempt: u8,
        vrf_output: Hash,
    }

    90 WorkPackageSubmission { builder: PeerId, ce146_used: bool }
    91 WorkPackageBeingShared { primary_guarantor: PeerId }
    92 WorkPackageFailed { submission_event_id: EventId, reason: Reason }
    93 DuplicateWorkPackage { submission_event_id: EventId, core_index: CoreIndex, work_package_hash: Hash }
    94 WorkPackageReceived { submission_event_id: EventId, core_index: CoreIndex, outline: WorkPackageOutline }
    95 Authorized { submission_event_id: EventId, cost: IsAuthorizedCost }
    96 ExtrinsicDataReceived { submission_event_id: EventId }
    97 ImportsReceived { submission_event_id: EventId }
    98 SharingWorkPackage { submission_event_id: EventId, secondary_guarantor: PeerId }
    99 WorkPackageSharingFailed { submission_event_id: EventId, secondary_guarantor: PeerId, reason: Reason }
    100 BundleSent { submission_event_id: EventId, secondary_guarantor: PeerId }
    101 Refined { submission_event_id: EventId, costs: Vec<RefineCost> }
    102 WorkReportBuilt { submission_event_id: EventId, outline: WorkReportOutline }
    103 WorkReportSignatureSent { submission_event_id: EventId }
    104 WorkReportSignatureReceived { submission_event_id: EventId, secondary_guarantor: PeerId }
    105 GuaranteeBuilt { submission_event_id: EventId, outline: GuaranteeOutline }
    106 SendingGuarantee { guarantee_built_event_id: EventId, recipient: PeerId }
    107 GuaranteeSendFailed { sending_event_id: EventId, reason: Reason }
    108 GuaranteeSent { sending_event_id: EventId }
    109 GuaranteesDistributed { submission_event_id: EventId }
    110 ReceivingGuarantee { sender: PeerId }
    111 GuaranteeReceiveFailed { receiving_event_id: EventId, reason: Reason }
    112 GuaranteeReceived { receiving_event_id: EventId, outline: GuaranteeOutline }
    113 GuaranteeDiscarded { outline: GuaranteeOutline, reason: GuaranteeDiscardReason }

    120 SendingShardRequest { guarantor: PeerId, erasure_root: Hash, shard_index: ShardIndex }
    121 ReceivingShardRequest { assurer: PeerId }
    122 ShardRequestFailed { request_event_id: EventId, reason: Reason }
    123 ShardRequestSent { request_event_id: EventId }
    124 ShardRequestReceived { request_event_id: EventId, erasure_root: Hash, shard_index: ShardIndex }
    125 ShardsTransferred { request_event_id: EventId }
    126 DistributingAssurance { anchor: Hash, availability: CoreBitfield }
    127 AssuranceSendFailed { distributing_event_id: EventId, recipient: PeerId, reason: Reason }
    128 AssuranceSent { distributing_event_id: EventId, recipient: PeerId }
    129 AssuranceDistributed { distributing_event_id: EventId }
    130 AssuranceReceiveFailed { sender: PeerId, reason: Reason }
    131 AssuranceReceived { sender: PeerId, anchor: Hash }

    140 SendingBundleShardRequest { audit_event_id: EventId, assurer: PeerId, shard_index: ShardIndex }
    141 ReceivingBundleShardRequest { auditor: PeerId }
    142 BundleShardRequestFailed { request_event_id: EventId, reason: Reason }
    143 BundleShardRequestSent { request_event_id: EventId }
    144 BundleShardRequestReceived { request_event_id: EventId, erasure_root: Hash, shard_index: ShardIndex }
    145 BundleShardTransferred { request_event_id: EventId }
    146 ReconstructingBundle { audit_event_id: EventId, trivial: bool }
    147 BundleReconstructed { audit_event_id: EventId }
    148 SendingBundleRequest { audit_event_id: EventId, guarantor: PeerId }
    149 ReceivingBundleRequest { auditor: PeerId }
    150 BundleRequestFailed { request_event_id: EventId, reason: Reason }
    151 BundleRequestSent { request_event_id: EventId }
    152 BundleRequestReceived { request_event_id: EventId, erasure_root: Hash }
    153 BundleTransferred { request_event_id: EventId }

    160 WorkPackageHashMapped { submission_event_id: EventId, work_package_hash: Hash, segments_root: Hash }
    161 SegmentsRootMapped { submission_event_id: EventId, segments_root: Hash, erasure_root: Hash }
    162 SendingSegmentShardRequest {
        submission_event_id: EventId,
        assurer: PeerId,
        ce140_used: bool,
        requests: Vec<SegmentShardRequest>,
    }
    163 ReceivingSegmentShardRequest { sender: PeerId, ce140_used: bool }
    164 SegmentShardRequestFailed { request_event_id: EventId, reason: Reason }
    165 SegmentShardRequestSent { request_event_id: EventId }
    166 SegmentShardRequestReceived { request_event_id: EventId, num_segment_shards: u16 }
    167 SegmentShardsTransferred { request_event_id: EventId }
    168 ReconstructingSegments { submission_event_id: EventId, segment_ids: Vec<u16>, trivial: bool }
    169 SegmentReconstructionFailed { reconstructing_event_id: EventId, reason: Reason }
    170 SegmentsReconstructed { reconstructing_event_id: EventId }
    171 SegmentVerificationFailed { submission_event_id: EventId, failed_import_indices: Vec<u16>, reason: Reason }
    172 SegmentsVerified { submission_event_id: EventId, verified_import_indices: Vec<u16> }
    173 SendingSegmentRequest {
        submission_event_id: EventId,
        previous_guarantor: PeerId,
        import_indices: Vec<u16>,
    }
    174 ReceivingSegmentRequest { guarantor: PeerId }
    175 SegmentRequestFailed { request_event_id: EventId, reason: Reason }
    176 SegmentRequestSent { request_event_id: EventId }
    177 SegmentRequestReceived { request_event_id: EventId, num_segments: u16 }
    178 SegmentsTransferred { request_event_id: EventId }

    190 PreimageAnnouncementFailed { peer_id: PeerId, announcer: ConnectionSide, reason: Reason }
    191 PreimageAnnounced {
        peer_id: PeerId,
        announcer: ConnectionSide,
        requester: ServiceId,
        hash: Hash,
        length: u32,
    }
    192 AnnouncedPreimageForgotten {
        requester: ServiceId,
        hash: Hash,
        length: u32,
        reason: AnnouncedPreimageForgetReason,
    }
    193 SendingPreimageRequest { recipient: PeerId, hash: Hash }
    194 ReceivingPreimageRequest { sender: PeerId }
    195 PreimageRequestFailed { request_event_id: EventId, reason: Reason }
    196 PreimageRequestSent { request_event_id: EventId }
    197 PreimageRequestReceived { request_event_id: EventId, hash: Hash }
    198 PreimageTransferred { request_event_id: EventId, length: u32 }
    199 PreimageDiscarded { hash: Hash, length: u32, reason: PreimageDiscardReason }
}

/// The discriminator of Dropped, the one event that advances the event ID by more than one.
pub const DROPPED: u8 = 0;
/// Status's discriminator: the derived `node_status` table keeps each node's latest.
pub const STATUS: u8 = 10;
/// Timestamp ++ discriminator.
pub const EVENT_HEADER_LEN: usize = 9;

/// A timestamped event: the whole body of an event message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimedEvent {
    pub timestamp: Timestamp,
    pub event: Event,
}

impl TimedEvent {
    /// Decodes a whole event body; the dialect comes from this connection's NodeInformation.
    ///
    /// ```
    /// use tart_backend::jip3::{Dialect, Event, TimedEvent};
    /// let body = [0x40, 0, 0, 0, 0, 0, 0, 0, 13, 1]; // timestamp 64, SyncStatusChanged(true)
    /// let event = TimedEvent::parse(&body, Dialect::v1(2)).unwrap();
    /// assert_eq!(event.event, Event::SyncStatusChanged { synced: true });
    /// assert_eq!(serde_json::to_string(&event.event).unwrap(), r#"{"SyncStatusChanged":{"synced":true}}"#);
    /// assert_eq!(event.to_bytes(), body);
    /// ```
    pub fn parse(body: &[u8], dialect: Dialect) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body, dialect);
        let timestamp = r.u64()?;
        let discriminator = r.u8()?;
        let event = Event::decode_fields(discriminator, &mut r)?;
        r.finish()?;
        Ok(TimedEvent { timestamp, event })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        self.timestamp.encode(&mut out);
        self.event.encode(&mut out);
        out
    }

    /// How far this event moves the connection's event ID counter: N for Dropped(N), else 1.
    pub fn id_advance(&self) -> u64 {
        match self.event {
            Event::Dropped { num_dropped, .. } => num_dropped,
            _ => 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn there_are_115_events_with_unique_names() {
        assert_eq!(Event::DISCRIMINATORS.len(), 115);
        assert!(Event::DISCRIMINATORS.windows(2).all(|w| w[0] < w[1]));
        for &d in Event::DISCRIMINATORS {
            let name = Event::name_of(d).unwrap();
            assert_eq!(Event::discriminator_of(name), Some(d));
        }
    }

    #[test]
    fn unknown_discriminator_keeps_its_bytes() {
        let body = [1, 0, 0, 0, 0, 0, 0, 0, 250, 0xde, 0xad];
        let ev = TimedEvent::parse(&body, Dialect::v1(2)).unwrap();
        assert_eq!(
            ev.event,
            Event::Unknown {
                discriminator: 250,
                raw: HexBytes(vec![0xde, 0xad])
            }
        );
        assert_eq!(ev.to_bytes(), body);
        let json = serde_json::to_value(&ev.event).unwrap();
        assert_eq!(json["Unknown"]["raw"], "0xdead");
    }
}

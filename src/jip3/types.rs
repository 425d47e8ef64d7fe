//! The JIP-3 types shared by NodeInformation and the events (JIP-3 §Types, docs/PROTOCOL.md), with
//! their byte form (`Wire`), their JSON form (serde) and random values (`Generate`).

use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

use rand::Rng;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::generate::{Generate, Generator};
use super::natural::{decode_natural, encode_natural};
use super::wire::{DecodeError, ProtocolVersion, Reader, Wire};

/// Writes bytes as `0x` + lowercase hex, the JSON form of every hash, key and byte array.
pub fn to_hex(bytes: &[u8]) -> String {
    let mut out = vec![0; 2 + 2 * bytes.len()];
    hex_into(bytes, &mut out).to_owned()
}

/// Writes `0x` + hex of `bytes` into `out` (exactly `2 + 2 * bytes.len()` long) and returns it
/// as text. Serialising goes through here without allocating: `hex::encode` builds a `String`
/// char by char, which made hex the bulk of the JSON time of hash-heavy events.
fn hex_into<'a>(bytes: &[u8], out: &'a mut [u8]) -> &'a str {
    out[..2].copy_from_slice(b"0x");
    hex::encode_to_slice(bytes, &mut out[2..]).expect("out is sized for bytes");
    std::str::from_utf8(out).expect("hex is ASCII")
}

/// Serialises bytes as one `0x…` string, on the stack for up to 64 bytes (hashes, keys, the
/// availability bitfield at C ≤ 512).
fn serialize_hex<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    const STACK: usize = 64;
    if bytes.len() <= STACK {
        let mut buf = [0u8; 2 + 2 * STACK];
        s.serialize_str(hex_into(bytes, &mut buf[..2 + 2 * bytes.len()]))
    } else {
        s.serialize_str(&to_hex(bytes))
    }
}

/// Reads hex with or without the `0x` prefix.
pub fn from_hex(text: &str) -> Result<Vec<u8>, hex::FromHexError> {
    hex::decode(text.strip_prefix("0x").unwrap_or(text))
}

/// A 32-byte value: every hash, Peer ID (Ed25519 key), root and VRF output.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Hash(pub [u8; 32]);

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&to_hex(&self.0))
    }
}

impl fmt::Display for Hash {
    /// Plain lowercase hex without `0x`: the form of `node_id`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl Serialize for Hash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_hex(&self.0, s)
    }
}

impl<'de> Deserialize<'de> for Hash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let bytes = from_hex(&text).map_err(serde::de::Error::custom)?;
        let array = bytes
            .try_into()
            .map_err(|_| serde::de::Error::custom("expected 32 bytes of hex"))?;
        Ok(Hash(array))
    }
}

impl Wire for Hash {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.array().map(Hash)
    }
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0);
    }
}

impl Generate for Hash {
    fn generate(g: &mut Generator) -> Self {
        Hash(g.rng.random())
    }
}

/// Bytes shown as one hex string in JSON (raw bytes of unknown events, availability bitfields).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct HexBytes(pub Vec<u8>);

impl fmt::Debug for HexBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&to_hex(&self.0))
    }
}

impl Serialize for HexBytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_hex(&self.0, s)
    }
}

impl<'de> Deserialize<'de> for HexBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        from_hex(&text)
            .map(HexBytes)
            .map_err(serde::de::Error::custom)
    }
}

/// `[u8; C]`: one count per core (Status), sized by the connection's core count, no prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct CoreCounts(pub Vec<u8>);

/// The fields of Status after its `[u8; C]`: shards, their bytes, preimages, their bytes.
const STATUS_TAIL_LEN: usize = 4 + 8 + 4 + 4;
/// The most cores C (a u16) can name: with C unknown, a per-core field sized by its frame is
/// still no larger than a known C allows.
const MAX_CORES: usize = u16::MAX as usize;

impl Wire for CoreCounts {
    /// With C unknown (parameters of an unknown layout), the array is what the frame leaves
    /// before Status's last 20 bytes: it is Status's only variable part.
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let cores = match r.core_count() {
            Some(cores) => usize::from(cores),
            None => r.remaining().saturating_sub(STATUS_TAIL_LEN).min(MAX_CORES),
        };
        Ok(CoreCounts(r.take(cores)?.to_vec()))
    }
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0);
    }
}

impl Generate for CoreCounts {
    fn generate(g: &mut Generator) -> Self {
        let cores = usize::from(g.core_count());
        CoreCounts(g.bytes(cores))
    }
}

/// `[u8; ⌈C/8⌉]`: the availability bitfield of Distributing assurance, least significant bit first
/// (core i is byte i/8, bit i mod 8), as GP bit sequences are packed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct CoreBitfield(pub HexBytes);

impl CoreBitfield {
    fn byte_len(cores: u16) -> usize {
        usize::from(cores).div_ceil(8)
    }

    pub fn is_available(&self, core: usize) -> bool {
        self.0
             .0
            .get(core / 8)
            .is_some_and(|b| b & (1 << (core % 8)) != 0)
    }
}

impl Wire for CoreBitfield {
    /// With C unknown, the bitfield is the rest of the frame: it is the last field of its event.
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let len = match r.core_count() {
            Some(cores) => Self::byte_len(cores),
            None => r.remaining().min(MAX_CORES.div_ceil(8)),
        };
        Ok(CoreBitfield(HexBytes(r.take(len)?.to_vec())))
    }
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0 .0);
    }
}

impl Generate for CoreBitfield {
    fn generate(g: &mut Generator) -> Self {
        let cores = g.core_count();
        let mut bytes = g.bytes(Self::byte_len(cores));
        // Bits past the last core are zero, as a node would send them.
        if !cores.is_multiple_of(8) {
            if let Some(last) = bytes.last_mut() {
                *last &= (1u8 << (cores % 8)) - 1;
            }
        }
        CoreBitfield(HexBytes(bytes))
    }
}

/// `String<N>`: UTF-8 of at most N bytes behind a `len++` prefix.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(transparent)]
pub struct BoundedString<const N: usize>(pub String);

/// Freeform reason for a failure; may be empty.
pub type Reason = BoundedString<128>;

impl<const N: usize> BoundedString<N> {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The text as stored and shown. NUL is valid UTF-8, but PostgreSQL refuses it in text and
    /// JSONB (a whole batch would fail; and `data::jsonb` in a query), so it becomes U+FFFD here;
    /// the wire form keeps it.
    pub fn storable(&self) -> Cow<'_, str> {
        if self.0.contains('\0') {
            Cow::Owned(self.0.replace('\0', "\u{FFFD}"))
        } else {
            Cow::Borrowed(&self.0)
        }
    }
}

impl<const N: usize> Serialize for BoundedString<N> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.storable())
    }
}

impl<const N: usize> From<&str> for BoundedString<N> {
    /// Cuts at the last character boundary that fits in N bytes, so the value is always valid.
    fn from(text: &str) -> Self {
        let mut end = text.len().min(N);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        BoundedString(text[..end].to_owned())
    }
}

impl<const N: usize> Wire for BoundedString<N> {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let offset = r.position();
        let len = decode_natural(r)?;
        if len > N as u64 {
            return Err(DecodeError::StringTooLong {
                offset,
                len,
                max: N,
            });
        }
        let bytes = r.take(len as usize)?;
        std::str::from_utf8(bytes)
            .map(|s| BoundedString(s.to_owned()))
            .map_err(|_| DecodeError::InvalidUtf8 { offset })
    }
    fn encode(&self, out: &mut Vec<u8>) {
        encode_natural(self.0.len() as u64, out);
        out.extend_from_slice(self.0.as_bytes());
    }
}

impl<const N: usize> Generate for BoundedString<N> {
    fn generate(g: &mut Generator) -> Self {
        const ALPHABET: [char; 8] = ['a', 'Z', '7', ' ', '-', 'é', 'Ж', '🦀'];
        let target = if g.rng.random_ratio(1, 8) {
            N
        } else {
            g.rng.random_range(0..=N.min(40))
        };
        let mut text = String::new();
        loop {
            let c = ALPHABET[g.rng.random_range(0..ALPHABET.len())];
            if text.len() + c.len_utf8() > target {
                break;
            }
            text.push(c);
        }
        BoundedString(text)
    }
}

/// Peer Address: IPv6 address (network order) and a little-endian port. IPv4 peers arrive as
/// IPv4-mapped IPv6 (`::ffff:a.b.c.d`) and are shown as plain IPv4 in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddress {
    pub ip: Ipv6Addr,
    pub port: u16,
}

#[derive(Serialize, Deserialize)]
struct PeerAddressJson {
    ip: IpAddr,
    port: u16,
}

impl Serialize for PeerAddress {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let ip = match self.ip.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(self.ip),
        };
        PeerAddressJson {
            ip,
            port: self.port,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for PeerAddress {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let json = PeerAddressJson::deserialize(d)?;
        let ip = match json.ip {
            IpAddr::V4(v4) => v4.to_ipv6_mapped(),
            IpAddr::V6(v6) => v6,
        };
        Ok(PeerAddress {
            ip,
            port: json.port,
        })
    }
}

impl Wire for PeerAddress {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let ip = Ipv6Addr::from(r.array::<16>()?);
        let port = r.u16()?;
        Ok(PeerAddress { ip, port })
    }
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.ip.octets());
        self.port.encode(out);
    }
}

impl Generate for PeerAddress {
    fn generate(g: &mut Generator) -> Self {
        let ip = if g.rng.random() {
            std::net::Ipv4Addr::from(g.rng.random::<u32>()).to_ipv6_mapped()
        } else {
            Ipv6Addr::from(g.rng.random::<u128>())
        };
        PeerAddress {
            ip,
            port: g.rng.random(),
        }
    }
}

/// The first field of event 61 (Block announcement stream closed), whose form depends on the
/// connection's protocol version. In JSON it is one field named for what it holds: `peer_id`
/// (version 0) or `opened_event_id` (version 1), beside `closer` and `reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClosedStream {
    /// Version 0: the Peer ID of the other end of the stream.
    #[serde(rename = "peer_id")]
    Peer(Hash),
    /// Version 1: the Event ID of the matching "Block announcement stream opened" (60).
    #[serde(rename = "opened_event_id")]
    OpenedEvent(u64),
}

impl Wire for ClosedStream {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match r.dialect().version {
            ProtocolVersion::V0 => ClosedStream::Peer(Hash::decode(r)?),
            ProtocolVersion::V1 => ClosedStream::OpenedEvent(r.u64()?),
        })
    }
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            ClosedStream::Peer(peer) => peer.encode(out),
            ClosedStream::OpenedEvent(id) => id.encode(out),
        }
    }
}

impl Generate for ClosedStream {
    fn generate(g: &mut Generator) -> Self {
        match g.version() {
            ProtocolVersion::V0 => ClosedStream::Peer(Hash::generate(g)),
            ProtocolVersion::V1 => ClosedStream::OpenedEvent(u64::generate(g)),
        }
    }
}

/// A single-byte enum with named values; any other byte is a decode error.
macro_rules! byte_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $value:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
        pub enum $name { $($variant = $value),+ }

        impl $name {
            const ALL: &'static [$name] = &[$($name::$variant),+];
        }

        impl Wire for $name {
            fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
                let offset = r.position();
                match r.u8()? {
                    $($value => Ok($name::$variant),)+
                    value => Err(DecodeError::InvalidByte { what: stringify!($name), offset, value }),
                }
            }
            fn encode(&self, out: &mut Vec<u8>) {
                out.push(*self as u8);
            }
        }

        impl Generate for $name {
            fn generate(g: &mut Generator) -> Self {
                Self::ALL[g.rng.random_range(0..Self::ALL.len())]
            }
        }
    };
}

byte_enum!(
    /// Which end of a peer connection did something.
    ConnectionSide { Local = 0, Remote = 1 }
);
byte_enum!(
    /// Direction of a block request (CE 128).
    BlockRequestDirection { AscendingExclusive = 0, DescendingInclusive = 1 }
);
byte_enum!(GuaranteeDiscardReason {
    PackageReportedOnChain = 0,
    ReplacedByBetterGuarantee = 1,
    CannotBeReportedOnChain = 2,
    TooManyGuarantees = 3,
    Other = 4,
});
byte_enum!(AnnouncedPreimageForgetReason {
    ProvidedOnChain = 0,
    NotRequestedOnChain = 1,
    FailedToAcquirePreimage = 2,
    TooManyAnnouncedPreimages = 3,
    BadLength = 4,
    Other = 5,
});
byte_enum!(PreimageDiscardReason {
    ProvidedOnChain = 0,
    NotRequestedOnChain = 1,
    TooManyPreimages = 2,
    Other = 3,
});

/// A struct whose byte form is its fields back to back, in declaration order, and whose random
/// values are random fields.
macro_rules! wire_struct {
    ($(#[$meta:meta])* $name:ident { $($(#[$fmeta:meta])* $field:ident : $ty:ty),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        pub struct $name { $($(#[$fmeta])* pub $field: $ty),+ }

        impl Wire for $name {
            fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
                Ok($name { $($field: <$ty as Wire>::decode(r)?),+ })
            }
            fn encode(&self, out: &mut Vec<u8>) {
                $(self.$field.encode(out);)+
            }
        }

        impl Generate for $name {
            fn generate(g: &mut Generator) -> Self {
                $name { $($field: <$ty as Generate>::generate(g)),+ }
            }
        }
    };
}

wire_struct!(
    /// Block Outline (60 bytes).
    BlockOutline {
        size: u32,
        header_hash: Hash,
        num_tickets: u32,
        num_preimages: u32,
        preimages_size: u32,
        num_guarantees: u32,
        num_assurances: u32,
        num_dispute_verdicts: u32,
    }
);

wire_struct!(
    /// Exec Cost: gas used and wall-clock nanoseconds.
    ExecCost { gas: u64, ns: u64 }
);

wire_struct!(IsAuthorizedCost {
    total: ExecCost,
    load_compile_ns: u64,
    host_calls: ExecCost,
});

wire_struct!(RefineCost {
    total: ExecCost,
    load_compile_ns: u64,
    historical_lookup: ExecCost,
    machine_expunge: ExecCost,
    peek_poke_pages: ExecCost,
    invoke: ExecCost,
    other: ExecCost,
});

wire_struct!(AccumulateCost {
    num_accumulate_calls: u32,
    num_transfers_processed: u32,
    num_items_accumulated: u32,
    total: ExecCost,
    load_compile_ns: u64,
    read_write: ExecCost,
    lookup: ExecCost,
    query_solicit_forget_provide: ExecCost,
    info_new_upgrade_eject: ExecCost,
    transfer: ExecCost,
    transfer_dest_gas: u64,
    other: ExecCost,
});

wire_struct!(
    /// One entry of Block executed: a service and the cost of its accumulate calls.
    ServiceAccumulateCost { service_id: u32, cost: AccumulateCost }
);

/// What the root of an Import Spec names: bit 15 of the index word tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RootKind {
    SegmentsRoot,
    WorkPackageHash,
}

/// Import Spec: a root and an export index (low 15 bits); bit 15 set means the root is a
/// Work-Package Hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportSpec {
    pub root_kind: RootKind,
    pub root: Hash,
    pub export_index: u16,
}

impl Wire for ImportSpec {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let root = Hash::decode(r)?;
        let word = r.u16()?;
        let root_kind = if word & 0x8000 != 0 {
            RootKind::WorkPackageHash
        } else {
            RootKind::SegmentsRoot
        };
        Ok(ImportSpec {
            root_kind,
            root,
            export_index: word & 0x7fff,
        })
    }
    fn encode(&self, out: &mut Vec<u8>) {
        self.root.encode(out);
        let flag = match self.root_kind {
            RootKind::SegmentsRoot => 0,
            RootKind::WorkPackageHash => 0x8000,
        };
        (flag | (self.export_index & 0x7fff)).encode(out);
    }
}

impl Generate for ImportSpec {
    fn generate(g: &mut Generator) -> Self {
        ImportSpec {
            root_kind: if g.rng.random() {
                RootKind::WorkPackageHash
            } else {
                RootKind::SegmentsRoot
            },
            root: Hash::generate(g),
            export_index: g.rng.random_range(0..0x8000),
        }
    }
}

wire_struct!(WorkItemOutline {
    service_id: u32,
    payload_size: u32,
    refine_gas_limit: u64,
    accumulate_gas_limit: u64,
    extrinsic_length_sum: u32,
    imports: Vec<ImportSpec>,
    num_exported_segments: u16,
});

wire_struct!(WorkPackageOutline {
    /// Work-package size in bytes, excluding extrinsic data.
    size: u32,
    hash: Hash,
    anchor: Hash,
    lookup_anchor_slot: u32,
    prerequisites: Vec<Hash>,
    work_items: Vec<WorkItemOutline>,
});

wire_struct!(WorkReportOutline {
    hash: Hash,
    bundle_size: u32,
    erasure_root: Hash,
    segments_root: Hash,
});

wire_struct!(GuaranteeOutline {
    work_report_hash: Hash,
    slot: u32,
    guarantors: Vec<u16>,
});

wire_struct!(
    /// One entry of Sending segment shard request: which segment and which shard of it.
    SegmentShardRequest { import_segment_id: u16, shard_index: u16 }
);

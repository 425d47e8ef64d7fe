//! NodeInformation, the first message on every telemetry connection (JIP-3 §Node information),
//! in both protocol versions and both JAM Parameters layouts (docs/PROTOCOL.md).
//!
//! The JAM Parameters blob carries neither its length nor a layout tag, and the GP version string
//! that would hint at it comes after it. So the layout is found the only way that works: the one
//! whose length makes the rest of the message parse to exactly its end (the GP version breaks a
//! tie). When neither known length does but some other does, the node is still accepted, the
//! blob kept as it came; only a message no length at all makes parse is refused.

use rand::Rng;
use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};

use super::generate::{Generate, Generator};
use super::natural::decode_natural;
use super::types::{BoundedString, Hash, HexBytes, PeerAddress};
use super::wire::{DecodeError, Dialect, ProtocolVersion, Reader, Wire};

/// Which GP list of constants a JAM Parameters blob follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParamsLayout {
    /// GP 0.7.0–0.7.2: 33 constants, 134 bytes.
    Gp07,
    /// GP 0.8.0: N, V, W_E and W_P left the list: 29 constants, 122 bytes.
    Gp08,
    /// No known length made the message parse: the blob is kept, its constants are not named.
    Unknown,
}

impl ParamsLayout {
    /// The layouts whose constants TART can name.
    pub const KNOWN: [ParamsLayout; 2] = [ParamsLayout::Gp07, ParamsLayout::Gp08];

    /// The name stored with the node and session, shown by the API and used as a metric label.
    pub fn name(self) -> &'static str {
        match self {
            ParamsLayout::Gp07 => "gp-0.7",
            ParamsLayout::Gp08 => "gp-0.8",
            ParamsLayout::Unknown => "unknown",
        }
    }

    /// The blob's length in this layout.
    pub fn encoded_len(self) -> Option<usize> {
        match self {
            ParamsLayout::Gp07 => Some(134),
            ParamsLayout::Gp08 => Some(122),
            ParamsLayout::Unknown => None,
        }
    }
}

impl Serialize for ParamsLayout {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// Declares the JAM Parameters once, in wire order: the struct, its decoder for a layout and its
/// encoder. A field marked `[gp07]` is one GP 0.8 dropped: `Option` in the struct, `None` when
/// the layout lacks it (never a made-up value), read only from a GP 0.7 blob.
macro_rules! jam_parameters {
    ($($(#[$meta:meta])* $field:ident : $ty:ty $([$only:ident])?),+ $(,)?) => {
        /// The named constants of a JAM Parameters blob (the output of the GP `fetch` host call
        /// with selector 0). Field names follow the GP meaning; the GP symbol is in each comment.
        #[derive(Debug, Clone, PartialEq, Eq, Serialize)]
        pub struct JamParameters {
            $($(#[$meta])* pub $field: jam_parameters!(@type $ty $(, $only)?),)+
        }

        impl JamParameters {
            /// Reads the blob of a known layout.
            fn decode(r: &mut Reader<'_>, layout: ParamsLayout) -> Result<Self, DecodeError> {
                let gp07 = layout == ParamsLayout::Gp07;
                Ok(JamParameters {
                    $($field: jam_parameters!(@read r, gp07, $field, $ty $(, $only)?),)+
                })
            }

            /// Writes the constants it has, so a decoded blob encodes back to its own bytes.
            fn encode(&self, out: &mut Vec<u8>) {
                $(jam_parameters!(@write self.$field, out $(, $only)?);)+
            }

            /// The same constants as a GP 0.8 node announces them: without N, V, W_E and W_P.
            pub fn gp08(self) -> Self {
                JamParameters { $($field: jam_parameters!(@drop self.$field $(, $only)?),)+ }
            }

            /// The layout these constants encode as: GP 0.7 when it has the four constants that
            /// GP 0.8 dropped. Decoding, `full`, `tiny` and `gp08` give all four or none.
            pub fn layout(&self) -> ParamsLayout {
                let mut gp07_only = 0;
                $(jam_parameters!(@count gp07_only, self.$field $(, $only)?);)+
                if gp07_only == 0 { ParamsLayout::Gp08 } else { ParamsLayout::Gp07 }
            }
        }
    };
    (@type $ty:ty) => { $ty };
    (@type $ty:ty, gp07) => { Option<$ty> };
    (@read $r:ident, $gp07:ident, $field:ident, $ty:ty) => {
        <$ty as Wire>::decode($r).map_err(|e| e.in_field(concat!("JAM parameters.", stringify!($field))))?
    };
    (@read $r:ident, $gp07:ident, $field:ident, $ty:ty, gp07) => {
        if $gp07 { Some(jam_parameters!(@read $r, $gp07, $field, $ty)) } else { None }
    };
    (@write $value:expr, $out:ident) => { $value.encode($out) };
    (@write $value:expr, $out:ident, gp07) => { if let Some(v) = &$value { v.encode($out) } };
    (@drop $value:expr) => { $value };
    (@drop $value:expr, gp07) => { None };
    (@count $n:ident, $value:expr) => {};
    (@count $n:ident, $value:expr, gp07) => { $n += usize::from($value.is_some()) };
}

jam_parameters! {
    /// B_I
    item_deposit: u64,
    /// B_L
    byte_deposit: u64,
    /// B_S
    base_deposit: u64,
    /// C: sizes `[u8; C]` fields of later events on this connection. At offset 24 in both
    /// layouts.
    core_count: u16,
    /// D
    expunge_period: u32,
    /// E
    epoch_length: u32,
    /// G_A
    report_acc_gas: u64,
    /// G_I
    package_auth_gas: u64,
    /// G_R
    package_refine_gas: u64,
    /// G_T
    block_acc_gas: u64,
    /// H
    recent_history_len: u16,
    /// I
    max_package_items: u16,
    /// J
    max_report_deps: u16,
    /// K
    max_block_tickets: u16,
    /// L
    max_lookup_anchor_age: u32,
    /// N (GP 0.7 only)
    ticket_entries: u16 [gp07],
    /// O
    auth_pool_size: u16,
    /// P
    slot_seconds: u16,
    /// Q
    auth_queue_size: u16,
    /// R
    rotation_period: u16,
    /// T
    max_package_extrinsics: u16,
    /// U
    assurance_timeout: u16,
    /// V (GP 0.7 only)
    validator_count: u16 [gp07],
    /// W_A
    max_auth_code_size: u32,
    /// W_B
    max_bundle_size: u32,
    /// W_C
    max_service_code_size: u32,
    /// W_E (GP 0.7 only)
    ec_piece_size: u32 [gp07],
    /// W_M
    max_package_imports: u32,
    /// W_P (GP 0.7 only)
    segment_ec_pieces: u32 [gp07],
    /// W_R
    max_report_var_size: u32,
    /// W_T
    memo_size: u32,
    /// W_X
    max_package_exports: u32,
    /// Y
    epoch_tail_start: u32,
}

impl JamParameters {
    /// GP 0.7.2 "full" chain: 341 cores, 1,023 validators, 600-slot epochs (GP 0.7 layout).
    pub fn full() -> Self {
        JamParameters {
            item_deposit: 10,
            byte_deposit: 1,
            base_deposit: 100,
            core_count: 341,
            expunge_period: 19_200,
            epoch_length: 600,
            report_acc_gas: 10_000_000,
            package_auth_gas: 50_000_000,
            package_refine_gas: 5_000_000_000,
            block_acc_gas: 3_500_000_000,
            recent_history_len: 8,
            max_package_items: 16,
            max_report_deps: 8,
            max_block_tickets: 16,
            max_lookup_anchor_age: 14_400,
            ticket_entries: Some(2),
            auth_pool_size: 8,
            slot_seconds: 6,
            auth_queue_size: 80,
            rotation_period: 10,
            max_package_extrinsics: 128,
            assurance_timeout: 5,
            validator_count: Some(1023),
            max_auth_code_size: 64_000,
            max_bundle_size: 13_791_360,
            max_service_code_size: 4_000_000,
            ec_piece_size: Some(684),
            max_package_imports: 3072,
            segment_ec_pieces: Some(6),
            max_report_var_size: 49_152,
            memo_size: 128,
            max_package_exports: 3072,
            epoch_tail_start: 500,
        }
    }

    /// The "tiny" test network: 2 cores, 6 validators, 12-slot epochs; the rest as `full`.
    pub fn tiny() -> Self {
        JamParameters {
            core_count: 2,
            validator_count: Some(6),
            epoch_length: 12,
            epoch_tail_start: 10,
            rotation_period: 4,
            ticket_entries: Some(3),
            ..Self::full()
        }
    }

    /// These constants in `layout` (GP 0.7 keeps them as they are).
    pub fn in_layout(self, layout: ParamsLayout) -> Self {
        match layout {
            ParamsLayout::Gp08 => self.gp08(),
            _ => self,
        }
    }
}

/// A node's JAM Parameters as it sent them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JamParams {
    /// A known layout (which one: [`JamParameters::layout`]).
    Known(JamParameters),
    /// No known layout fits: the blob as received, possibly empty. Nothing in it is trusted, C
    /// included.
    Unknown(HexBytes),
}

impl JamParams {
    pub fn layout(&self) -> ParamsLayout {
        match self {
            JamParams::Known(constants) => constants.layout(),
            JamParams::Unknown(_) => ParamsLayout::Unknown,
        }
    }

    pub fn constants(&self) -> Option<&JamParameters> {
        match self {
            JamParams::Known(constants) => Some(constants),
            JamParams::Unknown(_) => None,
        }
    }

    /// C, when the layout is known.
    pub fn core_count(&self) -> Option<u16> {
        self.constants().map(|c| c.core_count)
    }

    /// The blob's bytes, exactly as on the wire.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(134);
        self.encode(&mut out);
        out
    }

    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            JamParams::Known(constants) => constants.encode(out),
            JamParams::Unknown(raw) => out.extend_from_slice(&raw.0),
        }
    }

    /// What is wrong with a blob of unknown layout, in words for the node's implementer.
    pub fn diagnosis(&self) -> Option<String> {
        let JamParams::Unknown(raw) = self else {
            return None;
        };
        let raw = &raw.0;
        let mut text = format!(
            "JAM parameters: 134 (GP 0.7) or 122 (GP 0.8) bytes expected, {} present",
            raw.len()
        );
        let mut r = Reader::new(raw, Dialect::v1(0));
        if let Ok(prefix) = decode_natural(&mut r) {
            let known = ParamsLayout::KNOWN
                .into_iter()
                .find(|l| l.encoded_len() == Some(r.remaining()) && prefix == r.remaining() as u64);
            if let Some(layout) = known {
                text.push_str(&format!(
                    "; they are a {}-byte {} blob behind a length prefix ({} = {prefix}) that \
                     JIP-3 does not have",
                    r.remaining(),
                    layout.name(),
                    super::types::to_hex(&raw[..r.position()]),
                ));
            }
        }
        Some(text)
    }
}

/// The first message of a connection. It has no timestamp, discriminator or event ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInformation {
    pub protocol_version: ProtocolVersion,
    pub params: JamParams,
    pub genesis_header_hash: Hash,
    pub peer_id: Hash,
    pub peer_address: PeerAddress,
    /// Bit 0: 1 = PVM recompiler, 0 = interpreter.
    pub node_flags: u32,
    pub implementation_name: BoundedString<32>,
    pub implementation_version: BoundedString<32>,
    pub gp_version: BoundedString<16>,
    pub note: BoundedString<512>,
}

/// Everything after the JAM Parameters, as one reading of the message found it.
struct Tail {
    genesis_header_hash: Hash,
    peer_id: Hash,
    peer_address: PeerAddress,
    node_flags: u32,
    implementation_name: BoundedString<32>,
    implementation_version: BoundedString<32>,
    gp_version: BoundedString<16>,
    note: BoundedString<512>,
}

/// The fewest bytes a tail can have: hashes, address, flags and four empty strings.
const MIN_TAIL_LEN: usize = 32 + 32 + 18 + 4 + 4;
/// The longest blob an unknown layout is searched up to: far beyond any GP's (134 B), and it
/// keeps a hostile megabyte-long NodeInformation from costing a million parses.
const MAX_UNKNOWN_PARAMS_LEN: usize = 1024;

fn field<T: Wire>(r: &mut Reader<'_>, name: &'static str) -> Result<T, DecodeError> {
    T::decode(r).map_err(|e| e.in_field(name))
}

impl Tail {
    /// Reads the tail after the version byte and a `params_len`-byte blob, and requires it to
    /// end exactly at the end of `body`.
    fn read(body: &[u8], params_len: usize) -> Result<Tail, DecodeError> {
        let mut r = Reader::new(body, Dialect::v1(0));
        r.take(1).map_err(|e| e.in_field("protocol version"))?;
        r.take(params_len)
            .map_err(|e| e.in_field("JAM parameters"))?;
        let tail = Tail {
            genesis_header_hash: field(&mut r, "genesis header hash")?,
            peer_id: field(&mut r, "peer ID")?,
            peer_address: field(&mut r, "peer address")?,
            node_flags: field(&mut r, "node flags")?,
            implementation_name: field(&mut r, "implementation name")?,
            implementation_version: field(&mut r, "implementation version")?,
            gp_version: field(&mut r, "GP version")?,
            note: field(&mut r, "note")?,
        };
        r.finish()
            .map_err(|e| e.in_field("end of NodeInformation"))?;
        Ok(tail)
    }

    /// True if the GP version says 0.8 or later.
    fn says_gp08_or_later(&self) -> bool {
        let mut parts = self.gp_version.as_str().split('.').map(str::parse::<u32>);
        matches!(
            (parts.next(), parts.next()),
            (Some(Ok(major)), Some(Ok(minor))) if (major, minor) >= (0, 8)
        )
    }

    /// True if the GP version looks like one ("0.7.2"): digits and dots, starting with a digit.
    fn has_version_like_gp(&self) -> bool {
        let text = self.gp_version.as_str();
        text.starts_with(|c: char| c.is_ascii_digit())
            && text.contains('.')
            && text.chars().all(|c| c.is_ascii_digit() || c == '.')
    }
}

impl NodeInformation {
    /// Decodes a whole NodeInformation body: the version byte first (another version may lay
    /// out the rest differently, so nothing after it can be trusted), then the JAM Parameters
    /// layout that makes the rest parse to the end.
    pub fn parse(body: &[u8]) -> Result<Self, DecodeError> {
        Self::parse_with(body, true)
    }

    /// True if `body` is a NodeInformation of a known layout. Cheap enough to ask of a failed
    /// event frame: it does not search blob lengths.
    pub fn is_one(body: &[u8]) -> bool {
        Self::parse_with(body, false).is_ok()
    }

    fn parse_with(body: &[u8], search_unknown: bool) -> Result<Self, DecodeError> {
        let Some(&version) = body.first() else {
            return Err(DecodeError::Truncated {
                offset: 0,
                needed: 1,
                available: 0,
            }
            .in_field("protocol version"));
        };
        let protocol_version = ProtocolVersion::try_from(version)?;
        let (params, tail) = Self::find_layout(body, search_unknown)?;
        Ok(NodeInformation {
            protocol_version,
            params,
            genesis_header_hash: tail.genesis_header_hash,
            peer_id: tail.peer_id,
            peer_address: tail.peer_address,
            node_flags: tail.node_flags,
            implementation_name: tail.implementation_name,
            implementation_version: tail.implementation_version,
            gp_version: tail.gp_version,
            note: tail.note,
        })
    }

    fn find_layout(body: &[u8], search_unknown: bool) -> Result<(JamParams, Tail), DecodeError> {
        let read_known = |layout: ParamsLayout| -> Result<(JamParams, Tail), DecodeError> {
            let len = layout.encoded_len().expect("a known layout");
            let tail = Tail::read(body, len)?;
            let mut r = Reader::new(&body[1..1 + len], Dialect::v1(0));
            let constants = JamParameters::decode(&mut r, layout)?;
            Ok((JamParams::Known(constants), tail))
        };
        match (
            read_known(ParamsLayout::Gp07),
            read_known(ParamsLayout::Gp08),
        ) {
            (Ok(gp07), Err(_)) => Ok(gp07),
            (Err(_), Ok(gp08)) => Ok(gp08),
            (Ok(gp07), Ok(gp08)) => {
                // The strings come last, so the two readings nearly always share them.
                let choice = if gp07.1.says_gp08_or_later() || gp08.1.says_gp08_or_later() {
                    gp08
                } else {
                    gp07
                };
                log::info!(
                    "NodeInformation parses with both the 134- and the 122-byte JAM parameters; \
                     its GP version {:?} chose {}",
                    choice.1.gp_version.as_str(),
                    choice.0.layout().name()
                );
                Ok(choice)
            }
            (Err(gp07), Err(gp08)) => {
                let unknown = search_unknown.then(|| Self::find_unknown_layout(body));
                unknown
                    .flatten()
                    .ok_or_else(|| DecodeError::NoParamsLayout {
                        len: body.len(),
                        gp07: Box::new(gp07),
                        gp08: Box::new(gp08),
                    })
            }
        }
    }

    /// Tries every blob length whose tail parses to the end; prefers a tail with a GP version
    /// that looks like one.
    fn find_unknown_layout(body: &[u8]) -> Option<(JamParams, Tail)> {
        let longest = body
            .len()
            .checked_sub(1 + MIN_TAIL_LEN)?
            .min(MAX_UNKNOWN_PARAMS_LEN);
        let mut fallback = None;
        for len in 0..=longest {
            let Ok(tail) = Tail::read(body, len) else {
                continue;
            };
            let found = (
                JamParams::Unknown(HexBytes(body[1..1 + len].to_vec())),
                tail,
            );
            if found.1.has_version_like_gp() {
                return Some(found);
            }
            fallback.get_or_insert(found);
        }
        fallback
    }

    /// Who a refused NodeInformation says it is: for a version TART does not speak, what the
    /// message reads as if it were laid out like version 1 (every version so far is), for the
    /// record of the refusal only.
    pub fn claimed_by(body: &[u8]) -> Option<NodeInformation> {
        let mut as_v1 = body.to_vec();
        *as_v1.first_mut()? = ProtocolVersion::V1.as_u8();
        Self::parse(&as_v1).ok()
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(300);
        out.push(self.protocol_version.as_u8());
        self.params.encode(&mut out);
        self.genesis_header_hash.encode(&mut out);
        self.peer_id.encode(&mut out);
        self.peer_address.encode(&mut out);
        self.node_flags.encode(&mut out);
        self.implementation_name.encode(&mut out);
        self.implementation_version.encode(&mut out);
        self.gp_version.encode(&mut out);
        self.note.encode(&mut out);
        out
    }

    /// The node's identity in TART: its Peer ID as 64 lowercase hex characters.
    pub fn node_id(&self) -> String {
        self.peer_id.to_string()
    }

    /// C, when the parameters' layout is known.
    pub fn core_count(&self) -> Option<u16> {
        self.params.core_count()
    }

    /// How this connection's events are read.
    pub fn dialect(&self) -> Dialect {
        Dialect {
            version: self.protocol_version,
            core_count: self.core_count(),
        }
    }
}

impl Serialize for NodeInformation {
    /// The fields in wire order, with the layout found beside the parameters: `params` holds
    /// the named constants (null for those the layout lacks), or is null for an unknown layout,
    /// whose blob is then in `params_raw`.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut out = s.serialize_struct("NodeInformation", 12)?;
        out.serialize_field("protocol_version", &self.protocol_version)?;
        out.serialize_field("params_layout", &self.params.layout())?;
        out.serialize_field("params", &self.params.constants())?;
        match &self.params {
            JamParams::Unknown(raw) => out.serialize_field("params_raw", raw)?,
            JamParams::Known(_) => out.skip_field("params_raw")?,
        }
        out.serialize_field("genesis_header_hash", &self.genesis_header_hash)?;
        out.serialize_field("peer_id", &self.peer_id)?;
        out.serialize_field("peer_address", &self.peer_address)?;
        out.serialize_field("node_flags", &self.node_flags)?;
        out.serialize_field("implementation_name", &self.implementation_name)?;
        out.serialize_field("implementation_version", &self.implementation_version)?;
        out.serialize_field("gp_version", &self.gp_version)?;
        out.serialize_field("note", &self.note)?;
        out.end()
    }
}

impl Generate for NodeInformation {
    /// A valid NodeInformation of the generator's protocol version and core count, so later
    /// events line up, in either parameter layout.
    fn generate(g: &mut Generator) -> Self {
        let base = if g.rng.random() {
            JamParameters::tiny()
        } else {
            JamParameters::full()
        };
        let layout = ParamsLayout::KNOWN[g.rng.random_range(0..2)];
        NodeInformation {
            protocol_version: g.version(),
            params: JamParams::Known(
                JamParameters {
                    core_count: g.core_count(),
                    ..base
                }
                .in_layout(layout),
            ),
            genesis_header_hash: Hash::generate(g),
            peer_id: Hash::generate(g),
            peer_address: PeerAddress::generate(g),
            node_flags: g.rng.random_range(0..2),
            implementation_name: Generate::generate(g),
            implementation_version: Generate::generate(g),
            gp_version: Generate::generate(g),
            note: Generate::generate(g),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_134_or_122_bytes() {
        for (params, layout) in [
            (JamParameters::full(), ParamsLayout::Gp07),
            (JamParameters::full().gp08(), ParamsLayout::Gp08),
        ] {
            assert_eq!(params.layout(), layout);
            let params = JamParams::Known(params);
            assert_eq!(Some(params.to_bytes().len()), layout.encoded_len());
        }
    }

    #[test]
    fn gp08_parameters_have_no_validator_count() {
        let params = JamParameters::tiny().gp08();
        assert_eq!(params.validator_count, None);
        assert_eq!(params.ticket_entries, None);
        assert_eq!(params.core_count, 2);
        let json = serde_json::to_value(&params).unwrap();
        assert!(json["validator_count"].is_null());
        assert_eq!(json["core_count"], 2);
    }

    #[test]
    fn other_protocol_versions_are_refused_and_both_known_ones_accepted() {
        let mut body = NodeInformation::generate(&mut Generator::new(1, 2)).to_bytes();
        for version in [0, 1] {
            body[0] = version;
            let info = NodeInformation::parse(&body).unwrap();
            assert_eq!(info.protocol_version.as_u8(), version);
        }
        body[0] = 2;
        let refused = NodeInformation::parse(&body).unwrap_err();
        assert_eq!(refused, DecodeError::UnsupportedProtocolVersion(2));
        assert!(
            refused.to_string().contains("versions 0 and 1"),
            "{refused}"
        );
    }

    /// A NodeInformation without any parameters (113 bytes, as one Go node sent it) is
    /// accepted with an empty blob of unknown layout, and the diagnosis says what was missing.
    #[test]
    fn missing_parameters_are_an_unknown_layout_with_a_diagnosis() {
        let info = NodeInformation::generate(&mut Generator::new(3, 2));
        let full = info.to_bytes();
        let params_len = info.params.to_bytes().len();
        let mut body = vec![full[0]];
        body.extend_from_slice(&full[1 + params_len..]);
        let parsed = NodeInformation::parse(&body).unwrap();
        assert_eq!(parsed.params, JamParams::Unknown(HexBytes(Vec::new())));
        assert_eq!(parsed.core_count(), None);
        assert_eq!(parsed.peer_id, info.peer_id);
        assert_eq!(parsed.to_bytes(), body);
        let diagnosis = parsed.params.diagnosis().unwrap();
        assert!(
            diagnosis.contains("bytes expected, 0 present"),
            "{diagnosis}"
        );
    }

    /// One emitter writes the blob's length before it; the node is kept, and told so.
    #[test]
    fn a_length_prefixed_blob_is_named_in_the_diagnosis() {
        let info = NodeInformation {
            params: JamParams::Known(JamParameters::full()),
            ..NodeInformation::generate(&mut Generator::new(4, 341))
        };
        let full = info.to_bytes();
        let mut body = vec![full[0], 0x80, 0x86];
        body.extend_from_slice(&full[1..]);
        let parsed = NodeInformation::parse(&body).unwrap();
        assert_eq!(parsed.params.layout(), ParamsLayout::Unknown);
        let diagnosis = parsed.params.diagnosis().unwrap();
        assert!(diagnosis.contains("136 present"), "{diagnosis}");
        assert!(
            diagnosis.contains("length prefix (0x8086 = 134)"),
            "{diagnosis}"
        );
    }

    #[test]
    fn a_message_no_length_fits_is_refused_with_what_each_layout_found() {
        let mut body = NodeInformation::generate(&mut Generator::new(5, 2)).to_bytes();
        body.truncate(60);
        let error = NodeInformation::parse(&body).unwrap_err().to_string();
        assert!(
            error.contains("134 (GP 0.7) or 122 (GP 0.8) bytes expected"),
            "{error}"
        );
        assert!(error.contains("read as GP 0.7: JAM parameters"), "{error}");
    }
}

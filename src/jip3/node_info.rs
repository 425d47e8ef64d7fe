//! NodeInformation, the first message on every telemetry connection (JIP-3 §Node information).

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::generate::{Generate, Generator};
use super::types::{wire_struct, BoundedString, Hash, PeerAddress};
use super::wire::{DecodeError, Reader, Wire};

/// The only protocol version JIP-3 defines; the JAM Parameters layout below is tied to it.
pub const PROTOCOL_VERSION: u8 = 0;

wire_struct!(wire_only
    /// JAM Parameters: the 134-byte output of the GP `fetch` host call with selector 0 (GP 0.7.x).
    /// Field names follow the GP meaning; the GP symbol is in each comment.
    JamParameters {
        /// B_I
        item_deposit: u64,
        /// B_L
        byte_deposit: u64,
        /// B_S
        base_deposit: u64,
        /// C: sizes `[u8; C]` fields of later events on this connection.
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
        /// N
        ticket_entries: u16,
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
        /// V
        validator_count: u16,
        /// W_A
        max_auth_code_size: u32,
        /// W_B
        max_bundle_size: u32,
        /// W_C
        max_service_code_size: u32,
        /// W_E
        ec_piece_size: u32,
        /// W_M
        max_package_imports: u32,
        /// W_P
        segment_ec_pieces: u32,
        /// W_R
        max_report_var_size: u32,
        /// W_T
        memo_size: u32,
        /// W_X
        max_package_exports: u32,
        /// Y
        epoch_tail_start: u32,
    }
);

impl JamParameters {
    /// The byte length of the blob (GP 0.7.x).
    pub const ENCODED_LEN: usize = 134;

    /// GP 0.7.2 "full" chain: 341 cores, 1,023 validators, 600-slot epochs.
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
            ticket_entries: 2,
            auth_pool_size: 8,
            slot_seconds: 6,
            auth_queue_size: 80,
            rotation_period: 10,
            max_package_extrinsics: 128,
            assurance_timeout: 5,
            validator_count: 1023,
            max_auth_code_size: 64_000,
            max_bundle_size: 13_791_360,
            max_service_code_size: 4_000_000,
            ec_piece_size: 684,
            max_package_imports: 3072,
            segment_ec_pieces: 6,
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
            validator_count: 6,
            epoch_length: 12,
            epoch_tail_start: 10,
            rotation_period: 4,
            ticket_entries: 3,
            ..Self::full()
        }
    }
}

wire_struct!(wire_only
    /// The first message of a connection. It has no timestamp, discriminator or event ID.
    NodeInformation {
        protocol_version: u8,
        params: JamParameters,
        genesis_header_hash: Hash,
        peer_id: Hash,
        peer_address: PeerAddress,
        /// Bit 0: 1 = PVM recompiler, 0 = interpreter.
        node_flags: u32,
        implementation_name: BoundedString<32>,
        implementation_version: BoundedString<32>,
        gp_version: BoundedString<16>,
        note: BoundedString<512>,
    }
);

impl NodeInformation {
    /// Decodes a whole NodeInformation body. The version byte is checked first: another version
    /// may lay out the JAM Parameters differently, so nothing after it can be trusted.
    pub fn parse(body: &[u8]) -> Result<Self, DecodeError> {
        match body.first() {
            Some(&v) if v != PROTOCOL_VERSION => Err(DecodeError::UnsupportedProtocolVersion(v)),
            _ => {
                let mut r = Reader::new(body, 0);
                let info = Self::decode(&mut r)?;
                r.finish()?;
                Ok(info)
            }
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(300);
        self.encode(&mut out);
        out
    }

    /// The node's identity in TART: its Peer ID as 64 lowercase hex characters.
    pub fn node_id(&self) -> String {
        self.peer_id.to_string()
    }

    pub fn core_count(&self) -> u16 {
        self.params.core_count
    }
}

impl Generate for NodeInformation {
    /// A valid NodeInformation whose core count is the generator's, so later events line up.
    fn generate(g: &mut Generator) -> Self {
        let base = if g.rng.random() {
            JamParameters::tiny()
        } else {
            JamParameters::full()
        };
        NodeInformation {
            protocol_version: PROTOCOL_VERSION,
            params: JamParameters {
                core_count: g.core_count(),
                ..base
            },
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
    fn parameters_are_134_bytes() {
        let mut out = Vec::new();
        JamParameters::full().encode(&mut out);
        assert_eq!(out.len(), JamParameters::ENCODED_LEN);
    }

    #[test]
    fn other_protocol_version_is_refused() {
        let mut body = NodeInformation::generate(&mut Generator::new(1, 2)).to_bytes();
        body[0] = 1;
        assert_eq!(
            NodeInformation::parse(&body),
            Err(DecodeError::UnsupportedProtocolVersion(1))
        );
    }
}

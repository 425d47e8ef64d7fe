//! NodeInformation, the handshake, decoded from arbitrary bytes.
//!
//! Nothing may panic. A body that parses must: re-encode to exactly its own bytes (known
//! layouts encode back field for field; an unknown layout's blob is kept as it came), hence
//! parse again to an equal value; have the version of its first byte; have a blob of its
//! layout's length and a core count exactly when the layout is known, and a diagnosis exactly
//! when it is not; be `is_one` exactly when the layout is known (`is_one` does not search
//! unknown lengths); read the same under `claimed_by`, as version 1; turn into JSON. A body
//! that fails is refused with the version error when its first byte is not 0 or 1, and is never
//! `is_one`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tart_backend::jip3::{DecodeError, NodeInformation, ParamsLayout, ProtocolVersion};

fuzz_target!(|data: &[u8]| {
    let info = match NodeInformation::parse(data) {
        Ok(info) => info,
        Err(error) => {
            let _ = error.to_string();
            assert!(!NodeInformation::is_one(data), "is_one accepts what parse refuses");
            if let Some(&v) = data.first() {
                if v > 1 {
                    assert_eq!(error, DecodeError::UnsupportedProtocolVersion(v));
                    // What a refused node is recorded as: the body read as version 1.
                    let mut as_v1 = data.to_vec();
                    as_v1[0] = 1;
                    assert_eq!(
                        NodeInformation::claimed_by(data),
                        NodeInformation::parse(&as_v1).ok()
                    );
                } else {
                    assert_eq!(NodeInformation::claimed_by(data), None);
                }
            }
            return;
        }
    };

    let bytes = info.to_bytes();
    assert_eq!(bytes, data, "{info:?} does not re-encode to its bytes");
    assert_eq!(
        NodeInformation::parse(&bytes).as_ref(),
        Ok(&info),
        "re-encoded bytes parse to another value"
    );
    assert_eq!(info.protocol_version.as_u8(), data[0]);

    let layout = info.params.layout();
    let blob = info.params.to_bytes();
    match layout {
        ParamsLayout::Unknown => {
            assert_eq!(info.core_count(), None);
            assert!(info.params.diagnosis().is_some());
            assert!(!NodeInformation::is_one(data), "is_one accepts an unknown layout");
        }
        known => {
            assert_eq!(Some(blob.len()), known.encoded_len(), "blob length vs layout");
            assert!(info.core_count().is_some());
            assert!(info.params.diagnosis().is_none());
            assert!(NodeInformation::is_one(data), "is_one refuses a known layout");
        }
    }
    assert_eq!(&data[1..1 + blob.len()], &blob[..], "blob is not at byte 1");
    let dialect = info.dialect();
    assert_eq!(dialect.version, info.protocol_version);
    assert_eq!(dialect.core_count, info.core_count());

    // Parsing does not depend on which supported version the first byte names.
    let claimed = NodeInformation::claimed_by(data).expect("claimed_by refuses a parsed body");
    assert_eq!(
        claimed,
        NodeInformation {
            protocol_version: ProtocolVersion::V1,
            ..info.clone()
        }
    );

    let _ = serde_json::to_string(&info).expect("NodeInformation to JSON");
    let _ = info.node_id();
});

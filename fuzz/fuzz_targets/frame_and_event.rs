//! Arbitrary bytes through every decoding path a node's bytes take: the framing, the
//! NodeInformation handshake and the event stream, plus each body decoded on its own. Nothing may
//! panic, and whatever decodes must re-encode to exactly the bytes it came from (the decoder is
//! strict: one byte form per value).
//!
//! Seed the corpus from the shared test vectors (see the README section on fuzzing).

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tart_backend::jip3::{
    Dialect, EventFrame, EventStream, FrameCodec, NodeInformation, ProtocolVersion, TimedEvent,
};
use tokio_util::codec::Decoder;

/// Small enough that the fuzzer also meets oversized prefixes.
const MAX_FRAME: usize = 4096;

/// Core counts for bodies decoded without a NodeInformation: unknown (sized by the frame), none,
/// tiny, GP full.
const CORE_COUNTS: [Option<u16>; 4] = [None, Some(0), Some(2), Some(341)];

fn check_event(body: &[u8], version: ProtocolVersion, core_count: Option<u16>) {
    let dialect = Dialect {
        version,
        core_count,
    };
    if let Ok(event) = TimedEvent::parse(body, dialect) {
        assert_eq!(event.to_bytes(), body, "{event:?} does not re-encode");
    }
}

fuzz_target!(|data: &[u8]| {
    // The input as a single body.
    if let Ok(info) = NodeInformation::parse(data) {
        assert_eq!(info.to_bytes(), data, "NodeInformation does not re-encode");
    }
    for version in ProtocolVersion::ALL {
        for cores in CORE_COUNTS {
            check_event(data, version, cores);
        }
    }

    // The input as a capture, handed to the codec in reads of a size taken from the first byte.
    let chunk = usize::from(data.first().copied().unwrap_or(1)).max(1);
    let mut codec = FrameCodec::new(MAX_FRAME);
    let mut buf = BytesMut::new();
    let mut bodies = Vec::new();
    'read: for piece in data.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(body)) => {
                    assert!(body.len() <= MAX_FRAME);
                    bodies.push(body);
                }
                Ok(None) => break,
                Err(_) => break 'read,
            }
        }
    }
    let framed: usize = bodies.iter().map(|b| 4 + b.len()).sum();
    assert!(framed <= data.len());

    let Some((first, events)) = bodies.split_first() else {
        return;
    };
    match EventStream::start(first) {
        Ok((mut stream, info)) => {
            assert_eq!(info.to_bytes(), first[..]);
            for body in events {
                let id = stream.next_event_id();
                let frame = stream.next(body.clone());
                assert_eq!(frame.event_id(), id);
                match frame {
                    EventFrame::Decoded { event, .. } => {
                        assert_eq!(event.to_bytes(), body[..], "{event:?} does not re-encode");
                    }
                    EventFrame::Failed { raw, .. } => assert_eq!(raw, body),
                }
            }
        }
        // No valid handshake: still exercise the event decoders on every frame.
        Err(_) => {
            for body in events {
                for cores in CORE_COUNTS {
                    check_event(body, cores);
                }
            }
        }
    }
});

//! One event body decoded on its own, in a dialect the input chooses. Input: one selector byte,
//! then the body.
//!
//! Selector: bit 0 is the protocol version (0 or 1); bits 1-3 pick the core count C from
//! `CORE_COUNTS` (the last entry, `None`, is a connection whose JAM Parameters are of an unknown
//! layout: per-core fields sized by the frame). Bits 4-7 are ignored.
//!
//! Nothing may panic. A body that decodes must: re-encode to exactly its own bytes (the decoder
//! is strict, one byte form per value) and parse back to the same event; carry its body's
//! discriminator, under its name when it is a defined one; decode the same way through
//! `EventStream`; turn into JSON, and, unless a string had a NUL (stored as U+FFFD by design),
//! back into the same event. A body that fails still gets its failure text.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use tart_backend::jip3::stream::describe_failure;
use tart_backend::jip3::{Dialect, Event, EventFrame, EventStream, ProtocolVersion, TimedEvent};

/// The tiny network's 2 first (what the test vectors use), edge cases, GP full (341), and many.
const CORE_COUNTS: [Option<u16>; 8] = [
    Some(2),
    Some(0),
    Some(1),
    Some(7),
    Some(16),
    Some(341),
    Some(1023),
    None,
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let version = ProtocolVersion::ALL[usize::from(selector & 1)];
    let dialect = match CORE_COUNTS[usize::from((selector >> 1) & 7)] {
        Some(cores) => Dialect::new(version, cores),
        None => Dialect {
            version,
            core_count: None,
        },
    };

    let parsed = TimedEvent::parse(body, dialect);
    let via_stream = EventStream::new(dialect).next(Bytes::copy_from_slice(body));
    let event = match parsed {
        Ok(event) => event,
        Err(error) => {
            let _ = describe_failure(body, &error);
            assert!(
                matches!(via_stream, EventFrame::Failed { .. }),
                "EventStream decoded what TimedEvent::parse refused"
            );
            return;
        }
    };

    let bytes = event.to_bytes();
    assert_eq!(bytes, body, "{event:?} does not re-encode to its bytes");
    assert_eq!(
        TimedEvent::parse(&bytes, dialect).as_ref(),
        Ok(&event),
        "re-encoded bytes parse to another event"
    );

    let d = event.event.discriminator();
    assert_eq!(d, body[8], "discriminator changed");
    match Event::name_of(d) {
        Some(name) => {
            assert_eq!(event.event.name(), name);
            assert!(
                !matches!(event.event, Event::Unknown { .. }),
                "defined discriminator {d} decoded as Unknown"
            );
        }
        None => assert!(matches!(event.event, Event::Unknown { .. })),
    }

    match via_stream {
        EventFrame::Decoded { event_id, event: e, .. } => {
            assert_eq!(event_id, 0);
            assert_eq!(e, event, "EventStream decoded another event");
        }
        EventFrame::Failed { error, .. } => {
            panic!("EventStream refused what TimedEvent::parse decoded: {error}")
        }
    }

    let json = serde_json::to_string(&event.event).expect("event to JSON");
    let _ = serde_json::to_string(&event).expect("timed event to JSON");
    if !json.contains('\u{FFFD}') {
        let back: Event = serde_json::from_str(&json)
            .unwrap_or_else(|e| panic!("JSON does not read back ({e}): {json}"));
        assert_eq!(back, event.event, "JSON round trip changed the event: {json}");
    }
});

//! Property tests of the JIP-3 codec: generated values of every event round-trip through bytes and
//! JSON in both protocol versions, NodeInformation in both versions and both parameter layouts,
//! no input makes the decoder panic, framing does not depend on how reads are split, and the
//! event-ID rules hold around unknown, malformed and Dropped frames.

mod harness;

use bytes::{Bytes, BytesMut};
use harness::*;
use proptest::prelude::*;
use tart_backend::jip3::generate::{Generate, Generator};
use tart_backend::jip3::types::HexBytes;
use tart_backend::jip3::{
    DecodeError, Dialect, Event, EventFrame, EventStream, FrameCodec, JamParameters, JamParams,
    NodeInformation, ParamsLayout, ProtocolVersion, TimedEvent,
};
use tokio_util::codec::Decoder;

/// The core counts to test: the smallest, the vectors' and tiny's, GP full (341) and a large one
/// whose `⌈C/8⌉` bitfield is not a whole number of bytes.
const CORE_COUNTS: [u16; 4] = [1, 2, 341, 1023];

/// Every dialect the tests decode in: both versions at each core count.
fn dialects() -> impl Iterator<Item = Dialect> {
    ProtocolVersion::ALL
        .into_iter()
        .flat_map(|v| CORE_COUNTS.map(|c| Dialect::new(v, c)))
}

/// Small enough that the suite stays quick in debug builds; each case covers all 115 events.
fn config() -> ProptestConfig {
    ProptestConfig::with_cases(64)
}

/// Asserts that a body that decoded re-encodes to exactly itself: the decoder is strict
/// (canonical naturals, bool/Option/enum bytes 0..=1, no trailing bytes), so it accepts at most
/// one byte form per value.
fn assert_canonical(event: &TimedEvent, body: &[u8]) {
    assert_eq!(
        event.to_bytes(),
        body,
        "accepted body does not re-encode: {event:?}"
    );
}

/// Generated events of a few discriminators (deterministic in the seed), for the slower tests.
fn sample_events(seed: u64, cores: u16, version: ProtocolVersion, count: usize) -> Vec<TimedEvent> {
    use rand::Rng;
    let mut g = Generator::new(seed, cores).with_version(version);
    (0..count)
        .map(|_| {
            let d = Event::DISCRIMINATORS[g.rng.random_range(0..Event::DISCRIMINATORS.len())];
            generated_event(d, &mut g)
        })
        .collect()
}

/// Decodes a capture handed over in chunks of the given sizes (cycled), as a socket might.
fn frames_in_chunks(bytes: &[u8], chunk_sizes: &[usize]) -> Vec<Bytes> {
    let mut codec = FrameCodec::default();
    let mut buf = BytesMut::new();
    let mut bodies = Vec::new();
    let mut rest = bytes;
    for &size in chunk_sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (chunk, tail) = rest.split_at(size.min(rest.len()));
        buf.extend_from_slice(chunk);
        rest = tail;
        while let Some(body) = codec.decode(&mut buf).expect("valid framing") {
            bodies.push(body);
        }
    }
    while let Some(body) = codec
        .decode_eof(&mut buf)
        .expect("ends on a frame boundary")
    {
        bodies.push(body);
    }
    bodies
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn every_event_round_trips_in_both_versions(seed in any::<u64>()) {
        for dialect in dialects() {
            let cores = dialect.core_count.unwrap();
            let mut g = Generator::new(seed, cores).with_version(dialect.version);
            for &d in Event::DISCRIMINATORS {
                let event = generated_event(d, &mut g);
                prop_assert_eq!(event.event.discriminator(), d);
                let bytes = event.to_bytes();
                let decoded = TimedEvent::parse(&bytes, dialect);
                prop_assert_eq!(decoded.as_ref(), Ok(&event), "discriminator {} {:?}", d, dialect);
                prop_assert_eq!(decoded.unwrap().to_bytes(), bytes);

                let json = serde_json::to_string(&event.event).unwrap();
                let back: Event = serde_json::from_str(&json).unwrap();
                prop_assert_eq!(&back, &event.event, "JSON {}", json);
            }
        }
    }

    /// With parameters of an unknown layout, C is not trusted: every event still decodes to
    /// the same value, the two per-core fields sized by their frame.
    #[test]
    fn every_event_decodes_without_a_core_count(seed in any::<u64>()) {
        for dialect in dialects() {
            let cores = dialect.core_count.unwrap();
            let mut g = Generator::new(seed, cores).with_version(dialect.version);
            let unknown_cores = Dialect { core_count: None, ..dialect };
            for &d in Event::DISCRIMINATORS {
                let event = generated_event(d, &mut g);
                let decoded = TimedEvent::parse(&event.to_bytes(), unknown_cores);
                prop_assert_eq!(decoded.as_ref(), Ok(&event), "discriminator {} {:?}", d, dialect);
            }
        }
    }

    #[test]
    fn node_information_round_trips_in_both_versions_and_layouts(seed in any::<u64>()) {
        for dialect in dialects() {
            let cores = dialect.core_count.unwrap();
            let mut g = Generator::new(seed, cores).with_version(dialect.version);
            let generated = NodeInformation::generate(&mut g);
            let constants = generated.params.constants().unwrap().clone();
            let constants = JamParameters {
                ticket_entries: Some(2),
                validator_count: Some(1023),
                ec_piece_size: Some(684),
                segment_ec_pieces: Some(6),
                ..constants
            };
            for layout in ParamsLayout::KNOWN {
                let info = NodeInformation {
                    params: JamParams::Known(constants.clone().in_layout(layout)),
                    ..generated.clone()
                };
                let bytes = info.to_bytes();
                let decoded = NodeInformation::parse(&bytes).unwrap();
                prop_assert_eq!(&decoded, &info);
                prop_assert_eq!(decoded.dialect(), dialect);
                prop_assert_eq!(decoded.to_bytes(), bytes);
                prop_assert_eq!(decoded.params.layout(), layout);
                let json = serde_json::to_value(&info).unwrap();
                prop_assert_eq!(&json["params_layout"], layout.name());
                prop_assert_eq!(&json["protocol_version"], dialect.version.as_u8());
                let v_absent = json["params"]["validator_count"].is_null();
                prop_assert_eq!(v_absent, layout == ParamsLayout::Gp08);
            }
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        for dialect in dialects() {
            if let Ok(event) = TimedEvent::parse(&bytes, dialect) {
                assert_canonical(&event, &bytes);
            }
        }
        if let Ok(info) = NodeInformation::parse(&bytes) {
            prop_assert_eq!(info.to_bytes(), bytes.clone());
        }
        // The same bytes as a capture: frames until a framing error or the end.
        let mut codec = FrameCodec::new(1024);
        let mut buf = BytesMut::from(&bytes[..]);
        let mut bodies = Vec::new();
        while let Ok(Some(body)) = codec.decode_eof(&mut buf) {
            bodies.push(body);
        }
        if let Some((first, rest)) = bodies.split_first() {
            if let Ok((mut stream, _)) = EventStream::start(first) {
                for body in rest {
                    stream.next(body.clone());
                }
            }
        }
    }

    /// Random bytes after a valid header reach each event's field decoders, which whole random
    /// bodies rarely do (the discriminator is usually undefined).
    #[test]
    fn random_fields_never_panic(
        d in prop::sample::select(Event::DISCRIMINATORS),
        fields in prop::collection::vec(any::<u8>(), 0..400),
    ) {
        let mut body = 27_900_000_123_456u64.to_le_bytes().to_vec();
        body.push(d);
        body.extend_from_slice(&fields);
        for dialect in dialects() {
            if let Ok(event) = TimedEvent::parse(&body, dialect) {
                prop_assert_eq!(event.event.discriminator(), d);
                assert_canonical(&event, &body);
            }
        }
    }

    /// Framing must not depend on how the stream is cut into reads.
    #[test]
    fn chunked_stream_decodes_like_one_piece(
        seed in any::<u64>(),
        chunk_sizes in prop::collection::vec(1usize..300, 1..20),
    ) {
        let cores = CORE_COUNTS[(seed % 4) as usize];
        let version = ProtocolVersion::ALL[(seed / 4 % 2) as usize];
        let info = NodeInformation::generate(&mut Generator::new(seed, cores).with_version(version));
        let mut bodies = vec![info.to_bytes()];
        bodies.extend(sample_events(seed, cores, version, 40).iter().map(TimedEvent::to_bytes));
        let bytes = capture(&bodies);

        let whole = split_frames(&bytes);
        let chunked = frames_in_chunks(&bytes, &chunk_sizes);
        prop_assert_eq!(&whole, &chunked);
        prop_assert_eq!(whole.len(), bodies.len());
        for (got, sent) in whole.iter().zip(&bodies) {
            prop_assert_eq!(&got[..], &sent[..]);
        }
        let (info_whole, frames_whole) = decode_connection(&whole);
        let (info_chunked, frames_chunked) = decode_connection(&chunked);
        prop_assert_eq!(&info_whole, &info);
        prop_assert_eq!(info_chunked, info);
        prop_assert_eq!(&frames_whole, &frames_chunked);
        let all_decoded = frames_whole
            .iter()
            .all(|f| matches!(f, EventFrame::Decoded { .. }));
        prop_assert!(all_decoded, "a generated event failed: {:?}", frames_whole);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// Every strict prefix of a valid body is an error: each field is self-delimiting, so a cut
    /// always runs out of bytes. Bodies over 512 bytes are cut at a sample of about 512 offsets
    /// (and just before the end). Quadratic in the body size, so fewer cases.
    #[test]
    fn cut_events_are_errors(seed in any::<u64>()) {
        let cores = CORE_COUNTS[(seed % 4) as usize];
        let version = ProtocolVersion::ALL[(seed / 4 % 2) as usize];
        let mut g = Generator::new(seed, cores).with_version(version);
        for &d in Event::DISCRIMINATORS {
            let body = generated_event(d, &mut g).to_bytes();
            let step = body.len().div_ceil(512);
            for cut in (0..body.len()).step_by(step).chain([body.len() - 1]) {
                prop_assert!(
                    TimedEvent::parse(&body[..cut], g.dialect()).is_err(),
                    "discriminator {} cut at {} of {}", d, cut, body.len()
                );
            }
        }
        // A cut NodeInformation may still parse with another blob length (the layout is what
        // parses to the end, and an unknown one is kept), never in the whole message's layout,
        // and always byte for byte what it read.
        let info = NodeInformation::generate(&mut g);
        let (whole, bytes) = (info.params.layout(), info.to_bytes());
        for cut in 0..bytes.len() {
            if let Ok(read) = NodeInformation::parse(&bytes[..cut]) {
                prop_assert_ne!(read.params.layout(), whole, "cut at {}", cut);
                prop_assert_eq!(read.to_bytes(), &bytes[..cut]);
            }
        }
    }
}

fn body(timestamp: u64, discriminator: u8, fields: &[u8]) -> Vec<u8> {
    let mut body = timestamp.to_le_bytes().to_vec();
    body.push(discriminator);
    body.extend_from_slice(fields);
    body
}

fn best_block(slot: u32) -> Vec<u8> {
    let mut fields = slot.to_le_bytes().to_vec();
    fields.extend_from_slice(&[0xbb; 32]);
    body(1, 11, &fields)
}

fn dropped(count: u64) -> Vec<u8> {
    let mut fields = 5u64.to_le_bytes().to_vec();
    fields.extend_from_slice(&count.to_le_bytes());
    body(1, 0, &fields)
}

/// ConnectInFailed (22) with the given bytes after its event ID, where the Reason goes.
fn connect_in_failed(reason_bytes: &[u8]) -> Vec<u8> {
    let mut fields = 7u64.to_le_bytes().to_vec();
    fields.extend_from_slice(reason_bytes);
    body(1, 22, &fields)
}

/// A connection of the vectors' NodeInformation and these event bodies, through the real
/// framing and `EventStream`.
fn run_connection(events: &[Vec<u8>]) -> Vec<EventFrame> {
    let mut bodies = vec![vector_node_information().to_bytes()];
    bodies.extend_from_slice(events);
    decode_connection(&split_frames(&capture(&bodies))).1
}

#[test]
fn unknown_discriminator_takes_one_id_and_the_stream_goes_on() {
    assert_eq!(Event::name_of(250), None);
    let unknown = body(1, 250, &[1, 2, 3]);
    let frames = run_connection(&[best_block(1), unknown, best_block(2)]);
    let ids: Vec<u64> = frames.iter().map(EventFrame::event_id).collect();
    assert_eq!(ids, [0, 1, 2]);
    match &frames[1] {
        EventFrame::Decoded { event, .. } => assert_eq!(
            event.event,
            Event::Unknown {
                discriminator: 250,
                raw: HexBytes(vec![1, 2, 3])
            }
        ),
        other => panic!("unknown event should decode as Unknown: {other:?}"),
    }
    assert!(matches!(&frames[2], EventFrame::Decoded { event, .. }
        if event.event == Event::BestBlockChanged { slot: 2, header_hash: tart_backend::jip3::types::Hash([0xbb; 32]) }));
}

#[test]
fn malformed_frames_fail_keep_their_bytes_and_take_an_id() {
    let mut too_long = vec![0x80, 0x81]; // GP natural 129
    too_long.extend_from_slice(&[b'x'; 129]);
    let mut trailing = best_block(3);
    trailing.push(0);

    let cases = [
        (
            body(1, 13, &[2]),
            DecodeError::InvalidByte {
                what: "bool",
                offset: 9,
                value: 2,
            },
        ),
        (
            connect_in_failed(&too_long),
            DecodeError::StringTooLong {
                offset: 17,
                len: 129,
                max: 128,
            },
        ),
        (
            connect_in_failed(&[2, 0xc3, 0x28]),
            DecodeError::InvalidUtf8 { offset: 17 },
        ),
        (
            trailing,
            DecodeError::TrailingBytes {
                offset: 45,
                count: 1,
            },
        ),
        (
            connect_in_failed(&[0x80, 0x05]),
            DecodeError::NonCanonicalNatural {
                offset: 17,
                value: 5,
            },
        ),
    ];
    for (bad, expected) in &cases {
        let frames = run_connection(&[best_block(1), bad.clone(), best_block(2)]);
        match &frames[1] {
            EventFrame::Failed {
                event_id,
                raw,
                error,
            } => {
                assert_eq!(*event_id, 1);
                assert_eq!(raw[..], bad[..]);
                assert_eq!(error, expected);
            }
            other => panic!("malformed frame decoded: {other:?}"),
        }
        assert!(matches!(frames[2], EventFrame::Decoded { event_id: 2, .. }));
    }
}

#[test]
fn dropped_advances_ids_by_its_count() {
    // A Dropped that fails on a trailing byte still says how many events it stands for.
    let mut bad_dropped = dropped(4);
    bad_dropped.push(0);
    let frames = run_connection(&[
        dropped(7),
        best_block(1),
        dropped(0),
        best_block(2),
        bad_dropped,
        best_block(3),
    ]);
    let ids: Vec<u64> = frames.iter().map(EventFrame::event_id).collect();
    assert_eq!(ids, [0, 7, 8, 8, 9, 13]);
    assert!(matches!(frames[4], EventFrame::Failed { .. }));
}

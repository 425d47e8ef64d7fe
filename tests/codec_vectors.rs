//! The JIP-3 test vectors (`tests/vectors/`, docs/PROTOCOL.md): each body decodes to the values in
//! its JSON and encodes back to the same bytes, in the protocol version and parameter layout it
//! was made for. The vectors were made independently of this codec, so they catch a misread spec
//! that round-trip tests cannot.

mod harness;

use harness::*;
use serde_json::Value;
use tart_backend::jip3::natural::{decode_natural, encode_natural, natural_len};
use tart_backend::jip3::types::ClosedStream;
use tart_backend::jip3::{
    Dialect, Event, EventFrame, NodeInformation, ParamsLayout, ProtocolVersion, Reader, TimedEvent,
};

/// Vector files that must be present, so a wrong directory cannot pass with nothing checked.
const EXPECTED: &[&str] = &[
    "best_block_changed",
    "block_announcement_stream_closed_v0",
    "block_announcement_stream_closed_v1",
    "block_announcement_stream_opened",
    "block_executed",
    "disconnected_none",
    "disconnected_reason128",
    "disconnected_some",
    "dropped",
    "node_information",
    "node_information_v1_ambiguous",
    "node_information_v1_gp07",
    "node_information_v1_gp08",
    "status_c2",
    "work_package_received",
];

/// A string of an enum value as the vectors spell it ("segments_root") or as serde does
/// ("SegmentsRoot"): letters, digits and underscores only. Free text (reasons, names) has other
/// characters or is compared exactly anyway when both sides agree on case.
fn is_enum_like(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Puts both sides in one form: hex without `0x`, enum-like strings lowercased without
/// underscores. Objects, arrays and numbers are kept as they are.
fn normalise(value: &Value) -> Value {
    match value {
        Value::String(s) => {
            let s = s.strip_prefix("0x").unwrap_or(s);
            if is_enum_like(s) {
                Value::String(s.to_ascii_lowercase().replace('_', ""))
            } else {
                Value::String(s.to_owned())
            }
        }
        Value::Array(items) => Value::Array(items.iter().map(normalise).collect()),
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), normalise(v))).collect())
        }
        other => other.clone(),
    }
}

/// Every path where the two values differ, for a readable failure message.
fn differences(ours: &Value, theirs: &Value, path: &str, out: &mut Vec<String>) {
    match (ours, theirs) {
        (Value::Object(a), Value::Object(b)) => {
            for key in a.keys().chain(b.keys().filter(|k| !a.contains_key(*k))) {
                let path = format!("{path}.{key}");
                match (a.get(key), b.get(key)) {
                    (Some(x), Some(y)) => differences(x, y, &path, out),
                    (Some(_), None) => out.push(format!("{path}: only in our JSON")),
                    (None, _) => out.push(format!("{path}: only in the vector")),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                differences(x, y, &format!("{path}[{i}]"), out);
            }
        }
        _ if ours != theirs => out.push(format!("{path}: ours {ours}, vector {theirs}")),
        _ => {}
    }
}

fn assert_same_fields(name: &str, ours: &Value, vector_fields: &Value) {
    let mut diffs = Vec::new();
    differences(
        &normalise(ours),
        &normalise(vector_fields),
        name,
        &mut diffs,
    );
    assert!(diffs.is_empty(), "{name} differs:\n{}", diffs.join("\n"));
}

/// Our event JSON is `{"timestamp": t, "event": {"Name": {fields}}}`; the vectors list the
/// timestamp beside the fields. Returns the event name and that flat object.
fn flatten_event(event: &TimedEvent) -> (String, Value) {
    let json = serde_json::to_value(&event.event).unwrap();
    let Value::Object(tagged) = json else {
        panic!("event JSON is not externally tagged: {json}")
    };
    assert_eq!(tagged.len(), 1, "one tag expected: {tagged:?}");
    let (name, fields) = tagged.into_iter().next().unwrap();
    let Value::Object(mut fields) = fields else {
        panic!("{name} fields are not an object")
    };
    fields.insert("timestamp".into(), event.timestamp.into());
    (name, Value::Object(fields))
}

/// "Best block changed", "Work-package received" → "bestblockchanged", "workpackagereceived".
fn squash_name(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

#[test]
fn every_expected_vector_is_present() {
    let names: Vec<String> = message_vectors().into_iter().map(|v| v.name).collect();
    for expected in EXPECTED {
        assert!(
            names.iter().any(|n| n == expected),
            "missing vector {expected}"
        );
    }
}

#[test]
fn vectors_decode_to_their_fields_and_encode_back() {
    for vector in message_vectors() {
        let name = &vector.name;
        assert_eq!(
            vector.json["body_length"].as_u64(),
            Some(vector.body.len() as u64),
            "{name}: .hex length"
        );
        if vector.is_node_information() {
            let info = NodeInformation::parse(&vector.body)
                .unwrap_or_else(|e| panic!("{name} does not decode: {e}"));
            assert_eq!(info.protocol_version, vector.version(), "{name}: version");
            let ours = node_information_fields(name, &info, &vector.json);
            assert_same_fields(name, &ours, &vector.json["fields"]);
            assert_eq!(info.to_bytes(), vector.body, "{name} re-encodes");
        } else {
            let event = TimedEvent::parse(&vector.body, vector.dialect())
                .unwrap_or_else(|e| panic!("{name} does not decode: {e}"));
            assert_eq!(
                Some(u64::from(event.event.discriminator())),
                vector.json["discriminator"].as_u64(),
                "{name}: discriminator"
            );
            let (event_name, fields) = flatten_event(&event);
            assert_eq!(
                squash_name(&event_name),
                squash_name(vector.json["event"].as_str().unwrap()),
                "{name}: event name"
            );
            assert_same_fields(name, &fields, &vector.json["fields"]);
            assert_eq!(event.to_bytes(), vector.body, "{name} re-encodes");
        }
    }
}

/// The four constants GP 0.8 dropped from the JAM Parameters.
const GP07_ONLY: [&str; 4] = [
    "ticket_entries",
    "validator_count",
    "ec_piece_size",
    "segment_ec_pieces",
];

/// Our NodeInformation JSON in the vectors' form, after checking what the vectors do not list:
/// the layout found (the vectors' `gp_layout`, "0.7" unless stated) and the constants the layout
/// lacks, which must be null, never a made-up value.
fn node_information_fields(name: &str, info: &NodeInformation, vector: &Value) -> Value {
    let layout = vector["gp_layout"].as_str().unwrap_or("0.7");
    let mut ours = serde_json::to_value(info).unwrap();
    let fields = ours.as_object_mut().unwrap();
    // The JSON form turns NUL into U+FFFD for PostgreSQL; the vectors list the decoded text.
    for (key, text) in [
        ("implementation_name", &info.implementation_name.0),
        ("implementation_version", &info.implementation_version.0),
        ("gp_version", &info.gp_version.0),
        ("note", &info.note.0),
    ] {
        fields.insert(key.into(), text.clone().into());
    }
    assert_eq!(
        fields.remove("params_layout").unwrap(),
        format!("gp-{layout}"),
        "{name}: layout"
    );
    let params = fields["params"].as_object_mut().unwrap();
    let mut absent: Vec<&str> = params
        .iter()
        .filter(|(_, v)| v.is_null())
        .map(|(k, _)| k.as_str())
        .collect();
    absent.sort();
    let mut expected_absent: Vec<&str> = if layout == "0.8" {
        GP07_ONLY.to_vec()
    } else {
        vec![]
    };
    expected_absent.sort();
    assert_eq!(
        absent, expected_absent,
        "{name}: constants the layout lacks"
    );
    params.retain(|_, v| !v.is_null());
    ours
}

/// The case LEB128 decoders get wrong: a 128-byte Reason has the two-byte prefix `80 80`.
#[test]
fn reason_of_128_bytes_decodes() {
    let vector = load_vector("disconnected_reason128");
    assert_eq!(&vector.body[43..45], [0x80, 0x80]);
    let event = TimedEvent::parse(&vector.body, vector.dialect()).unwrap();
    let (_, fields) = flatten_event(&event);
    let reason = fields["reason"].as_str().unwrap();
    assert_eq!(reason.len(), 128);
    assert!(reason.ends_with("r!"));
}

/// stream.hex is a whole connection; the spec's event IDs skip 3..8 after Dropped(7).
#[test]
fn stream_vector_frames_and_numbers_events() {
    let bytes = read_hex("stream");
    let json = read_json("stream");
    assert_eq!(json["total_length"].as_u64(), Some(bytes.len() as u64));

    let bodies = split_frames(&bytes);
    let messages = json["messages"].as_array().unwrap();
    assert_eq!(bodies.len(), messages.len());
    let mut offset = 0;
    for (body, message) in bodies.iter().zip(messages) {
        let name = message["name"].as_str().unwrap();
        assert_eq!(
            message["offset"].as_u64(),
            Some(offset as u64),
            "{name}: offset"
        );
        assert_eq!(body[..], read_hex(name)[..], "{name}: body");
        offset += 4 + body.len();
    }

    let (info, frames) = decode_connection(&bodies);
    assert_eq!(info, vector_node_information());
    let expected_ids: Vec<u64> = messages[1..]
        .iter()
        .map(|m| m["event_id"].as_u64().unwrap())
        .collect();
    assert_eq!(expected_ids, [0, 1, 2, 9, 10, 11, 12]);
    let ids: Vec<u64> = frames.iter().map(EventFrame::event_id).collect();
    assert_eq!(ids, expected_ids);
    for frame in &frames {
        assert!(
            matches!(frame, EventFrame::Decoded { .. }),
            "failed: {frame:?}"
        );
    }
}

/// A natural given as a JSON number, or as a string when it is too big for some JSON readers.
fn json_u64(value: &Value) -> u64 {
    match value {
        Value::Number(n) => n.as_u64().expect("unsigned"),
        Value::String(s) => s.parse().expect("decimal string"),
        other => panic!("not a natural: {other}"),
    }
}

#[test]
fn naturals_round_trip() {
    let json = read_json("naturals");
    let examples = json["examples"].as_array().unwrap();
    assert!(examples.len() >= 10);
    for example in examples {
        let value = json_u64(&example["value"]);
        let bytes = hex::decode(example["hex"].as_str().unwrap()).unwrap();

        let mut encoded = Vec::new();
        encode_natural(value, &mut encoded);
        assert_eq!(encoded, bytes, "encoding {value}");
        assert_eq!(natural_len(value), bytes.len(), "length of {value}");

        let mut reader = Reader::new(&bytes, Dialect::v1(0));
        assert_eq!(decode_natural(&mut reader), Ok(value), "decoding {value}");
        assert_eq!(reader.remaining(), 0, "{value} leaves bytes");
    }
}

/// Every strict prefix of an event vector is an error (truncation), never a panic or a shorter
/// value. A cut NodeInformation can still parse, with another blob length: the layout is found by
/// what parses to the end, so a cut message may fit another layout (or be kept as an unknown
/// one); never the layout of the whole message, and always byte for byte what it read.
#[test]
fn cut_vectors_are_errors() {
    for vector in message_vectors() {
        for cut in 0..vector.body.len() {
            let head = &vector.body[..cut];
            let result = if vector.is_node_information() {
                let whole = NodeInformation::parse(&vector.body)
                    .unwrap()
                    .params
                    .layout();
                match NodeInformation::parse(head) {
                    Ok(read) => {
                        assert_ne!(read.params.layout(), whole, "{} cut at {cut}", vector.name);
                        assert_eq!(read.to_bytes(), head, "{} cut at {cut}", vector.name);
                        continue;
                    }
                    Err(e) => Err(e),
                }
            } else {
                TimedEvent::parse(head, vector.dialect()).map(|_| ())
            };
            assert!(result.is_err(), "{} cut at {cut} decoded", vector.name);
        }
    }
}

/// stream_v1.hex: a version-1 connection with GP 0.8 parameters. Status takes C from the
/// 122-byte blob, and event 61 names the ID of the connection's event 60.
#[test]
fn stream_v1_vector_reads_event_61_by_the_connection_version() {
    let bytes = read_hex("stream_v1");
    let json = read_json("stream_v1");
    assert_eq!(json["total_length"].as_u64(), Some(bytes.len() as u64));
    let bodies = split_frames(&bytes);
    let (info, frames) = decode_connection(&bodies);
    assert_eq!(info.protocol_version, ProtocolVersion::V1);
    assert_eq!(info.params.layout(), ParamsLayout::Gp08);
    assert_eq!(info.core_count(), Some(2));
    let expected: Vec<u64> = json["messages"].as_array().unwrap()[1..]
        .iter()
        .map(|m| m["event_id"].as_u64().unwrap())
        .collect();
    let ids: Vec<u64> = frames.iter().map(EventFrame::event_id).collect();
    assert_eq!(ids, expected);
    let events: Vec<&TimedEvent> = frames
        .iter()
        .map(|f| match f {
            EventFrame::Decoded { event, .. } => event,
            failed => panic!("{failed:?}"),
        })
        .collect();
    let opened = frames[events
        .iter()
        .position(|e| e.event.discriminator() == 60)
        .expect("an event 60")]
    .event_id();
    match &events.last().unwrap().event {
        Event::BlockAnnouncementStreamClosed { stream, .. } => {
            assert_eq!(*stream, ClosedStream::OpenedEvent(opened))
        }
        other => panic!("last event is not 61: {other:?}"),
    }
    // The link is an Event ID reference like the others: to an event 60.
    let mut closed = events.last().unwrap().event.clone();
    let (target, allowed) = closed
        .reference_mut()
        .expect("v1 event 61 refers to an event");
    assert_eq!((*target, allowed), (opened, &[60u8][..]));
}

/// Event 61 is read by the connection's version, never guessed from its length: each form fails
/// under the other version, and only the version-1 form refers to an event.
#[test]
fn event_61_fails_under_the_other_version() {
    for (name, version) in [
        ("block_announcement_stream_closed_v0", ProtocolVersion::V0),
        ("block_announcement_stream_closed_v1", ProtocolVersion::V1),
    ] {
        let vector = load_vector(name);
        let other = ProtocolVersion::ALL
            .into_iter()
            .find(|&v| v != version)
            .unwrap();
        assert!(
            TimedEvent::parse(&vector.body, Dialect::new(other, 2)).is_err(),
            "{name} decoded as version {other:?}"
        );
        let mut event = TimedEvent::parse(&vector.body, Dialect::new(version, 2))
            .unwrap()
            .event;
        assert_eq!(
            event.reference_mut().is_some(),
            version == ProtocolVersion::V1,
            "{name}"
        );
    }
}

/// Both the 122- and the 134-byte readings parse to the end; the GP version chooses 0.8, and
/// the other reading is what the vector says it would have been.
#[test]
fn an_ambiguous_node_information_is_decided_by_its_gp_version() {
    let vector = load_vector("node_information_v1_ambiguous");
    let info = NodeInformation::parse(&vector.body).unwrap();
    assert_eq!(info.params.layout(), ParamsLayout::Gp08);
    assert_eq!(info.gp_version.as_str(), "0.8.0");
    let other = &vector.json["also_parses_as"];
    assert_eq!(other["params_len"], 134);
    assert_ne!(
        info.implementation_name.as_str(),
        other["tail"]["implementation_name"].as_str().unwrap()
    );
}

/// The vectors kept in this repository are the project's shared ones, byte for byte, wherever
/// those are beside the checkout (as in CI); a clone without them uses its own copy.
#[test]
fn the_vector_copy_equals_the_shared_vectors_when_they_are_present() {
    let shared = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/jip3/vectors");
    if !shared.is_dir() {
        // CI always has them beside its clone: there, their absence is a failure.
        assert!(
            std::env::var_os("CI").is_none(),
            "no shared vectors at {}",
            shared.display()
        );
        eprintln!(
            "no shared vectors at {}: nothing to compare",
            shared.display()
        );
        return;
    }
    let names = |dir: &std::path::Path| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let ours = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
    assert_eq!(names(&ours), names(&shared), "the same files");
    for name in names(&shared) {
        assert_eq!(
            std::fs::read(ours.join(&name)).unwrap(),
            std::fs::read(shared.join(&name)).unwrap(),
            "{name} differs from the shared copy"
        );
    }
}

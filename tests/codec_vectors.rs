//! The shared JIP-3 test vectors (`shared/jip3/vectors`, see FACTS.md §14): each body decodes to
//! the values in its JSON and encodes back to the same bytes. The vectors were made independently
//! of this codec, so they catch a misread spec that round-trip tests cannot.

mod common;

use common::*;
use serde_json::Value;
use tart_backend::jip3::natural::{decode_natural, encode_natural, natural_len};
use tart_backend::jip3::{EventFrame, NodeInformation, Reader, TimedEvent};

/// Vector files that must be present, so a wrong directory cannot pass with nothing checked.
const EXPECTED: &[&str] = &[
    "best_block_changed",
    "block_executed",
    "disconnected_none",
    "disconnected_reason128",
    "disconnected_some",
    "dropped",
    "node_information",
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
            let ours = serde_json::to_value(&info).unwrap();
            assert_same_fields(name, &ours, &vector.json["fields"]);
            assert_eq!(info.to_bytes(), vector.body, "{name} re-encodes");
        } else {
            let event = TimedEvent::parse(&vector.body, vector.core_count())
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

/// The case LEB128 decoders get wrong: a 128-byte Reason has the two-byte prefix `80 80`.
#[test]
fn reason_of_128_bytes_decodes() {
    let vector = load_vector("disconnected_reason128");
    assert_eq!(&vector.body[43..45], [0x80, 0x80]);
    let event = TimedEvent::parse(&vector.body, vector.core_count()).unwrap();
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

        let mut reader = Reader::new(&bytes, 0);
        assert_eq!(decode_natural(&mut reader), Ok(value), "decoding {value}");
        assert_eq!(reader.remaining(), 0, "{value} leaves bytes");
    }
}

/// Every strict prefix of a vector is an error (truncation), never a panic or a shorter value.
#[test]
fn cut_vectors_are_errors() {
    for vector in message_vectors() {
        for cut in 0..vector.body.len() {
            let head = &vector.body[..cut];
            let result = if vector.is_node_information() {
                NodeInformation::parse(head).map(|_| ())
            } else {
                TimedEvent::parse(head, vector.core_count()).map(|_| ())
            };
            assert!(result.is_err(), "{} cut at {cut} decoded", vector.name);
        }
    }
}

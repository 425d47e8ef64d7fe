//! The `decode` tool's library function on captures: the stream vector, a malformed frame in the
//! middle, and framing errors that end the run.

mod harness;

use harness::*;
use serde_json::Value;
use tart_backend::decode_tool::{run, DecodeSummary};
use tart_backend::jip3::codec::DEFAULT_MAX_FRAME;

/// Runs the tool over `capture` and parses every output line as JSON.
fn decode(capture: &[u8], max_frame: usize) -> (DecodeSummary, Vec<Value>) {
    let mut out = Vec::new();
    let summary = run(&mut &capture[..], &mut out, max_frame).expect("no I/O error");
    let text = String::from_utf8(out).expect("UTF-8 output");
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "last line unterminated"
    );
    let lines = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    (summary, lines)
}

fn field<'a>(line: &'a Value, key: &str) -> &'a Value {
    line.get(key)
        .unwrap_or_else(|| panic!("no {key} in {line}"))
}

/// The stream vector's bodies, framed again after the NodeInformation.
fn stream_bodies() -> Vec<Vec<u8>> {
    split_frames(&read_hex("stream"))
        .iter()
        .map(|b| b.to_vec())
        .collect()
}

#[test]
fn stream_vector_prints_node_information_and_seven_events() {
    let (summary, lines) = decode(&read_hex("stream"), DEFAULT_MAX_FRAME);
    assert_eq!(
        summary,
        DecodeSummary {
            messages: 8,
            events: 7,
            failures: 0
        }
    );
    assert!(!summary.failed());
    assert_eq!(lines.len(), 8);

    let info = &lines[0];
    assert_eq!(info["type"], "node_information");
    assert_eq!(info["offset"], 0);
    assert_eq!(
        info["node_id"],
        "a00102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
    );
    assert_eq!(info["data"]["params"]["core_count"], 2);
    assert_eq!(info["data"]["implementation_name"], "PolkaJam");

    let json = read_json("stream");
    let messages = json["messages"].as_array().unwrap();
    let expected = [
        ("Status", 10, "2025-11-20T10:00:00.123456Z"),
        ("BestBlockChanged", 11, "2025-11-20T10:00:01.123456Z"),
        ("Dropped", 0, "2025-11-20T10:00:02.123456Z"),
        ("Disconnected", 27, "2025-11-20T10:00:02.723456Z"),
        ("Disconnected", 27, "2025-11-20T10:00:02.823456Z"),
        ("WorkPackageReceived", 94, "2025-11-20T10:00:03.123456Z"),
        ("BlockExecuted", 47, "2025-11-20T10:00:04.123456Z"),
    ];
    for ((line, message), (name, disc, time)) in lines[1..].iter().zip(&messages[1..]).zip(expected)
    {
        assert_eq!(line["type"], "event");
        assert_eq!(field(line, "offset"), &message["offset"]);
        assert_eq!(field(line, "event_id"), &message["event_id"]);
        assert_eq!(line["event_type"], name);
        assert_eq!(line["discriminator"], disc);
        assert_eq!(line["timestamp"], time);
        assert!(field(line, "data")[name].is_object(), "{line}");
    }
    assert_eq!(lines[2]["data"]["BestBlockChanged"]["slot"], 42);
    assert_eq!(lines[3]["data"]["Dropped"]["num_dropped"], 7);
}

#[test]
fn malformed_frame_is_reported_and_decoding_goes_on() {
    let mut bodies = stream_bodies();
    // SyncStatusChanged with bool byte 2, placed after Status and BestBlockChanged.
    let mut bad = 27_900_001_500_000u64.to_le_bytes().to_vec();
    bad.extend_from_slice(&[13, 2]);
    bodies.insert(3, bad.clone());
    let bad_offset: usize = bodies[..3].iter().map(|b| 4 + b.len()).sum();

    let (summary, lines) = decode(&capture(&bodies), DEFAULT_MAX_FRAME);
    assert!(summary.failed());
    assert_eq!(
        summary,
        DecodeSummary {
            messages: 9,
            events: 7,
            failures: 1
        }
    );
    let error = &lines[3];
    assert_eq!(error["type"], "error");
    assert_eq!(error["offset"], bad_offset);
    assert_eq!(error["event_id"], 2);
    assert_eq!(error["raw"], format!("0x{}", hex::encode(&bad)));
    assert!(error["error"].as_str().unwrap().contains("bool"), "{error}");
    // The bad frame took ID 2, so Dropped is 3 and everything after it moves up by one.
    let ids: Vec<u64> = lines[4..]
        .iter()
        .map(|l| field(l, "event_id").as_u64().unwrap())
        .collect();
    assert_eq!(ids, [3, 10, 11, 12, 13]);
    assert!(lines[4..].iter().all(|l| l["type"] == "event"));
}

#[test]
fn oversized_prefix_stops_the_run() {
    let mut bodies = stream_bodies();
    bodies.truncate(3);
    let mut bytes = capture(&bodies);
    let offset = bytes.len();
    bytes.extend_from_slice(&1000u32.to_le_bytes());
    bytes.extend_from_slice(&[0; 1000]);
    bytes.extend_from_slice(&capture(&stream_bodies()[3..]));

    let (summary, lines) = decode(&bytes, 512);
    assert_eq!(summary.messages, 3);
    assert_eq!(summary.events, 2);
    assert!(summary.failed());
    assert_eq!(lines.len(), 4, "nothing after the framing error");
    let error = &lines[3];
    assert_eq!(error["type"], "error");
    assert_eq!(error["offset"], offset);
    assert_eq!(error["event_id"], 2);
    assert_eq!(error["raw"], "0xe8030000");
    assert!(error["error"].as_str().unwrap().contains("1000"), "{error}");
}

#[test]
fn truncated_final_frame_is_an_error() {
    let mut bytes = read_hex("stream");
    let full = bytes.len();
    bytes.truncate(full - 10);
    let (summary, lines) = decode(&bytes, DEFAULT_MAX_FRAME);
    assert_eq!(summary.events, 6);
    assert!(summary.failed());
    let last = lines.last().unwrap();
    assert_eq!(last["type"], "error");
    assert_eq!(
        last["offset"], 823,
        "block_executed's offset in stream.json"
    );
    assert_eq!(last["event_id"], 12);
    assert_eq!(
        last["raw"].as_str().unwrap().len(),
        2 + 2 * (full - 10 - 823)
    );
    let error = last["error"].as_str().unwrap();
    assert!(error.contains("300 of its 310 bytes"), "{error}");
}

/// A first message that is not a NodeInformation is reported, and the frames after it are still
/// decoded (the framing is intact), numbered from 0, with per-core fields sized by their frame.
#[test]
fn a_bad_first_message_is_reported_and_decoding_goes_on() {
    let bodies = stream_bodies();
    let (summary, lines) = decode(&capture(&bodies[1..]), DEFAULT_MAX_FRAME);
    assert!(summary.failed());
    assert_eq!(lines[0]["type"], "error");
    assert_eq!(lines[0]["offset"], 0);
    assert!(lines[0].get("event_id").is_none(), "{}", lines[0]);
    let error = lines[0]["error"].as_str().unwrap();
    assert!(error.contains("core count unknown"), "{error}");
    assert_eq!(
        lines.len(),
        bodies.len() - 1,
        "one line per later frame too"
    );
    assert_eq!(summary.events, bodies.len() as u64 - 2);
    assert!(lines[1..].iter().all(|l| l["type"] == "event"), "{lines:?}");
    assert_eq!(lines[1]["event_id"], 0);
}

/// A failing event frame names the event type its discriminator claims.
#[test]
fn a_failing_event_names_the_type_it_claims() {
    let mut bodies = stream_bodies();
    // Best block changed (ID 1) cut short by a byte.
    bodies[2].pop();
    let (_, lines) = decode(&capture(&bodies), DEFAULT_MAX_FRAME);
    let error = lines[2]["error"].as_str().unwrap();
    assert!(
        error.starts_with("BestBlockChanged (11): truncated"),
        "{error}"
    );
}

/// Reads of one byte at a time give the same output as one big read.
#[test]
fn output_does_not_depend_on_read_sizes() {
    struct OneByte<'a>(&'a [u8]);
    impl std::io::Read for OneByte<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let Some((&first, rest)) = self.0.split_first() else {
                return Ok(0);
            };
            buf[0] = first;
            self.0 = rest;
            Ok(1)
        }
    }
    let bytes = read_hex("stream");
    let mut whole = Vec::new();
    let mut trickled = Vec::new();
    let a = run(&mut &bytes[..], &mut whole, DEFAULT_MAX_FRAME).unwrap();
    let b = run(&mut OneByte(&bytes), &mut trickled, DEFAULT_MAX_FRAME).unwrap();
    assert_eq!(a, b);
    assert_eq!(whole, trickled);
    assert_eq!(whole.iter().filter(|&&c| c == b'\n').count(), 8);
}

//! An event as TART keeps it: its discriminator and the bytes after it exactly as the node sent
//! them, read again with the dialect of the connection it came on. JSON is made from these only
//! when somebody reads (the REST API, the live stream, `decoded_events`), byte for byte what
//! decoding the frame at ingest gives.

use bytes::Bytes;

use super::events::{Event, EVENT_HEADER_LEN};
use super::types::to_hex;
use super::wire::{DecodeError, Dialect, Reader};

/// The fields of a decoded frame's body (what follows its timestamp and discriminator), copied:
/// a view would keep the whole read buffer the frame came in alive until the row is written.
pub fn fields_of(body: &[u8]) -> Bytes {
    Bytes::copy_from_slice(&body[EVENT_HEADER_LEN.min(body.len())..])
}

/// Reads stored fields again.
pub fn decode(discriminator: u8, fields: &[u8], dialect: Dialect) -> Result<Event, DecodeError> {
    let mut r = Reader::new(fields, dialect);
    let event = Event::decode_fields(discriminator, &mut r)?;
    r.finish()?;
    Ok(event)
}

/// The event's externally tagged JSON form. Fields that no longer decode (only possible if the
/// session's dialect were recorded wrongly) come out as
/// `{"Undecodable":{"discriminator":…,"error":"…","raw":"0x…"}}` rather than vanishing.
pub fn json(discriminator: u8, fields: &[u8], dialect: Dialect) -> String {
    match decode(discriminator, fields, dialect) {
        Ok(event) => serde_json::to_string(&event).expect("events always serialise"),
        Err(error) => serde_json::json!({
            "Undecodable": {
                "discriminator": discriminator,
                "error": error.to_string(),
                "raw": to_hex(fields),
            }
        })
        .to_string(),
    }
}

/// The stored form of an event given as JSON (how TART kept events before it kept their wire
/// form): its discriminator and fields, if the JSON is an event and its fields read back as the
/// same event in `dialect`.
pub fn from_json(json: &str, dialect: Dialect) -> Option<(u8, Vec<u8>)> {
    let event: Event = serde_json::from_str(json).ok()?;
    let mut encoded = Vec::new();
    event.encode(&mut encoded);
    let fields = encoded.split_off(1);
    let discriminator = event.discriminator();
    (decode(discriminator, &fields, dialect).ok()? == event).then_some((discriminator, fields))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jip3::generate::Generator;
    use crate::jip3::{ProtocolVersion, TimedEvent};

    #[test]
    fn stored_fields_give_the_json_of_the_whole_frame_for_every_event() {
        for version in ProtocolVersion::ALL {
            for cores in [1u16, 2, 341] {
                let dialect = Dialect::new(version, cores);
                let mut g = Generator::new(7, cores).with_version(version);
                for &d in Event::DISCRIMINATORS {
                    let event = Event::generate(d, &mut g).unwrap();
                    let body = Bytes::from(
                        TimedEvent {
                            timestamp: 5,
                            event: event.clone(),
                        }
                        .to_bytes(),
                    );
                    let at_ingest = TimedEvent::parse(&body, dialect).unwrap().event;
                    let fields = fields_of(&body);
                    assert_eq!(
                        json(d, &fields, dialect),
                        serde_json::to_string(&at_ingest).unwrap()
                    );
                    assert_eq!(
                        from_json(&serde_json::to_string(&event).unwrap(), dialect),
                        Some((d, fields.to_vec()))
                    );
                }
            }
        }
    }

    #[test]
    fn fields_that_do_not_decode_are_shown_not_hidden() {
        // BestBlockChanged (11) needs 4 + 32 bytes.
        let shown: serde_json::Value =
            serde_json::from_str(&json(11, &[1, 2, 3], Dialect::v1(2))).unwrap();
        assert_eq!(shown["Undecodable"]["discriminator"], 11);
        assert_eq!(shown["Undecodable"]["raw"], "0x010203");
        assert!(from_json(r#"{"NotAnEvent":{}}"#, Dialect::v1(2)).is_none());
    }
}

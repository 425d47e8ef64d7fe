//! A connection's byte stream as a node sends it: the framing, the NodeInformation handshake,
//! then events. Input: one control byte, then the stream.
//!
//! Control byte: bits 0-6 are the size of each read handed to the codec (0 = the whole stream
//! in one read); bit 7 lowers the frame ceiling from the default 1 MiB to 512 bytes, so that
//! oversized prefixes are met as well as huge ones.
//!
//! Nothing may panic. Checked as well: the codec's bodies, re-framed, are exactly the start of
//! the stream, and the bytes it still holds are the rest; every body is within the ceiling;
//! event IDs go as the stream says (each frame gets the ID announced before it); a failed frame
//! keeps its bytes; failures and decoded events turn into text and JSON.

#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use tart_backend::jip3::codec::{frame, DEFAULT_MAX_FRAME};
use tart_backend::jip3::stream::{claimed_type, describe_failure};
use tart_backend::jip3::{EventFrame, EventStream, FrameCodec, FrameError, NodeInformation};
use tokio_util::codec::Decoder;

const SMALL_MAX_FRAME: usize = 512;

fuzz_target!(|data: &[u8]| {
    let Some((&control, stream)) = data.split_first() else {
        return;
    };
    let chunk = match usize::from(control & 0x7f) {
        0 => stream.len().max(1),
        n => n,
    };
    let max_frame = if control & 0x80 != 0 {
        SMALL_MAX_FRAME
    } else {
        DEFAULT_MAX_FRAME
    };

    let mut codec = FrameCodec::new(max_frame);
    let mut buf = BytesMut::new();
    let mut bodies: Vec<Bytes> = Vec::new();
    let mut fed = 0;
    let mut broken = false;
    'read: for piece in stream.chunks(chunk) {
        buf.extend_from_slice(piece);
        fed += piece.len();
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(body)) => {
                    assert!(body.len() <= max_frame, "body over the ceiling");
                    bodies.push(body);
                }
                Ok(None) => break,
                Err(FrameError::Oversized { len, max }) => {
                    assert_eq!(max, max_frame);
                    assert!(len > max_frame);
                    broken = true;
                    break 'read;
                }
                Err(FrameError::Io(e)) => panic!("decode gave an I/O error: {e}"),
            }
        }
    }

    // The bodies, framed again, are the stream's start; what the codec holds is the rest fed.
    let mut reframed = Vec::with_capacity(fed);
    for body in &bodies {
        reframed.extend_from_slice(&frame(body));
    }
    assert_eq!(reframed[..], stream[..reframed.len()], "bodies are not the stream");
    if !broken {
        assert_eq!(fed, stream.len());
        assert_eq!(buf[..], stream[reframed.len()..], "held bytes are not the rest");
        // At end of stream: a whole frame is impossible now, a partial one is an error.
        match codec.decode_eof(&mut buf) {
            Ok(None) => assert!(buf.is_empty()),
            Ok(Some(_)) => panic!("decode_eof found a frame decode had left"),
            Err(_) => assert!(!buf.is_empty()),
        }
    }

    let Some((first, events)) = bodies.split_first() else {
        return;
    };
    let mut stream = match EventStream::start(first) {
        Ok((stream, info)) => {
            let _ = serde_json::to_string(&info).expect("NodeInformation to JSON");
            let _ = info.params.diagnosis();
            assert_eq!(stream.next_event_id(), 0);
            stream
        }
        Err(error) => {
            // What a refused connection is logged with.
            let _ = NodeInformation::claimed_by(first);
            let _ = describe_failure(first, &error);
            return;
        }
    };
    for body in events {
        let id = stream.next_event_id();
        match stream.next(body.clone()) {
            EventFrame::Decoded { event_id, event, .. } => {
                assert_eq!(event_id, id);
                assert_eq!(stream.next_event_id(), id.wrapping_add(event.id_advance()));
                let json = serde_json::to_string(&event.event).expect("event to JSON");
                assert!(!json.is_empty());
                let _ = serde_json::to_string(&event).expect("timed event to JSON");
            }
            EventFrame::Failed {
                event_id,
                raw,
                error,
            } => {
                assert_eq!(event_id, id);
                assert_eq!(raw, *body, "a failed frame lost its bytes");
                let text = describe_failure(&raw, &error);
                assert!(text.starts_with(&claimed_type(&raw)));
            }
        }
    }
});

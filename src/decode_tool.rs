//! `tart-backend decode`: turns a raw telemetry capture (the exact bytes a node sends on its TCP
//! connection) into one JSON line per message, for debugging a node's output without a server.
//!
//! Lines, in stream order:
//! * `{"type":"node_information","offset":0,"node_id":"<64 hex>","data":{…}}` for the first message;
//! * `{"type":"event","offset":…,"event_id":…,"event_type":"…","discriminator":…,"timestamp":"<RFC 3339>","data":{"Name":{…}}}`
//!   per event frame (an unknown discriminator is an `Unknown` event, as on the server);
//! * `{"type":"error","offset":…,"event_id":…,"error":"…","raw":"0x…"}` for a frame that does not
//!   decode. Decoding goes on after a bad event frame, which still takes its event ID.
//!
//! `offset` is the byte offset of the frame's length prefix. A first message that is not a valid
//! NodeInformation is an error line without `event_id`, and decoding goes on (the framing is
//! intact): in the protocol version its first byte names when that is 0 or 1 (else 1), with the
//! core count unknown, so per-core fields are sized by their frame (docs/PROTOCOL.md). Two errors
//! end the run, because after them the message boundaries are lost: an oversized length prefix
//! (`raw` is the prefix), and a capture that ends inside a frame (`raw` is the partial frame).
//! For the others `raw` is the frame's body. An event that fails names the type its
//! discriminator claims.

use std::io::{self, BufWriter, ErrorKind, Read, Write};

use bytes::{Bytes, BytesMut};
use serde::Serialize;
use tokio_util::codec::Decoder;

use crate::jip3::stream::describe_failure;
use crate::jip3::time::to_rfc3339;
use crate::jip3::types::to_hex;
use crate::jip3::{
    Dialect, Event, EventFrame, EventStream, FrameCodec, FrameError, NodeInformation,
    ProtocolVersion,
};

/// Bytes asked of the input per read; a frame larger than this just takes several reads.
const READ_CHUNK: usize = 64 * 1024;

/// What a run saw. `messages` counts whole frames (the NodeInformation included), `events` the
/// event frames that decoded, `failures` the error lines printed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecodeSummary {
    pub messages: u64,
    pub events: u64,
    pub failures: u64,
}

impl DecodeSummary {
    /// True if any error line was printed: the CLI's exit status.
    pub fn failed(&self) -> bool {
        self.failures > 0
    }
}

/// One output line. Field order here is the order in the JSON.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Line<'a> {
    NodeInformation {
        offset: u64,
        node_id: String,
        data: &'a NodeInformation,
    },
    Event {
        offset: u64,
        event_id: u64,
        event_type: &'static str,
        discriminator: u8,
        timestamp: String,
        data: &'a Event,
    },
    Error {
        offset: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        event_id: Option<u64>,
        error: String,
        raw: String,
    },
}

/// Decodes the capture in `input` and writes JSON lines to `out`. Frames longer than `max_frame`
/// are a framing error. I/O errors of either side are returned; decoding problems are lines.
pub fn run(
    input: &mut dyn Read,
    out: &mut dyn Write,
    max_frame: usize,
) -> io::Result<DecodeSummary> {
    let mut decoder = CaptureDecoder {
        out: BufWriter::new(out),
        summary: DecodeSummary::default(),
        stream: None,
    };
    let mut codec = FrameCodec::new(max_frame);
    let mut buf = BytesMut::new();
    // Offset of the first byte in `buf`, i.e. of the next frame's length prefix.
    let mut offset = 0u64;
    let mut eof = false;
    loop {
        match codec.decode(&mut buf) {
            Ok(Some(body)) => {
                let frame_offset = offset;
                offset += 4 + body.len() as u64;
                if !decoder.frame(frame_offset, body)? {
                    break;
                }
            }
            Ok(None) if eof => {
                if !buf.is_empty() {
                    decoder.error(offset, truncation(&buf), &buf)?;
                }
                break;
            }
            Ok(None) => eof = fill(input, &mut buf)? == 0,
            Err(FrameError::Oversized { len, max }) => {
                let error = format!("frame length {len} exceeds the maximum of {max} bytes");
                decoder.error(offset, error, &buf[..4])?;
                break;
            }
            Err(FrameError::Io(e)) => return Err(e),
        }
    }
    decoder.out.flush()?;
    Ok(decoder.summary)
}

/// Describes the partial frame left at the end of a capture.
fn truncation(rest: &[u8]) -> String {
    match rest.get(..4) {
        Some(prefix) => {
            let len = u32::from_le_bytes(prefix.try_into().expect("4 bytes"));
            format!(
                "capture ends inside a frame: {} of its {} bytes (4-byte prefix + {len})",
                rest.len(),
                4 + u64::from(len)
            )
        }
        None => format!(
            "capture ends inside a length prefix: {} of its 4 bytes",
            rest.len()
        ),
    }
}

/// Appends up to one chunk of input to `buf`; returns the number of bytes read (0 at the end).
fn fill(input: &mut dyn Read, buf: &mut BytesMut) -> io::Result<usize> {
    let start = buf.len();
    buf.resize(start + READ_CHUNK, 0);
    let result = loop {
        match input.read(&mut buf[start..]) {
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            other => break other,
        }
    };
    buf.truncate(start + *result.as_ref().unwrap_or(&0));
    result
}

struct CaptureDecoder<'a> {
    out: BufWriter<&'a mut dyn Write>,
    summary: DecodeSummary,
    /// None until the NodeInformation has been read.
    stream: Option<EventStream>,
}

impl CaptureDecoder<'_> {
    /// Handles one whole frame; returns false if the run must stop.
    fn frame(&mut self, offset: u64, body: Bytes) -> io::Result<bool> {
        self.summary.messages += 1;
        let Some(stream) = self.stream.as_mut() else {
            return match EventStream::start(&body) {
                Ok((stream, info)) => {
                    self.stream = Some(stream);
                    self.line(&Line::NodeInformation {
                        offset,
                        node_id: info.node_id(),
                        data: &info,
                    })?;
                    Ok(true)
                }
                Err(e) => {
                    let version = body
                        .first()
                        .and_then(|&v| ProtocolVersion::try_from(v).ok())
                        .unwrap_or(ProtocolVersion::V1);
                    let error = format!(
                        "first message is not a valid NodeInformation: {e}; the frames after it \
                         are decoded as protocol version {} with the core count unknown",
                        version.as_u8()
                    );
                    self.error(offset, error, &body)?;
                    self.stream = Some(EventStream::new(Dialect {
                        version,
                        core_count: None,
                    }));
                    Ok(true)
                }
            };
        };
        match stream.next(body) {
            EventFrame::Decoded {
                event_id, event, ..
            } => {
                self.summary.events += 1;
                self.line(&Line::Event {
                    offset,
                    event_id,
                    event_type: event.event.name(),
                    discriminator: event.event.discriminator(),
                    timestamp: to_rfc3339(event.timestamp),
                    data: &event.event,
                })?;
            }
            EventFrame::Failed {
                event_id,
                raw,
                error,
            } => {
                self.summary.failures += 1;
                self.line(&Line::Error {
                    offset,
                    event_id: Some(event_id),
                    error: describe_failure(&raw, &error),
                    raw: to_hex(&raw),
                })?;
            }
        }
        Ok(true)
    }

    /// An error line for a problem outside an event frame; the event ID is the one the frame
    /// would have had, if the NodeInformation was read.
    fn error(&mut self, offset: u64, error: String, raw: &[u8]) -> io::Result<()> {
        self.summary.failures += 1;
        let event_id = self.stream.as_ref().map(EventStream::next_event_id);
        self.line(&Line::Error {
            offset,
            event_id,
            error,
            raw: to_hex(raw),
        })
    }

    fn line(&mut self, line: &Line<'_>) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, line)?;
        self.out.write_all(b"\n")
    }
}

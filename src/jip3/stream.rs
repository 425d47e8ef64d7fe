//! One connection's sequence of messages: the NodeInformation handshake, then events numbered
//! by the spec's implicit event-ID rule (JIP-3 §Event IDs).

use bytes::Bytes;

use super::events::{Event, TimedEvent, DROPPED, EVENT_HEADER_LEN};
use super::node_info::NodeInformation;
use super::wire::{DecodeError, Dialect};

/// What one event frame became.
#[derive(Debug, Clone, PartialEq)]
pub enum EventFrame {
    Decoded {
        event_id: u64,
        event: TimedEvent,
        /// The frame's body as received, which the server stores (see `stored`).
        body: Bytes,
    },
    /// The frame did not decode. It still took an event ID, because the node counted it.
    Failed {
        event_id: u64,
        raw: Bytes,
        error: DecodeError,
    },
}

impl EventFrame {
    pub fn event_id(&self) -> u64 {
        match self {
            EventFrame::Decoded { event_id, .. } | EventFrame::Failed { event_id, .. } => *event_id,
        }
    }
}

/// What a frame that failed to decode claimed to be, from its discriminator byte: the event
/// name a node's implementer looks for ("BestBlockChanged (11)"), or why there is none.
pub fn claimed_type(raw: &[u8]) -> String {
    match raw.get(EVENT_HEADER_LEN - 1) {
        Some(&d) => match Event::name_of(d) {
            Some(name) => format!("{name} ({d})"),
            None => format!("undefined discriminator {d}"),
        },
        None => format!(
            "no discriminator: {} bytes, {EVENT_HEADER_LEN} needed for timestamp and discriminator",
            raw.len()
        ),
    }
}

/// The text a decode failure is logged and stored with: the claimed type, then the error.
pub fn describe_failure(raw: &[u8], error: &DecodeError) -> String {
    format!("{}: {error}", claimed_type(raw))
}

/// The highest event ID TART assigns (PostgreSQL's `bigint` maximum).
pub const MAX_EVENT_ID: u64 = i64::MAX as u64;

/// Per-connection decoding state: the dialect from NodeInformation and the next event ID.
#[derive(Debug, Clone)]
pub struct EventStream {
    dialect: Dialect,
    next_event_id: u64,
}

impl EventStream {
    /// Starts a stream from the connection's first message, which must be a NodeInformation.
    pub fn start(first_body: &[u8]) -> Result<(Self, NodeInformation), DecodeError> {
        let info = NodeInformation::parse(first_body)?;
        Ok((Self::new(info.dialect()), info))
    }

    /// A stream read in `dialect` from its first event on.
    pub fn new(dialect: Dialect) -> Self {
        EventStream {
            dialect,
            next_event_id: 0,
        }
    }

    /// How this connection's events are read.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The ID the next event frame will get.
    pub fn next_event_id(&self) -> u64 {
        self.next_event_id
    }

    /// Decodes one event frame and assigns its ID: +1 per frame, +N after Dropped(N).
    pub fn next(&mut self, body: Bytes) -> EventFrame {
        let event_id = self.next_event_id;
        match TimedEvent::parse(&body, self.dialect) {
            Ok(event) => {
                self.next_event_id = Self::advanced(event_id, event.id_advance());
                EventFrame::Decoded {
                    event_id,
                    event,
                    body,
                }
            }
            Err(error) => {
                // Its first bytes read as a Dropped of a huge count: it must not shift the IDs.
                let error = if body.get(EVENT_HEADER_LEN - 1) == Some(&DROPPED)
                    && NodeInformation::is_one(&body)
                {
                    DecodeError::UnexpectedNodeInformation
                } else {
                    error
                };
                let advance = match error {
                    DecodeError::UnexpectedNodeInformation => 1,
                    _ => Self::failed_advance(&body),
                };
                self.next_event_id = Self::advanced(event_id, advance);
                EventFrame::Failed {
                    event_id,
                    raw: body,
                    error,
                }
            }
        }
    }

    /// The ID after `event_id` and `advance` more. IDs stop at [`MAX_EVENT_ID`]: a node's
    /// counter cannot get there honestly, only by a bogus `Dropped` count, and every ID stays
    /// storable as a signed 64-bit number.
    fn advanced(event_id: u64, advance: u64) -> u64 {
        event_id.saturating_add(advance).min(MAX_EVENT_ID)
    }

    /// A Dropped frame that fails to decode past its count still says how many IDs it stands
    /// for; any other failed frame is one event.
    fn failed_advance(body: &[u8]) -> u64 {
        match body.get(8..EVENT_HEADER_LEN + 16) {
            Some(fields) if fields[0] == DROPPED => {
                u64::from_le_bytes(fields[9..17].try_into().expect("8 bytes"))
            }
            _ => 1,
        }
    }
}

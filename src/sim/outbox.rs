//! Where a node's events become bytes: the spec's implicit event IDs are given here, in the same
//! order the frames go on the wire, and frames collect until the next write.

use crate::jip3::events::{EventId, Timestamp};
use crate::jip3::Event;

/// Events a connection never delivered: how many IDs, and the first and last timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Undelivered {
    pub first: Timestamp,
    pub last: Timestamp,
    pub events: u64,
}

impl Undelivered {
    /// The Dropped event that stands for them: its own timestamp is the first one's.
    pub fn as_dropped(&self) -> Event {
        Event::Dropped {
            last_timestamp: self.last,
            num_dropped: self.events,
        }
    }
}

/// Frames waiting for the next write, and the ID bookkeeping of the current connection.
pub struct Outbox {
    next_id: EventId,
    newest_id: Option<EventId>,
    /// The ID of the first event not delivered yet (in `buf` or discarded), and the timestamps
    /// of the first and the last of them.
    unsent_from: EventId,
    unsent_times: Option<(Timestamp, Timestamp)>,
    /// The ID of the newest event of each type on this connection.
    last_id: [Option<EventId>; 256],
    buf: Vec<u8>,
    /// Where each frame in `buf` that takes the sending time starts (all but Dropped, whose
    /// time is that of the first event it stands for).
    stamped_frames: Vec<usize>,
    /// The discriminator of each frame in `buf`, and the sum of N over its Dropped(N) frames.
    types: Vec<u8>,
    drops: u64,
}

impl Default for Outbox {
    fn default() -> Self {
        Outbox {
            next_id: 0,
            newest_id: None,
            unsent_from: 0,
            unsent_times: None,
            last_id: [None; 256],
            buf: Vec::with_capacity(16 * 1024),
            stamped_frames: Vec::new(),
            types: Vec::new(),
            drops: 0,
        }
    }
}

impl Outbox {
    /// Frames an event and returns its ID: the previous ID + 1, or + N after Dropped(N).
    pub fn push(&mut self, timestamp: Timestamp, event: &Event) -> EventId {
        let id = self.next_id;
        let start = self.buf.len();
        if !matches!(event, Event::Dropped { .. }) {
            self.stamped_frames.push(start);
        }
        self.buf.extend_from_slice(&[0; 4]);
        self.buf.extend_from_slice(&timestamp.to_le_bytes());
        event.encode(&mut self.buf);
        let len = (self.buf.len() - start - 4) as u32;
        self.buf[start..start + 4].copy_from_slice(&len.to_le_bytes());

        let discriminator = event.discriminator();
        let (advance, last) = match event {
            Event::Dropped {
                num_dropped,
                last_timestamp,
            } => {
                self.drops += num_dropped;
                (*num_dropped, *last_timestamp)
            }
            _ => (1, timestamp),
        };
        self.next_id += advance;
        let (first, _) = self.unsent_times.unwrap_or((timestamp, last));
        self.unsent_times = Some((first, last));
        self.newest_id = Some(id);
        self.last_id[usize::from(discriminator)] = Some(id);
        self.types.push(discriminator);
        id
    }

    pub fn last_id(&self, discriminator: u8) -> Option<EventId> {
        self.last_id[usize::from(discriminator)]
    }

    /// The ID of the newest event on this connection, if any.
    pub fn newest_id(&self) -> Option<EventId> {
        self.newest_id
    }

    /// The framed bytes waiting, and how many events they hold.
    pub fn pending(&self) -> (&[u8], u64) {
        (&self.buf, self.types.len() as u64)
    }

    /// The discriminator of each waiting frame, and the IDs their Dropped frames stand for.
    pub fn pending_types(&self) -> (&[u8], u64) {
        (&self.types, self.drops)
    }

    /// Gives every waiting frame but Dropped the time it goes on the wire. The simulator collects a tick's
    /// events into one write where a node would send each as it happens, so without this an
    /// event's time would be up to a tick older than its sending, and latencies measured from it
    /// (the benchmark's) would include the simulator's own wait.
    pub fn stamp(&mut self, now: Timestamp) {
        for &start in &self.stamped_frames {
            self.buf[start + 4..start + 12].copy_from_slice(&now.to_le_bytes());
        }
    }

    /// Forgets the frames once written.
    pub fn clear(&mut self) {
        self.discard();
        self.unsent_from = self.next_id;
        self.unsent_times = None;
    }

    /// Forgets the frames unsent, as a node does while its telemetry connection is down; they
    /// still count as undelivered.
    pub fn discard(&mut self) {
        self.buf.clear();
        self.stamped_frames.clear();
        self.types.clear();
        self.drops = 0;
    }

    /// A new connection is a new ID sequence starting at 0. Returns what the old one never
    /// delivered (a queued Dropped(N) counts N).
    pub fn new_connection(&mut self) -> Option<Undelivered> {
        let events = self.next_id - self.unsent_from;
        let dropped = self.unsent_times.map(|(first, last)| Undelivered {
            first,
            last,
            events,
        });
        self.next_id = 0;
        self.clear();
        self.newest_id = None;
        self.last_id = [None; 256];
        dropped
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use tokio_util::codec::Decoder;

    use super::*;
    use crate::jip3::{EventFrame, EventStream, FrameCodec, JamParameters, NodeInformation};
    use crate::sim::world::World;

    /// The server's own decoder reads the frames back with the IDs the outbox gave.
    #[test]
    fn ids_follow_the_spec_and_frames_decode() {
        let mut out = Outbox::default();
        let synced = Event::SyncStatusChanged { synced: true };
        assert_eq!(out.push(1, &synced), 0);
        let dropped = Event::Dropped {
            last_timestamp: 2,
            num_dropped: 5,
        };
        assert_eq!(out.push(2, &dropped), 1);
        assert_eq!(out.push(3, &synced), 6);
        assert_eq!(out.last_id(13), Some(6));
        assert_eq!(out.newest_id(), Some(6));
        assert_eq!(out.next_id, 7);

        let info = World { seed: 1, nodes: 1 }.node_information(
            0,
            JamParameters::tiny(),
            crate::sim::NodeDialect::REFERENCE,
        );
        let mut bytes = BytesMut::from(&crate::jip3::codec::frame(&info.to_bytes())[..]);
        let (frames, count) = out.pending();
        assert_eq!(count, 3);
        assert_eq!(out.pending_types(), (&[13, 0, 13][..], 5));
        bytes.extend_from_slice(frames);
        let mut codec = FrameCodec::default();
        let first = codec.decode(&mut bytes).unwrap().unwrap();
        let (mut stream, decoded): (EventStream, NodeInformation) =
            EventStream::start(&first).unwrap();
        assert_eq!(decoded, info);
        let mut ids = Vec::new();
        while let Some(body) = codec.decode(&mut bytes).unwrap() {
            match stream.next(body) {
                EventFrame::Decoded { event_id, .. } => ids.push(event_id),
                failed => panic!("{failed:?}"),
            }
        }
        assert_eq!(ids, vec![0, 1, 6]);

        out.stamp(99);
        let mut bytes = BytesMut::from(&crate::jip3::codec::frame(&info.to_bytes())[..]);
        bytes.extend_from_slice(out.pending().0);
        let (mut stream, _) = EventStream::start(&codec.decode(&mut bytes).unwrap().unwrap())
            .expect("node information");
        while let Some(body) = codec.decode(&mut bytes).unwrap() {
            match stream.next(body) {
                EventFrame::Decoded { event, .. }
                    if matches!(event.event, Event::Dropped { .. }) =>
                {
                    assert_eq!(event.timestamp, 2, "Dropped keeps its own time")
                }
                EventFrame::Decoded { event, .. } => assert_eq!(event.timestamp, 99, "stamped"),
                failed => panic!("{failed:?}"),
            }
        }

        out.clear();
        assert_eq!(out.new_connection(), None, "everything was delivered");
        out.push(4, &dropped);
        out.discard();
        out.push(5, &synced);
        let lost = Undelivered {
            first: 4,
            last: 5,
            events: 6,
        };
        assert_eq!(
            out.new_connection(),
            Some(lost),
            "Dropped(5) and one more were not delivered"
        );
        assert_eq!(out.push(6, &synced), 0);
        assert_eq!(
            out.last_id(0),
            None,
            "a new connection knows no earlier events"
        );
    }
}

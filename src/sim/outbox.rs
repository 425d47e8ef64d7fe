//! Where a node's events become bytes: the spec's implicit event IDs are given here, in the same
//! order the frames go on the wire, and frames collect until the next write.

use crate::jip3::events::{EventId, Timestamp};
use crate::jip3::Event;

/// Frames waiting for the next write, and the ID bookkeeping of the current connection.
pub struct Outbox {
    next_id: EventId,
    newest_id: Option<EventId>,
    /// The ID of the first event in `buf`: IDs from here on are not delivered yet.
    unsent_from: EventId,
    /// The ID of the newest event of each type on this connection.
    last_id: [Option<EventId>; 256],
    /// Event types sent on any connection of this node.
    seen: [bool; 256],
    buf: Vec<u8>,
    queued: u64,
}

impl Default for Outbox {
    fn default() -> Self {
        Outbox {
            next_id: 0,
            newest_id: None,
            unsent_from: 0,
            last_id: [None; 256],
            seen: [false; 256],
            buf: Vec::with_capacity(16 * 1024),
            queued: 0,
        }
    }
}

impl Outbox {
    /// Frames an event and returns its ID: the previous ID + 1, or + N after Dropped(N).
    pub fn push(&mut self, timestamp: Timestamp, event: &Event) -> EventId {
        let id = self.next_id;
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0; 4]);
        self.buf.extend_from_slice(&timestamp.to_le_bytes());
        event.encode(&mut self.buf);
        let len = (self.buf.len() - start - 4) as u32;
        self.buf[start..start + 4].copy_from_slice(&len.to_le_bytes());

        let discriminator = event.discriminator();
        self.next_id += match event {
            Event::Dropped { num_dropped, .. } => *num_dropped,
            _ => 1,
        };
        self.newest_id = Some(id);
        self.last_id[usize::from(discriminator)] = Some(id);
        self.seen[usize::from(discriminator)] = true;
        self.queued += 1;
        id
    }

    pub fn last_id(&self, discriminator: u8) -> Option<EventId> {
        self.last_id[usize::from(discriminator)]
    }

    /// The ID of the newest event on this connection, if any.
    pub fn newest_id(&self) -> Option<EventId> {
        self.newest_id
    }

    pub fn has_sent(&self, discriminator: u8) -> bool {
        self.seen[usize::from(discriminator)]
    }

    /// The framed bytes waiting, and how many events they hold.
    pub fn pending(&self) -> (&[u8], u64) {
        (&self.buf, self.queued)
    }

    /// Forgets the frames once written.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.queued = 0;
        self.unsent_from = self.next_id;
    }

    /// A new connection is a new ID sequence starting at 0. Returns how many event IDs were never
    /// delivered on the old one (a queued Dropped(N) counts N), for a Dropped on the new one.
    pub fn new_connection(&mut self) -> u64 {
        let lost = self.next_id - self.unsent_from;
        self.next_id = 0;
        self.clear();
        self.newest_id = None;
        self.last_id = [None; 256];
        lost
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

        let info = World { seed: 1, nodes: 1 }.node_information(0, JamParameters::tiny());
        let mut bytes = BytesMut::from(&crate::jip3::codec::frame(&info.to_bytes())[..]);
        let (frames, count) = out.pending();
        assert_eq!(count, 3);
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

        out.clear();
        out.push(4, &dropped);
        out.push(5, &synced);
        assert_eq!(
            out.new_connection(),
            6,
            "Dropped(5) and one more were not delivered"
        );
        assert_eq!(out.push(6, &synced), 0);
        assert!(out.has_sent(0));
    }
}

//! The event model of one simulated node. Each slot is planned as chains of events (a block
//! import, a work-package pipeline, an assurance round...), each event at its own time; chains
//! interleave by time, and a later event of a chain refers to the ID an earlier one got when it was
//! sent. With a rate set, a pacer skips optional chains when ahead and pads with short
//! serving-side chains when behind.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use rand::Rng;

mod plan;
mod values;

use super::faults::{
    NodeFaults, SLOPPY_SILENT_TYPES, SLOPPY_UNDEFINED_EVERY, UNDEFINED_DISCRIMINATOR,
};
use super::outbox::Outbox;
use super::world::World;
use super::Mix;
use crate::jip3::events::{EventId, Slot, Timestamp};
use crate::jip3::generate::Generator;
use crate::jip3::types::HexBytes;
use crate::jip3::{Event, JamParameters, ProtocolVersion};

/// Microseconds since the run started: the simulator's clock.
pub type Micros = u64;

/// A delay as a random fraction of a slot between two bounds, so the whole flow shrinks with
/// shorter slots.
#[derive(Debug, Clone, Copy)]
struct Delay(f64, f64);

const NOW: Delay = Delay(0.0, 0.0);
/// A network round trip.
const HOP: Delay = Delay(0.000_5, 0.003);
/// A piece of PVM work.
const WORK: Delay = Delay(0.01, 0.05);
/// With a rate set, at most this many seconds of unused rate carry over (after a stalled write).
const MAX_CREDIT_SECS: f64 = 0.25;

/// One event of a chain: how long after the previous one, what, and which earlier event of the
/// chain it refers to. `at` is fixed when the chain is queued.
struct Step {
    delay: Delay,
    at: Micros,
    event: Event,
    refers_to: Option<usize>,
}

/// Events that belong together, sent in order; `ids` holds the IDs of those already sent.
struct Chain {
    start: Micros,
    steps: Vec<Step>,
    ids: Vec<EventId>,
    /// Optional chains may be skipped to keep to a rate; the block flow and Status are not.
    optional: bool,
    /// Tie-break for chains due at the same time: the one planned first goes first.
    seq: u64,
    /// When the next step is due, kept here for the queue's comparisons: reading it from `steps`
    /// (each step holds a whole event) made the queue the simulator's costliest part.
    due: Micros,
}

impl Chain {
    fn at(start: Micros) -> Chain {
        Chain {
            start,
            steps: Vec::new(),
            ids: Vec::new(),
            optional: false,
            seq: 0,
            due: Micros::MAX,
        }
    }

    fn optional(mut self) -> Chain {
        self.optional = true;
        self
    }

    /// Adds `event` a `delay` after the previous one; returns its position for references.
    fn then(&mut self, delay: Delay, event: Event) -> usize {
        self.steps.push(Step {
            delay,
            at: 0,
            event,
            refers_to: None,
        });
        self.steps.len() - 1
    }

    /// Adds an event whose reference field will hold the ID of the event at position `to`.
    fn reply(&mut self, delay: Delay, to: usize, event: Event) -> usize {
        let position = self.then(delay, event);
        self.steps[position].refers_to = Some(to);
        position
    }

    fn next_at(&self) -> Option<Micros> {
        self.steps.get(self.ids.len()).map(|s| s.at)
    }

    /// Moves the whole chain so its last event is at `end`.
    fn ending_at(mut self, end: Micros) -> Chain {
        let last = self.steps.last().map_or(end, |s| s.at);
        for step in &mut self.steps {
            step.at = end - (last - step.at).min(end);
        }
        self
    }

    /// Call before the chain goes (back) into the queue.
    fn refresh_due(&mut self) {
        self.due = self.next_at().unwrap_or(Micros::MAX);
    }

    fn key(&self) -> (Micros, u64) {
        (self.due, self.seq)
    }
}

/// Ordered for a max-heap that pops the earliest chain.
impl Ord for Chain {
    fn cmp(&self, other: &Self) -> Ordering {
        other.key().cmp(&self.key())
    }
}
impl PartialOrd for Chain {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl PartialEq for Chain {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}
impl Eq for Chain {}

/// Keeps a node near `rate` events/s: credit grows with time and each event spends one.
struct Pacer {
    rate: f64,
    credit: f64,
    last: Micros,
}

impl Pacer {
    fn refill(&mut self, now: Micros) {
        let elapsed = now.saturating_sub(self.last) as f64 / 1e6;
        self.credit = (self.credit + self.rate * elapsed).min(self.rate * MAX_CREDIT_SECS);
        self.last = now;
    }
}

/// How one node's flow is timed and shaped.
pub struct FlowSettings {
    pub slot: Micros,
    /// The JIP-3 timestamp of the run's start (µs 0 of the simulator's clock).
    pub jam_start: Timestamp,
    /// The JAM slot number of the run's first slot.
    pub first_slot: Slot,
    pub rate: Option<f64>,
    pub all_types: bool,
    /// The telemetry protocol version the node speaks (event 61's form).
    pub version: ProtocolVersion,
    /// What the pacer fills with.
    pub mix: Mix,
    /// What is planted in this node.
    pub faults: NodeFaults,
}

/// One node's event model: plans each slot into chains and sends their events when due.
pub struct Flow {
    world: World,
    index: usize,
    params: JamParameters,
    validator: u16,
    g: Generator,
    timing: FlowSettings,
    next_slot: u64,
    queue: BinaryHeap<Chain>,
    seq: u64,
    /// Chains that would start before this are dropped: they belong to a connection that is gone.
    not_before: Micros,
    pacer: Option<Pacer>,
    /// When `--all-types` sends the types the flow has not sent on this connection yet: late in
    /// its first slot, so most come from the flow itself. Every connection covers all types, so
    /// one lost with its connection still reaches the server.
    cover_at: Option<Micros>,
    started: bool,
    /// A node that just started generates its tickets at once rather than at the next epoch.
    just_started: bool,
    /// Events and Status events sent so far, for [`Mix::HalfStatus`].
    sent: u64,
    statuses_sent: u64,
    /// A planted range of lost events, until the slot that reports it is planned.
    planted_drop: Option<u64>,
}

impl Flow {
    pub fn new(world: World, index: usize, params: JamParameters, timing: FlowSettings) -> Flow {
        let seed = world.seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        Flow {
            world,
            index,
            validator: World::validator_index(index, &params),
            g: Generator::new(seed, params.core_count).with_version(timing.version),
            params,
            pacer: timing.rate.map(|rate| Pacer {
                rate,
                credit: 0.0,
                last: 0,
            }),
            cover_at: None,
            planted_drop: timing.faults.dropped_range,
            timing,
            next_slot: 0,
            queue: BinaryHeap::new(),
            seq: 0,
            not_before: 0,
            started: false,
            just_started: false,
            sent: 0,
            statuses_sent: 0,
        }
    }

    /// A new connection (a new ID sequence) starts at `now`: chains in flight referred to IDs of
    /// the old one, so planning restarts with the current slot.
    pub fn connected(&mut self, now: Micros) {
        self.queue.clear();
        self.not_before = now;
        self.next_slot = now / self.timing.slot;
        self.cover_at = self
            .timing
            .all_types
            .then_some(now + self.timing.slot * 9 / 10);
        if let Some(pacer) = &mut self.pacer {
            pacer.credit = 0.0;
            pacer.last = now;
        }
        if !self.started {
            self.started = true;
            self.just_started = true;
            let mut chain = Chain::at(now);
            chain.then(NOW, Event::SyncStatusChanged { synced: true });
            self.push(chain);
        }
    }

    /// Queues in `out` every event due by `now`.
    pub fn advance(&mut self, now: Micros, out: &mut Outbox) {
        while self.next_slot * self.timing.slot <= now {
            self.plan_slot(self.next_slot);
            self.next_slot += 1;
        }
        if let Some(pacer) = &mut self.pacer {
            pacer.refill(now);
        }
        while self.queue.peek().is_some_and(|c| c.due <= now) {
            let mut chain = self.queue.pop().expect("peeked");
            let behind = self.pacer.as_ref().is_some_and(|p| p.credit < 0.0);
            if chain.ids.is_empty() && chain.optional && behind {
                continue;
            }
            self.send_step(&mut chain, out);
            if chain.next_at().is_some() {
                chain.refresh_due();
                self.queue.push(chain);
            }
        }
        if self.cover_at.is_some_and(|at| at <= now) {
            self.cover_at = None;
            for &d in Event::DISCRIMINATORS {
                if out.last_id(d).is_none() {
                    self.send_generated(d, now, out);
                }
            }
        }
        while self.pacer.as_ref().is_some_and(|p| p.credit >= 1.0) {
            let chain = if self.timing.mix == Mix::HalfStatus && self.statuses_sent * 2 < self.sent
            {
                let mut chain = Chain::at(now);
                let status = self.status();
                chain.then(NOW, status);
                chain
            } else {
                self.filler(now)
            };
            let mut chain = self.timed(chain).ending_at(now);
            while chain.next_at().is_some() {
                self.send_step(&mut chain, out);
            }
        }
    }

    /// Fixes the time of each step of a new chain.
    fn timed(&mut self, mut chain: Chain) -> Chain {
        let mut at = chain.start;
        for i in 0..chain.steps.len() {
            at += self.delay(chain.steps[i].delay);
            chain.steps[i].at = at;
        }
        chain
    }

    fn push(&mut self, chain: Chain) {
        let mut chain = self.timed(chain);
        if chain.steps.first().is_some_and(|s| s.at >= self.not_before) {
            self.seq += 1;
            chain.seq = self.seq;
            chain.refresh_due();
            self.queue.push(chain);
        }
    }

    fn send_step(&mut self, chain: &mut Chain, out: &mut Outbox) {
        let step = &mut chain.steps[chain.ids.len()];
        if let Some((field, targets)) = step.event.reference_mut() {
            *field = match step.refers_to {
                Some(to) => chain.ids[to],
                // A reference outside the chain (version 1's stream closed names its stream's
                // opened event): the newest target on this connection, sent first if none.
                None => self.newest_target(targets, step.at, out),
            };
        }
        let id = self.emit(step.at, &step.event, out);
        chain.ids.push(id);
    }

    fn emit(&mut self, at: Micros, event: &Event, out: &mut Outbox) -> EventId {
        let sloppy = self.timing.faults.sloppy;
        if sloppy && SLOPPY_SILENT_TYPES.contains(&event.discriminator()) {
            // Left out. No event refers to these types, so the ID given back is never used.
            return out.newest_id().unwrap_or(0);
        }
        if let Some(pacer) = &mut self.pacer {
            pacer.credit -= 1.0;
        }
        self.sent += 1;
        self.statuses_sent += u64::from(matches!(event, Event::Status { .. }));
        let id = out.push(self.timing.jam_start + at, event);
        if sloppy && self.sent.is_multiple_of(SLOPPY_UNDEFINED_EVERY) {
            let undefined = Event::Unknown {
                discriminator: UNDEFINED_DISCRIMINATOR,
                raw: HexBytes(vec![0xde, 0xad]),
            };
            out.push(self.timing.jam_start + at, &undefined);
        }
        id
    }

    /// Sends a generated event of type `d` whose reference, if any, points at the newest event of
    /// an allowed type on this connection, sending one of those first when there is none. Every
    /// target has a lower discriminator, so this ends.
    fn send_generated(&mut self, d: u8, now: Micros, out: &mut Outbox) -> EventId {
        let mut event = Event::generate(d, &mut self.g).expect("a defined discriminator");
        trim_lists(&mut event);
        if let Event::Dropped {
            last_timestamp,
            num_dropped,
        } = &mut event
        {
            *last_timestamp = self.timing.jam_start + now;
            *num_dropped = self.g.rng.random_range(1..=4);
        }
        if let Some((_, targets)) = event.reference_mut() {
            let target = self.newest_target(targets, now, out);
            *event.reference_mut().expect("has a reference").0 = target;
        }
        self.emit(now, &event, out)
    }

    /// The newest event of one of the `targets` types on this connection; one is generated and
    /// sent first when there is none.
    fn newest_target(&mut self, targets: &[u8], now: Micros, out: &mut Outbox) -> EventId {
        match targets.first() {
            // Auditing events are not defined yet: point at the newest event.
            None => out.newest_id().unwrap_or(0),
            Some(&first) => match targets.iter().find_map(|&t| out.last_id(t)) {
                Some(id) => id,
                None => self.send_generated(first, now, out),
            },
        }
    }
}

/// Generated lists may hold 120+ items (to exercise two-byte `len++` prefixes); a simulated
/// node's lists stay as short as a live node's usually are.
fn trim_lists(event: &mut Event) {
    const MAX: usize = 4;
    match event {
        Event::BlockExecuted { services, .. } => services.truncate(MAX),
        Event::TicketsGenerated { vrf_outputs, .. } => vrf_outputs.truncate(MAX),
        Event::WorkPackageReceived { outline, .. } => {
            outline.prerequisites.truncate(MAX);
            outline.work_items.truncate(MAX);
            for item in &mut outline.work_items {
                item.imports.truncate(MAX);
            }
        }
        Event::Refined { costs, .. } => costs.truncate(MAX),
        Event::GuaranteeBuilt { outline, .. }
        | Event::GuaranteeReceived { outline, .. }
        | Event::GuaranteeDiscarded { outline, .. } => outline.guarantors.truncate(3),
        Event::SendingSegmentShardRequest { requests, .. } => requests.truncate(MAX),
        Event::ReconstructingSegments {
            segment_ids: list, ..
        }
        | Event::SegmentVerificationFailed {
            failed_import_indices: list,
            ..
        }
        | Event::SegmentsVerified {
            verified_import_indices: list,
            ..
        }
        | Event::SendingSegmentRequest {
            import_indices: list,
            ..
        } => list.truncate(MAX),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use bytes::BytesMut;
    use tokio_util::codec::Decoder;

    use super::*;
    use crate::jip3::{EventFrame, EventStream, FrameCodec, ParamsLayout};
    use crate::sim::world::NodeDialect;

    const SLOT: Micros = 6_000_000;

    fn flow(index: usize, params: JamParameters, rate: Option<f64>, all_types: bool) -> Flow {
        flow_in(ProtocolVersion::V1, index, params, rate, all_types)
    }

    fn flow_in(
        version: ProtocolVersion,
        index: usize,
        params: JamParameters,
        rate: Option<f64>,
        all_types: bool,
    ) -> Flow {
        let world = World { seed: 3, nodes: 8 };
        let settings = FlowSettings {
            slot: SLOT,
            jam_start: 1_000_000_000,
            first_slot: 5_000,
            rate,
            all_types,
            version,
            mix: Mix::Natural,
            faults: NodeFaults::default(),
        };
        Flow::new(world, index, params, settings)
    }

    /// Runs a flow for `secs` in 40 ms ticks and decodes what it sent with the server's decoder.
    fn play(mut flow: Flow, secs: u64) -> Vec<(EventId, Event)> {
        let dialect = NodeDialect {
            version: flow.timing.version,
            layout: ParamsLayout::Gp08,
        };
        let info = flow
            .world
            .node_information(flow.index, flow.params.clone(), dialect);
        let mut out = Outbox::default();
        flow.connected(0);
        let mut bytes = BytesMut::from(&crate::jip3::codec::frame(&info.to_bytes())[..]);
        for tick in 0..=secs * 25 {
            flow.advance(tick * 40_000, &mut out);
            bytes.extend_from_slice(out.pending().0);
            out.clear();
        }
        let mut codec = FrameCodec::default();
        let first = codec.decode(&mut bytes).unwrap().unwrap();
        let (mut stream, _) = EventStream::start(&first).unwrap();
        let mut events = Vec::new();
        while let Some(body) = codec.decode(&mut bytes).unwrap() {
            match stream.next(body) {
                EventFrame::Decoded {
                    event_id, event, ..
                } => events.push((event_id, event.event)),
                failed => panic!("{failed:?}"),
            }
        }
        events
    }

    /// Every reference names an earlier event of an allowed type; returns the type counts.
    fn check_links(events: &[(EventId, Event)]) -> HashMap<u8, usize> {
        let types: HashMap<EventId, u8> = events
            .iter()
            .map(|(id, e)| (*id, e.discriminator()))
            .collect();
        let mut counts = HashMap::new();
        for (id, event) in events {
            *counts.entry(event.discriminator()).or_default() += 1;
            if let Some((target, allowed)) = event.clone().reference_mut() {
                assert!(*target < *id, "{event:?} refers forward");
                if !allowed.is_empty() {
                    let found = types.get(target);
                    assert!(
                        found.is_some_and(|t| allowed.contains(t)),
                        "event {id} {event:?} → {target} is {found:?}, not one of {allowed:?}"
                    );
                }
            }
        }
        counts
    }

    #[test]
    fn the_natural_flow_links_correctly_and_covers_the_pipeline() {
        for (params, version) in [
            (JamParameters::tiny(), ProtocolVersion::V1),
            (JamParameters::full(), ProtocolVersion::V0),
        ] {
            let mut seen = HashMap::new();
            for index in 0..4 {
                let events = play(flow_in(version, index, params.clone(), None, false), 60);
                let rate = events.len() as f64 / 60.0;
                assert!((5.0..60.0).contains(&rate), "natural rate {rate}");
                seen.extend(check_links(&events));
            }
            let pipeline = [
                10, 11, 12, 40, 42, 43, 45, 47, 62, 80, 82, 84, 90, 91, 94, 95, 101,
            ];
            let more = [
                102, 103, 105, 106, 108, 109, 120, 123, 125, 126, 128, 129, 131, 191, 198,
            ];
            for d in pipeline.into_iter().chain(more) {
                assert!(
                    seen.contains_key(&d),
                    "C={} never sent {d}",
                    params.core_count
                );
            }
        }
    }

    #[test]
    fn all_types_sends_each_of_the_115_with_valid_links_in_both_versions() {
        for version in ProtocolVersion::ALL {
            let events = play(flow_in(version, 0, JamParameters::full(), None, true), 6);
            let counts = check_links(&events);
            assert_eq!(counts.len(), 115, "{:?}", {
                let mut missing: Vec<u8> = Event::DISCRIMINATORS.to_vec();
                missing.retain(|d| !counts.contains_key(d));
                missing
            });
            let closed = events
                .iter()
                .find_map(|(_, e)| match e {
                    Event::BlockAnnouncementStreamClosed { stream, .. } => Some(*stream),
                    _ => None,
                })
                .expect("an event 61");
            let by_event_id = matches!(closed, crate::jip3::types::ClosedStream::OpenedEvent(_));
            assert_eq!(by_event_id, version == ProtocolVersion::V1, "{closed:?}");
        }
    }

    #[test]
    fn planted_faults_shape_what_a_node_sends() {
        let mut faulty = flow(2, JamParameters::tiny(), None, true);
        faulty.timing.faults = NodeFaults {
            outbound_failure_rate: Some(0.5),
            clock_skew_us: 0,
            sloppy: true,
            dropped_range: Some(1000),
            ..NodeFaults::default()
        };
        faulty.planted_drop = Some(1000);
        let events = play(faulty, 600);
        let counts = check_links(&events);
        for d in SLOPPY_SILENT_TYPES {
            assert!(!counts.contains_key(d), "sent {d}, even with all types");
        }
        let undefined = counts[&UNDEFINED_DISCRIMINATOR] as u64;
        let defined = events.len() as u64 - undefined;
        assert_eq!(undefined, defined / SLOPPY_UNDEFINED_EVERY);
        let (attempts, failed) = (counts[&24] as f64, counts[&25] as f64);
        assert!(
            attempts >= 100.0,
            "{attempts} outbound attempts in 100 slots"
        );
        assert!(
            (0.35..0.65).contains(&(failed / attempts)),
            "{failed} of {attempts} failed"
        );
        let planted = events
            .iter()
            .position(|(_, e)| {
                matches!(
                    e,
                    Event::Dropped {
                        num_dropped: 1000,
                        ..
                    }
                )
            })
            .expect("the planted Dropped(1000)");
        assert_eq!(events[planted + 1].0, events[planted].0 + 1000);
    }

    #[test]
    fn a_rate_is_kept_above_and_below_the_natural_flow() {
        for rate in [5.0, 200.0] {
            let events = play(flow(1, JamParameters::tiny(), Some(rate), false), 30);
            check_links(&events);
            let got = events.len() as f64 / 30.0;
            assert!(
                (rate * 0.8..rate * 1.2).contains(&got),
                "{rate}/s asked, {got:.1}/s sent"
            );
        }
    }
}

//! One actor per node TCP connection: framing, the NodeInformation handshake, event IDs, and one
//! batch per read handed to the rate limiter.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::Bytes;
use chrono::Utc;
use tokio::net::TcpStream;
use tokio_util::codec::FramedRead;

use super::access::Claim;
use super::listener::{Listener, Replace, Unregister};
use super::read_chunks::ReadChunks;
use super::references::RecentReferable;
use super::IngestContext;
use crate::jip3::stored;
use crate::jip3::stream::{describe_failure, MAX_EVENT_ID};
use crate::jip3::{
    DecodeError, Event, EventFrame, EventStream, FrameCodec, FrameError, NodeInformation,
};
use crate::log_throttle::LogThrottle;
use crate::messages::{
    EventBatch, Fact, HandshakeRefused, IngestEvent, NodeConnected, Payload, Reference,
    SessionEnded,
};
use crate::metrics::Metrics;
use crate::store::models::{NewSession, NodeConnection};
use crate::store::write::SessionCounts;

/// Most frames handed on from one read; also the most queue permits one connection asks for.
pub const MAX_READ_BATCH: usize = 512;
/// A read's frames end at this many bytes too (a few huge frames are a read of their own).
const MAX_READ_BYTES: usize = 1 << 20;
/// When asked to close, a connection first reads what the node already sent: until the socket
/// has been quiet this long, or at most `DRAIN_MAX`, so a shutdown loses nothing in flight.
const DRAIN_IDLE: Duration = Duration::from_millis(250);
const DRAIN_MAX: Duration = Duration::from_secs(2);

/// Why a connection ended: the log line, the session row and the metric label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    NodeClosed,
    HandshakeTimeout,
    /// Nothing from the node for `idle_timeout_ms` after its handshake.
    IdleTimeout,
    BadHandshake(String),
    /// The access rules refuse the node (see `access`).
    NotAllowed(String),
    OversizedFrame(String),
    ReadError(String),
    /// The same node connected again; the newer connection wins.
    Replaced,
    Shutdown,
}

impl CloseReason {
    pub fn label(&self) -> &'static str {
        match self {
            CloseReason::NodeClosed => "node_closed",
            CloseReason::HandshakeTimeout => "handshake_timeout",
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::BadHandshake(_) => "bad_handshake",
            CloseReason::NotAllowed(_) => "not_allowed",
            CloseReason::OversizedFrame(_) => "oversized_frame",
            CloseReason::ReadError(_) => "read_error",
            CloseReason::Replaced => "replaced",
            CloseReason::Shutdown => "shutdown",
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::NodeClosed => f.write_str("closed by the node"),
            CloseReason::HandshakeTimeout => f.write_str("no NodeInformation in time"),
            CloseReason::IdleTimeout => f.write_str("nothing sent for the idle timeout"),
            CloseReason::BadHandshake(e) => write!(f, "invalid NodeInformation: {e}"),
            CloseReason::NotAllowed(e) => write!(f, "refused: {e}"),
            CloseReason::OversizedFrame(e) => write!(f, "framing lost: {e}"),
            CloseReason::ReadError(e) => write!(f, "read error: {e}"),
            CloseReason::Replaced => f.write_str("replaced by a newer connection of the same node"),
            CloseReason::Shutdown => f.write_str("server shutting down"),
        }
    }
}

/// Refused handshakes recorded as session rows per second at most, so a client that connects
/// and sends garbage in a loop cannot grow the table (or the writer's queue) without limit; the
/// rest are counted and logged at debug level only.
const REFUSAL_RECORDS_PER_SEC: u32 = 10;

/// The budget of refusal rows for the current second, shared by all connections.
#[derive(Debug, Default)]
pub struct RefusalRecords(std::sync::Mutex<Option<(Instant, u32)>>);

impl RefusalRecords {
    /// True if one more refusal may be recorded now.
    fn take(&self) -> bool {
        let mut window = self.0.lock().expect("not poisoned");
        let now = Instant::now();
        match &mut *window {
            Some((start, used)) if now.duration_since(*start) < Duration::from_secs(1) => {
                *used += 1;
                *used <= REFUSAL_RECORDS_PER_SEC
            }
            other => {
                *other = Some((now, 1));
                true
            }
        }
    }
}

/// Asks a connection to close. Sent by the listener (duplicate node, shutdown).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Close(pub CloseReason);

struct Session {
    stream: EventStream,
    node_id: Arc<str>,
    session_id: i64,
    /// Undefined discriminators already logged on this session (one bit each): the first frame
    /// of each is logged, the rest only counted.
    undefined_logged: [u64; 4],
    /// Frames that fail to decode: the first logged, then one line per interval with a count.
    failure_log: LogThrottle,
    /// Kinds of [`OutOfRange`] already logged on this session (one bit each).
    out_of_range_logged: u8,
    /// What later events' references may point at.
    referable: RecentReferable,
}

/// A value TART cannot store as the node sent it.
#[derive(Debug, Clone, Copy)]
enum OutOfRange {
    /// A `Dropped` count pushed the event IDs to `MAX_EVENT_ID`, where they stay.
    EventId,
    /// A timestamp past the year 262,142, stored as the latest instant chrono can represent.
    Timestamp,
}

impl OutOfRange {
    fn label(self) -> &'static str {
        match self {
            OutOfRange::EventId => "event_id",
            OutOfRange::Timestamp => "timestamp",
        }
    }

    fn consequence(self) -> &'static str {
        match self {
            OutOfRange::EventId => "event IDs stop at 2^63-1, the largest PostgreSQL bigint",
            OutOfRange::Timestamp => "its time is stored as the latest representable instant",
        }
    }
}

impl Session {
    /// Counts a value out of range, and logs it the first time per kind on this session.
    fn out_of_range(&mut self, kind: OutOfRange, event_id: u64, metrics: &Metrics) {
        metrics
            .values_out_of_range
            .with_label_values(&[kind.label()])
            .inc();
        let bit = 1 << kind as u8;
        if self.out_of_range_logged & bit == 0 {
            self.out_of_range_logged |= bit;
            log::warn!(
                "node {} session {}: event {event_id} has a {} out of range: {}; counted \
                 (telemetry_values_out_of_range_total) and not logged again on this session",
                self.node_id,
                self.session_id,
                kind.label(),
                kind.consequence()
            );
        }
    }

    /// True the first time `discriminator` is seen on this session.
    fn first_undefined(&mut self, discriminator: u8) -> bool {
        let (word, bit) = (usize::from(discriminator / 64), discriminator % 64);
        let first = self.undefined_logged[word] & (1 << bit) == 0;
        self.undefined_logged[word] |= 1 << bit;
        first
    }
}

pub struct Connection {
    ingest: Arc<IngestContext>,
    listener: Addr<Listener>,
    connection_id: u64,
    peer: SocketAddr,
    socket: Option<TcpStream>,
    session: Option<Session>,
    close_reason: CloseReason,
    last_read: Instant,
    /// The last read, or the end of the last wait for queue room: what the idle timeout counts
    /// from, so time the server held the node back is not held against it.
    last_activity: Instant,
    draining: bool,
}

impl Connection {
    pub fn new(
        ingest: Arc<IngestContext>,
        listener: Addr<Listener>,
        connection_id: u64,
        peer: SocketAddr,
        socket: TcpStream,
    ) -> Self {
        Connection {
            ingest,
            listener,
            connection_id,
            peer,
            socket: Some(socket),
            session: None,
            close_reason: CloseReason::NodeClosed,
            last_read: Instant::now(),
            last_activity: Instant::now(),
            draining: false,
        }
    }

    fn close(&mut self, reason: CloseReason, ctx: &mut Context<Self>) {
        self.close_reason = reason;
        ctx.stop();
    }

    /// Starts the session from the first message; on failure says why the node is refused.
    fn handshake(&mut self, body: &[u8]) -> Result<(), CloseReason> {
        let (stream, info) =
            EventStream::start(body).map_err(|error| self.refuse_undecodable(body, &error))?;
        if let Some((refusal, why)) = self.ingest.access.handshake_refusal(&info) {
            return Err(self.refuse(body, refusal, CloseReason::NotAllowed(why), Some(&info)));
        }
        let node_id: Arc<str> = info.node_id().into();
        match self
            .ingest
            .claims
            .claim(&node_id, self.connection_id, self.peer.ip())
        {
            Claim::New => {}
            Claim::Replaces(old) => {
                log::info!(
                    "node {}… connected again from {}; closing its older connection",
                    &node_id[..12],
                    self.peer.ip()
                );
                self.listener.do_send(Replace { old });
            }
            Claim::InUseFrom(other) => {
                let why = format!(
                    "its Peer ID is connected from {other}; a second connection from another \
                     address is refused while the first is alive (it is closed after \
                     idle_timeout_ms of silence)"
                );
                return Err(self.refuse(
                    body,
                    "peer_id_in_use",
                    CloseReason::NotAllowed(why),
                    Some(&info),
                ));
            }
        }
        let session_id = self.ingest.ids.reserve(1);
        let now = Utc::now();
        let remote = Some(self.peer.to_string());
        let (version, layout) = (info.protocol_version.as_u8(), info.params.layout().name());
        self.ingest
            .metrics
            .handshakes
            .with_label_values(&[&version.to_string(), layout])
            .inc();
        log::info!(
            "node {}… ({} {}, protocol {version}, GP {}, parameters {layout}, {} cores) connected \
             from {}, session {session_id}",
            &node_id[..12],
            info.implementation_name.as_str(),
            info.implementation_version.as_str(),
            info.gp_version.as_str(),
            info.core_count()
                .map_or_else(|| "unknown".to_owned(), |c| c.to_string()),
            self.peer,
        );
        if let Some(diagnosis) = info.params.diagnosis() {
            self.ingest.metrics.unknown_params_layouts.inc();
            log::warn!(
                "node {}… ({} {}) from {}: {diagnosis}. Accepted: the parameters are kept as bytes \
                 and per-core fields are sized by each frame's length",
                &node_id[..12],
                info.implementation_name.as_str(),
                info.implementation_version.as_str(),
                self.peer,
            );
        }
        // The writer records this before the session's first batch can reach it: that batch
        // travels through the rate limiter, after this message is already queued.
        self.ingest.writer.connects.do_send(NodeConnected {
            node: NodeConnection::new(&info, session_id, remote.clone(), now),
            session: NewSession::accepted(&info, session_id, remote, now),
        });
        self.session = Some(Session {
            stream,
            node_id,
            session_id,
            undefined_logged: [0; 4],
            out_of_range_logged: 0,
            referable: RecentReferable::default(),
            failure_log: LogThrottle::default(),
        });
        Ok(())
    }

    /// Refuses a first message that is not a NodeInformation TART can read.
    fn refuse_undecodable(&self, body: &[u8], error: &DecodeError) -> CloseReason {
        let refusal = match error {
            DecodeError::UnsupportedProtocolVersion(version) => {
                self.ingest
                    .metrics
                    .protocol_versions_refused
                    .with_label_values(&[&version.to_string()])
                    .inc();
                "unsupported_version"
            }
            _ => "malformed",
        };
        // Only another version can be read as if it were version 1; a malformed message of
        // version 0 or 1 already failed that parse.
        let claimed = match error {
            DecodeError::UnsupportedProtocolVersion(_) => NodeInformation::claimed_by(body),
            _ => None,
        };
        let reason = CloseReason::BadHandshake(error.to_string());
        self.refuse(body, refusal, reason, claimed.as_ref())
    }

    /// Counts and records a refused handshake, and says why in the close reason. The session
    /// row keeps what the node claimed to be when that can be read.
    fn refuse(
        &self,
        body: &[u8],
        refusal: &'static str,
        reason: CloseReason,
        claimed: Option<&NodeInformation>,
    ) -> CloseReason {
        let metrics = &self.ingest.metrics;
        metrics
            .handshakes_refused
            .with_label_values(&[refusal])
            .inc();
        if !self.ingest.refusal_records.take() {
            metrics.handshakes_refused_unrecorded.inc();
            log::debug!("refusing node connection from {}: {reason}", self.peer);
            return reason;
        }
        log::warn!("refusing node connection from {}: {reason}", self.peer);
        let now = Utc::now();
        self.ingest
            .writer
            .refusals
            .do_send(HandshakeRefused(NewSession {
                session_id: self.ingest.ids.reserve(1),
                node_id: None,
                remote_address: Some(self.peer.to_string()),
                connected_at: now,
                protocol_version: body.first().map(|&v| i16::from(v)),
                gp_version: claimed.map(|c| c.gp_version.storable().into_owned()),
                params_layout: claimed.map(|c| c.params.layout().name()),
                core_count: None,
                refusal: Some(refusal),
                disconnected_at: Some(now),
                disconnect_reason: Some(reason.to_string()),
                claimed_node_id: claimed.map(NodeInformation::node_id),
                claimed_implementation: claimed.map(|c| {
                    format!(
                        "{} {}",
                        c.implementation_name.storable(),
                        c.implementation_version.storable()
                    )
                }),
            }));
        reason
    }

    /// Turns one read's event frames into a batch, with row ids and counters.
    fn build_batch(&mut self, frames: Vec<EventFrame>, read_at: Instant) -> Option<EventBatch> {
        let session = self.session.as_mut()?;
        if frames.is_empty() {
            return None;
        }
        let metrics = &self.ingest.metrics;
        let first_id = self.ingest.ids.reserve(frames.len() as u64);
        let received_at = Utc::now();
        let mut counts = SessionCounts {
            received: frames.len() as i64,
            ..SessionCounts::default()
        };
        let mut undefined: Vec<(u8, i64)> = Vec::new();
        let events: Vec<IngestEvent> = frames
            .into_iter()
            .zip(first_id..)
            .map(|(frame, id)| {
                let event_id = frame.event_id();
                if event_id == MAX_EVENT_ID {
                    session.out_of_range(OutOfRange::EventId, event_id, metrics);
                }
                let payload = match frame {
                    EventFrame::Decoded {
                        mut event, body, ..
                    } => {
                        if !crate::jip3::time::is_representable(event.timestamp) {
                            session.out_of_range(OutOfRange::Timestamp, event_id, metrics);
                        }
                        match &event.event {
                            Event::Dropped { num_dropped, .. } => {
                                // A hostile count near 2^64 must not wrap or overflow `bigint`.
                                let n = i64::try_from(*num_dropped).unwrap_or(i64::MAX);
                                counts.dropped = counts.dropped.saturating_add(n);
                                metrics.events_dropped.inc_by(*num_dropped);
                            }
                            Event::Unknown { discriminator, raw } => {
                                let d = *discriminator;
                                match undefined.iter_mut().find(|(u, _)| *u == d) {
                                    Some((_, n)) => *n += 1,
                                    None => undefined.push((d, 1)),
                                }
                                if session.first_undefined(d) {
                                    log::warn!(
                                        "node {} session {}: event {event_id} has discriminator \
                                         {d}, which JIP-3 does not define ({} bytes after it); \
                                         stored as Unknown with its bytes, counted per \
                                         discriminator, and not logged again on this session",
                                        session.node_id,
                                        session.session_id,
                                        raw.0.len()
                                    );
                                }
                            }
                            _ => {}
                        }
                        let reference = session.referable.resolve(&mut event.event);
                        if reference == Reference::Dangling {
                            counts.dangling_references += 1;
                            metrics.dangling_references.inc();
                        }
                        let discriminator = event.event.discriminator();
                        session.referable.remember(event_id, id, discriminator);
                        Payload::Decoded {
                            timestamp: event.timestamp,
                            discriminator,
                            fields: stored::fields_of(&body),
                            fact: Fact::of(&event.event),
                            reference,
                        }
                    }
                    EventFrame::Failed { raw, error, .. } => {
                        counts.decode_failures += 1;
                        metrics.decode_failures.inc();
                        let error = describe_failure(&raw, &error);
                        if let Some(left_out) = session.failure_log.hit(read_at) {
                            log::warn!(
                                "node {} session {}: event {event_id} failed to decode ({} bytes): \
                                 {error}{}",
                                session.node_id,
                                session.session_id,
                                raw.len(),
                                match left_out {
                                    0 => String::new(),
                                    n => format!(" ({n} more failed since the last such line)"),
                                }
                            );
                        }
                        Payload::Failed { raw, error }
                    }
                };
                IngestEvent {
                    id,
                    event_id,
                    received_at,
                    payload,
                }
            })
            .collect();
        metrics.events_received.inc_by(counts.received as u64);
        for &(discriminator, n) in &undefined {
            metrics
                .unknown_events
                .with_label_values(&[&discriminator.to_string()])
                .inc_by(n as u64);
        }
        let skew = events
            .last()
            .and_then(IngestEvent::jam_timestamp)
            .map(|time| {
                let received = crate::jip3::time::from_datetime(received_at);
                (
                    crate::jip3::skew::bucket(received, time),
                    events.len() as u32,
                )
            });
        Some(EventBatch {
            node_id: session.node_id.clone(),
            session_id: session.session_id,
            dialect: session.stream.dialect(),
            read_at,
            held_back: Duration::ZERO,
            events,
            counts,
            undefined,
            gaps: Vec::new(),
            skew,
        })
    }
}

impl Actor for Connection {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let socket = self.socket.take().expect("started once");
        let codec = FrameCodec::new(self.ingest.config.max_frame_bytes);
        let read_batch = MAX_READ_BATCH.min(self.ingest.budget.capacity().events);
        // Every frame already buffered, i.e. all the frames of one read, up to a bound.
        ctx.add_stream(ReadChunks::new(
            FramedRead::new(socket, codec),
            read_batch,
            MAX_READ_BYTES,
        ));
        let idle_timeout = self.ingest.config.idle_timeout();
        ctx.run_interval(idle_timeout / 4, move |act, ctx| {
            if act.session.is_some() && !act.draining && act.last_activity.elapsed() >= idle_timeout
            {
                log::info!(
                    "closing connection from {}: nothing sent for {} ms",
                    act.peer,
                    idle_timeout.as_millis()
                );
                act.close(CloseReason::IdleTimeout, ctx);
            }
        });
        ctx.run_later(self.ingest.config.handshake_timeout(), |act, ctx| {
            if act.session.is_none() {
                act.ingest
                    .metrics
                    .handshakes_refused
                    .with_label_values(&["timeout"])
                    .inc();
                log::warn!(
                    "closing connection from {}: no NodeInformation within {} ms",
                    act.peer,
                    act.ingest.config.handshake_timeout_ms
                );
                act.close(CloseReason::HandshakeTimeout, ctx);
            }
        });
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        let reason = self.close_reason.clone();
        self.ingest
            .metrics
            .connections_closed
            .with_label_values(&[reason.label()])
            .inc();
        if let Some(session) = self.session.take() {
            self.ingest
                .claims
                .release(&session.node_id, self.connection_id);
            log::info!(
                "node {}… session {} ended after {} events: {reason}",
                &session.node_id[..12],
                session.session_id,
                session.stream.next_event_id()
            );
            self.ingest.rate_limiter.do_send(SessionEnded {
                node_id: session.node_id,
                session_id: session.session_id,
                at: Utc::now(),
                reason: reason.to_string(),
            });
        }
        self.listener.do_send(Unregister {
            connection_id: self.connection_id,
            ip: self.peer.ip(),
        });
    }
}

impl StreamHandler<Vec<Result<Bytes, FrameError>>> for Connection {
    fn handle(&mut self, frames: Vec<Result<Bytes, FrameError>>, ctx: &mut Context<Self>) {
        let read_at = Instant::now();
        self.last_read = read_at;
        self.last_activity = read_at;
        let mut decoded = Vec::with_capacity(frames.len());
        let mut fatal = None;
        for frame in frames {
            match (frame, &mut self.session) {
                (Ok(body), Some(session)) => decoded.push(session.stream.next(body)),
                (Ok(body), None) => {
                    if let Err(reason) = self.handshake(&body) {
                        fatal = Some(reason);
                        break;
                    }
                }
                (Err(FrameError::Oversized { len, max }), _) => {
                    log::warn!(
                        "closing connection from {}: frame length {len} exceeds the maximum {max}",
                        self.peer
                    );
                    fatal = Some(CloseReason::OversizedFrame(format!(
                        "frame length {len} exceeds the maximum of {max} bytes"
                    )));
                    break;
                }
                (Err(FrameError::Io(e)), _) => {
                    log::info!("read error on connection from {}: {e}", self.peer);
                    fatal = Some(CloseReason::ReadError(e.to_string()));
                    break;
                }
            }
        }
        let mut batch = self.build_batch(decoded, read_at);
        if batch.is_none() && fatal.is_none() {
            return;
        }
        // There is room in the queue (the usual case): hand on at once. No wait of this actor
        // is pending (while one is, no read is handled), so batches stay in order.
        let budget = &self.ingest.budget;
        if let Some(ready) = batch.take_if(|b| {
            budget.fitting(&b.events) == b.events.len() && budget.try_acquire(&b.events)
        }) {
            self.ingest.rate_limiter.do_send(ready);
            if let Some(reason) = fatal {
                self.close(reason, ctx);
            }
            return;
        }
        let budget = self.ingest.budget.clone();
        let rate_limiter = self.ingest.rate_limiter.clone();
        let hand_on = async move {
            let mut next = batch;
            while let Some(mut batch) = next.take() {
                // A read of huge frames may be more than the whole queue: it goes in parts.
                let fit = budget.fitting(&batch.events);
                if fit < batch.events.len() {
                    next = Some(batch.split_off(fit));
                }
                let waiting_since = Instant::now();
                budget.acquire(&batch.events).await;
                batch.held_back = waiting_since.elapsed();
                rate_limiter.do_send(batch);
            }
        };
        // Policy: wait. While the queue is full this actor is suspended, its socket is not read,
        // and TCP pushes back on the node. A fatal frame closes the connection only after the
        // batch is handed on, in the same wait: actix runs queued waits newest first, and
        // stopping abandons a wait that has not finished.
        ctx.wait(hand_on.into_actor(self).map(move |_, act, ctx| {
            act.last_activity = Instant::now();
            if let Some(reason) = fatal {
                act.close(reason, ctx);
            }
        }));
    }
}

impl Handler<Close> for Connection {
    type Result = ();

    fn handle(&mut self, Close(reason): Close, ctx: &mut Context<Self>) {
        if self.session.is_none() {
            return self.close(reason, ctx);
        }
        if self.draining {
            return;
        }
        self.close_reason = reason;
        self.draining = true;
        let started = Instant::now();
        ctx.run_interval(DRAIN_IDLE / 5, move |act, ctx| {
            if act.last_read.elapsed() >= DRAIN_IDLE || started.elapsed() >= DRAIN_MAX {
                ctx.stop();
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_records_are_capped_per_second() {
        let records = RefusalRecords::default();
        let taken = (0..3 * REFUSAL_RECORDS_PER_SEC)
            .filter(|_| records.take())
            .count();
        assert_eq!(taken, REFUSAL_RECORDS_PER_SEC as usize);
        // A new second gives a new budget.
        *records.0.lock().unwrap() = Some((Instant::now() - Duration::from_secs(2), 99));
        assert!(records.take());
    }
}

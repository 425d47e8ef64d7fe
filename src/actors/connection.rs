//! One actor per node TCP connection: framing, the NodeInformation handshake, event IDs, and one
//! batch per read handed to the rate limiter.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::Bytes;
use chrono::Utc;
use futures_util::StreamExt;
use tokio::net::TcpStream;
use tokio_util::codec::FramedRead;

use super::db_writer::NodeConnected;
use super::listener::{Listener, Register, Unregister};
use super::{EventBatch, IngestContext, IngestEvent, Payload, SessionEnded};
use crate::jip3::{Event, EventFrame, EventStream, FrameCodec, FrameError};
use crate::store::models::{NewSession, NodeConnection};
use crate::store::write::SessionCounts;

/// Most frames handed on from one read; also the most queue permits one connection asks for.
pub const MAX_READ_BATCH: usize = 512;
/// When asked to close, a connection first reads what the node already sent: until the socket
/// has been quiet this long, or at most `DRAIN_MAX`, so a shutdown loses nothing in flight.
const DRAIN_IDLE: Duration = Duration::from_millis(250);
const DRAIN_MAX: Duration = Duration::from_secs(2);

/// Why a connection ended: the log line, the session row and the metric label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    NodeClosed,
    HandshakeTimeout,
    BadHandshake(String),
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
            CloseReason::BadHandshake(_) => "bad_handshake",
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
            CloseReason::BadHandshake(e) => write!(f, "invalid NodeInformation: {e}"),
            CloseReason::OversizedFrame(e) => write!(f, "framing lost: {e}"),
            CloseReason::ReadError(e) => write!(f, "read error: {e}"),
            CloseReason::Replaced => f.write_str("replaced by a newer connection of the same node"),
            CloseReason::Shutdown => f.write_str("server shutting down"),
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
            EventStream::start(body).map_err(|e| CloseReason::BadHandshake(e.to_string()))?;
        let session_id = self.ingest.ids.reserve(1);
        let node_id: Arc<str> = info.node_id().into();
        let now = Utc::now();
        let remote = Some(self.peer.to_string());
        log::info!(
            "node {}… ({} {}, GP {}, {} cores) connected from {}, session {session_id}",
            &node_id[..12],
            info.implementation_name.as_str(),
            info.implementation_version.as_str(),
            info.gp_version.as_str(),
            info.core_count(),
            self.peer,
        );
        // The writer records this before the session's first batch can reach it: that batch
        // travels through the rate limiter, after this message is already queued.
        self.ingest.db_writer.do_send(NodeConnected {
            node: NodeConnection::new(&info, session_id, remote.clone(), now),
            session: NewSession {
                session_id,
                node_id: node_id.to_string(),
                remote_address: remote,
                connected_at: now,
            },
        });
        self.listener.do_send(Register {
            connection_id: self.connection_id,
            node_id: node_id.clone(),
        });
        self.session = Some(Session {
            stream,
            node_id,
            session_id,
        });
        Ok(())
    }

    /// Turns one read's event frames into a batch, with row ids and counters.
    fn build_batch(&mut self, frames: Vec<EventFrame>, read_at: Instant) -> Option<EventBatch> {
        let session = self.session.as_ref()?;
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
        let events = frames
            .into_iter()
            .zip(first_id..)
            .map(|(frame, id)| {
                let event_id = frame.event_id();
                let payload = match frame {
                    EventFrame::Decoded { event, .. } => {
                        match &event.event {
                            Event::Dropped { num_dropped, .. } => {
                                counts.dropped += *num_dropped as i64;
                                metrics.events_dropped.inc_by(*num_dropped);
                            }
                            Event::Unknown { discriminator, .. } => {
                                metrics.unknown_events.inc();
                                log::debug!(
                                    "node {}: unknown event discriminator {discriminator}",
                                    session.node_id
                                );
                            }
                            _ => {}
                        }
                        let json = serde_json::to_string(&event.event)
                            .expect("events always serialise")
                            .into();
                        Payload::Decoded {
                            timestamp: event.timestamp,
                            event: event.event,
                            json,
                        }
                    }
                    EventFrame::Failed { raw, error, .. } => {
                        counts.decode_failures += 1;
                        metrics.decode_failures.inc();
                        log::warn!(
                            "node {} session {}: event {event_id} failed to decode ({} bytes): {error}",
                            session.node_id,
                            session.session_id,
                            raw.len()
                        );
                        Payload::Failed {
                            raw,
                            error: error.to_string(),
                        }
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
        Some(EventBatch {
            node_id: session.node_id.clone(),
            session_id: session.session_id,
            read_at,
            events,
            counts,
            gaps: Vec::new(),
        })
    }
}

impl Actor for Connection {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let socket = self.socket.take().expect("started once");
        let codec = FrameCodec::new(self.ingest.config.max_frame_bytes);
        let read_batch = MAX_READ_BATCH.min(self.ingest.budget.capacity());
        // ready_chunks yields every frame already buffered, i.e. all the frames of one read.
        ctx.add_stream(FramedRead::new(socket, codec).ready_chunks(read_batch));
        ctx.run_later(self.ingest.config.handshake_timeout(), |act, ctx| {
            if act.session.is_none() {
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
        let node_id = self.session.as_ref().map(|s| s.node_id.clone());
        if let Some(session) = self.session.take() {
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
            node_id,
        });
    }
}

impl StreamHandler<Vec<Result<Bytes, FrameError>>> for Connection {
    fn handle(&mut self, frames: Vec<Result<Bytes, FrameError>>, ctx: &mut Context<Self>) {
        let read_at = Instant::now();
        self.last_read = read_at;
        let mut decoded = Vec::with_capacity(frames.len());
        let mut fatal = None;
        for frame in frames {
            match (frame, &mut self.session) {
                (Ok(body), Some(session)) => decoded.push(session.stream.next(body)),
                (Ok(body), None) => {
                    if let Err(reason) = self.handshake(&body) {
                        log::warn!("refusing node connection from {}: {reason}", self.peer);
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
        let batch = self.build_batch(decoded, read_at);
        if batch.is_none() && fatal.is_none() {
            return;
        }
        let budget = self.ingest.budget.clone();
        let rate_limiter = self.ingest.rate_limiter.clone();
        let hand_on = async move {
            if let Some(batch) = batch {
                budget.acquire(batch.events.len()).await;
                rate_limiter.do_send(batch);
            }
        };
        // Policy: wait. While the queue is full this actor is suspended, its socket is not read,
        // and TCP pushes back on the node. A fatal frame closes the connection only after the
        // batch is handed on, in the same wait: actix runs queued waits newest first, and
        // stopping abandons a wait that has not finished.
        ctx.wait(hand_on.into_actor(self).map(move |_, act, ctx| {
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

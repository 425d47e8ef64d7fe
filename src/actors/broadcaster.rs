//! The live stream's hub: takes every admitted, decoded event from the rate limiter, keeps the
//! most recent ones for `GetRecentEvents`, and fans each out to the WebSocket sessions whose
//! filter matches. It runs on an arbiter (thread) of its own.
//!
//! Memory is bounded on both of its edges, and neither can slow ingest down:
//! - rate_limiter → broadcaster ([`LiveFeed::offer`]): at most `broadcast_queue_bytes` of events
//!   in flight. Past that the rate limiter leaves events out of the live stream (they are still
//!   stored) and counts them: it never waits for the broadcaster.
//! - broadcaster → session: each session's queue holds at most `ws_client_queue_bytes`. A session
//!   over it has a client that does not keep up: it is evicted and counted. Actix stops polling a
//!   response body, and with it the session actor, while the socket takes no more bytes; so a
//!   session that has not closed itself [`EVICTION_GRACE`] after its eviction (or whose heartbeat
//!   stopped ticking) is frozen on a full socket, and its socket is shut down from here.

use std::collections::{HashMap, VecDeque};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use serde::Serialize;
use tokio::sync::mpsc;

use super::{EventBatch, Payload};
use crate::config::Config;
use crate::metrics::Metrics;

/// How many recent events `GetRecentEvents` can return.
pub const RECENT_EVENTS: usize = 10_000;
/// The recent events also stay under this many bytes, however large the events are.
const RECENT_MAX_BYTES: usize = 64 << 20;
/// Bookkeeping per queued event besides its JSON, as the byte budgets count it.
const EVENT_OVERHEAD: usize = 128;
/// How long an evicted session has to close itself before its socket is shut down.
pub const EVICTION_GRACE: Duration = Duration::from_secs(1);
/// The rate limiter hands on what it collected at least every this many bytes (or a quarter of a
/// session's queue bound, if less), so one publish stays well below that bound: a burst must not
/// look like a client that is behind.
const FEED_FLUSH_BYTES: usize = 256 << 10;
/// Events per item of a session's queue. A session takes up to 16 items per turn and they leave
/// its byte count as soon as taken, so this bounds what is formatted and not yet counted.
const LIVE_BATCH_EVENTS: usize = 32;

/// One decoded event as the live stream carries it.
#[derive(Debug)]
pub struct LiveEvent {
    /// The row id: the same one the REST API returns for this event.
    pub id: i64,
    pub node_id: Arc<str>,
    pub event_id: u64,
    pub discriminator: u8,
    /// The node's JIP-3 timestamp.
    pub timestamp: u64,
    /// The event's externally tagged JSON form, shared with the DB writer's copy.
    pub json: Arc<str>,
    /// When the frame was read, for `latency_ms` and the broadcast-latency histogram.
    pub read_at: Instant,
}

impl LiveEvent {
    /// The bytes this event holds in a queue, as the budgets count them.
    pub fn cost(&self) -> usize {
        cost_of(&self.json)
    }
}

fn cost_of(json: &str) -> usize {
    json.len() + EVENT_OVERHEAD
}

/// Which events a session wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    All,
    Node(String),
}

impl Filter {
    pub fn matches(&self, event: &LiveEvent) -> bool {
        match self {
            Filter::All => true,
            Filter::Node(node_id) => *event.node_id == **node_id,
        }
    }
}

/// The rate limiter's end of the rate_limiter → broadcaster edge (see the module comment).
/// Offered events collect until [`LiveFeed::flush`], so the broadcaster (another thread) is woken
/// once per burst of reads rather than once per read.
pub struct LiveFeed {
    broadcaster: Addr<Broadcaster>,
    /// Bytes handed to the broadcaster and not yet taken by it.
    in_flight: Arc<AtomicUsize>,
    capacity: usize,
    shedding: bool,
    pending: Vec<LiveEvent>,
    pending_cost: usize,
    flush_bytes: usize,
    metrics: Arc<Metrics>,
}

impl LiveFeed {
    /// Offers a batch's decoded events to the live stream; decode failures are not broadcast.
    /// Never waits: if the broadcaster is `capacity` bytes behind, the events are shed and
    /// counted.
    pub fn offer(&mut self, batch: &EventBatch) {
        let decoded = || {
            batch.events.iter().filter_map(|e| match &e.payload {
                Payload::Decoded {
                    timestamp,
                    event,
                    json,
                } => Some((e, *timestamp, event.discriminator(), json)),
                Payload::Failed { .. } => None,
            })
        };
        let (count, cost) = decoded().fold((0, 0), |(n, bytes), (.., json)| {
            (n + 1, bytes + cost_of(json))
        });
        if count == 0 {
            return;
        }
        // Only this feed adds to `in_flight`, so the check cannot be overtaken by another sender.
        if self.in_flight.load(Ordering::Acquire) + self.pending_cost + cost > self.capacity {
            self.metrics.broadcaster_events_shed.inc_by(count);
            if !self.shedding {
                self.shedding = true;
                log::warn!(
                    "the live stream is behind ({} bytes queued): events are stored but left out \
                     of the WebSocket stream until it catches up",
                    self.in_flight.load(Ordering::Relaxed)
                );
            }
            return;
        }
        if self.shedding {
            self.shedding = false;
            log::info!("the live stream caught up; broadcasting every event again");
        }
        self.pending.extend(
            decoded().map(|(e, timestamp, discriminator, json)| LiveEvent {
                id: e.id,
                node_id: batch.node_id.clone(),
                event_id: e.event_id,
                discriminator,
                timestamp,
                json: json.clone(),
                read_at: batch.read_at,
            }),
        );
        self.pending_cost += cost;
        if self.pending_cost >= self.flush_bytes {
            self.flush();
        }
    }

    /// Hands what was offered since the last flush to the broadcaster.
    pub fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let cost = std::mem::take(&mut self.pending_cost);
        self.in_flight.fetch_add(cost, Ordering::AcqRel);
        // Policy: bounded by `in_flight` above, so the unbounded do_send cannot grow without limit.
        self.broadcaster.do_send(Publish {
            events: std::mem::take(&mut self.pending),
            cost,
        });
    }
}

/// What a session and the broadcaster share.
pub struct SessionLink {
    /// Bytes in the session's queue.
    queued_bytes: AtomicUsize,
    /// Set by the broadcaster when it drops the session for being too slow.
    evicted: AtomicBool,
    /// Set by the session when its actor stops.
    stopped: AtomicBool,
    /// When the session's heartbeat last ran, in ms after `created`.
    alive_ms: AtomicU64,
    created: Instant,
    /// A duplicate of the connection's socket descriptor, to shut a frozen session's socket down.
    socket: Option<Arc<OwnedFd>>,
}

impl SessionLink {
    pub fn new(socket: Option<Arc<OwnedFd>>) -> Arc<SessionLink> {
        Arc::new(SessionLink {
            queued_bytes: AtomicUsize::new(0),
            evicted: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            alive_ms: AtomicU64::new(0),
            created: Instant::now(),
            socket,
        })
    }

    /// The session took `event` off its queue.
    pub fn took(&self, event: &LiveEvent) {
        self.queued_bytes.fetch_sub(event.cost(), Ordering::AcqRel);
    }

    /// The session's actor is running (called from its heartbeat).
    pub fn mark_alive(&self) {
        self.alive_ms
            .store(self.created.elapsed().as_millis() as u64, Ordering::Release);
    }

    pub fn mark_stopped(&self) {
        self.stopped.store(true, Ordering::Release);
    }

    pub fn was_evicted(&self) -> bool {
        self.evicted.load(Ordering::Acquire)
    }

    fn since_alive(&self) -> Duration {
        let alive = Duration::from_millis(self.alive_ms.load(Ordering::Acquire));
        self.created.elapsed().saturating_sub(alive)
    }

    /// Shuts the connection's socket down: the HTTP dispatcher then fails its pending write,
    /// drops the connection, and the session actor stops.
    fn shut_down_socket(&self) {
        let Some(fd) = &self.socket else {
            log::warn!(
                "a frozen WebSocket session has no socket handle; it stays until its peer goes"
            );
            return;
        };
        // shutdown(2) acts on the socket, which this duplicate descriptor shares.
        match fd.try_clone().map(std::net::TcpStream::from) {
            Ok(socket) => {
                if let Err(e) = socket.shutdown(std::net::Shutdown::Both) {
                    log::debug!("shutting down a WebSocket socket: {e}");
                }
            }
            Err(e) => log::warn!("cannot shut down a frozen WebSocket session's socket: {e}"),
        }
    }
}

/// Events of one publish that match one session's filter, up to [`LIVE_BATCH_EVENTS`]: one queue
/// item, one wake-up of the session.
pub type LiveBatch = Vec<Arc<LiveEvent>>;

struct Subscriber {
    /// `None` after `Unsubscribe`: the session stays, without live events.
    filter: Option<Filter>,
    queue: mpsc::UnboundedSender<LiveBatch>,
    link: Arc<SessionLink>,
}

/// Counters shown in the WebSocket `connected` and `stats` messages and in the health check.
#[derive(Debug, Clone, Serialize, MessageResponse)]
pub struct BroadcasterStats {
    pub subscribers: usize,
    pub total_broadcast: u64,
    pub events_shed: u64,
    pub slow_clients_disconnected: u64,
    pub recent_events: usize,
}

pub struct Broadcaster {
    recent: VecDeque<Arc<LiveEvent>>,
    recent_bytes: usize,
    sessions: HashMap<u64, Subscriber>,
    next_session: u64,
    in_flight: Arc<AtomicUsize>,
    client_queue_bytes: usize,
    /// A session whose heartbeat has not run for this long is frozen.
    stall_after: Duration,
    sweep_every: Duration,
    metrics: Arc<Metrics>,
}

impl Broadcaster {
    fn new(config: &Config, metrics: Arc<Metrics>) -> Broadcaster {
        Broadcaster {
            recent: VecDeque::with_capacity(RECENT_EVENTS),
            recent_bytes: 0,
            sessions: HashMap::new(),
            next_session: 0,
            in_flight: Arc::new(AtomicUsize::new(0)),
            client_queue_bytes: config.ws_client_queue_bytes,
            stall_after: config.ws_client_timeout() + config.ws_heartbeat(),
            sweep_every: config.ws_heartbeat(),
            metrics,
        }
    }

    /// Starts the broadcaster on `arbiter`; returns it and the rate limiter's feed into it.
    pub fn spawn(
        config: &Config,
        metrics: Arc<Metrics>,
        arbiter: &ArbiterHandle,
    ) -> (Addr<Broadcaster>, LiveFeed) {
        let broadcaster = Broadcaster::new(config, metrics.clone());
        let in_flight = broadcaster.in_flight.clone();
        let addr = Broadcaster::start_in_arbiter(arbiter, move |_| broadcaster);
        let feed = LiveFeed {
            broadcaster: addr.clone(),
            in_flight,
            capacity: config.broadcast_queue_bytes,
            shedding: false,
            pending: Vec::new(),
            pending_cost: 0,
            flush_bytes: FEED_FLUSH_BYTES.min(config.ws_client_queue_bytes / 4),
            metrics,
        };
        (addr, feed)
    }

    fn remember(&mut self, event: Arc<LiveEvent>) {
        self.recent_bytes += event.cost();
        self.recent.push_back(event);
        while self.recent.len() > RECENT_EVENTS || self.recent_bytes > RECENT_MAX_BYTES {
            match self.recent.pop_front() {
                Some(old) => self.recent_bytes -= old.cost(),
                None => break,
            }
        }
    }

    fn stats(&self) -> BroadcasterStats {
        BroadcasterStats {
            subscribers: self.sessions.len(),
            total_broadcast: self.metrics.broadcaster_total_broadcast.get(),
            events_shed: self.metrics.broadcaster_events_shed.get(),
            slow_clients_disconnected: self.metrics.ws_slow_clients_disconnected.get(),
            recent_events: self.recent.len(),
        }
    }

    fn update_gauge(&self) {
        self.metrics
            .broadcaster_subscribers
            .set(self.sessions.len() as i64);
    }

    /// Drops a session whose client does not keep up. Its queue closes: a session still running
    /// sends what is queued, closes with a reason and stops; a frozen one has its socket shut
    /// down after the grace period.
    fn evict(&mut self, session: u64, why: &str, ctx: &mut Context<Self>) {
        let Some(subscriber) = self.sessions.remove(&session) else {
            return;
        };
        log::warn!("disconnecting WebSocket client {session}: {why}");
        self.metrics.ws_slow_clients_disconnected.inc();
        let link = subscriber.link;
        link.evicted.store(true, Ordering::Release);
        drop(subscriber.queue);
        ctx.run_later(EVICTION_GRACE, move |_, _| {
            if !link.stopped.load(Ordering::Acquire) {
                log::warn!(
                    "WebSocket client {session} is stuck on a full socket; shutting it down"
                );
                link.shut_down_socket();
            }
        });
        self.update_gauge();
    }

    /// Finds sessions whose actor has stopped running (frozen on a full socket).
    fn sweep(&mut self, ctx: &mut Context<Self>) {
        let stalled: Vec<u64> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.link.since_alive() > self.stall_after)
            .map(|(id, _)| *id)
            .collect();
        for session in stalled {
            self.evict(
                session,
                "its session has not run for a whole client timeout",
                ctx,
            );
        }
    }
}

impl Actor for Broadcaster {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.sweep_every, |act, ctx| act.sweep(ctx));
    }
}

/// Admitted events from the rate limiter, through [`LiveFeed::offer`].
#[derive(Message)]
#[rtype(result = "()")]
pub struct Publish {
    events: Vec<LiveEvent>,
    cost: usize,
}

impl Handler<Publish> for Broadcaster {
    type Result = ();

    fn handle(&mut self, publish: Publish, ctx: &mut Context<Self>) {
        self.in_flight.fetch_sub(publish.cost, Ordering::AcqRel);
        self.metrics
            .broadcaster_total_broadcast
            .inc_by(publish.events.len() as u64);
        let mut too_slow = Vec::new();
        let mut gone = Vec::new();
        let events: Vec<Arc<LiveEvent>> = publish.events.into_iter().map(Arc::new).collect();
        for (id, subscriber) in &self.sessions {
            let Some(filter) = &subscriber.filter else {
                continue;
            };
            let mut matching = events.iter().filter(|e| filter.matches(e)).peekable();
            while matching.peek().is_some() {
                let batch: LiveBatch = matching.by_ref().take(LIVE_BATCH_EVENTS).cloned().collect();
                let cost: usize = batch.iter().map(|e| e.cost()).sum();
                let queued = subscriber.link.queued_bytes.load(Ordering::Acquire);
                if queued + cost > self.client_queue_bytes {
                    too_slow.push(*id);
                    break;
                }
                subscriber
                    .link
                    .queued_bytes
                    .fetch_add(cost, Ordering::AcqRel);
                if subscriber.queue.send(batch).is_err() {
                    gone.push(*id);
                    break;
                }
            }
        }
        for event in events {
            self.remember(event);
        }
        for id in gone {
            self.sessions.remove(&id);
        }
        let limit = self.client_queue_bytes;
        for id in too_slow {
            self.evict(
                id,
                &format!("it did not read fast enough (more than {limit} bytes of events queued)"),
                ctx,
            );
        }
        self.update_gauge();
    }
}

/// A WebSocket session opened; it starts subscribed to all events.
#[derive(Message)]
#[rtype(result = "JoinAck")]
pub struct Join {
    pub queue: mpsc::UnboundedSender<LiveBatch>,
    pub link: Arc<SessionLink>,
}

#[derive(MessageResponse)]
pub struct JoinAck {
    pub session: u64,
    pub stats: BroadcasterStats,
}

impl Handler<Join> for Broadcaster {
    type Result = JoinAck;

    fn handle(&mut self, join: Join, _ctx: &mut Context<Self>) -> JoinAck {
        let session = self.next_session;
        self.next_session += 1;
        join.link.mark_alive();
        self.sessions.insert(
            session,
            Subscriber {
                filter: Some(Filter::All),
                queue: join.queue,
                link: join.link,
            },
        );
        self.update_gauge();
        JoinAck {
            session,
            stats: self.stats(),
        }
    }
}

/// A session's new filter (`None`: no live events).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetFilter {
    pub session: u64,
    pub filter: Option<Filter>,
}

impl Handler<SetFilter> for Broadcaster {
    type Result = ();

    fn handle(&mut self, msg: SetFilter, _ctx: &mut Context<Self>) {
        if let Some(subscriber) = self.sessions.get_mut(&msg.session) {
            subscriber.filter = msg.filter;
        }
    }
}

/// Up to `limit` of the most recent events, newest first; only one node's if the session
/// is subscribed to a node.
#[derive(Message)]
#[rtype(result = "Vec<Arc<LiveEvent>>")]
pub struct Recent {
    pub session: u64,
    pub limit: usize,
}

impl Handler<Recent> for Broadcaster {
    type Result = Vec<Arc<LiveEvent>>;

    fn handle(&mut self, msg: Recent, _ctx: &mut Context<Self>) -> Vec<Arc<LiveEvent>> {
        let node = match self
            .sessions
            .get(&msg.session)
            .and_then(|s| s.filter.as_ref())
        {
            Some(filter @ Filter::Node(_)) => Some(filter),
            _ => None,
        };
        self.recent
            .iter()
            .rev()
            .filter(|e| node.is_none_or(|f| f.matches(e)))
            .take(msg.limit)
            .cloned()
            .collect()
    }
}

/// A session stopped.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Leave {
    pub session: u64,
}

impl Handler<Leave> for Broadcaster {
    type Result = ();

    fn handle(&mut self, msg: Leave, _ctx: &mut Context<Self>) {
        if self.sessions.remove(&msg.session).is_some() {
            self.update_gauge();
        }
    }
}

#[derive(Message)]
#[rtype(result = "BroadcasterStats")]
pub struct GetStats;

impl Handler<GetStats> for Broadcaster {
    type Result = BroadcasterStats;

    fn handle(&mut self, _msg: GetStats, _ctx: &mut Context<Self>) -> BroadcasterStats {
        self.stats()
    }
}

/// Closes every session (each sends its client a "going away" close frame). Sent on shutdown.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CloseAll;

impl Handler<CloseAll> for Broadcaster {
    type Result = ();

    fn handle(&mut self, _msg: CloseAll, _ctx: &mut Context<Self>) {
        self.sessions.clear();
        self.update_gauge();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(node: &str, json: &str) -> LiveEvent {
        LiveEvent {
            id: 1,
            node_id: node.into(),
            event_id: 0,
            discriminator: 11,
            timestamp: 0,
            json: json.into(),
            read_at: Instant::now(),
        }
    }

    #[test]
    fn filters_match_their_node_only() {
        let a = event("aa", "{}");
        assert!(Filter::All.matches(&a));
        assert!(Filter::Node("aa".into()).matches(&a));
        assert!(!Filter::Node("bb".into()).matches(&a));
    }

    #[test]
    fn recent_events_stay_under_their_byte_bound() {
        let mut b = Broadcaster::new(&Config::default(), Arc::new(Metrics::new()));
        let big = "x".repeat(1 << 20);
        for _ in 0..100 {
            b.remember(Arc::new(event("aa", &big)));
        }
        assert!(b.recent_bytes <= RECENT_MAX_BYTES);
        assert_eq!(
            b.recent.len(),
            RECENT_MAX_BYTES / ((1 << 20) + EVENT_OVERHEAD)
        );
        for _ in 0..2 * RECENT_EVENTS {
            b.remember(Arc::new(event("aa", "{}")));
        }
        assert_eq!(b.recent.len(), RECENT_EVENTS);
    }
}

//! The live stream's hub actor; the wing's overview is in `live`.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::mpsc;

use super::feed::LiveFeed;
use crate::config::Config;
use crate::messages::{
    BroadcasterStats, CloseAll, Filter, GetStats, Join, JoinAck, Leave, LiveBatch, LiveEvent,
    LiveSessions, Recent, SessionLink, SetFilter,
};
use crate::metrics::Metrics;

/// How many recent events `GetRecentEvents` can return.
pub const RECENT_EVENTS: usize = 10_000;
/// The recent events also stay under this many bytes, however large the events are.
const RECENT_MAX_BYTES: usize = 64 << 20;
/// How long an evicted session has to close itself before its socket is shut down.
pub const EVICTION_GRACE: Duration = Duration::from_secs(1);
/// Events per item of a session's queue. A session takes up to 16 items per turn and they leave
/// its byte count as soon as taken, so this bounds what is formatted and not yet counted.
const LIVE_BATCH_EVENTS: usize = 32;

struct Subscriber {
    /// `None` after `Unsubscribe`: the session stays, without live events.
    filter: Option<Filter>,
    queue: mpsc::UnboundedSender<LiveBatch>,
    link: Arc<SessionLink>,
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
        let feed = LiveFeed::new(addr.clone().recipient(), in_flight, config, metrics);
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
        link.mark_evicted();
        drop(subscriber.queue);
        ctx.run_later(EVICTION_GRACE, move |_, _| {
            if !link.has_stopped() {
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

/// What the API holds of the broadcaster: one `Recipient` per message its sessions send.
pub fn sessions_of(broadcaster: &Addr<Broadcaster>) -> LiveSessions {
    LiveSessions {
        join: broadcaster.clone().recipient(),
        set_filter: broadcaster.clone().recipient(),
        recent: broadcaster.clone().recipient(),
        leave: broadcaster.clone().recipient(),
        stats: broadcaster.clone().recipient(),
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
    pub(super) events: Vec<LiveEvent>,
    pub(super) cost: usize,
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
            let mut matching = events
                .iter()
                .filter(|e| filter.matches(e))
                // The JSON is made here, once, for every session that gets the event: a session
                // then only copies it, so its queue drains as fast as its client reads.
                .inspect(|e| {
                    e.json();
                })
                .peekable();
            while matching.peek().is_some() {
                let batch: LiveBatch = matching.by_ref().take(LIVE_BATCH_EVENTS).cloned().collect();
                let cost: usize = batch.iter().map(|e| e.cost()).sum();
                let queued = subscriber.link.queued_bytes();
                if queued + cost > self.client_queue_bytes {
                    too_slow.push(*id);
                    break;
                }
                subscriber.link.queued(cost);
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

impl Handler<SetFilter> for Broadcaster {
    type Result = ();

    fn handle(&mut self, msg: SetFilter, _ctx: &mut Context<Self>) {
        if let Some(subscriber) = self.sessions.get_mut(&msg.session) {
            subscriber.filter = msg.filter;
        }
    }
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

impl Handler<Leave> for Broadcaster {
    type Result = ();

    fn handle(&mut self, msg: Leave, _ctx: &mut Context<Self>) {
        if self.sessions.remove(&msg.session).is_some() {
            self.update_gauge();
        }
    }
}

impl Handler<GetStats> for Broadcaster {
    type Result = BroadcasterStats;

    fn handle(&mut self, _msg: GetStats, _ctx: &mut Context<Self>) -> BroadcasterStats {
        self.stats()
    }
}

impl Handler<CloseAll> for Broadcaster {
    type Result = ();

    fn handle(&mut self, _msg: CloseAll, _ctx: &mut Context<Self>) {
        self.sessions.clear();
        self.update_gauge();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    /// An undefined event (its fields are kept as they are) of `size` bytes.
    fn event(node: &str, size: usize) -> LiveEvent {
        LiveEvent {
            id: 1,
            node_id: node.into(),
            event_id: 0,
            discriminator: 250,
            timestamp: 0,
            fields: vec![0; size].into(),
            dialect: crate::jip3::Dialect::v1(2),
            json: Default::default(),
            read_at: Instant::now(),
        }
    }

    #[test]
    fn filters_match_their_node_only() {
        let a = event("aa", 0);
        assert!(Filter::All.matches(&a));
        assert!(Filter::Node("aa".into()).matches(&a));
        assert!(!Filter::Node("bb".into()).matches(&a));
    }

    #[test]
    fn recent_events_stay_under_their_byte_bound() {
        let mut b = Broadcaster::new(&Config::default(), Arc::new(Metrics::new()));
        for _ in 0..100 {
            b.remember(Arc::new(event("aa", 1 << 20)));
        }
        assert!(b.recent_bytes <= RECENT_MAX_BYTES);
        assert_eq!(
            b.recent.len(),
            RECENT_MAX_BYTES / event("aa", 1 << 20).cost()
        );
        for _ in 0..2 * RECENT_EVENTS {
            b.remember(Arc::new(event("aa", 0)));
        }
        assert_eq!(b.recent.len(), RECENT_EVENTS);
    }
}

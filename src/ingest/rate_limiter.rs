//! A token bucket per node. Events over the limit are not stored, but never vanish silently: they
//! are counted per session and node, and each run of them becomes a gap record (which event IDs,
//! which times, how many).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::{DateTime, Utc};

use super::budget::QueueBudget;
use crate::jip3::{Dialect, ProtocolVersion};
use crate::live::feed::LiveFeed;
use crate::messages::{EventBatch, EventBatches, IngestEvent, SessionEnded, WriterInbox};
use crate::metrics::Metrics;
use crate::store::models::RateLimitGap;
use crate::store::write::SessionCounts;

/// A gap that stays open this long is written as it stands (a node permanently over its limit
/// still shows up promptly); the run goes on in a new gap record.
const GAP_FLUSH_AFTER: Duration = Duration::from_secs(1);
/// Buckets of nodes silent this long are forgotten (they would be full again anyway).
const BUCKET_IDLE: Duration = Duration::from_secs(600);
/// At most this much time held back by the server is credited to a node at once: a backlog from
/// a longer hold cannot be in the queue or the kernel's buffers anyway.
const MAX_HELD_CREDIT: Duration = BUCKET_IDLE;

struct Bucket {
    tokens: f64,
    /// Events the node may send above its limit because the server held it back (its socket
    /// unread while the queue was full): what it sent meanwhile arrives as one burst, and that
    /// burst is the server's doing, not the node's.
    held_credit: f64,
    refilled_at: Instant,
}

struct OpenGap {
    gap: RateLimitGap,
    opened_at: Instant,
}

pub struct RateLimiter {
    per_sec: f64,
    burst: f64,
    buckets: HashMap<Arc<str>, Bucket>,
    /// session_id → the run of rate-limited events not yet written as a gap record.
    open_gaps: HashMap<i64, OpenGap>,
    writer: WriterInbox,
    live: LiveFeed,
    /// Admitted batches not yet handed to the writer, and how many events they hold: see
    /// [`HANDOFF_EVERY`].
    pending: Vec<EventBatch>,
    pending_events: usize,
    budget: Arc<QueueBudget>,
    metrics: Arc<Metrics>,
}

/// Admitted batches go on to the DB writer and the broadcaster (both on other threads) at most
/// this long after the first of them arrived, all in one message each. Nodes that write one
/// event at a time make one read per event: handing each on by itself cost two cross-thread
/// wake-ups per event, the largest part of such a client's cost. The writer itself waits up to
/// `flush_interval_ms` (20 ms) to fill a batch, so this adds no wait to a write.
const HANDOFF_EVERY: Duration = Duration::from_millis(2);
/// ... or as soon as this many events are pending, so a busy server hands on without waiting.
const HANDOFF_EVENTS: usize = 512;

impl RateLimiter {
    /// `per_sec` = 0 turns limiting off.
    pub fn new(
        per_sec: u32,
        burst: u32,
        writer: WriterInbox,
        live: LiveFeed,
        budget: Arc<QueueBudget>,
        metrics: Arc<Metrics>,
    ) -> Self {
        RateLimiter {
            per_sec: f64::from(per_sec),
            burst: f64::from(burst.max(1)),
            buckets: HashMap::new(),
            open_gaps: HashMap::new(),
            writer,
            live,
            pending: Vec::new(),
            pending_events: 0,
            budget,
            metrics,
        }
    }

    /// How many of `wanted` events the bucket admits at `now` (all of them, or the first few:
    /// within one read the clock does not move, so once one event is refused the rest are too),
    /// after crediting `held_back`, the time the server kept the node waiting.
    fn admit(
        bucket: &mut Bucket,
        per_sec: f64,
        burst: f64,
        now: Instant,
        held_back: Duration,
        wanted: usize,
    ) -> usize {
        let elapsed = now
            .saturating_duration_since(bucket.refilled_at)
            .as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_sec).min(burst);
        bucket.refilled_at = bucket.refilled_at.max(now);
        bucket.held_credit = (bucket.held_credit + held_back.as_secs_f64() * per_sec)
            .min(MAX_HELD_CREDIT.as_secs_f64() * per_sec);
        let from_tokens = (bucket.tokens.max(0.0) as usize).min(wanted);
        bucket.tokens -= from_tokens as f64;
        let from_credit = (bucket.held_credit as usize).min(wanted - from_tokens);
        bucket.held_credit -= from_credit as f64;
        from_tokens + from_credit
    }

    fn extend_gap(&mut self, node_id: &str, session_id: i64, event: &IngestEvent, now: Instant) {
        let event_id = event.event_id as i64;
        let time: DateTime<Utc> = event.event_time();
        let open = self.open_gaps.entry(session_id).or_insert_with(|| OpenGap {
            gap: RateLimitGap {
                session_id,
                first_event_id: event_id,
                node_id: node_id.to_owned(),
                last_event_id: event_id,
                first_timestamp: time,
                last_timestamp: time,
                event_count: 0,
            },
            opened_at: now,
        });
        open.gap.last_event_id = event_id;
        open.gap.last_timestamp = time;
        open.gap.event_count += 1;
    }

    /// Decides a whole read at once: one bucket lookup per batch, and the admitted events stay
    /// where they are (an event is a few hundred bytes to move).
    fn limit(&mut self, batch: &mut EventBatch) {
        if batch.events.is_empty() {
            return;
        }
        // The read's own time, not this actor's: a wait in its mailbox is the server's too.
        let now = batch.read_at;
        let (per_sec, burst) = (self.per_sec, self.burst);
        let bucket = self.buckets.entry(batch.node_id.clone()).or_insert(Bucket {
            tokens: burst,
            held_credit: 0.0,
            refilled_at: now,
        });
        let admitted = Self::admit(
            bucket,
            per_sec,
            burst,
            now,
            batch.held_back,
            batch.events.len(),
        );
        if admitted > 0 {
            if let Some(open) = self.open_gaps.remove(&batch.session_id) {
                batch.gaps.push(open.gap);
            }
        }
        if admitted == batch.events.len() {
            return;
        }
        let refused = batch.events.split_off(admitted);
        for event in &refused {
            self.extend_gap(&batch.node_id, batch.session_id, event, now);
        }
        batch.counts.rate_limited += refused.len() as i64;
        self.metrics
            .events_rate_limited
            .inc_by(refused.len() as u64);
        self.budget.release(&refused);
    }

    /// Hands the pending batches on. Policy: the writer is never behind by more than the queue
    /// budget (connections took their permits before sending), so the unbounded do_send cannot
    /// grow without limit.
    fn flush(&mut self) {
        self.live.flush();
        self.pending_events = 0;
        if self.pending.is_empty() {
            return;
        }
        let handed_at = Instant::now();
        for batch in self.pending.iter().filter(|b| !b.events.is_empty()) {
            self.metrics
                .ingest_latency
                .observe(handed_at.duration_since(batch.read_at).as_secs_f64());
        }
        self.writer.batches.do_send(EventBatches {
            batches: std::mem::take(&mut self.pending),
            handed_at,
        });
    }

    /// Hands a gap record to the writer on its own, after what is pending (writes stay in order).
    fn send_gap(&mut self, gap: RateLimitGap) {
        self.flush();
        let gap = EventBatch {
            node_id: gap.node_id.as_str().into(),
            session_id: gap.session_id,
            // Carries no events, so nothing is read in it.
            dialect: Dialect {
                version: ProtocolVersion::V1,
                core_count: None,
            },
            read_at: Instant::now(),
            held_back: Duration::ZERO,
            events: Vec::new(),
            counts: SessionCounts::default(),
            undefined: Vec::new(),
            gaps: vec![gap],
            skew: None,
        };
        self.writer.batches.do_send(EventBatches {
            batches: vec![gap],
            handed_at: Instant::now(),
        });
    }

    /// Writes gaps that have been open a while, so a node that never drops below its limit still
    /// shows its gaps promptly.
    fn flush_old_gaps(&mut self) {
        let now = Instant::now();
        let old: Vec<i64> = self
            .open_gaps
            .iter()
            .filter(|(_, g)| now.duration_since(g.opened_at) >= GAP_FLUSH_AFTER)
            .map(|(session, _)| *session)
            .collect();
        for session_id in old {
            if let Some(open) = self.open_gaps.remove(&session_id) {
                self.send_gap(open.gap);
            }
        }
        self.buckets
            .retain(|_, b| now.duration_since(b.refilled_at) < BUCKET_IDLE);
    }
}

impl Actor for RateLimiter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if self.per_sec > 0.0 {
            ctx.run_interval(GAP_FLUSH_AFTER, |act, _| act.flush_old_gaps());
        }
    }
}

impl Handler<EventBatch> for RateLimiter {
    type Result = ();

    fn handle(&mut self, mut batch: EventBatch, ctx: &mut Context<Self>) {
        if self.per_sec > 0.0 {
            self.limit(&mut batch);
        }
        // Every admitted event passes here, before its write: the live stream shows it first.
        // Policy: never waits; bounded in bytes, shed and counted when the broadcaster is behind.
        self.live.offer(&batch);
        if self.pending.is_empty() {
            ctx.run_later(HANDOFF_EVERY, |act, _| act.flush());
        }
        self.pending_events += batch.events.len();
        self.pending.push(batch);
        if self.pending_events >= HANDOFF_EVENTS {
            self.flush();
        }
    }
}

impl Handler<SessionEnded> for RateLimiter {
    type Result = ();

    fn handle(&mut self, ended: SessionEnded, _ctx: &mut Context<Self>) {
        if let Some(open) = self.open_gaps.remove(&ended.session_id) {
            self.send_gap(open.gap);
        }
        // After the session's last batches: the writer records the end in order.
        self.flush();
        self.writer.session_ends.do_send(ended);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_is_admitted_up_to_the_whole_tokens_in_the_bucket() {
        let start = Instant::now();
        let mut bucket = Bucket {
            tokens: 2.7,
            held_credit: 0.0,
            refilled_at: start,
        };
        let none = Duration::ZERO;
        assert_eq!(
            RateLimiter::admit(&mut bucket, 10.0, 50.0, start, none, 5),
            2
        );
        assert!((bucket.tokens - 0.7).abs() < 1e-9);
        assert_eq!(
            RateLimiter::admit(&mut bucket, 10.0, 50.0, start, none, 5),
            0
        );
        // 0.35 s at 10/s refills 3.5 tokens: 4.2 in all, so 4 of 5 pass.
        let later = start + Duration::from_millis(350);
        assert_eq!(
            RateLimiter::admit(&mut bucket, 10.0, 50.0, later, none, 5),
            4
        );
        // The bucket never holds more than its burst.
        let much_later = later + Duration::from_secs(60);
        assert_eq!(
            RateLimiter::admit(&mut bucket, 10.0, 50.0, much_later, none, 80),
            50
        );
    }

    #[test]
    fn time_the_server_held_a_node_back_is_credited_above_the_burst() {
        let start = Instant::now();
        let mut bucket = Bucket {
            tokens: 0.0,
            held_credit: 0.0,
            refilled_at: start,
        };
        // Held 30 s at 10/s: the 300 events sent meanwhile pass, beside the refilled burst.
        let after = start + Duration::from_secs(30);
        let held = Duration::from_secs(30);
        assert_eq!(
            RateLimiter::admit(&mut bucket, 10.0, 50.0, after, held, 500),
            350
        );
        // The credit is spent, not renewed: the next read is limited as usual.
        assert_eq!(
            RateLimiter::admit(&mut bucket, 10.0, 50.0, after, Duration::ZERO, 5),
            0
        );
        // A read that arrives out of order does not refill the bucket backwards.
        let earlier = start + Duration::from_secs(1);
        assert_eq!(
            RateLimiter::admit(&mut bucket, 10.0, 50.0, earlier, Duration::ZERO, 5),
            0
        );
        // The credit is bounded.
        let mut fresh = Bucket {
            tokens: 0.0,
            held_credit: 0.0,
            refilled_at: after,
        };
        let admitted = RateLimiter::admit(
            &mut fresh,
            10.0,
            50.0,
            after,
            Duration::from_secs(86_400),
            usize::MAX,
        );
        assert_eq!(admitted, (MAX_HELD_CREDIT.as_secs() * 10) as usize);
    }
}

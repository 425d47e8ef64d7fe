//! The rate limiter's end of the rate_limiter → broadcaster edge: events offered collect until
//! [`LiveFeed::flush`] (with the writer's hand-off, at most every 2 ms), so the broadcaster
//! (another thread) is woken once for many reads, and past `broadcast_queue_bytes` in flight
//! they are shed and counted, never waited for.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use actix::Recipient;

use super::broadcaster::Publish;
use crate::config::Config;
use crate::messages::{cost_of, EventBatch, LiveEvent, Payload};
use crate::metrics::Metrics;

/// The rate limiter hands on what it collected at least every this many bytes (or a quarter of a
/// session's queue bound, if less), so one publish stays well below that bound: a burst must not
/// look like a client that is behind.
const FEED_FLUSH_BYTES: usize = 256 << 10;

/// The rate limiter's handle on the live stream.
pub struct LiveFeed {
    broadcaster: Recipient<Publish>,
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
    /// A feed into the broadcaster behind `broadcaster`, whose taking of events lowers
    /// `in_flight`.
    pub(super) fn new(
        broadcaster: Recipient<Publish>,
        in_flight: Arc<AtomicUsize>,
        config: &Config,
        metrics: Arc<Metrics>,
    ) -> Self {
        LiveFeed {
            broadcaster,
            in_flight,
            capacity: config.broadcast_queue_bytes,
            shedding: false,
            pending: Vec::new(),
            pending_cost: 0,
            flush_bytes: FEED_FLUSH_BYTES.min(config.ws_client_queue_bytes / 4),
            metrics,
        }
    }

    /// Offers a batch's decoded events to the live stream; decode failures are not broadcast.
    /// Never waits: if the broadcaster is `capacity` bytes behind, the events are shed and
    /// counted.
    pub fn offer(&mut self, batch: &EventBatch) {
        let decoded = || {
            batch.events.iter().filter_map(|e| match &e.payload {
                Payload::Decoded {
                    timestamp,
                    discriminator,
                    fields,
                    ..
                } => Some((e, *timestamp, *discriminator, fields)),
                Payload::Failed { .. } => None,
            })
        };
        let (count, cost) = decoded().fold((0, 0), |(n, bytes), (.., fields)| {
            (n + 1, bytes + cost_of(fields))
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
        self.pending
            .extend(decoded().map(|(e, timestamp, discriminator, fields)| {
                LiveEvent::new(e, batch, timestamp, discriminator, fields)
            }));
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

//! Writes what the rate limiter admitted to PostgreSQL: batches of up to `batch_size` events,
//! or whatever is waiting every `flush_interval`, with up to `pool_size - 1` batches in flight.
//! Failed writes go back to the front of the queue and are retried with exponential backoff and
//! jitter; after `breaker_threshold` failures in a row the circuit opens and the database is
//! probed until it answers. Node/session bookkeeping and rolled-up counters go through a serial
//! lane of their own, in the order they happened.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use rand::Rng;
use tokio::sync::oneshot;

use super::bookkeeping::{self, Bookkeeping, Interrupted, MetaOp, Refused, SetAside, LANE_LIMIT};
use super::health::WriteHealth;
use crate::analytics::blocks::{BlockTracker, Observed};
use crate::analytics::packages::PackageTracker;
use crate::analytics::peers::PeerTracker;
use crate::config::Config;
use crate::ingest::budget::QueueBudget;
use crate::jip3::events::STATUS;
use crate::jip3::types::to_hex;
use crate::jip3::{failures, stored, Dialect};
use crate::log_throttle::LogThrottle;
use crate::messages::{
    Drain, EventBatch, EventBatches, Fact, HandshakeRefused, IngestEvent, NodeConnected, Payload,
    SessionEnded, WriterInbox,
};
use crate::metrics::Metrics;
use crate::store::models::{NewBlock, NewDecodeFailure, RateLimitGap};
use crate::store::node_keys::NodeKeys;
use crate::store::write::{self, BatchWrite, InsertedCount, LatestStatus, Rollup};
use crate::store::{Pool, StoreError};

/// A write job stops growing at this size too (as held in memory; the statement's parameters are
/// about twice as much again, serialised and then buffered for the socket): a job of
/// `batch_size` huge events would be gigabytes. Far above a job of usual events (~0.3 MB).
const MAX_JOB_BYTES: usize = 8 << 20;

struct Settings {
    batch_size: usize,
    flush_interval: Duration,
    max_in_flight: usize,
    probe_interval: Duration,
    rollup_interval: Duration,
    hourly_stats_interval: Duration,
}

pub struct DbWriter {
    pool: Pool,
    keys: Arc<NodeKeys>,
    settings: Settings,
    budget: Arc<QueueBudget>,
    metrics: Arc<Metrics>,
    pending: VecDeque<EventBatch>,
    pending_events: usize,
    /// How many batches at the front of `pending` came back from a failed write: a write that
    /// holds any of them is a retry and must skip rows the failed attempt may have committed.
    retried_batches: usize,
    in_flight: usize,
    meta: Bookkeeping,
    meta_busy: bool,
    rollup: Rollup,
    rollup_queued: bool,
    blocks: BlockTracker,
    packages: PackageTracker,
    peers: PeerTracker,
    /// Sightings the block tracker left out are logged at most once per interval.
    left_out_log: LogThrottle,
    hourly_stats_written_at: Instant,
    health: WriteHealth,
    /// Compactions of the bookkeeping lane are logged at most once per interval.
    set_aside_log: LogThrottle,
    /// Bookkeeping updates the database refused are logged at most once per interval.
    refused_log: LogThrottle,
    retry_timer: Option<SpawnHandle>,
    probing: bool,
    draining: bool,
    drained: Vec<oneshot::Sender<()>>,
}

impl DbWriter {
    pub fn new(
        pool: Pool,
        config: &Config,
        budget: Arc<QueueBudget>,
        metrics: Arc<Metrics>,
    ) -> Self {
        DbWriter {
            pool,
            keys: Arc::default(),
            settings: Settings {
                batch_size: config.batch_size,
                flush_interval: config.flush_interval(),
                // One pooled connection stays free for the serial lane, so node bookkeeping is
                // never starved by event writes.
                max_in_flight: (config.pool_size as usize).saturating_sub(1).max(1),
                probe_interval: Duration::from_millis(config.breaker_probe_ms),
                rollup_interval: config.rollup_interval(),
                hourly_stats_interval: config.hourly_stats_interval(),
            },
            budget,
            metrics,
            pending: VecDeque::new(),
            pending_events: 0,
            retried_batches: 0,
            in_flight: 0,
            meta: Bookkeeping::new(LANE_LIMIT),
            meta_busy: false,
            rollup: Rollup::default(),
            rollup_queued: false,
            blocks: BlockTracker::default(),
            packages: PackageTracker::default(),
            peers: PeerTracker::default(),
            left_out_log: LogThrottle::default(),
            hourly_stats_written_at: Instant::now(),
            health: WriteHealth::new(
                Duration::from_millis(config.retry_base_ms),
                Duration::from_millis(config.retry_max_ms),
                config.breaker_threshold,
            ),
            set_aside_log: LogThrottle::default(),
            refused_log: LogThrottle::default(),
            retry_timer: None,
            probing: false,
            draining: false,
            drained: Vec::new(),
        }
    }

    /// Whether writes may start now; if not, makes sure a timer or a probe will come back.
    fn database_available(&mut self, ctx: &mut Context<Self>) -> bool {
        if self.health.is_open() {
            if !self.probing {
                self.probing = true;
                ctx.run_later(self.settings.probe_interval, |act, ctx| act.probe(ctx));
            }
            return false;
        }
        match self.health.retry_at() {
            Some(at) if at > Instant::now() => {
                if self.retry_timer.is_none() {
                    let delay = at - Instant::now();
                    self.retry_timer = Some(ctx.run_later(delay, |act, ctx| {
                        act.retry_timer = None;
                        act.pump(ctx, true);
                    }));
                }
                false
            }
            _ => true,
        }
    }

    /// Starts as many writes as the pool allows. Partial batches only when `flush_partial`
    /// (the flush timer) or while draining.
    fn pump(&mut self, ctx: &mut Context<Self>, flush_partial: bool) {
        if !self.database_available(ctx) {
            return;
        }
        while self.in_flight < self.settings.max_in_flight && !self.pending.is_empty() {
            let full = self.pending_events >= self.settings.batch_size;
            if !(full || flush_partial || self.draining) {
                break;
            }
            let mut job = Vec::new();
            let mut events = 0;
            let mut bytes = 0;
            let mut retry = false;
            while let Some(batch) = self.pending.pop_front() {
                if self.retried_batches > 0 {
                    self.retried_batches -= 1;
                    retry = true;
                }
                events += batch.events.len();
                bytes += self.budget.charge(&batch.events).bytes;
                job.push(batch);
                if events >= self.settings.batch_size || bytes >= MAX_JOB_BYTES {
                    break;
                }
            }
            self.pending_events -= events;
            self.start_write(job, retry, ctx);
        }
        self.pump_meta(ctx);
    }

    fn start_write(&mut self, job: Vec<EventBatch>, retry: bool, ctx: &mut Context<Self>) {
        self.in_flight += 1;
        let pool = self.pool.clone();
        let keys = self.keys.clone();
        let write = async move {
            let started = Instant::now();
            let result = write_job(&pool, &keys, &job, retry).await;
            (job, result, started.elapsed())
        };
        ctx.spawn(write.into_actor(self).map(|(job, result, took), act, ctx| {
            act.in_flight -= 1;
            match result {
                Ok(outcome) => act.write_succeeded(job, outcome, took),
                Err(e) => act.write_failed(job, e),
            }
            act.pump(ctx, false);
            act.check_drained();
        }));
    }

    fn write_succeeded(&mut self, job: Vec<EventBatch>, outcome: JobOutcome, took: Duration) {
        for session_id in outcome.refused_sessions {
            self.metrics.decode_failures.inc();
            self.rollup.session(session_id).decode_failures += 1;
        }
        let inserted = outcome.inserted;
        self.metrics
            .batch_write_duration
            .observe(took.as_secs_f64());
        self.health.succeeded();
        let node_of: HashMap<i64, &Arc<str>> =
            job.iter().map(|b| (b.session_id, &b.node_id)).collect();
        let mut stored = 0;
        for count in &inserted {
            if let Some(node_id) = node_of.get(&count.session_id) {
                self.rollup.add_inserted(node_id, count);
            }
            stored += count.inserted;
        }
        self.metrics.events_stored.inc_by(stored as u64);
        for batch in &job {
            self.count_failure_reasons(batch);
            self.budget.release(&batch.events);
        }
    }

    /// Counts the reasons of the failure events in a written batch (few events are failures:
    /// only those are decoded here).
    fn count_failure_reasons(&mut self, batch: &EventBatch) {
        for event in &batch.events {
            let Payload::Decoded {
                discriminator,
                fields,
                ..
            } = &event.payload
            else {
                continue;
            };
            if !failures::is_failure(*discriminator) {
                continue;
            }
            if let Some(reason) = failure_reason(*discriminator, fields, batch.dialect) {
                self.rollup
                    .reason(&batch.node_id, *discriminator, event.received_at, reason);
            }
        }
    }

    fn write_failed(&mut self, job: Vec<EventBatch>, error: StoreError) {
        self.metrics.batch_write_failures.inc();
        let events: usize = job.iter().map(|b| b.events.len()).sum();
        // Back to the front, in order: the retry writes the same rows with the same ids.
        self.retried_batches += job.len();
        for batch in job.into_iter().rev() {
            self.pending.push_front(batch);
        }
        self.pending_events += events;
        self.record_failure(&format!("writing a batch of {events} events"), &error);
    }

    fn record_failure(&mut self, what: &str, error: &StoreError) {
        let failure = self
            .health
            .failed(Instant::now(), rand::rng().random_range(0.0..=1.0));
        if failure.opened {
            log::error!(
                "database unavailable ({} failures in a row, last {what}: {error}); writes paused, \
                 {} events waiting, probing every {} ms",
                failure.in_a_row,
                self.pending_events,
                self.settings.probe_interval.as_millis()
            );
            self.metrics.circuit_open.set(1);
        } else if !self.health.is_open() {
            log::warn!(
                "{what} failed (attempt {}), retrying in {} ms: {error}",
                failure.in_a_row,
                failure.delay.as_millis()
            );
        }
    }

    /// Queues work of the bookkeeping lane.
    fn queue_meta(&mut self, op: MetaOp, ctx: &mut Context<Self>) {
        let set_aside = self.meta.push(op);
        self.note_set_aside(set_aside);
        self.pump_meta(ctx);
    }

    /// An operation the database refused: counted, logged (throttled), and not tried again.
    fn bookkeeping_refused(&mut self, refused: Refused) {
        self.metrics
            .bookkeeping_refused
            .with_label_values(&[refused.kind])
            .inc();
        if let Some(left_out) = self.refused_log.hit(Instant::now()) {
            log::error!(
                "the database refused a node bookkeeping update ({}), which is set aside so the \
                 rest goes on: {}{}",
                refused.kind,
                refused.error,
                match left_out {
                    0 => String::new(),
                    n => format!(" ({n} more since the last such line)"),
                }
            );
        }
    }

    /// Counts and logs (throttled) what a compaction of the lane set aside.
    fn note_set_aside(&mut self, set_aside: SetAside) {
        if set_aside != SetAside::default() {
            self.metrics
                .bookkeeping_set_aside
                .with_label_values(&["session"])
                .inc_by(set_aside.sessions);
            self.metrics
                .bookkeeping_set_aside
                .with_label_values(&["refusal"])
                .inc_by(set_aside.refusals);
            if let Some(left_out) = self.set_aside_log.hit(Instant::now()) {
                log::warn!(
                    "node bookkeeping waits for the database with {} operations queued: {} \
                     short sessions and {} refusal records set aside (each node's newest \
                     connection is kept){}",
                    self.meta.len(),
                    set_aside.sessions,
                    set_aside.refusals,
                    match left_out {
                        0 => String::new(),
                        n => format!("; {n} more compactions since the last such line"),
                    }
                );
            }
        }
    }

    fn probe(&mut self, ctx: &mut Context<Self>) {
        let pool = self.pool.clone();
        ctx.spawn(
            async move { crate::store::ping(&pool).await }
                .into_actor(self)
                .map(|result, act, ctx| match result {
                    Ok(()) => {
                        log::info!(
                            "database is back; writing {} waiting events",
                            act.pending_events
                        );
                        act.health.probe_succeeded();
                        act.probing = false;
                        act.metrics.circuit_open.set(0);
                        act.pump(ctx, true);
                    }
                    Err(e) => {
                        log::debug!("database probe failed: {e}");
                        ctx.run_later(act.settings.probe_interval, |act, ctx| act.probe(ctx));
                    }
                }),
        );
    }

    /// Runs everything queued in the serial lane as one transaction, in order: a thousand nodes
    /// connecting at once cost one commit, not a thousand.
    fn pump_meta(&mut self, ctx: &mut Context<Self>) {
        if self.meta_busy || self.meta.is_empty() || !self.database_available(ctx) {
            return;
        }
        let ops = self.meta.take_all();
        self.meta_busy = true;
        let pool = self.pool.clone();
        let run = async move {
            let result = bookkeeping::run(&pool, &ops).await;
            (ops, result)
        };
        ctx.spawn(run.into_actor(self).map(|(mut ops, result), act, ctx| {
            act.meta_busy = false;
            let applied = match result {
                Ok(refused) => {
                    for refused in refused {
                        act.bookkeeping_refused(refused);
                    }
                    act.health.succeeded();
                    ops.len()
                }
                Err(Interrupted { applied, error }) => {
                    let rest = ops.split_off(applied);
                    let set_aside = act.meta.put_back(rest);
                    act.note_set_aside(set_aside);
                    act.record_failure("recording node state", &error);
                    applied
                }
            };
            if ops[..applied]
                .iter()
                .any(|op| matches!(op, MetaOp::Rollup(_)))
            {
                act.rollup_queued = false;
            }
            if act.draining {
                act.queue_rollup();
            }
            act.pump_meta(ctx);
            act.check_drained();
        }));
    }

    /// Queues what was rolled up since the last one. The event counts (per minute and per hour),
    /// and the JAM views' funnel, guarantee and churn counts, stay behind, still adding up, until
    /// `hourly_stats_interval` has passed (or the writer drains): rewriting each of their rows
    /// every second left the tables so full of dead rows that reading an hour took ~100 ms.
    fn queue_rollup(&mut self) {
        if self.rollup_queued {
            return;
        }
        let (blocks, blocks_left_out) = self.blocks.take();
        let (mut packages, packages_left_out) = self.packages.take();
        let (mut peers, peers_left_out) = self.peers.take();
        // Counts held back from the last rollup (below) join the new ones.
        packages.add_counts(std::mem::take(&mut self.rollup.packages));
        peers.add_counts(std::mem::take(&mut self.rollup.peers));
        self.rollup.blocks = blocks;
        self.rollup.packages = packages;
        self.rollup.peers = peers;
        for (view, left_out) in [
            ("blocks", blocks_left_out),
            ("work_packages", packages_left_out),
            ("peers", peers_left_out),
        ] {
            if left_out == 0 {
                continue;
            }
            self.metrics
                .analytics_left_out
                .with_label_values(&[view])
                .inc_by(left_out);
            if let Some(more) = self.left_out_log.hit(Instant::now()) {
                log::warn!(
                    "the {view} tracker left out {left_out} updates: the changes waiting for the \
                     database are at their ceiling ({more} more such lines left out)"
                );
            }
        }
        let mut rollup = std::mem::take(&mut self.rollup);
        if self.draining
            || self.hourly_stats_written_at.elapsed() >= self.settings.hourly_stats_interval
        {
            self.hourly_stats_written_at = Instant::now();
        } else {
            self.rollup.counts = std::mem::take(&mut rollup.counts);
            self.rollup.reasons = std::mem::take(&mut rollup.reasons);
            self.rollup.skew = std::mem::take(&mut rollup.skew);
            self.rollup.packages = rollup.packages.take_counts();
            self.rollup.peers = rollup.peers.take_counts();
        }
        if !rollup.is_empty() {
            let set_aside = self.meta.push(MetaOp::Rollup(Box::new(rollup)));
            self.note_set_aside(set_aside);
            self.rollup_queued = true;
        }
    }

    fn is_drained(&self) -> bool {
        self.pending.is_empty()
            && self.in_flight == 0
            && self.meta.is_empty()
            && !self.meta_busy
            && self.rollup.is_empty()
            && self.blocks.is_empty()
            && self.packages.is_empty()
            && self.peers.is_empty()
    }

    fn check_drained(&mut self) {
        if self.draining && self.is_drained() {
            for waiter in self.drained.drain(..) {
                let _ = waiter.send(());
            }
        }
    }
}

/// One event of a job, with the batch (node, session) it came in.
#[derive(Clone, Copy)]
struct JobEvent<'a> {
    batch: &'a EventBatch,
    event: &'a IngestEvent,
}

/// What a job wrote: rows really inserted, and the sessions of events PostgreSQL refused.
struct JobOutcome {
    inserted: Vec<InsertedCount>,
    refused_sessions: Vec<i64>,
}

/// Writes one job in one transaction. If that fails while the database answers, the rows
/// themselves were refused: the job is bisected until each refused event stands alone, and those
/// are kept as decode failures with the database's reason, so one bad row cannot stall ingest.
async fn write_job(
    pool: &Pool,
    keys: &NodeKeys,
    job: &[EventBatch],
    retry: bool,
) -> Result<JobOutcome, StoreError> {
    let events: Vec<JobEvent<'_>> = job
        .iter()
        .flat_map(|batch| {
            batch
                .events
                .iter()
                .map(move |event| JobEvent { batch, event })
        })
        .collect();
    let gaps: Vec<RateLimitGap> = job.iter().flat_map(|b| b.gaps.iter().cloned()).collect();
    let error = match write_rows(pool, keys, &events, &gaps, &[], retry).await {
        Ok(inserted) => {
            return Ok(JobOutcome {
                inserted,
                refused_sessions: Vec::new(),
            })
        }
        Err(error) => error,
    };
    if crate::store::ping(pool).await.is_err() {
        return Err(error);
    }
    let mut inserted = Vec::new();
    let mut refused = Vec::new();
    isolate(pool, keys, &events, &mut inserted, &mut refused).await?;
    inserted.extend(write_rows(pool, keys, &[], &gaps, &refused, true).await?);
    for (refused_event, reason) in &refused {
        log::error!(
            "PostgreSQL refused event {} of node {} (session {}): {reason}; kept in decode_failures",
            refused_event.event.event_id,
            refused_event.batch.node_id,
            refused_event.batch.session_id
        );
    }
    Ok(JobOutcome {
        inserted,
        refused_sessions: refused.iter().map(|(e, _)| e.batch.session_id).collect(),
    })
}

/// Writes `events` in halves until the ones PostgreSQL refuses stand alone in `refused`.
fn isolate<'a, 'j>(
    pool: &'a Pool,
    keys: &'a NodeKeys,
    events: &'a [JobEvent<'j>],
    inserted: &'a mut Vec<InsertedCount>,
    refused: &'a mut Vec<(JobEvent<'j>, String)>,
) -> futures_util::future::BoxFuture<'a, Result<(), StoreError>>
where
    'j: 'a,
{
    Box::pin(async move {
        // Idempotent: a half written here may be written again if the job is retried later.
        match write_rows(pool, keys, events, &[], &[], true).await {
            Ok(counts) => inserted.extend(counts),
            Err(error) if events.len() == 1 => {
                // Only a database that still answers is refusing this row; otherwise it is an
                // outage and the whole job is retried later.
                crate::store::ping(pool).await?;
                refused.push((events[0], error.to_string()));
            }
            Err(_) => {
                let (left, right) = events.split_at(events.len() / 2);
                isolate(pool, keys, left, inserted, refused).await?;
                isolate(pool, keys, right, inserted, refused).await?;
            }
        }
        Ok(())
    })
}

/// Builds the rows of some events (and gaps, and events to keep as refused) and writes them in
/// one transaction.
async fn write_rows(
    pool: &Pool,
    keys: &NodeKeys,
    events: &[JobEvent<'_>],
    gaps: &[RateLimitGap],
    refused: &[(JobEvent<'_>, String)],
    idempotent: bool,
) -> Result<Vec<InsertedCount>, StoreError> {
    let mut conn = pool.get().await?;
    let mut nodes: Vec<&Arc<str>> = events.iter().map(|e| &e.batch.node_id).collect();
    nodes.dedup();
    let node_keys = keys.resolve(&mut conn, &nodes).await?;
    let mut rows = BatchWrite {
        gaps: gaps.to_vec(),
        ..BatchWrite::default()
    };
    for JobEvent { batch, event } in events {
        match &event.payload {
            Payload::Decoded {
                timestamp,
                discriminator,
                fields,
                fact,
                reference,
            } => {
                let e = &mut rows.events;
                e.id.push(event.id);
                e.created_at.push(event.received_at);
                e.timestamp.push(crate::jip3::time::to_datetime(*timestamp));
                e.session_id.push(batch.session_id);
                e.event_id.push(event.event_id as i64);
                e.node_key.push(node_keys[&batch.node_id]);
                e.event_type.push(i16::from(*discriminator));
                e.body.push(fields);
                e.ref_id.push(reference.column());
                let block = fact.as_ref().and_then(Fact::block);
                if let Some((block, kind)) = block.and_then(|b| Some((b, b.stored_kind()?))) {
                    rows.blocks.push(NewBlock {
                        event_row: event.id,
                        node_id: batch.node_id.to_string(),
                        kind,
                        slot: block.slot.map(i64::from),
                        header_hash: Some(to_hex(&block.header_hash)),
                        timestamp: event.event_time(),
                    });
                }
            }
            Payload::Failed { raw, error } => {
                rows.failures
                    .push(failure_row(batch, event, error.clone(), raw.to_vec()))
            }
        }
    }
    for (JobEvent { batch, event }, reason) in refused {
        let raw = match &event.payload {
            Payload::Decoded {
                timestamp,
                discriminator,
                fields,
                ..
            } => [&timestamp.to_le_bytes()[..], &[*discriminator], fields].concat(),
            Payload::Failed { raw, .. } => raw.to_vec(),
        };
        let error = format!("refused by PostgreSQL: {reason}");
        rows.failures.push(failure_row(batch, event, error, raw));
    }
    write::write_batch(&mut conn, &rows, idempotent).await
}

fn failure_row(
    batch: &EventBatch,
    event: &IngestEvent,
    error: String,
    raw: Vec<u8>,
) -> NewDecodeFailure {
    NewDecodeFailure {
        id: event.id,
        node_id: batch.node_id.to_string(),
        session_id: batch.session_id,
        event_id: event.event_id as i64,
        created_at: event.received_at,
        error,
        raw,
    }
}

/// The Reason of a failure event, decoded from its fields as stored.
fn failure_reason(discriminator: u8, fields: &[u8], dialect: Dialect) -> Option<String> {
    stored::decode(discriminator, fields, dialect)
        .ok()
        .and_then(|e| e.failure_reason())
}

/// What the other wings hold of the writer: one `Recipient` per message they send it.
pub fn inbox_of(writer: &Addr<DbWriter>) -> WriterInbox {
    WriterInbox {
        batches: writer.clone().recipient(),
        session_ends: writer.clone().recipient(),
        connects: writer.clone().recipient(),
        refusals: writer.clone().recipient(),
    }
}

impl Actor for DbWriter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.settings.flush_interval, |act, ctx| act.pump(ctx, true));
        ctx.run_interval(self.settings.rollup_interval, |act, ctx| {
            act.metrics
                .database_pool_connections
                .set(i64::from(act.pool.state().connections));
            act.queue_rollup();
            act.pump_meta(ctx);
        });
    }
}

impl DbWriter {
    /// Queues a batch for writing and notes what the rollup needs from it.
    fn accept(&mut self, batch: EventBatch) {
        self.metrics.network.observe(&batch);
        let last = batch.events.iter().map(|e| e.received_at).max();
        self.rollup
            .session_seen(batch.session_id, &batch.node_id, last);
        self.rollup.session(batch.session_id).add(&batch.counts);
        for &(discriminator, n) in &batch.undefined {
            self.rollup
                .undefined(batch.session_id, &batch.node_id, discriminator, n);
        }
        if let Some((bucket, events)) = batch.skew {
            self.rollup
                .skew(batch.session_id, &batch.node_id, bucket, events);
        }
        for event in &batch.events {
            let Payload::Decoded {
                discriminator,
                fields,
                fact,
                reference,
                ..
            } = &event.payload
            else {
                continue;
            };
            if let Some(block) = fact.as_ref().and_then(Fact::block) {
                self.rollup.block(&batch.node_id, event.id, block);
            }
            let observed = Observed {
                node: &batch.node_id,
                row: event.id,
                at: event.event_time(),
                discriminator: *discriminator,
                reference: *reference,
                fact: fact.as_ref(),
            };
            let reason = || failure_reason(*discriminator, fields, batch.dialect);
            self.blocks.observe(&observed, reason);
            self.packages.observe(&observed, reason);
            self.peers.observe(&observed);
            if *discriminator == STATUS {
                self.rollup.status(
                    &batch.node_id,
                    LatestStatus {
                        event_row: event.id,
                        timestamp: event.event_time(),
                        fields: fields.clone(),
                        dialect: batch.dialect,
                    },
                );
            }
        }
        self.pending_events += batch.events.len();
        self.pending.push_back(batch);
    }

    fn pump_if_full(&mut self, ctx: &mut Context<Self>) {
        if self.pending_events >= self.settings.batch_size {
            self.pump(ctx, false);
        }
    }
}

impl Handler<EventBatches> for DbWriter {
    type Result = ();

    fn handle(&mut self, handed: EventBatches, ctx: &mut Context<Self>) {
        self.metrics
            .writer_queue_wait
            .observe(handed.handed_at.elapsed().as_secs_f64());
        for batch in handed.batches {
            self.accept(batch);
        }
        self.pump_if_full(ctx);
    }
}

impl Handler<NodeConnected> for DbWriter {
    type Result = ();

    fn handle(&mut self, msg: NodeConnected, ctx: &mut Context<Self>) {
        let node = &msg.node;
        self.metrics.network.connected(
            &node.node_id,
            &node.implementation_name,
            &node.implementation_version,
        );
        self.queue_meta(MetaOp::Connect(Box::new(msg)), ctx);
    }
}

impl Handler<HandshakeRefused> for DbWriter {
    type Result = ();

    fn handle(&mut self, HandshakeRefused(session): HandshakeRefused, ctx: &mut Context<Self>) {
        self.queue_meta(MetaOp::Refused(Box::new(session)), ctx);
    }
}

impl Handler<SessionEnded> for DbWriter {
    type Result = ();

    fn handle(&mut self, msg: SessionEnded, ctx: &mut Context<Self>) {
        self.metrics.network.disconnected(&msg.node_id);
        self.queue_meta(MetaOp::Disconnect(msg), ctx);
    }
}

impl Handler<Drain> for DbWriter {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _msg: Drain, ctx: &mut Context<Self>) -> Self::Result {
        self.draining = true;
        self.queue_rollup();
        self.pump(ctx, true);
        let (done, wait) = oneshot::channel();
        self.drained.push(done);
        self.check_drained();
        Box::pin(async move {
            let _ = wait.await;
        })
    }
}

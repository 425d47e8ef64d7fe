//! One simulated node's telemetry connection: connect, send NodeInformation, then every tick the
//! frames its flow made due, in one write. When the server goes away: back off, reconnect, start a
//! new ID sequence, and say with Dropped(N) what the old connection never delivered.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::flow::{Flow, Micros};
use super::outbox::Outbox;
use super::{SimStats, Timestamps, Writes};
use crate::jip3::codec::frame;
use crate::jip3::NodeInformation;

/// Frames collect for this long before a write: cheap at 1,024 nodes, prompt enough to watch.
const TICK: Duration = Duration::from_millis(40);
/// With a write per frame, the flow advances this often, so the frames of a tick (about one at
/// 100 events/s) leave close to when they happen.
const PER_EVENT_TICK: Duration = Duration::from_millis(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// A session that lasted this long was a real one: the next reconnect starts without waiting.
const STABLE_SESSION: Duration = Duration::from_secs(5);
/// On stop, a write under way may finish for this long, so what is counted as sent was sent.
const STOP_GRACE: Duration = Duration::from_secs(1);

/// The simulator's clock: µs since the run started.
#[derive(Clone, Copy)]
pub struct Clock(pub Instant);

impl Clock {
    pub fn now(&self) -> Micros {
        self.0.elapsed().as_micros() as Micros
    }
}

/// Why a connection ended.
enum Ended {
    Stopped,
    Lost(String),
}

pub struct Node {
    pub index: usize,
    pub info: NodeInformation,
    pub flow: Flow,
    pub target: SocketAddr,
    pub max_backoff: Duration,
    pub writes: Writes,
    pub timestamps: Timestamps,
    /// A planted fault: how far ahead the node's clock is.
    pub clock_skew_us: i64,
    pub clock: Clock,
    pub stats: Arc<SimStats>,
    pub out: Outbox,
}

impl Node {
    /// Runs until `stop`; never panics on network trouble, only retries.
    pub async fn run(mut self, stop: CancellationToken) {
        // Spread the first connections over a tick rather than all at once.
        let stagger = rand::rng().random_range(0..TICK.as_millis() as u64);
        if !sleep_unless_stopped(Duration::from_millis(stagger), &stop).await {
            return;
        }
        let mut backoff = FIRST_BACKOFF;
        let mut failures = 0u64;
        loop {
            let attempt = tokio::select! {
                _ = stop.cancelled() => return,
                attempt = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(self.target)) => attempt,
            };
            let socket = match attempt {
                Ok(Ok(socket)) => socket,
                failed => {
                    let why = match failed {
                        Ok(Err(e)) => e.to_string(),
                        _ => "timed out".into(),
                    };
                    failures += 1;
                    let target = self.target;
                    if failures == 1 {
                        log::warn!(
                            "node {}: cannot connect to {target}: {why}; retrying",
                            self.index
                        );
                    } else {
                        log::debug!("node {}: cannot connect to {target}: {why}", self.index);
                    }
                    // The node goes on without telemetry; what it would have sent is dropped.
                    self.flow.advance(self.clock.now(), &mut self.out);
                    self.out.discard();
                    // Full jitter in the upper half, so nodes spread out rather than retry in step.
                    let wait = backoff.mul_f64(rand::rng().random_range(0.5..1.0));
                    backoff = (backoff * 2).min(self.max_backoff);
                    if !sleep_unless_stopped(wait, &stop).await {
                        return;
                    }
                    continue;
                }
            };
            failures = 0;
            let started = tokio::time::Instant::now();
            match self.session(socket, &stop).await {
                Ended::Stopped => return,
                Ended::Lost(why) => {
                    log::warn!("node {}: connection lost ({why}); reconnecting", self.index)
                }
            }
            // A server that accepts and at once closes (it refuses the node) must not be met
            // with a reconnect loop: only a session that lasted resets the backoff.
            if started.elapsed() >= STABLE_SESSION {
                backoff = FIRST_BACKOFF;
            } else {
                let wait = backoff.mul_f64(rand::rng().random_range(0.5..1.0));
                backoff = (backoff * 2).min(self.max_backoff);
                if !sleep_unless_stopped(wait, &stop).await {
                    return;
                }
            }
        }
    }

    async fn session(&mut self, socket: TcpStream, stop: &CancellationToken) -> Ended {
        let _ = socket.set_nodelay(true);
        let (mut reader, mut writer) = socket.into_split();
        if let Err(e) = writer.write_all(&frame(&self.info.to_bytes())).await {
            return Ended::Lost(e.to_string());
        }
        self.stats.nodes[self.index].connected();
        // The spec allows Dropped as the first event of a connection: it stands for what the
        // last one never delivered, and the next event's ID is its N.
        if let Some(lost) = self.out.new_connection() {
            self.stats.nodes[self.index].lost(lost.events);
            self.out.push(lost.first, &lost.as_dropped());
        }
        self.flow.connected(self.clock.now());
        let mut ticker = tokio::time::interval(match self.writes {
            Writes::Batched => TICK,
            Writes::PerEvent => PER_EVENT_TICK,
        });
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut scratch = [0u8; 64];
        loop {
            tokio::select! {
                _ = stop.cancelled() => return Ended::Stopped,
                // The server never speaks; a read returns only when it closes or fails.
                read = reader.read(&mut scratch) => match read {
                    Ok(0) => return Ended::Lost("closed by the server".into()),
                    Err(e) => return Ended::Lost(e.to_string()),
                    Ok(_) => {}
                },
                _ = ticker.tick() => {
                    self.flow.advance(self.clock.now(), &mut self.out);
                    if self.out.pending().1 == 0 {
                        continue;
                    }
                    if self.timestamps == Timestamps::Sent {
                        let now = crate::jip3::time::now();
                        self.out.stamp(now.saturating_add_signed(self.clock_skew_us));
                    }
                    let (bytes, _) = self.out.pending();
                    let stopped = async {
                        stop.cancelled().await;
                        tokio::time::sleep(STOP_GRACE).await;
                    };
                    let writes = async {
                        match self.writes {
                            Writes::Batched => writer.write_all(bytes).await,
                            Writes::PerEvent => {
                                for frame in frames(bytes) {
                                    writer.write_all(frame).await?;
                                }
                                Ok(())
                            }
                        }
                    };
                    let written = tokio::select! {
                        _ = stopped => return Ended::Stopped,
                        written = writes => written,
                    };
                    if let Err(e) = written {
                        return Ended::Lost(e.to_string());
                    }
                    self.stats.nodes[self.index].sent(&self.out);
                    self.out.clear();
                }
            }
        }
    }
}

/// The frames (length prefix included) of a run of whole frames.
fn frames(mut bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        let len = 4 + u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
        let (frame, rest) = bytes.split_at(len.min(bytes.len()));
        bytes = rest;
        Some(frame)
    })
}

/// Sleeps; false if `stop` came first.
async fn sleep_unless_stopped(duration: Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        _ = stop.cancelled() => false,
        _ = tokio::time::sleep(duration) => true,
    }
}

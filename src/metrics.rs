//! Every Prometheus metric of one server instance, in one registry (served at `/metrics`).
//! One registry per instance, not a global, so tests can run several servers in one process.

use crate::analytics::network::NetworkBook;
use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

pub struct Metrics {
    pub registry: Registry,
    pub active_connections: IntGauge,
    pub connections_total: IntCounter,
    pub connections_rejected: IntCounter,
    pub connections_refused: IntCounterVec,
    pub api_requests_limited: IntCounter,
    pub api_requests_unauthorized: IntCounter,
    pub values_out_of_range: IntCounterVec,
    pub connections_closed: IntCounterVec,
    pub events_received: IntCounter,
    pub events_stored: IntCounter,
    pub events_dropped: IntCounter,
    pub events_rate_limited: IntCounter,
    pub unknown_events: IntCounterVec,
    pub handshakes: IntCounterVec,
    pub handshakes_refused: IntCounterVec,
    pub handshakes_refused_unrecorded: IntCounter,
    pub bookkeeping_set_aside: IntCounterVec,
    pub bookkeeping_refused: IntCounterVec,
    pub protocol_versions_refused: IntCounterVec,
    pub unknown_params_layouts: IntCounter,
    pub decode_failures: IntCounter,
    pub dangling_references: IntCounter,
    pub buffer_pending: IntGauge,
    pub buffer_pending_bytes: IntGauge,
    pub batch_write_duration: Histogram,
    pub batch_write_failures: IntCounter,
    pub circuit_open: IntGauge,
    pub ingest_latency: Histogram,
    pub writer_queue_wait: Histogram,
    pub database_pool_connections: IntGauge,
    pub broadcaster_subscribers: IntGauge,
    pub broadcaster_total_broadcast: IntCounter,
    pub broadcaster_events_shed: IntCounter,
    pub broadcast_latency: Histogram,
    pub ws_slow_clients_disconnected: IntCounter,
    pub ws_sessions: IntGauge,
    pub analytics_left_out: IntCounterVec,
    /// The bounds, so alert rules can compare the gauges above with them.
    pub max_connections: IntGauge,
    pub buffer_capacity: IntGauge,
    pub buffer_capacity_bytes: IntGauge,
    /// What the nodes tell of the chain, served apart at `/metrics/network`.
    pub network: NetworkBook,
}

/// Registers `metric` in `registry` and hands it back.
pub(crate) fn register<T: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    metric: T,
) -> T {
    registry
        .register(Box::new(metric.clone()))
        .expect("metric names are unique");
    metric
}

impl Metrics {
    pub fn new() -> Self {
        let r = Registry::new();
        let counter = |name: &str, help: &str| register(&r, IntCounter::new(name, help).unwrap());
        let gauge = |name: &str, help: &str| register(&r, IntGauge::new(name, help).unwrap());
        let counter_vec = |name: &str, help: &str, label: &str| {
            register(
                &r,
                IntCounterVec::new(Opts::new(name, help), &[label]).unwrap(),
            )
        };
        let histogram = |name: &str, help: &str, buckets: Vec<f64>| {
            register(
                &r,
                Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets)).unwrap(),
            )
        };
        let latency_buckets = vec![
            0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
            0.25, 0.5, 1.0, 2.5, 5.0,
        ];
        Metrics {
            active_connections: gauge("telemetry_active_connections", "Node connections open now"),
            connections_total: counter(
                "telemetry_connections_total",
                "Node connections accepted since start",
            ),
            connections_rejected: counter(
                "telemetry_connections_rejected",
                "Node connections closed at once because max_connections were open",
            ),
            api_requests_limited: counter(
                "telemetry_api_requests_limited_total",
                "HTTP requests answered 429: over api_requests_per_ip_per_sec from one address",
            ),
            api_requests_unauthorized: counter(
                "telemetry_api_requests_unauthorized_total",
                "HTTP requests answered 401: api_token is set and the request did not carry it",
            ),
            values_out_of_range: register(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "telemetry_values_out_of_range_total",
                        "Events with a value TART cannot store as sent, by field: event_id \
                         (IDs stop at 2^63-1) and timestamp (stored as the latest instant)",
                    ),
                    &["field"],
                )
                .unwrap(),
            ),
            connections_refused: register(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "telemetry_connections_refused_total",
                        "Node connections closed at once by the address rules: \
                         address_not_allowed, per_ip_limit, handshake_rate",
                    ),
                    &["reason"],
                )
                .unwrap(),
            ),
            connections_closed: register(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "telemetry_connections_closed",
                        "Node connections ended, by reason",
                    ),
                    &["reason"],
                )
                .unwrap(),
            ),
            events_received: counter(
                "telemetry_events_received",
                "Event frames received from nodes (decoded or not)",
            ),
            events_stored: counter("telemetry_events_stored", "Events written to PostgreSQL"),
            events_dropped: counter(
                "telemetry_events_dropped",
                "Events nodes reported as dropped on their side (sum of Dropped counts)",
            ),
            events_rate_limited: counter(
                "telemetry_events_rate_limited",
                "Events not stored because their node exceeded its rate limit",
            ),
            unknown_events: counter_vec(
                "telemetry_unknown_events",
                "Events with a discriminator JIP-3 does not define (stored as Unknown with their \
                 raw bytes), by discriminator",
                "discriminator",
            ),
            handshakes: register(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "telemetry_handshakes_total",
                        "NodeInformation handshakes accepted, by protocol version and JAM \
                         Parameters layout",
                    ),
                    &["protocol_version", "params_layout"],
                )
                .unwrap(),
            ),
            handshakes_refused: counter_vec(
                "telemetry_handshakes_refused_total",
                "Connections refused at the handshake, by reason (unsupported_version, \
                 malformed, timeout)",
                "reason",
            ),
            handshakes_refused_unrecorded: counter(
                "telemetry_handshakes_refused_unrecorded_total",
                "Refused handshakes past the 10 per second recorded as session rows (counted \
                 above, logged at debug level only)",
            ),
            bookkeeping_set_aside: counter_vec(
                "telemetry_bookkeeping_set_aside_total",
                "Node bookkeeping the writer set aside to stay bounded while the database was \
                 down: short sessions that started and ended meanwhile (kind=session) and refusal \
                 records (kind=refusal); each node's newest connection is always kept",
                "kind",
            ),
            bookkeeping_refused: counter_vec(
                "telemetry_bookkeeping_refused_total",
                "Node bookkeeping updates the database refused (not: could not be reached), set \
                 aside so later ones go on, by kind (connect, refusal, disconnect, rollup)",
                "kind",
            ),
            protocol_versions_refused: counter_vec(
                "telemetry_protocol_versions_refused_total",
                "Handshakes refused for a protocol version TART does not speak, by version",
                "version",
            ),
            unknown_params_layouts: counter(
                "telemetry_unknown_params_layouts_total",
                "Nodes accepted whose JAM Parameters fit no known layout (kept as raw bytes)",
            ),
            decode_failures: counter(
                "telemetry_decode_failures",
                "Event frames that failed to decode (kept in decode_failures)",
            ),
            dangling_references: counter(
                "telemetry_dangling_references_total",
                "Events whose Event ID field points at no event of its connection it may point at \
                 (stored, with ref_id 0)",
            ),
            buffer_pending: gauge(
                "telemetry_buffer_pending",
                "Events accepted and not yet written to PostgreSQL",
            ),
            buffer_pending_bytes: gauge(
                "telemetry_buffer_pending_bytes",
                "Estimated memory held by the events accepted and not yet written (bounded by \
                 queue_bytes)",
            ),
            batch_write_duration: histogram(
                "telemetry_batch_write_duration",
                "Seconds to write one batch of events to PostgreSQL",
                latency_buckets.clone(),
            ),
            batch_write_failures: counter(
                "telemetry_batch_write_failures",
                "Batch writes that failed and were retried",
            ),
            circuit_open: gauge(
                "telemetry_database_circuit_open",
                "1 while the database circuit breaker is open (writes paused, probing)",
            ),
            ingest_latency: histogram(
                "telemetry_ingest_latency_seconds",
                "Seconds from a frame read to its event handed to the DB writer",
                latency_buckets.clone(),
            ),
            writer_queue_wait: histogram(
                "telemetry_writer_queue_wait_seconds",
                "Seconds a hand-off of events waits before the DB writer takes it",
                latency_buckets.clone(),
            ),
            broadcast_latency: histogram(
                "telemetry_broadcast_latency_seconds",
                "Seconds from a frame read to its event written to a WebSocket client",
                latency_buckets,
            ),
            broadcaster_subscribers: gauge(
                "telemetry_broadcaster_subscribers",
                "WebSocket clients connected to the live stream",
            ),
            broadcaster_total_broadcast: counter(
                "telemetry_broadcaster_total_broadcast",
                "Events the broadcaster fanned out to the live stream (once each, whatever the \
                 number of subscribers)",
            ),
            broadcaster_events_shed: counter(
                "telemetry_broadcaster_events_shed",
                "Events left out of the live stream because the broadcaster was behind (they are \
                 still stored)",
            ),
            ws_slow_clients_disconnected: counter(
                "telemetry_ws_slow_clients_disconnected",
                "WebSocket clients disconnected because they did not read fast enough",
            ),
            ws_sessions: gauge(
                "telemetry_ws_sessions",
                "WebSocket session actors running, subscribed or not (one stuck on a full socket \
                 counts until its socket is shut down)",
            ),
            database_pool_connections: gauge(
                "telemetry_database_pool_connections",
                "Connections open in the DB writer's pool",
            ),
            analytics_left_out: counter_vec(
                "telemetry_analytics_left_out_total",
                "Updates of the protocol views left out because the changes waiting for the \
                 database were at their ceiling (the events themselves are stored)",
                "view",
            ),
            max_connections: gauge(
                "telemetry_max_connections",
                "Node connections open at most (max_connections)",
            ),
            buffer_capacity: gauge(
                "telemetry_buffer_capacity",
                "Events that may be accepted and not yet written (queue_capacity)",
            ),
            buffer_capacity_bytes: gauge(
                "telemetry_buffer_capacity_bytes",
                "Memory the events accepted and not yet written may hold (queue_bytes)",
            ),
            network: NetworkBook::default(),
            registry: r,
        }
    }

    /// Publishes the configured bounds beside the gauges they bound, and bounds the network's.
    pub fn set_limits(&self, config: &crate::config::Config) {
        let gauge =
            |gauge: &IntGauge, value: usize| gauge.set(i64::try_from(value).unwrap_or(i64::MAX));
        gauge(&self.max_connections, config.max_connections);
        gauge(&self.buffer_capacity, config.queue_capacity);
        gauge(&self.buffer_capacity_bytes, config.queue_bytes);
        self.network.configure(
            config.network_metrics_forget_after(),
            config.max_connections,
        );
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        render(&self.registry)
    }
}

/// The Prometheus text exposition of every metric in `registry`.
pub(crate) fn render(registry: &Registry) -> String {
    TextEncoder::new()
        .encode_to_string(&registry.gather())
        .unwrap_or_else(|e| format!("# encoding metrics failed: {e}\n"))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

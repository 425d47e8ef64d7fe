//! TART: the telemetry backend for JAM networks.
//!
//! The house, along one frame's path (docs/ARCHITECTURE.md walks it hop by hop):
//! - [`jip3`]: the wire protocol, pure: framing, naturals, NodeInformation, the 115 events;
//! - [`ingest`]: the node side: [`ingest::listener`] accepts a node's TCP connection and starts an
//!   [`ingest::connection`] actor, which frames and decodes with [`jip3`] and hands each read's
//!   events to [`ingest::rate_limiter`];
//! - [`persist`]: the database side: [`persist::writer`] batches what was admitted into [`store`]
//!   (PostgreSQL through diesel-async); [`analytics`] follows blocks across events and nodes as
//!   the writer accepts them;
//! - [`live`]: the browser side: [`live::broadcaster`] fans the events out to the WebSocket
//!   sessions of [`api`];
//! - [`messages`]: what crosses between those wings, and nothing else;
//! - [`api`], [`dash`], [`sim`], [`decode_tool`]: the REST API and WebSocket, the terminal
//!   dashboard, the node simulator and the capture decoder.

pub mod analytics;
pub mod api;
pub mod config;
pub mod dash;
pub mod decode_tool;
pub mod ingest;
pub mod jip3;
pub mod live;
pub mod log_throttle;
pub mod messages;
pub mod metrics;
pub mod persist;
pub mod robust;
pub mod server;
pub mod sim;
pub mod store;
pub mod time;
pub mod web;

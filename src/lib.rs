//! TART: the telemetry backend for JAM networks.
//!
//! One frame's path through the crate: [`actors::listener`] accepts a node's TCP connection and
//! starts an [`actors::connection`] actor, which frames and decodes with [`jip3`] and hands each
//! read's events to [`actors::rate_limiter`]; admitted events go to [`actors::db_writer`], which
//! batches them into [`store`] (PostgreSQL through diesel-async).

pub mod actors;
pub mod api;
pub mod config;
pub mod dash;
pub mod decode_tool;
pub mod jip3;
pub mod log_throttle;
pub mod metrics;
pub mod server;
pub mod sim;
pub mod store;

//! The database side: [`writer::DbWriter`] collects what the rate limiter admitted and commits it
//! in batches through diesel-async, waits and retries as [`health::WriteHealth`] says (backoff,
//! circuit breaker), keeps node and session bookkeeping in the bounded serial lane of
//! [`bookkeeping`], and drains everything on shutdown.

pub mod bookkeeping;
pub mod health;
pub mod writer;

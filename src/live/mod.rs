//! The browser side. Its hub, the [`broadcaster`] actor, takes every admitted, decoded event from
//! the rate limiter, keeps the most recent ones for `GetRecentEvents`, and fans each out to the
//! WebSocket sessions whose filter matches. It runs on an arbiter (thread) of its own.
//!
//! Memory is bounded on both of its edges, and neither can slow ingest down:
//! - rate_limiter → broadcaster ([`feed::LiveFeed::offer`]): at most `broadcast_queue_bytes` of events
//!   in flight. Past that the rate limiter leaves events out of the live stream (they are still
//!   stored) and counts them: it never waits for the broadcaster.
//! - broadcaster → session: each session's queue holds at most `ws_client_queue_bytes`. A session
//!   over it has a client that does not keep up: it is evicted and counted. Actix stops polling a
//!   response body, and with it the session actor, while the socket takes no more bytes; so a
//!   session that has not closed itself [`broadcaster::EVICTION_GRACE`] after its eviction (or whose heartbeat
//!   stopped ticking) is frozen on a full socket, and its socket is shut down from here.
//!
//! [`feed::LiveFeed`] is the rate limiter's end of the first edge; what a WebSocket session and
//! the broadcaster share crosses wings and is in `messages` (`SessionLink`, `Join`, ...). The
//! sessions themselves are HTTP code and live in `api::ws_session`.

pub mod broadcaster;
pub mod feed;

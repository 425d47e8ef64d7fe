//! The JIP-3 wire protocol, pure: bytes in, typed values out (and back). No I/O, no database.
//!
//! A frame's path: [`codec::FrameCodec`] cuts the byte stream into bodies; the first body is a
//! [`NodeInformation`] (protocol version 0 or 1, JAM Parameters in the GP 0.7 or 0.8 layout),
//! which fixes the connection's [`Dialect`]; [`EventStream`] decodes each later body in that
//! dialect into an [`Event`] and gives it the spec's implicit event ID. docs/PROTOCOL.md has the
//! byte-level rules.

pub mod codec;
pub mod events;
pub mod failures;
pub mod generate;
pub mod links;
pub mod natural;
pub mod node_info;
pub mod skew;
pub mod stored;
pub mod stream;
pub mod time;
pub mod types;
pub mod wire;

pub use codec::{FrameCodec, FrameError};
pub use events::{Event, TimedEvent};
pub use node_info::{JamParameters, JamParams, NodeInformation, ParamsLayout};
pub use stream::{EventFrame, EventStream};
pub use wire::{DecodeError, Dialect, ProtocolVersion, Reader, Wire};

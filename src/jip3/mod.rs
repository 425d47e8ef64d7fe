//! The JIP-3 wire protocol, pure: bytes in, typed values out (and back). No I/O, no database.
//!
//! A frame's path: [`codec::FrameCodec`] cuts the byte stream into bodies; the first body is a
//! [`NodeInformation`]; [`EventStream`] decodes each later body into an [`Event`] and gives it the
//! spec's implicit event ID.

pub mod codec;
pub mod events;
pub mod generate;
pub mod links;
pub mod natural;
pub mod node_info;
pub mod stream;
pub mod time;
pub mod types;
pub mod wire;

pub use codec::{FrameCodec, FrameError};
pub use events::{Event, TimedEvent};
pub use node_info::{JamParameters, NodeInformation};
pub use stream::{EventFrame, EventStream};
pub use wire::{DecodeError, Reader, Wire};

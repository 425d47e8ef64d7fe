//! Message framing: every JIP-3 message is a `u32` little-endian body length, then the body.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use thiserror::Error;
use tokio_util::codec::{Decoder, Encoder};

/// The default ceiling for one message body: well above the largest valid event (Work-package
/// received, about 105 KB at full parameters), far below what would hurt memory at 1,024 nodes.
pub const DEFAULT_MAX_FRAME: usize = 1 << 20;

const LENGTH_PREFIX: usize = 4;

/// A fault in the byte stream itself: after one the message boundaries are lost, so the
/// connection has to end.
#[derive(Debug, Error)]
pub enum FrameError {
    #[error("frame length {len} exceeds the maximum of {max} bytes")]
    Oversized { len: usize, max: usize },
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Splits a byte stream into message bodies, whatever the size of each read.
#[derive(Debug, Clone, Copy)]
pub struct FrameCodec {
    max_frame: usize,
}

impl FrameCodec {
    pub fn new(max_frame: usize) -> Self {
        FrameCodec { max_frame }
    }
}

impl Default for FrameCodec {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME)
    }
}

impl Decoder for FrameCodec {
    type Item = Bytes;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        let Some(prefix) = src.get(..LENGTH_PREFIX) else {
            return Ok(None);
        };
        let len = u32::from_le_bytes(prefix.try_into().expect("4 bytes")) as usize;
        if len > self.max_frame {
            return Err(FrameError::Oversized {
                len,
                max: self.max_frame,
            });
        }
        if src.len() < LENGTH_PREFIX + len {
            // Reserve for the rest of this frame only: the length is already bounded above.
            src.reserve(LENGTH_PREFIX + len - src.len());
            return Ok(None);
        }
        src.advance(LENGTH_PREFIX);
        Ok(Some(src.split_to(len).freeze()))
    }
}

impl<B: AsRef<[u8]>> Encoder<B> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, body: B, dst: &mut BytesMut) -> Result<(), FrameError> {
        let body = body.as_ref();
        if body.len() > self.max_frame {
            return Err(FrameError::Oversized {
                len: body.len(),
                max: self.max_frame,
            });
        }
        dst.reserve(LENGTH_PREFIX + body.len());
        dst.put_u32_le(body.len() as u32);
        dst.put_slice(body);
        Ok(())
    }
}

/// Frames one body: the length prefix and the bytes, for writers that do not use a codec.
pub fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(LENGTH_PREFIX + body.len());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversized_prefix_is_an_error_before_the_body_arrives() {
        let mut codec = FrameCodec::new(16);
        let mut buf = BytesMut::from(&17u32.to_le_bytes()[..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(FrameError::Oversized { len: 17, max: 16 })
        ));
    }

    #[test]
    fn partial_frames_wait_for_more() {
        let mut codec = FrameCodec::default();
        let framed = frame(b"hello");
        let mut buf = BytesMut::new();
        for (i, byte) in framed.iter().enumerate() {
            buf.put_u8(*byte);
            let out = codec.decode(&mut buf).unwrap();
            assert_eq!(out.is_some(), i == framed.len() - 1);
        }
    }
}

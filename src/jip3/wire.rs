//! The building blocks of JIP-3 decoding and encoding: a bounds-checked reader, the `Wire` trait
//! every field type implements, and the errors a single frame can have.

use thiserror::Error;

/// Why one message failed to decode. The framing is intact when this happens, so the connection
/// carries on; the frame's bytes and this text are kept for the operator.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("truncated at byte {offset}: needed {needed} more bytes, {available} left")]
    Truncated {
        offset: usize,
        needed: usize,
        available: usize,
    },
    #[error("{count} trailing bytes after the last field (at byte {offset})")]
    TrailingBytes { offset: usize, count: usize },
    #[error("string at byte {offset} is {len} bytes long, limit is {max}")]
    StringTooLong { offset: usize, len: u64, max: usize },
    #[error("string at byte {offset} is not valid UTF-8")]
    InvalidUtf8 { offset: usize },
    #[error("invalid {what} byte {value:#04x} at byte {offset}")]
    InvalidByte {
        what: &'static str,
        offset: usize,
        value: u8,
    },
    #[error("non-canonical length prefix at byte {offset} (value {value})")]
    NonCanonicalNatural { offset: usize, value: u64 },
    #[error("list at byte {offset} claims {len} items, more than the {available} bytes left")]
    ListTooLong {
        offset: usize,
        len: u64,
        available: usize,
    },
    #[error("unsupported protocol version {0} (only 0 is defined)")]
    UnsupportedProtocolVersion(u8),
}

/// A cursor over one message body. It carries the connection's core count because `[u8; C]`
/// fields (Status, Distributing assurance) have no length prefix.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    core_count: u16,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8], core_count: u16) -> Self {
        Reader {
            buf,
            pos: 0,
            core_count,
        }
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn core_count(&self) -> u16 {
        self.core_count
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated {
                offset: self.pos,
                needed: n,
                available: self.remaining(),
            });
        }
        let slice = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(slice)
    }

    pub fn rest(&mut self) -> &'a [u8] {
        let slice = &self.buf[self.pos..];
        self.pos = self.buf.len();
        slice
    }

    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        Ok(self.take(N)?.try_into().expect("take returned N bytes"))
    }

    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// Fails if bytes are left: JIP-3 messages have no padding, so leftovers mean a mismatch.
    pub fn finish(&self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(DecodeError::TrailingBytes {
                offset: self.pos,
                count,
            }),
        }
    }
}

/// A value with a JIP-3 byte form.
pub trait Wire: Sized {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError>;
    fn encode(&self, out: &mut Vec<u8>);
}

macro_rules! wire_int {
    ($($ty:ty => $read:ident),*) => {$(
        impl Wire for $ty {
            fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
                r.$read()
            }
            fn encode(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        }
    )*};
}
wire_int!(u8 => u8, u16 => u16, u32 => u32, u64 => u64);

impl Wire for bool {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let offset = r.position();
        match r.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(DecodeError::InvalidByte {
                what: "bool",
                offset,
                value,
            }),
        }
    }
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
}

impl<T: Wire> Wire for Option<T> {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let offset = r.position();
        match r.u8()? {
            0 => Ok(None),
            1 => Ok(Some(T::decode(r)?)),
            value => Err(DecodeError::InvalidByte {
                what: "Option tag",
                offset,
                value,
            }),
        }
    }
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            None => out.push(0),
            Some(v) => {
                out.push(1);
                v.encode(out);
            }
        }
    }
}

/// `len++[T]`. The claimed length is checked against the bytes left (every element takes at least
/// one byte) before anything is allocated, so a hostile prefix cannot make us reserve gigabytes.
impl<T: Wire> Wire for Vec<T> {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let offset = r.position();
        let len = super::natural::decode_natural(r)?;
        if len > r.remaining() as u64 {
            return Err(DecodeError::ListTooLong {
                offset,
                len,
                available: r.remaining(),
            });
        }
        (0..len).map(|_| T::decode(r)).collect()
    }
    fn encode(&self, out: &mut Vec<u8>) {
        super::natural::encode_natural(self.len() as u64, out);
        for item in self {
            item.encode(out);
        }
    }
}

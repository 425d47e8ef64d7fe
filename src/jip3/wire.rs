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
    #[error(
        "telemetry protocol version {0} is not supported: TART speaks versions 0 and 1 \
         (the first byte of NodeInformation)"
    )]
    UnsupportedProtocolVersion(u8),
    /// NodeInformation whose JAM Parameters fit no length: what each known layout found.
    #[error(
        "JAM parameters: 134 (GP 0.7) or 122 (GP 0.8) bytes expected, and no length makes the rest \
         of the {len}-byte NodeInformation parse to its end; read as GP 0.7: {gp07}; \
         read as GP 0.8: {gp08}"
    )]
    NoParamsLayout {
        len: usize,
        gp07: Box<DecodeError>,
        gp08: Box<DecodeError>,
    },
    /// A frame after the first that is a whole NodeInformation: a node that started over without
    /// reconnecting. It is not an event, takes one event ID as any frame does, and changes nothing.
    #[error(
        "a second NodeInformation in mid-stream (only the first message of a connection is one); \
         kept as a failed frame, and the connection goes on as its first NodeInformation said"
    )]
    UnexpectedNodeInformation,
    /// A field of NodeInformation failed: which one, and why.
    #[error("{field}: {source}")]
    InField {
        field: &'static str,
        source: Box<DecodeError>,
    },
}

impl DecodeError {
    /// Names the field an error happened in, for messages a node's implementer can act on.
    pub fn in_field(self, field: &'static str) -> Self {
        DecodeError::InField {
            field,
            source: Box::new(self),
        }
    }
}

/// The telemetry protocol versions TART speaks. They differ only in event 61 (Block announcement
/// stream closed): version 1 identifies the stream by the Event ID of its event 60, version 0 by
/// the peer's Peer ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProtocolVersion {
    V0 = 0,
    V1 = 1,
}

impl ProtocolVersion {
    pub const ALL: [ProtocolVersion; 2] = [ProtocolVersion::V0, ProtocolVersion::V1];

    pub fn as_u8(self) -> u8 {
        self as u8
    }
}

impl TryFrom<u8> for ProtocolVersion {
    type Error = DecodeError;

    fn try_from(byte: u8) -> Result<Self, DecodeError> {
        match byte {
            0 => Ok(ProtocolVersion::V0),
            1 => Ok(ProtocolVersion::V1),
            other => Err(DecodeError::UnsupportedProtocolVersion(other)),
        }
    }
}

impl serde::Serialize for ProtocolVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(self.as_u8())
    }
}

/// What a connection's NodeInformation fixes for reading its events: the protocol version
/// (event 61's form) and the core count C (the `[u8; C]` and `[u8; ⌈C/8⌉]` fields, which have no
/// length prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dialect {
    pub version: ProtocolVersion,
    /// `None` when the JAM Parameters' layout is unknown, so C cannot be trusted: each per-core
    /// field is then sized by its frame's length, as it is the only variable part of its event.
    pub core_count: Option<u16>,
}

impl Dialect {
    pub fn new(version: ProtocolVersion, core_count: u16) -> Self {
        Dialect {
            version,
            core_count: Some(core_count),
        }
    }

    /// Version 1 with `core_count` cores.
    pub fn v1(core_count: u16) -> Self {
        Self::new(ProtocolVersion::V1, core_count)
    }
}

/// A cursor over one message body. It carries the connection's [`Dialect`], because event 61
/// depends on the protocol version and `[u8; C]` fields (Status, Distributing assurance) have no
/// length prefix.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    dialect: Dialect,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8], dialect: Dialect) -> Self {
        Reader {
            buf,
            pos: 0,
            dialect,
        }
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// C, or `None` when the connection's parameters are of an unknown layout.
    pub fn core_count(&self) -> Option<u16> {
        self.dialect.core_count
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

//! The Gray Paper's general natural-number encoding, used by every `len++` prefix.
//!
//! It is NOT LEB128: the two agree below 128 and differ from 128 up (128 is `80 80` here, `80 01`
//! in LEB128). Getting this wrong breaks every Reason of 128 bytes and every list of 128 items.

use super::wire::{DecodeError, Reader};

/// Appends `value` in its canonical GP encoding (1 to 9 bytes).
///
/// ```
/// use tart_backend::jip3::natural::encode_natural;
/// let mut out = Vec::new();
/// encode_natural(128, &mut out); // LEB128 would write 80 01
/// assert_eq!(out, [0x80, 0x80]);
/// ```
pub fn encode_natural(value: u64, out: &mut Vec<u8>) {
    if value < 1 << 56 {
        // Find l with 2^(7l) <= value < 2^(7(l+1)); l = 0 for values below 128.
        let mut l = 0u32;
        while l < 7 && value >= 1u64 << (7 * (l + 1)) {
            l += 1;
        }
        let prefix = (256 - (1u32 << (8 - l))) as u64 + (value >> (8 * l));
        out.push(prefix as u8);
        out.extend_from_slice(&value.to_le_bytes()[..l as usize]);
    } else {
        out.push(0xff);
        out.extend_from_slice(&value.to_le_bytes());
    }
}

/// Number of bytes `encode_natural` writes for `value`.
pub fn natural_len(value: u64) -> usize {
    let mut buf = Vec::with_capacity(9);
    encode_natural(value, &mut buf);
    buf.len()
}

/// Reads one natural. Non-canonical forms (e.g. `80 05` for 5) are rejected, so that every accepted
/// message re-encodes to exactly the bytes it came from.
pub fn decode_natural(r: &mut Reader<'_>) -> Result<u64, DecodeError> {
    let at = r.position();
    let first = r.u8()?;
    let l = first.leading_ones();
    let value = if l == 8 {
        r.u64()?
    } else {
        let mut rest = [0u8; 8];
        rest[..l as usize].copy_from_slice(r.take(l as usize)?);
        let high = u64::from(first & (0x7f >> l));
        (high << (8 * l)) | u64::from_le_bytes(rest)
    };
    let canonical = match l {
        0 => true,
        8 => value >= 1 << 56,
        _ => value >= 1u64 << (7 * l),
    };
    if canonical {
        Ok(value)
    } else {
        Err(DecodeError::NonCanonicalNatural { offset: at, value })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(bytes: &[u8]) -> Result<u64, DecodeError> {
        let mut r = Reader::new(bytes, crate::jip3::Dialect::v1(0));
        let v = decode_natural(&mut r)?;
        r.finish()?;
        Ok(v)
    }

    #[test]
    fn boundaries_round_trip() {
        for shift in 0..64 {
            for delta in [-1i128, 0, 1] {
                let v = (1i128 << shift) + delta;
                if !(0..=u64::MAX as i128).contains(&v) {
                    continue;
                }
                let v = v as u64;
                let mut buf = Vec::new();
                encode_natural(v, &mut buf);
                assert_eq!(buf.len(), natural_len(v));
                assert_eq!(decode_all(&buf).unwrap(), v, "value {v} bytes {buf:02x?}");
            }
        }
    }

    #[test]
    fn differs_from_leb128_at_128() {
        let mut buf = Vec::new();
        encode_natural(128, &mut buf);
        assert_eq!(buf, [0x80, 0x80]);
    }

    #[test]
    fn non_canonical_is_rejected() {
        assert!(matches!(
            decode_all(&[0x80, 0x05]),
            Err(DecodeError::NonCanonicalNatural { value: 5, .. })
        ));
        assert!(decode_all(&[0xff, 1, 0, 0, 0, 0, 0, 0, 0]).is_err());
    }
}

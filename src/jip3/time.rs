//! JIP-3 timestamps are microseconds since the JAM Common Era, 2025-01-01 12:00:00 UTC.

use chrono::{DateTime, Utc};

/// The JAM Common Era in Unix microseconds.
pub const JAM_EPOCH_UNIX_MICROS: i64 = 1_735_732_800_000_000;

/// The wall-clock time of a JIP-3 timestamp. Values too large for chrono (beyond the year
/// 262,142) are clamped to its maximum; see [`is_representable`].
pub fn to_datetime(jam_micros: u64) -> DateTime<Utc> {
    exact(jam_micros).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// False for a timestamp [`to_datetime`] has to clamp.
pub fn is_representable(jam_micros: u64) -> bool {
    exact(jam_micros).is_some()
}

fn exact(jam_micros: u64) -> Option<DateTime<Utc>> {
    i64::try_from(jam_micros)
        .ok()
        .and_then(|m| m.checked_add(JAM_EPOCH_UNIX_MICROS))
        .and_then(DateTime::from_timestamp_micros)
}

/// RFC 3339 with microseconds, as the API and the `decode` tool print times.
pub fn to_rfc3339(jam_micros: u64) -> String {
    crate::time::format(&to_datetime(jam_micros))
}

/// The JIP-3 timestamp of a wall-clock time (0 for times before the JAM Common Era).
pub fn from_datetime(time: DateTime<Utc>) -> u64 {
    u64::try_from(time.timestamp_micros() - JAM_EPOCH_UNIX_MICROS).unwrap_or(0)
}

/// Now, as a JIP-3 timestamp.
pub fn now() -> u64 {
    from_datetime(Utc::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_timestamp_converts() {
        assert_eq!(
            to_rfc3339(27_900_000_123_456),
            "2025-11-20T10:00:00.123456Z"
        );
        assert_eq!(to_rfc3339(0), "2025-01-01T12:00:00.000000Z");
        assert!(is_representable(27_900_000_123_456));
        assert!(!is_representable(u64::MAX));
        assert_eq!(to_datetime(u64::MAX), DateTime::<Utc>::MAX_UTC);
    }
}

//! Wall-clock times as TART writes them (RFC 3339 UTC with microseconds), for the storage layer's
//! rows and the API's answers alike. JIP-3's own timestamps are converted in `jip3::time`.

use chrono::{DateTime, DurationRound, SecondsFormat, TimeDelta, Utc};

/// `2026-12-01T09:05:05.123456Z`.
pub fn format(time: &DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The current time, formatted.
pub fn now() -> String {
    format(&Utc::now())
}

/// `time` rounded down to a whole `unit` (a minute, an hour) since the Unix epoch: the buckets of
/// the event counts.
pub fn round_down(time: DateTime<Utc>, unit: TimeDelta) -> DateTime<Utc> {
    time.duration_trunc(unit).unwrap_or(time)
}

/// `time` rounded up to a whole `unit` (itself if it is one).
pub fn round_up(time: DateTime<Utc>, unit: TimeDelta) -> DateTime<Utc> {
    let down = round_down(time, unit);
    if down == time {
        time
    } else {
        down + unit
    }
}

/// Serde helpers writing times as [`format`] does.
pub mod rfc3339 {
    use super::*;

    pub fn serialize<S: serde::Serializer>(time: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(time))
    }

    pub fn option<S: serde::Serializer>(
        time: &Option<DateTime<Utc>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match time {
            Some(t) => serialize(t, s),
            None => s.serialize_none(),
        }
    }
}

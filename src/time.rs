//! Wall-clock times as TART writes them (RFC 3339 UTC with microseconds), for the storage layer's
//! rows and the API's answers alike. JIP-3's own timestamps are converted in `jip3::time`.

use chrono::{DateTime, SecondsFormat, Utc};

/// `2026-12-01T09:05:05.123456Z`.
pub fn format(time: &DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The current time, formatted.
pub fn now() -> String {
    format(&Utc::now())
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

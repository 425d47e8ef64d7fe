//! Query parameters shared by the REST endpoints: each bad one is a 400 that says what was
//! expected.

use chrono::{DateTime, Utc};

use super::ApiError;

/// A query parameter that must be a whole number: `default` when absent, capped at `max`.
pub fn whole_number(
    name: &str,
    text: Option<&str>,
    default: u64,
    max: u64,
) -> Result<i64, ApiError> {
    let Some(text) = text else {
        return Ok(default as i64);
    };
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::bad_request(format!(
            "invalid {name} `{text}`: expected a whole number (at most {max})"
        )));
    }
    // All digits: only too large to parse can fail, and that is capped like any large value.
    Ok(text.parse::<u64>().unwrap_or(u64::MAX).min(max) as i64)
}

/// A query parameter that must be a time in RFC 3339, e.g. `2026-12-01T10:00:00Z`.
pub fn instant(name: &str, text: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            ApiError::bad_request(format!(
                "invalid {name} `{text}`: expected a time in RFC 3339 such as \
                 2026-12-01T10:00:00Z ({e})"
            ))
        })
}

/// A time range must not be empty or reversed.
pub fn ordered(from: DateTime<Utc>, to: DateTime<Utc>) -> Result<(), ApiError> {
    if from < to {
        return Ok(());
    }
    Err(ApiError::bad_request(format!(
        "from ({}) must be before to ({})",
        crate::time::format(&from),
        crate::time::format(&to)
    )))
}

/// A request's query parameters, checked against the names an endpoint accepts: an unknown name
/// (a typo would otherwise be ignored and the answer silently unfiltered) or a repeated one that
/// may be given only once is a 400.
pub struct Params<'a> {
    pairs: &'a [(String, String)],
}

impl<'a> Params<'a> {
    pub fn new(
        pairs: &'a [(String, String)],
        accepted: &[&str],
        repeatable: &[&str],
    ) -> Result<Self, ApiError> {
        for (i, (name, _)) in pairs.iter().enumerate() {
            if !accepted.contains(&name.as_str()) {
                return Err(ApiError::bad_request(format!(
                    "unknown parameter `{name}`: accepted are {}",
                    accepted.join(", ")
                )));
            }
            if !repeatable.contains(&name.as_str()) && pairs[..i].iter().any(|(n, _)| n == name) {
                return Err(ApiError::bad_request(format!(
                    "`{name}` is given more than once"
                )));
            }
        }
        Ok(Params { pairs })
    }

    /// The value of a parameter given at most once.
    pub fn one(&self, name: &str) -> Option<&'a str> {
        self.all(name).next()
    }

    /// Every value of a parameter, in order.
    pub fn all<'n>(&self, name: &'n str) -> impl Iterator<Item = &'a str> + use<'a, 'n> {
        self.pairs
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The cursor `before` (an id: only older rows), if given.
    pub fn before(&self) -> Result<Option<i64>, ApiError> {
        self.one("before")
            .map(|text| whole_number("before", Some(text), 0, i64::MAX as u64))
            .transpose()
    }

    /// A time parameter, if given.
    pub fn instant(&self, name: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
        self.one(name).map(|text| instant(name, text)).transpose()
    }
}

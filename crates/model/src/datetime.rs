//! Lenient ISO-8601 parsing for everything a client sends as a datetime.
//!
//! Accepted: `YYYY-MM-DD` (a bare date), or a date, `T` (or a space) and
//! `HH:MM[:SS[.fraction]]`, optionally followed by an offset: `Z`, `±HH:MM`, `±HHMM`,
//! `±HH`, `±H:MM`, `±H`, where a space may stand for `+` (an unencoded `+` in a query
//! string). Braze's own `yyyy-MM-dd'T'HH:mm:ss:SSSZ` (a colon before the milliseconds)
//! is accepted too. A form without an offset is a local time, resolved by the caller.

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::{Offset, TimeZone};
use jiff::Timestamp;
use regex::Regex;
use std::sync::LazyLock;

/// The forms accepted, for error messages.
pub const ACCEPTED_FORMS: &str = "YYYY-MM-DD, or YYYY-MM-DDTHH:MM[:SS[.fff]] with an optional offset \
(Z, ±HH:MM, ±HHMM, ±HH or ±H:MM)";

/// A datetime as written: either a fixed instant, or a local date/time that still
/// needs a time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// It carried an offset: a definite instant.
    Instant(Timestamp),
    /// A datetime with no offset, in the reader's local time.
    Local(DateTime),
    /// A bare date: the start of that day in the reader's local time.
    Date(Date),
}

impl Written {
    /// The instant this denotes when local forms are read in `tz`.
    pub fn resolve(self, tz: &TimeZone) -> Timestamp {
        match self {
            Written::Instant(t) => t,
            Written::Local(dt) => tz
                .to_ambiguous_timestamp(dt)
                .compatible()
                .unwrap_or(Timestamp::MAX),
            Written::Date(d) => crate::Day(d).start(tz),
        }
    }
}

static FORM: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,:](\d{1,9}))?)?(Z|z|[+\- ](\d{1,2})(?::?(\d{2}))?)?)?$",
    )
    .expect("static regex")
});

/// Parses any accepted form; `None` for anything else.
pub fn parse(text: &str) -> Option<Written> {
    let caps = FORM.captures(text.trim())?;
    let num = |i: usize| caps.get(i).map(|m| m.as_str().parse::<i32>().ok());
    let date = Date::new(
        num(1)?? as i16,
        num(2)?? as i8,
        num(3)?? as i8,
    )
    .ok()?;
    let Some(hour) = num(4) else {
        return Some(Written::Date(date));
    };
    let minute = num(5)??;
    let second = num(6).unwrap_or(Some(0))?;
    let nanos = match caps.get(7) {
        None => 0,
        Some(m) => {
            let digits = m.as_str();
            let scaled = format!("{digits:0<9}");
            scaled.parse::<i32>().ok()?
        }
    };
    let time = Time::new(hour? as i8, minute as i8, second as i8, nanos).ok()?;
    let local = DateTime::from_parts(date, time);
    let Some(offset) = caps.get(8) else {
        return Some(Written::Local(local));
    };
    let offset = offset.as_str();
    if offset.eq_ignore_ascii_case("z") {
        return Offset::UTC.to_timestamp(local).ok().map(Written::Instant);
    }
    let sign = if offset.starts_with('-') { -1 } else { 1 };
    let hours = num(9)??;
    let minutes = num(10).unwrap_or(Some(0))?;
    if hours > 23 || minutes > 59 {
        return None;
    }
    let offset = Offset::from_seconds(sign * (hours * 3600 + minutes * 60)).ok()?;
    offset.to_timestamp(local).ok().map(Written::Instant)
}

/// Parses a datetime that must name an instant on its own: a form with an offset, or a
/// form without one read as UTC (event times, datetime operands).
pub fn parse_instant_utc(text: &str) -> Option<Timestamp> {
    parse(text).map(|w| w.resolve(&TimeZone::UTC))
}

/// Whether a string attribute value is stored as a datetime: a date, a time and an
/// explicit offset (`Z` or `±…`); bare dates and local times stay strings.
pub fn as_attribute_datetime(text: &str) -> Option<Timestamp> {
    match parse(text)? {
        Written::Instant(t) => Some(t),
        Written::Local(_) | Written::Date(_) => None,
    }
}

//! Lenient ISO-8601 parsing for everything a client sends as a datetime.
//!
//! Accepted: `YYYY-MM-DD` (a bare date), or a date, `T` (or a space) and
//! `HH:MM[:SS[.fraction]]`, optionally followed by an offset: `Z`, `±HH:MM`, `±HHMM`,
//! `±HH`, `±H:MM`, `±H`, where a space may stand for `+` (an unencoded `+` in a query
//! string). Braze's own `yyyy-MM-dd'T'HH:mm:ss:SSSZ` (a colon before exactly three
//! digits of milliseconds) is accepted too. A form without an offset is a local time,
//! resolved by the caller. Surrounding whitespace is ignored.
//!
//! [`parse_checked`] says why a text was refused; [`parse`] only whether it was.

use jiff::Timestamp;
use jiff::civil::{Date, DateTime, Time};
use jiff::tz::{Offset, TimeZone};
use regex::Regex;
use std::fmt;
use std::sync::LazyLock;

/// The forms accepted, for error messages.
pub const ACCEPTED_FORMS: &str = "YYYY-MM-DD, or YYYY-MM-DDTHH:MM[:SS[.fff]] with an optional offset \
(Z, ±HH:MM, ±HHMM, ±HH or ±H:MM)";

/// The first instant supported for the times of facts (event and purchase `time`,
/// attribute `_time`) and for the days a series may reach back to:
/// 1900-01-01T00:00:00Z. The range ends with year 9999, the last that can be written;
/// a time there beyond what [`Timestamp`] represents (from 9999-12-30T22:00Z) is read
/// as [`Timestamp::MAX`], which is in the future (taken as the moment of receipt).
pub const FIRST_INSTANT: Timestamp = Timestamp::constant(-2_208_988_800, 0);

/// The supported range of instants, for messages.
pub const SUPPORTED_RANGE: &str = "from 1900-01-01T00:00:00Z to the end of year 9999";

/// `t` if it is in the supported range (see [`FIRST_INSTANT`]), else
/// [`DateTimeError::Range`].
pub fn check_supported(t: Timestamp) -> Result<Timestamp, DateTimeError> {
    if t < FIRST_INSTANT {
        Err(DateTimeError::Range)
    } else {
        Ok(t)
    }
}

/// Largest offset hour accepted (`+23:59` is the widest offset).
pub const MAX_OFFSET_HOURS: i32 = 23;

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
    /// The instant this denotes when local forms are read in `tz`. A local time that
    /// falls in a DST gap is moved forward by the gap, one that is repeated takes its
    /// first occurrence (RFC 5545 "compatible" disambiguation). A local form past the
    /// last representable instant saturates at [`Timestamp::MAX`].
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

/// Why a text is not an accepted datetime. Its `Display` is an English phrase that
/// names the offending part; callers prefix the name of the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DateTimeError {
    /// Nothing but whitespace.
    Empty,
    /// Not in any accepted form (digits missing, wrong separators, trailing text, …).
    Form,
    /// The form is right but there is no such calendar date (`2018-02-30`).
    Date(String),
    /// The form is right but there is no such time of day (`25:00`).
    Time(String),
    /// The offset is beyond ±23:59, or its minutes beyond 59.
    Offset(String),
    /// A valid datetime outside the supported range of instants (see [`FIRST_INSTANT`]);
    /// never returned by the parser itself, which reads every year from 0000 to 9999.
    Range,
}

impl fmt::Display for DateTimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DateTimeError::Empty => write!(f, "is empty; expected {ACCEPTED_FORMS}"),
            DateTimeError::Form => {
                write!(
                    f,
                    "is not an ISO-8601 date or datetime; expected {ACCEPTED_FORMS}"
                )
            }
            DateTimeError::Date(d) => write!(f, "{d} is not a date on the calendar"),
            DateTimeError::Time(t) => write!(
                f,
                "{t} is not a time of day (hours 00-23, minutes and seconds 00-59)"
            ),
            DateTimeError::Offset(o) => write!(
                f,
                "{o} is not a UTC offset (at most {MAX_OFFSET_HOURS} hours and 59 minutes)"
            ),
            DateTimeError::Range => write!(
                f,
                "is outside the supported range of instants ({SUPPORTED_RANGE})"
            ),
        }
    }
}

impl std::error::Error for DateTimeError {}

static FORM: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"^(?P<y>[0-9]{4})-(?P<mo>[0-9]{2})-(?P<d>[0-9]{2})",
        r"(?:[Tt ](?P<h>[0-9]{2}):(?P<mi>[0-9]{2})",
        r"(?::(?P<s>[0-9]{2})(?:[.,](?P<frac>[0-9]{1,9})|:(?P<ms>[0-9]{3}))?)?",
        r"(?P<off>[Zz]|(?P<sign>[+\- ])(?:",
        r"(?P<oh2>[0-9]{2}):?(?P<om2>[0-9]{2})",
        r"|(?P<oh1>[0-9]):(?P<om1>[0-9]{2})",
        r"|(?P<oh>[0-9]{1,2})",
        r"))?)?$",
    ))
    .expect("static regex")
});

/// Parses any accepted form; `None` for anything else.
pub fn parse(text: &str) -> Option<Written> {
    parse_checked(text).ok()
}

/// Parses any accepted form, or says why the text is not one.
pub fn parse_checked(text: &str) -> Result<Written, DateTimeError> {
    parse_form(text).map(|(written, _)| written)
}

/// Parses any accepted form; the flag tells whether a space stood for the offset's `+`.
fn parse_form(text: &str) -> Result<(Written, bool), DateTimeError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(DateTimeError::Empty);
    }
    if let Some(instant) = fast_utc(text) {
        return Ok((Written::Instant(instant), false));
    }
    // Every form starts with `YYYY-`: most strings (attribute values such as "FR")
    // are turned away here without running the regular expression.
    let b = text.as_bytes();
    if b.len() < 10 || !b[..4].iter().all(u8::is_ascii_digit) || b[4] != b'-' {
        return Err(DateTimeError::Form);
    }
    let caps = FORM.captures(text).ok_or(DateTimeError::Form)?;
    // Every group is ASCII digits of bounded length, so these parses cannot fail.
    let num =
        |name: &str| -> Option<i32> { caps.name(name).map(|m| m.as_str().parse().unwrap_or(0)) };
    let date_text = &text[..10];
    let date = Date::new(
        num("y").unwrap_or(0) as i16,
        num("mo").unwrap_or(0) as i8,
        num("d").unwrap_or(0) as i8,
    )
    .map_err(|_| DateTimeError::Date(date_text.to_string()))?;
    let Some(hour) = num("h") else {
        return Ok((Written::Date(date), false));
    };
    let minute = num("mi").unwrap_or(0);
    let second = num("s").unwrap_or(0);
    let nanos = match (caps.name("frac"), caps.name("ms")) {
        (Some(frac), _) => format!("{:0<9}", frac.as_str()).parse().unwrap_or(0),
        (None, Some(ms)) => ms.as_str().parse::<i32>().unwrap_or(0) * 1_000_000,
        (None, None) => 0,
    };
    let time_end = caps.name("off").map_or(text.len(), |m| m.start());
    let time = Time::new(hour as i8, minute as i8, second as i8, nanos)
        .map_err(|_| DateTimeError::Time(text[11..time_end].to_string()))?;
    let local = DateTime::from_parts(date, time);
    let Some(off) = caps.name("off") else {
        return Ok((Written::Local(local), false));
    };
    let space_sign = caps.name("sign").map(|m| m.as_str()) == Some(" ");
    let offset = if off.as_str().eq_ignore_ascii_case("z") {
        Offset::UTC
    } else {
        let sign = if caps.name("sign").map(|m| m.as_str()) == Some("-") {
            -1
        } else {
            1
        };
        let hours = num("oh2").or(num("oh1")).or(num("oh")).unwrap_or(0);
        let minutes = num("om2").or(num("om1")).unwrap_or(0);
        if hours > MAX_OFFSET_HOURS || minutes > 59 {
            return Err(DateTimeError::Offset(off.as_str().to_string()));
        }
        Offset::from_seconds(sign * (hours * 3600 + minutes * 60))
            .map_err(|_| DateTimeError::Offset(off.as_str().to_string()))?
    };
    // Years run from 0000 to 9999 and offsets to ±23:59: the only instants past what a
    // Timestamp represents are the last hours of year 9999, read as its last instant.
    let instant = offset.to_timestamp(local).unwrap_or(Timestamp::MAX);
    Ok((Written::Instant(instant), space_sign))
}

/// The common case, without the regular expression: `YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z`.
/// `None` when the text is not exactly that form (the general parser then decides),
/// so it accepts nothing the general parser would not, with the same meaning.
fn fast_utc(text: &str) -> Option<Timestamp> {
    let b = text.as_bytes();
    if b.len() < 20 || b[b.len() - 1] != b'Z' {
        return None;
    }
    let digits = |range: std::ops::Range<usize>| -> Option<i32> {
        b.get(range)?.iter().try_fold(0i32, |n, c| {
            c.is_ascii_digit().then(|| n * 10 + i32::from(c - b'0'))
        })
    };
    let fixed = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if fixed.iter().any(|(i, c)| b[*i] != *c) {
        return None;
    }
    let nanos = match &b[19..b.len() - 1] {
        [] => 0,
        [b'.', frac @ ..] if (1..=9).contains(&frac.len()) => {
            let n = digits(20..20 + frac.len())?;
            n * 10i32.pow(9 - frac.len() as u32)
        }
        _ => return None,
    };
    let date = Date::new(
        digits(0..4)? as i16,
        digits(5..7)? as i8,
        digits(8..10)? as i8,
    )
    .ok()?;
    let time = Time::new(
        digits(11..13)? as i8,
        digits(14..16)? as i8,
        digits(17..19)? as i8,
        nanos,
    )
    .ok()?;
    Offset::UTC
        .to_timestamp(DateTime::from_parts(date, time))
        .ok()
}

/// Parses a datetime that must name an instant on its own: a form with an offset, or a
/// form without one read as UTC (event times, datetime operands).
pub fn parse_instant_utc(text: &str) -> Option<Timestamp> {
    parse(text).map(|w| w.resolve(&TimeZone::UTC))
}

/// Whether a string attribute value is stored as a datetime: a date, a time and an
/// explicit offset (`Z` or `±…`); bare dates and local times stay strings. A space
/// standing for `+` is a query-string accident, not something written in a JSON
/// string: `"2024-01-01 10:00 5"` stays a string.
pub fn as_attribute_datetime(text: &str) -> Option<Timestamp> {
    match parse_form(text).ok()? {
        (Written::Instant(t), false) => Some(t),
        (Written::Instant(_), true) | (Written::Local(_) | Written::Date(_), _) => None,
    }
}

#[cfg(test)]
mod fast_path_tests {
    use super::*;

    /// The general parser without the fast path, for comparison.
    fn slow(text: &str) -> Option<Timestamp> {
        let caps = FORM.captures(text.trim())?;
        caps.name("off")?;
        parse_instant_utc(text)
    }

    #[test]
    fn the_fast_path_agrees_with_the_general_parser() {
        let cases = [
            "2024-01-02T03:04:05Z",
            "2024-01-02T03:04:05.1Z",
            "2024-01-02T03:04:05.123456789Z",
            "2024-02-29T23:59:59.999Z",
            "1969-07-20T20:17:40Z",
        ];
        for text in cases {
            assert_eq!(fast_utc(text), slow(text), "{text}");
            assert!(fast_utc(text).is_some(), "{text}");
        }
        let declined = [
            "2023-02-29T00:00:00Z",
            "2024-01-02T24:00:00Z",
            "2024-01-02T03:04:05.1234567890Z",
            "2024-01-02T03:04:05.Z",
            "2024-01-02 03:04:05Z",
            "2024-01-02T03:04:05z",
            "2024-01-02T03:04Z",
            "+024-01-02T03:04:05Z",
        ];
        for text in declined {
            assert_eq!(fast_utc(text), None, "{text}");
        }
    }
}

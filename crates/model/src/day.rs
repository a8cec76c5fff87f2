//! Calendar days in a workspace's time zone, and the instants that bound them.
//!
//! Instants are UTC [`Timestamp`]s everywhere; a time zone is applied only here, to
//! turn an instant into the day that contains it or a day into its local midnight.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Span, Timestamp};
use std::fmt;
use std::str::FromStr;

/// A calendar day (`YYYY-MM-DD`), meaningful together with a workspace time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Day(pub Date);

/// The first day a series may show: the day of [`crate::datetime::FIRST_INSTANT`].
pub const FIRST_DAY: Day = Day(jiff::civil::date(1900, 1, 1));

impl Day {
    /// The day from its year, month and day numbers; panics on an invalid date, so
    /// meant for constants and tests.
    pub fn ymd(year: i16, month: i8, day: i8) -> Day {
        Day(jiff::civil::date(year, month, day))
    }

    /// `start(D)`: the instant of local midnight that begins this day in `tz`.
    pub fn start(self, tz: &TimeZone) -> Timestamp {
        // Midnight can fall in a DST gap in a few zones: start_of_day handles it.
        match self.0.to_zoned(tz.clone()).and_then(|z| z.start_of_day()) {
            Ok(z) => z.timestamp(),
            Err(_) => Timestamp::MAX,
        }
    }

    /// `start(D + 1)`: the instant at which this day ends, the "as of" instant of its size.
    pub fn end(self, tz: &TimeZone) -> Timestamp {
        self.next().start(tz)
    }

    /// The day that contains `instant` in `tz`.
    pub fn containing(instant: Timestamp, tz: &TimeZone) -> Day {
        Day(instant.to_zoned(tz.clone()).date())
    }

    /// The day that contains the instant just before `instant`: the reference day `R`
    /// of an "as of `instant`" evaluation (for `instant = start(D+1)` it is `D`).
    pub fn just_before(instant: Timestamp, tz: &TimeZone) -> Day {
        let before = instant
            .checked_sub(SignedDuration::from_nanos(1))
            .unwrap_or(instant);
        Day::containing(before, tz)
    }

    /// The day `n` days later (earlier for negative `n`), saturating at the calendar's ends.
    pub fn add_days(self, n: i64) -> Day {
        // `n.days()` would panic beyond a span's limits: build the span fallibly, any
        // such `n` being far past either end of the calendar anyway.
        match Span::new()
            .try_days(n)
            .and_then(|span| self.0.checked_add(span))
        {
            Ok(d) => Day(d),
            Err(_) if n < 0 => Day(Date::MIN),
            Err(_) => Day(Date::MAX),
        }
    }

    /// The following day.
    pub fn next(self) -> Day {
        self.0.tomorrow().map_or(Day(Date::MAX), Day)
    }

    /// Appends the day as its [`Display`](fmt::Display) form `YYYY-MM-DD` to `out`,
    /// without the formatting machinery (series answers print a hundred of them).
    pub fn push_iso(self, out: &mut Vec<u8>) {
        let (y, m, d) = (self.0.year(), self.0.month(), self.0.day());
        if !(0..=9999).contains(&y) {
            out.extend_from_slice(self.to_string().as_bytes());
            return;
        }
        let digit = |n: i16| b'0' + n as u8;
        let (m, d) = (i16::from(m), i16::from(d));
        let text = [
            digit(y / 1000),
            digit(y / 100 % 10),
            digit(y / 10 % 10),
            digit(y % 10),
            b'-',
            digit(m / 10),
            digit(m % 10),
            b'-',
            digit(d / 10),
            digit(d % 10),
        ];
        out.extend_from_slice(&text);
    }

    /// Days from `self` to `other` (positive when `other` is later).
    pub fn days_until(self, other: Day) -> i64 {
        other
            .0
            .since(self.0)
            .map(|s| s.get_days() as i64)
            .unwrap_or(0)
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for Day {
    type Err = jiff::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse::<Date>().map(Day)
    }
}

/// The days of a `data_series` answer: `length` days, oldest first, the last being the
/// day that contains the instant just before `ending_at`.
pub fn series_days(ending_at: Timestamp, length: u32, tz: &TimeZone) -> Vec<Day> {
    let last = Day::just_before(ending_at, tz);
    let mut day = last.add_days(1 - i64::from(length.max(1)));
    let mut days = Vec::with_capacity(length as usize);
    for _ in 0..length {
        days.push(day);
        day = day.next();
    }
    days
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paris_days_have_23_and_25_hours_across_dst() {
        let tz = TimeZone::get("Europe/Paris").unwrap();
        let spring = Day::ymd(2024, 3, 31);
        let autumn = Day::ymd(2024, 10, 27);
        assert_eq!(
            spring.end(&tz).duration_since(spring.start(&tz)).as_hours(),
            23
        );
        assert_eq!(
            autumn.end(&tz).duration_since(autumn.start(&tz)).as_hours(),
            25
        );
        assert_eq!(spring.start(&tz).to_string(), "2024-03-30T23:00:00Z");
        assert_eq!(autumn.end(&tz).to_string(), "2024-10-27T23:00:00Z");
    }

    #[test]
    fn push_iso_prints_what_display_prints() {
        for day in [
            Day::ymd(2026, 11, 29),
            Day::ymd(1, 1, 1),
            Day::ymd(999, 12, 31),
            Day::ymd(9999, 12, 31),
            Day::ymd(-5, 3, 4),
            Day(Date::MIN),
        ] {
            let mut out = b"x".to_vec();
            day.push_iso(&mut out);
            assert_eq!(out, format!("x{day}").as_bytes());
        }
    }

    #[test]
    fn series_days_run_oldest_first_to_the_day_before_ending_at() {
        let t: Timestamp = "2024-03-02T00:00:00Z".parse().unwrap();
        let days = series_days(t, 3, &TimeZone::UTC);
        assert_eq!(
            days,
            [
                Day::ymd(2024, 2, 28),
                Day::ymd(2024, 2, 29),
                Day::ymd(2024, 3, 1)
            ]
        );
        assert!(series_days(t, 0, &TimeZone::UTC).is_empty());
    }

    #[test]
    fn just_before_midnight_is_the_previous_day() {
        let tz = TimeZone::UTC;
        let t: Timestamp = "2022-12-15T00:00:00Z".parse().unwrap();
        assert_eq!(Day::just_before(t, &tz), Day::ymd(2022, 12, 14));
        let t: Timestamp = "2022-12-15T00:00:00.000000001Z".parse().unwrap();
        assert_eq!(Day::just_before(t, &tz), Day::ymd(2022, 12, 15));
    }
}

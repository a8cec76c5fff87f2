//! Instants as integer microseconds (the unit of every column), and the instants that
//! bound an "as of `T`" evaluation: `T` itself and the starts of its day windows.

use headcount_model::Day;
use jiff::Timestamp;
use jiff::tz::TimeZone;

/// A fact's time as stored: microseconds since the epoch, truncated toward the past.
pub fn floor_micros(t: Timestamp) -> i64 {
    saturate(t.as_nanosecond().div_euclid(1000))
}

/// The smallest whole microsecond at or after `t`: for a stored time `f`,
/// `f < t` exactly when `f < ceil_micros(t)`.
pub fn ceil_micros(t: Timestamp) -> i64 {
    let ns = t.as_nanosecond();
    let up = i128::from(ns.rem_euclid(1000) != 0);
    saturate(ns.div_euclid(1000) + up)
}

fn saturate(micros: i128) -> i64 {
    i64::try_from(micros).unwrap_or(if micros < 0 { i64::MIN } else { i64::MAX })
}

/// The instant `T` of an evaluation, with what every leaf derives from it.
#[derive(Debug, Clone)]
pub struct Moment {
    /// `T`.
    pub at: Timestamp,
    /// `T` in stored units: a stored time `f` is before `T` when `f < at_micros`.
    pub at_micros: i64,
    /// `R`, the day that contains the instant just before `T`.
    pub reference: Day,
    /// The workspace's time zone.
    pub tz: TimeZone,
}

impl Moment {
    /// The moment `at`, with days in `tz`.
    pub fn new(at: Timestamp, tz: &TimeZone) -> Moment {
        Moment {
            at,
            at_micros: ceil_micros(at),
            reference: Day::just_before(at, tz),
            tz: tz.clone(),
        }
    }

    /// `start(R − days + 1)`: the first instant of a window of `days` calendar days
    /// ending with the reference day.
    pub fn window_start(&self, days: u32) -> Timestamp {
        self.reference.add_days(1 - i64::from(days)).start(&self.tz)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micros_round_toward_the_comparison_that_stays_exact() {
        let t: Timestamp = "2024-01-01T00:00:00.0000015Z"
            .parse()
            .unwrap_or(Timestamp::MIN);
        assert_eq!(ceil_micros(t), floor_micros(t) + 1);
        let before: Timestamp = "1969-12-31T23:59:59.9999995Z"
            .parse()
            .unwrap_or(Timestamp::MIN);
        assert_eq!(floor_micros(before), -1);
        assert_eq!(ceil_micros(before), 0);
        let whole: Timestamp = "2024-01-01T00:00:00Z".parse().unwrap_or(Timestamp::MIN);
        assert_eq!(ceil_micros(whole), floor_micros(whole));
        assert!(ceil_micros(Timestamp::MAX) < i64::MAX);
    }
}

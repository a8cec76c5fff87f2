//! `ending_at` of `GET /segments/data_series` (shared/spec/braze-compat.md): every form
//! Braze clients send, the forms that must be refused and why, and the window of days
//! a given `ending_at` and `length` select.

use headcount_model::datetime::{
    self, ACCEPTED_FORMS, DateTimeError, Written, parse, parse_checked,
};
use headcount_model::day::series_days;
use headcount_model::{Day, Timestamp};
use jiff::civil::{Date, date};
use jiff::tz::TimeZone;

fn ts(rfc3339: &str) -> Timestamp {
    rfc3339.parse().unwrap()
}

fn tz(name: &str) -> TimeZone {
    TimeZone::get(name).unwrap()
}

fn paris() -> TimeZone {
    tz("Europe/Paris")
}

fn new_york() -> TimeZone {
    tz("America/New_York")
}

/// The instant `text` denotes in a workspace of zone `zone`.
fn at(text: &str, zone: &TimeZone) -> Timestamp {
    match parse_checked(text) {
        Ok(written) => written.resolve(zone),
        Err(e) => panic!("{text:?} was refused: {e}"),
    }
}

fn days(list: &[&str]) -> Vec<Day> {
    list.iter().map(|d| d.parse().unwrap()).collect()
}

// ---------------------------------------------------------------------------------
// Accepted forms, each with its exact instant.
// ---------------------------------------------------------------------------------

/// Forms that carry an offset: the same instant in every workspace zone.
const WITH_OFFSET: &[(&str, &str)] = &[
    // Braze's own documentation example: a one-digit offset hour.
    ("2018-06-27T23:59:59-5:00", "2018-06-28T04:59:59Z"),
    ("2018-06-27T23:59:59Z", "2018-06-27T23:59:59Z"),
    ("2018-06-27T23:59:59z", "2018-06-27T23:59:59Z"),
    // ±HH:MM
    ("2018-06-27T23:59:59+05:00", "2018-06-27T18:59:59Z"),
    ("2018-06-27T23:59:59-05:00", "2018-06-28T04:59:59Z"),
    ("2018-06-27T23:59:59+00:00", "2018-06-27T23:59:59Z"),
    ("2018-06-27T23:59:59-00:00", "2018-06-27T23:59:59Z"),
    ("2018-06-27T23:59:59+23:59", "2018-06-27T00:00:59Z"),
    ("2018-06-27T23:59:59-23:59", "2018-06-28T23:58:59Z"),
    // ±HHMM
    ("2018-06-27T23:59:59-0500", "2018-06-28T04:59:59Z"),
    ("2018-06-27T23:59:59+0530", "2018-06-27T18:29:59Z"),
    // ±HH
    ("2018-06-27T23:59:59+05", "2018-06-27T18:59:59Z"),
    ("2018-06-27T23:59:59-05", "2018-06-28T04:59:59Z"),
    // ±H:MM
    ("2018-06-27T23:59:59+5:30", "2018-06-27T18:29:59Z"),
    ("2018-06-27T23:59:59-9:30", "2018-06-28T09:29:59Z"),
    // ±H
    ("2018-06-27T23:59:59+5", "2018-06-27T18:59:59Z"),
    ("2018-06-27T23:59:59-5", "2018-06-28T04:59:59Z"),
    // A space where an unencoded `+` was (axum's Query decodes `+` as a space).
    ("2018-06-27T23:59:59 05:00", "2018-06-27T18:59:59Z"),
    ("2018-06-27T23:59:59 0530", "2018-06-27T18:29:59Z"),
    ("2018-06-27T23:59:59 05", "2018-06-27T18:59:59Z"),
    ("2018-06-27T23:59:59 5:30", "2018-06-27T18:29:59Z"),
    ("2018-06-27T23:59:59 5", "2018-06-27T18:59:59Z"),
    // Fractional seconds, 1 to 9 digits, `.` or `,`.
    ("2018-06-27T23:59:59.5Z", "2018-06-27T23:59:59.5Z"),
    ("2018-06-27T23:59:59.12Z", "2018-06-27T23:59:59.12Z"),
    ("2018-06-27T23:59:59.123Z", "2018-06-27T23:59:59.123Z"),
    ("2018-06-27T23:59:59.1234Z", "2018-06-27T23:59:59.1234Z"),
    ("2018-06-27T23:59:59.12345Z", "2018-06-27T23:59:59.12345Z"),
    ("2018-06-27T23:59:59.123456Z", "2018-06-27T23:59:59.123456Z"),
    (
        "2018-06-27T23:59:59.1234567Z",
        "2018-06-27T23:59:59.1234567Z",
    ),
    (
        "2018-06-27T23:59:59.12345678Z",
        "2018-06-27T23:59:59.12345678Z",
    ),
    (
        "2018-06-27T23:59:59.123456789Z",
        "2018-06-27T23:59:59.123456789Z",
    ),
    (
        "2018-06-27T23:59:59.000000001Z",
        "2018-06-27T23:59:59.000000001Z",
    ),
    ("2018-06-27T23:59:59,25Z", "2018-06-27T23:59:59.25Z"),
    ("2018-06-27T23:59:59.999-05:00", "2018-06-28T04:59:59.999Z"),
    ("2018-06-27T23:59:59.5 05:00", "2018-06-27T18:59:59.5Z"),
    // Braze's yyyy-MM-dd'T'HH:mm:ss:SSSZ: a colon before the milliseconds.
    ("2013-07-16T19:20:30:450+0100", "2013-07-16T18:20:30.45Z"),
    ("2013-07-16T19:20:30:045+0100", "2013-07-16T18:20:30.045Z"),
    ("2013-07-16T19:20:30:450Z", "2013-07-16T19:20:30.45Z"),
    // No seconds; a space or a lowercase `t` between date and time.
    ("2018-06-27T23:59Z", "2018-06-27T23:59:00Z"),
    ("2018-06-27T23:59+01:00", "2018-06-27T22:59:00Z"),
    ("2018-06-27 23:59:59Z", "2018-06-27T23:59:59Z"),
    ("2018-06-27 23:59:59 02:00", "2018-06-27T21:59:59Z"),
    ("2018-06-27t23:59:59Z", "2018-06-27T23:59:59Z"),
    // Surrounding whitespace is ignored.
    ("  2018-06-27T23:59:59Z\n", "2018-06-27T23:59:59Z"),
    // A leap day, and midnight exactly.
    ("2020-02-29T12:00:00Z", "2020-02-29T12:00:00Z"),
    ("2022-12-15T00:00:00Z", "2022-12-15T00:00:00Z"),
    ("2022-12-15T00:00:00+01:00", "2022-12-14T23:00:00Z"),
];

#[test]
fn every_form_with_an_offset_is_its_exact_instant_in_any_zone() {
    for (text, expected) in WITH_OFFSET {
        let written = parse_checked(text).unwrap_or_else(|e| panic!("{text:?} refused: {e}"));
        assert_eq!(written, Written::Instant(ts(expected)), "{text:?}");
        for zone in [TimeZone::UTC, paris(), new_york()] {
            assert_eq!(written.resolve(&zone), ts(expected), "{text:?}");
        }
        assert_eq!(parse(text), Some(written), "{text:?}");
    }
}

#[test]
fn braze_example_is_five_hours_behind_utc() {
    // The example of the reference page: the last second of 2018-06-27 in UTC-5.
    let t = at("2018-06-27T23:59:59-5:00", &TimeZone::UTC);
    assert_eq!(t.to_string(), "2018-06-28T04:59:59Z");
    assert_eq!(t, at("2018-06-27T23:59:59-05:00", &TimeZone::UTC));
    assert_eq!(t, at("2018-06-27T23:59:59-0500", &TimeZone::UTC));
    assert_eq!(t, at("2018-06-27T23:59:59-05", &TimeZone::UTC));
}

#[test]
fn a_bare_date_is_local_midnight_of_the_workspace_zone() {
    let cases: &[(&str, &str, &str)] = &[
        ("2018-06-27", "UTC", "2018-06-27T00:00:00Z"),
        ("2018-06-27", "Europe/Paris", "2018-06-26T22:00:00Z"),
        ("2018-06-27", "America/New_York", "2018-06-27T04:00:00Z"),
        ("2018-01-15", "UTC", "2018-01-15T00:00:00Z"),
        ("2018-01-15", "Europe/Paris", "2018-01-14T23:00:00Z"),
        ("2018-01-15", "America/New_York", "2018-01-15T05:00:00Z"),
        ("2022-12-15", "UTC", "2022-12-15T00:00:00Z"),
        // The day after each Paris DST change begins at the new offset.
        ("2024-04-01", "Europe/Paris", "2024-03-31T22:00:00Z"),
        ("2024-10-28", "Europe/Paris", "2024-10-27T23:00:00Z"),
        // Midnight does not exist in Santiago on 2024-09-08: the day begins at 01:00.
        ("2024-09-08", "America/Santiago", "2024-09-08T04:00:00Z"),
    ];
    for (text, zone, expected) in cases {
        let written = parse(text).unwrap();
        assert_eq!(
            written,
            Written::Date(text.trim().parse::<Date>().unwrap()),
            "{text}"
        );
        assert_eq!(written.resolve(&tz(zone)), ts(expected), "{text} in {zone}");
        let day: Day = text.parse().unwrap();
        assert_eq!(day.start(&tz(zone)), ts(expected), "{text} in {zone}");
    }
}

#[test]
fn a_datetime_without_offset_is_local_time_of_the_workspace_zone() {
    let cases: &[(&str, &str, &str)] = &[
        ("2018-06-27T23:59:59", "UTC", "2018-06-27T23:59:59Z"),
        (
            "2018-06-27T23:59:59",
            "Europe/Paris",
            "2018-06-27T21:59:59Z",
        ),
        (
            "2018-06-27T23:59:59",
            "America/New_York",
            "2018-06-28T03:59:59Z",
        ),
        ("2018-06-27 12:00", "Europe/Paris", "2018-06-27T10:00:00Z"),
        (
            "2018-01-15T12:00:00.25",
            "America/New_York",
            "2018-01-15T17:00:00.25Z",
        ),
        (
            "2013-07-16T19:20:30:450",
            "Europe/Paris",
            "2013-07-16T17:20:30.45Z",
        ),
        // 02:30 does not exist in Paris on 2024-03-31: moved forward by the gap.
        (
            "2024-03-31T02:30:00",
            "Europe/Paris",
            "2024-03-31T01:30:00Z",
        ),
        // 02:30 happens twice in Paris on 2024-10-27: the first occurrence (CEST).
        (
            "2024-10-27T02:30:00",
            "Europe/Paris",
            "2024-10-27T00:30:00Z",
        ),
    ];
    for (text, zone, expected) in cases {
        let written = parse(text).unwrap();
        assert!(matches!(written, Written::Local(_)), "{text}: {written:?}");
        assert_eq!(written.resolve(&tz(zone)), ts(expected), "{text} in {zone}");
    }
    assert_eq!(
        parse("2018-06-27T23:59:59"),
        Some(Written::Local(date(2018, 6, 27).at(23, 59, 59, 0)))
    );
}

// ---------------------------------------------------------------------------------
// Refused forms, each with its exact reason.
// ---------------------------------------------------------------------------------

fn date_err(s: &str) -> DateTimeError {
    DateTimeError::Date(s.to_string())
}
fn time_err(s: &str) -> DateTimeError {
    DateTimeError::Time(s.to_string())
}
fn offset_err(s: &str) -> DateTimeError {
    DateTimeError::Offset(s.to_string())
}

#[test]
fn refused_forms_say_why() {
    let form = DateTimeError::Form;
    let cases: Vec<(&str, DateTimeError)> = vec![
        ("", DateTimeError::Empty),
        ("   ", DateTimeError::Empty),
        // No such calendar date.
        ("2018-13-01", date_err("2018-13-01")),
        ("2018-00-10", date_err("2018-00-10")),
        ("2018-02-30", date_err("2018-02-30")),
        ("2019-02-29", date_err("2019-02-29")),
        ("2018-06-31T10:00:00Z", date_err("2018-06-31")),
        ("2018-06-00", date_err("2018-06-00")),
        // No such time of day.
        ("2018-06-27T25:00", time_err("25:00")),
        ("2018-06-27T24:00:00Z", time_err("24:00:00")),
        ("2018-06-27T23:60", time_err("23:60")),
        ("2018-06-27T23:59:60Z", time_err("23:59:60")),
        ("2018-06-27T23:59:61.5+01:00", time_err("23:59:61.5")),
        // No such offset.
        ("2018-06-27T23:59:59+24:00", offset_err("+24:00")),
        ("2018-06-27T23:59:59-24", offset_err("-24")),
        ("2018-06-27T23:59:59+05:60", offset_err("+05:60")),
        ("2018-06-27T23:59:59+0575", offset_err("+0575")),
        ("2018-06-27T23:59:59 99", offset_err(" 99")),
        // Not in any accepted form.
        ("now", form.clone()),
        ("today", form.clone()),
        ("27/06/2018", form.clone()),
        ("06/27/2018", form.clone()),
        ("2018/06/27", form.clone()),
        ("20180627", form.clone()),
        ("2018-6-27", form.clone()),
        ("2018-06-7", form.clone()),
        ("18-06-27", form.clone()),
        ("+2018-06-27", form.clone()),
        ("2018-06-27T", form.clone()),
        ("2018-06-27T23", form.clone()),
        ("2018-06-27T5:00", form.clone()),
        ("2018-06-27T23:5", form.clone()),
        ("2018-06-27T23:59:5Z", form.clone()),
        ("2018-06-27T23:59:59.Z", form.clone()),
        ("2018-06-27T23:59:59.1234567890Z", form.clone()),
        // Braze's colon form takes exactly three digits of milliseconds.
        ("2013-07-16T19:20:30:45+0100", form.clone()),
        ("2013-07-16T19:20:30:4500+0100", form.clone()),
        // Trailing garbage.
        ("2018-06-27T23:59:59Zjunk", form.clone()),
        ("2018-06-27T23:59:59Z Z", form.clone()),
        ("2018-06-27x", form.clone()),
        ("2018-06-27T23:59:59GMT", form.clone()),
        ("2018-06-27T23:59:59 UTC", form.clone()),
        ("2018-06-27T23:59:59+05:00[Europe/Paris]", form.clone()),
        ("2018-06-27T23:59:59+05:00:00", form.clone()),
        // Malformed offsets.
        ("2018-06-27T23:59:59+", form.clone()),
        ("2018-06-27T23:59:59+05:", form.clone()),
        ("2018-06-27T23:59:59+5:0", form.clone()),
        ("2018-06-27T23:59:59+530", form.clone()),
        ("2018-06-27T23:59:59+050", form.clone()),
        ("2018-06-27T23:59:59+05000", form.clone()),
        ("2018-06-27T23:59:59 +05:00", form.clone()),
        ("2018-06-27T23:59:59++05:00", form.clone()),
        // An offset on a bare date.
        ("2018-06-27+05:00", form.clone()),
        ("2018-06-27Z", form.clone()),
        // Epoch seconds and milliseconds.
        ("1530143999", form.clone()),
        ("1530143999000", form.clone()),
        // Digits that are not ASCII.
        ("٢٠١٨-06-27", form.clone()),
        ("2018-06-27T23:59:59−05:00", form.clone()),
    ];
    assert!(cases.len() >= 12);
    for (text, expected) in cases {
        assert_eq!(parse_checked(text), Err(expected), "{text:?}");
        assert_eq!(parse(text), None, "{text:?}");
    }
}

#[test]
fn refusal_messages_read_as_english_and_list_the_forms() {
    let message = |text: &str| parse_checked(text).unwrap_err().to_string();
    assert_eq!(
        message("now"),
        format!("is not an ISO-8601 date or datetime; expected {ACCEPTED_FORMS}")
    );
    assert_eq!(message(""), format!("is empty; expected {ACCEPTED_FORMS}"));
    assert_eq!(
        message("2018-02-30"),
        "2018-02-30 is not a date on the calendar"
    );
    assert_eq!(
        message("2018-06-27T25:00"),
        "25:00 is not a time of day (hours 00-23, minutes and seconds 00-59)"
    );
    assert_eq!(
        message("2018-06-27T23:59:59+24:00"),
        "+24:00 is not a UTC offset (at most 23 hours and 59 minutes)"
    );
    // The accepted forms named in messages include every offset style of the spec.
    for style in ["Z", "±HH:MM", "±HHMM", "±HH", "±H:MM", "YYYY-MM-DD"] {
        assert!(ACCEPTED_FORMS.contains(style), "{style}");
    }
}

#[test]
fn instants_and_attribute_datetimes_follow_the_same_parser() {
    // Datetime operands and event times: a local form is read as UTC.
    assert_eq!(
        datetime::parse_instant_utc("2018-06-27"),
        Some(ts("2018-06-27T00:00:00Z"))
    );
    assert_eq!(
        datetime::parse_instant_utc("2018-06-27T23:59:59"),
        Some(ts("2018-06-27T23:59:59Z"))
    );
    assert_eq!(
        datetime::parse_instant_utc("2018-06-27T23:59:59-5:00"),
        Some(ts("2018-06-28T04:59:59Z"))
    );
    assert_eq!(datetime::parse_instant_utc("2018-02-30"), None);
    // Attribute values: only a form with an explicit offset becomes a datetime.
    assert_eq!(
        datetime::as_attribute_datetime("2013-07-16T19:20:30:450+0100"),
        Some(ts("2013-07-16T18:20:30.45Z"))
    );
    assert_eq!(datetime::as_attribute_datetime("2018-06-27"), None);
    assert_eq!(datetime::as_attribute_datetime("2018-06-27T10:00:00"), None);
    assert_eq!(datetime::as_attribute_datetime("hello"), None);
    // A space for `+` is accepted in a query string only, not in a JSON value.
    assert_eq!(
        datetime::as_attribute_datetime("2018-06-27T23:59:59 05:00"),
        None
    );
    assert_eq!(datetime::as_attribute_datetime("2024-01-01 10:00 5"), None);
    assert_eq!(
        datetime::as_attribute_datetime("2024-01-01 10:00-5"),
        Some(ts("2024-01-01T15:00:00Z"))
    );
}

// ---------------------------------------------------------------------------------
// The window of days.
// ---------------------------------------------------------------------------------

/// Asserts that `series` is `length` consecutive days, oldest first, ending on `last`.
fn assert_window(series: &[Day], length: u32, last: Day) {
    assert_eq!(series.len(), length as usize);
    assert_eq!(series.last(), Some(&last));
    assert_eq!(series[0], last.add_days(-(i64::from(length) - 1)));
    for pair in series.windows(2) {
        assert_eq!(pair[0].next(), pair[1], "gap or disorder in {series:?}");
        assert_eq!(pair[0].days_until(pair[1]), 1);
    }
}

#[test]
fn observed_braze_windows() {
    let utc = TimeZone::UTC;
    // ending_at=2022-12-15&length=6 returned 2022-12-09 … 2022-12-14.
    assert_eq!(
        series_days(at("2022-12-15", &utc), 6, &utc),
        days(&[
            "2022-12-09",
            "2022-12-10",
            "2022-12-11",
            "2022-12-12",
            "2022-12-13",
            "2022-12-14"
        ])
    );
    // ending_at=2022-12-09&length=99 returned 2022-09-01 … 2022-12-08.
    let series = series_days(at("2022-12-09", &utc), 99, &utc);
    assert_eq!(series.first(), Some(&Day::ymd(2022, 9, 1)));
    assert_eq!(series.last(), Some(&Day::ymd(2022, 12, 8)));
    assert_window(&series, 99, Day::ymd(2022, 12, 8));
}

#[test]
fn length_one_and_one_hundred() {
    let utc = TimeZone::UTC;
    let end = at("2022-12-15", &utc);
    assert_eq!(series_days(end, 1, &utc), vec![Day::ymd(2022, 12, 14)]);
    let hundred = series_days(end, 100, &utc);
    assert_eq!(hundred.first(), Some(&Day::ymd(2022, 9, 6)));
    assert_window(&hundred, 100, Day::ymd(2022, 12, 14));
}

#[test]
fn a_mid_day_instant_makes_its_own_day_the_last_point() {
    let utc = TimeZone::UTC;
    assert_eq!(
        series_days(at("2022-12-15T12:00:00Z", &utc), 3, &utc),
        days(&["2022-12-13", "2022-12-14", "2022-12-15"])
    );
    // Braze's example: 23:59:59 in UTC-5 is 04:59:59 the next day in UTC…
    assert_eq!(
        series_days(at("2018-06-27T23:59:59-5:00", &utc), 2, &utc),
        days(&["2018-06-27", "2018-06-28"])
    );
    // …but still 2018-06-27 in Bogotá (UTC-5 all year), and 00:59:59 on the 28th in
    // New York (UTC-4 in summer).
    let end = at("2018-06-27T23:59:59-5:00", &utc);
    assert_eq!(
        series_days(end, 2, &tz("America/Bogota")),
        days(&["2018-06-26", "2018-06-27"])
    );
    assert_eq!(
        series_days(end, 2, &new_york()),
        days(&["2018-06-27", "2018-06-28"])
    );
    // One nanosecond into a day is enough for it to be the last point.
    assert_eq!(
        series_days(at("2022-12-15T00:00:00.000000001Z", &utc), 1, &utc),
        days(&["2022-12-15"])
    );
}

#[test]
fn an_ending_at_exactly_at_midnight_ends_with_the_day_before() {
    let utc = TimeZone::UTC;
    let expected = days(&["2022-12-12", "2022-12-13", "2022-12-14"]);
    for text in [
        "2022-12-15",
        "2022-12-15T00:00:00Z",
        "2022-12-15T00:00Z",
        "2022-12-15T00:00:00",
        "2022-12-15T01:00:00+01:00",
        "2022-12-14T19:00:00-5:00",
    ] {
        assert_eq!(series_days(at(text, &utc), 3, &utc), expected, "{text}");
    }
    // Midnight of the workspace zone, not of UTC.
    let ny = new_york();
    assert_eq!(at("2022-12-15", &ny), ts("2022-12-15T05:00:00Z"));
    assert_eq!(series_days(at("2022-12-15", &ny), 3, &ny), expected);
    assert_eq!(
        series_days(at("2022-12-15T05:00:00Z", &ny), 3, &ny),
        expected
    );
    // The same instant read in UTC is mid-day 2022-12-15.
    assert_eq!(
        series_days(at("2022-12-15T05:00:00Z", &ny), 1, &utc),
        days(&["2022-12-15"])
    );
}

#[test]
fn paris_days_across_the_2024_dst_changes() {
    let paris = paris();
    let spring = Day::ymd(2024, 3, 31);
    let autumn = Day::ymd(2024, 10, 27);
    assert_eq!(spring.start(&paris), ts("2024-03-30T23:00:00Z"));
    assert_eq!(spring.end(&paris), ts("2024-03-31T22:00:00Z"));
    assert_eq!(
        spring.end(&paris).duration_since(spring.start(&paris)),
        jiff::SignedDuration::from_hours(23)
    );
    assert_eq!(autumn.start(&paris), ts("2024-10-26T22:00:00Z"));
    assert_eq!(autumn.end(&paris), ts("2024-10-27T23:00:00Z"));
    assert_eq!(
        autumn.end(&paris).duration_since(autumn.start(&paris)),
        jiff::SignedDuration::from_hours(25)
    );
    // Ordinary days either side have 24 hours.
    for day in [
        Day::ymd(2024, 3, 30),
        Day::ymd(2024, 4, 1),
        Day::ymd(2024, 10, 28),
    ] {
        assert_eq!(
            day.end(&paris).duration_since(day.start(&paris)),
            jiff::SignedDuration::from_hours(24),
            "{day}"
        );
    }

    // 2024-03-30T23:30:00Z is 00:30 CET on 2024-03-31 in Paris, still 03-30 in UTC.
    let t = ts("2024-03-30T23:30:00Z");
    assert_eq!(Day::containing(t, &paris), spring);
    assert_eq!(Day::containing(t, &TimeZone::UTC), Day::ymd(2024, 3, 30));
    assert_eq!(series_days(t, 1, &paris), vec![spring]);
    assert_eq!(
        series_days(t, 1, &TimeZone::UTC),
        vec![Day::ymd(2024, 3, 30)]
    );
    // Half an hour earlier it is 23:30 on 2024-03-30 in Paris.
    assert_eq!(
        Day::containing(ts("2024-03-30T22:30:00Z"), &paris),
        Day::ymd(2024, 3, 30)
    );
    // The last instant of the 23-hour day, and the first of the next.
    assert_eq!(
        Day::containing(ts("2024-03-31T21:59:59.999999999Z"), &paris),
        spring
    );
    assert_eq!(
        Day::containing(ts("2024-03-31T22:00:00Z"), &paris),
        Day::ymd(2024, 4, 1)
    );
    // The 25-hour day runs from 22:00Z on the 26th to 23:00Z on the 27th.
    assert_eq!(
        Day::containing(ts("2024-10-26T21:59:59Z"), &paris),
        Day::ymd(2024, 10, 26)
    );
    assert_eq!(Day::containing(ts("2024-10-27T22:59:59Z"), &paris), autumn);
    assert_eq!(
        Day::containing(ts("2024-10-27T23:00:00Z"), &paris),
        Day::ymd(2024, 10, 28)
    );

    // Windows ending across each change: bare dates are Paris midnights.
    assert_eq!(
        series_days(at("2024-04-02", &paris), 4, &paris),
        days(&["2024-03-29", "2024-03-30", "2024-03-31", "2024-04-01"])
    );
    assert_eq!(
        series_days(at("2024-10-29", &paris), 4, &paris),
        days(&["2024-10-25", "2024-10-26", "2024-10-27", "2024-10-28"])
    );
    // An instant that is already the 28th in Paris but the 27th in UTC.
    let late = ts("2024-10-27T23:30:00Z");
    assert_eq!(
        series_days(late, 2, &paris),
        days(&["2024-10-27", "2024-10-28"])
    );
    assert_eq!(
        series_days(late, 2, &TimeZone::UTC),
        days(&["2024-10-26", "2024-10-27"])
    );
    // In a window across either change, each day ends where the next begins.
    for (end, last) in [
        ("2024-05-01", Day::ymd(2024, 4, 30)),
        ("2024-12-01", Day::ymd(2024, 11, 30)),
    ] {
        let window = series_days(at(end, &paris), 100, &paris);
        assert_window(&window, 100, last);
        for pair in window.windows(2) {
            assert_eq!(pair[0].end(&paris), pair[1].start(&paris));
        }
    }
}

#[test]
fn windows_are_oldest_first_without_gaps_in_every_zone() {
    let zones = [
        TimeZone::UTC,
        paris(),
        new_york(),
        tz("Asia/Kolkata"),
        tz("Pacific/Kiritimati"),
        tz("Pacific/Pago_Pago"),
    ];
    let ends = [
        "2022-12-15",
        "2024-03-31T02:30:00",
        "2024-10-27T02:30:00",
        "2024-03-01T12:00:00Z",
        "2020-03-01",
        "2021-01-01T00:00:00.000000001+14:00",
    ];
    for zone in &zones {
        for text in ends {
            let end = at(text, zone);
            let last = Day::just_before(end, zone);
            for length in [1, 2, 6, 7, 30, 31, 99, 100] {
                let series = series_days(end, length, zone);
                assert_window(&series, length, last);
                // Every point's day began before ending_at; the day after the last did not.
                for day in &series {
                    assert!(day.start(zone) < end, "{text} {day}");
                }
                assert!(last.end(zone) >= end, "{text}");
            }
        }
    }
}

#[test]
fn a_leap_year_window_counts_february_29() {
    let utc = TimeZone::UTC;
    assert_eq!(
        series_days(at("2020-03-02", &utc), 3, &utc),
        days(&["2020-02-28", "2020-02-29", "2020-03-01"])
    );
    assert_eq!(
        series_days(at("2021-03-02", &utc), 3, &utc),
        days(&["2021-02-27", "2021-02-28", "2021-03-01"])
    );
    // Across a year boundary.
    assert_eq!(
        series_days(at("2023-01-02", &utc), 3, &utc),
        days(&["2022-12-30", "2022-12-31", "2023-01-01"])
    );
}

#[test]
fn day_arithmetic_saturates_instead_of_panicking() {
    let day = Day::ymd(2024, 1, 1);
    assert_eq!(day.add_days(0), day);
    assert_eq!(day.add_days(-1), Day::ymd(2023, 12, 31));
    assert_eq!(day.add_days(366), Day::ymd(2025, 1, 1));
    assert_eq!(day.add_days(i64::MAX), Day(Date::MAX));
    assert_eq!(day.add_days(i64::MIN), Day(Date::MIN));
    assert_eq!(day.add_days(10_000_000), Day(Date::MAX));
    assert_eq!(day.add_days(-10_000_000), Day(Date::MIN));
    assert_eq!(day.days_until(Day::ymd(2024, 12, 31)), 365);
    assert_eq!(Day::ymd(2024, 12, 31).days_until(day), -365);
    assert_eq!(day.to_string(), "2024-01-01");
}

#[test]
fn the_last_hours_of_year_9999_read_as_the_last_instant_and_1900_starts_the_range() {
    for text in [
        "9999-12-31T23:59:59Z",
        "9999-12-31",
        "9999-12-30T23:00:00Z",
        "9999-12-31T10:00:00-23:59",
    ] {
        assert_eq!(
            datetime::parse_instant_utc(text),
            Some(jiff::Timestamp::MAX),
            "{text}"
        );
    }
    assert_eq!(
        datetime::as_attribute_datetime("9999-12-31T00:00:00Z"),
        Some(jiff::Timestamp::MAX)
    );
    let first = datetime::parse_instant_utc("1900-01-01T00:00:00Z").expect("parses");
    assert_eq!(first, datetime::FIRST_INSTANT);
    assert_eq!(datetime::check_supported(first), Ok(first));
    for text in [
        "1899-12-31T23:59:59.999Z",
        "0000-01-01",
        "1900-01-01T00:00:00+00:01",
    ] {
        let t = datetime::parse_instant_utc(text).expect("parses");
        assert_eq!(
            datetime::check_supported(t),
            Err(DateTimeError::Range),
            "{text}"
        );
    }
    assert_eq!(
        DateTimeError::Range.to_string(),
        "is outside the supported range of instants (from 1900-01-01T00:00:00Z to the end of year 9999)"
    );
}

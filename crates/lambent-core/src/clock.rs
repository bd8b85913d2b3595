//! Wall-clock time as lambent writes it: Unix milliseconds, RFC 3339, and calendar dates, all
//! through the `time` crate so that no module carries its own calendar arithmetic.
//!
//! Reading the system clock is the only thing here that looks outside the process.

use time::format_description::well_known::Rfc3339;
use time::{Date, Month, OffsetDateTime};

/// The Julian day number of 1970-01-01.
const UNIX_EPOCH_JULIAN_DAY: i64 = 2_440_588;

/// Now, in Unix milliseconds (0 before 1970, `i64::MAX` past the year 292 million).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The current time as RFC 3339 (`last_modified` of functions and versions).
pub fn now_rfc3339() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_else(|_| String::from("1970-01-01T00:00:00Z"))
}

/// Parses an RFC 3339 time (`2026-11-29T10:00:00Z`, any offset) into ms since the epoch.
pub fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    let t = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// The instant of a Unix time in milliseconds (the epoch when out of `time`'s range).
fn instant(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// A Unix time in milliseconds as RFC 3339 UTC with milliseconds (`2026-11-29T04:30:00.123Z`).
pub fn rfc3339_ms(ms: i64) -> String {
    let t = instant(ms);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// A Unix time in milliseconds in the common log format API Gateway uses for
/// `requestContext.time`: `28/Nov/2026:17:05:59 +0000`.
pub fn clf_time(ms: i64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let t = instant(ms);
    let month = MONTHS[usize::from(u8::from(t.month()) - 1)];
    format!(
        "{:02}/{month}/{:04}:{:02}:{:02}:{:02} +0000",
        t.day(),
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// The date of a count of days since 1970-01-01, clamped to the range `time` represents
/// (years -9999 to 9999).
pub fn date_of_days(days: i64) -> Date {
    let julian = days.saturating_add(UNIX_EPOCH_JULIAN_DAY).clamp(
        i64::from(Date::MIN.to_julian_day()),
        i64::from(Date::MAX.to_julian_day()),
    );
    i32::try_from(julian)
        .ok()
        .and_then(|j| Date::from_julian_day(j).ok())
        .unwrap_or(Date::MAX)
}

/// Days since 1970-01-01 of a date.
pub fn days_of_date(date: Date) -> i64 {
    i64::from(date.to_julian_day()) - UNIX_EPOCH_JULIAN_DAY
}

/// The date of `year`, `month` (1-12) and `day`, if it exists.
pub fn date(year: i64, month: u32, day: u32) -> Option<Date> {
    let month = Month::try_from(u8::try_from(month).ok()?).ok()?;
    Date::from_calendar_date(i32::try_from(year).ok()?, month, u8::try_from(day).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips_in_milliseconds() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_795_885_559_123), "2026-11-28T17:05:59.123Z");
        assert_eq!(
            parse_rfc3339_ms("2026-11-28T17:05:59.123Z"),
            Some(1_795_885_559_123)
        );
        assert_eq!(
            parse_rfc3339_ms("2026-11-28T18:05:59+01:00"),
            Some(1_795_885_559_000)
        );
        assert_eq!(parse_rfc3339_ms("yesterday"), None);
        let now = now_rfc3339();
        assert!(parse_rfc3339_ms(&now).is_some(), "{now}");
    }

    #[test]
    fn common_log_format() {
        assert_eq!(clf_time(1_795_885_559_000), "28/Nov/2026:17:05:59 +0000");
        assert_eq!(clf_time(1_709_164_800_000), "29/Feb/2024:00:00:00 +0000");
        assert_eq!(clf_time(-1), "31/Dec/1969:23:59:59 +0000");
    }

    #[test]
    fn days_and_dates() {
        assert_eq!(days_of_date(date_of_days(0)), 0);
        assert_eq!(date(1970, 1, 1).map(days_of_date), Some(0));
        assert_eq!(date(2028, 2, 29).map(days_of_date), Some(21_243));
        assert_eq!(date(2027, 2, 29), None);
        assert_eq!(date(2026, 13, 1), None);
        assert_eq!(date_of_days(i64::MAX), Date::MAX);
        assert_eq!(date_of_days(i64::MIN), Date::MIN);
        assert!(now_ms() > 1_700_000_000_000);
    }
}

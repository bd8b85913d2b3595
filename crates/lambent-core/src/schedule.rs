//! Amazon EventBridge schedule expressions, `rate(...)` and `cron(...)`, evaluated in UTC.
//!
//! Calendar arithmetic goes through the `time` crate ([`crate::clock`]); days are counted from
//! 1970-01-01.

use std::fmt;

use crate::clock;

const MS_PER_MINUTE: u64 = 60_000;
const MS_PER_HOUR: u64 = 3_600_000;
const MS_PER_DAY: u64 = 86_400_000;
const MINUTES_PER_DAY: u64 = 1_440;
const SATURDAY: u32 = 7;

/// A parsed EventBridge schedule expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// `rate(N unit)`: fires every `every_ms` milliseconds after an anchor.
    Rate {
        /// The period; a whole number of minutes when parsed.
        every_ms: u64,
    },
    /// `cron(...)`: fires at the UTC minutes the six fields allow.
    Cron(Cron),
}

/// A parsed six-field EventBridge cron expression (UTC, years 1970-2199).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: Bits,
    hours: Bits,
    day_of_month: DayOfMonth,
    months: Bits,
    day_of_week: DayOfWeek,
    years: Bits<4>,
    /// The original fields joined by single spaces.
    text: String,
}

/// Why a schedule expression was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScheduleError {
    /// The expression is malformed; the message says what to write instead.
    #[error("{0}")]
    Invalid(String),
}

fn invalid(msg: String) -> ScheduleError {
    ScheduleError::Invalid(msg)
}

impl Schedule {
    /// Parses `rate(N unit)` or `cron(min hour day-of-month month day-of-week year)`.
    pub fn parse(expr: &str) -> Result<Schedule, ScheduleError> {
        let trimmed = expr.trim();
        let body = |prefix: &str| trimmed.strip_prefix(prefix)?.strip_suffix(')');
        if let Some(body) = body("rate(") {
            parse_rate(body)
        } else if let Some(body) = body("cron(") {
            parse_cron(body).map(Schedule::Cron)
        } else {
            Err(invalid(format!(
                "schedule expression must be rate(N unit) or cron(min hour day-of-month month \
                 day-of-week year), got {expr:?}"
            )))
        }
    }

    /// The first firing time strictly after `after_ms` (Unix epoch milliseconds, UTC), or `None`
    /// if there is none. A rate fires at `anchor_ms + k * every_ms` for `k >= 1`; a cron ignores
    /// `anchor_ms` and fires on whole minutes.
    pub fn next_after(&self, anchor_ms: u64, after_ms: u64) -> Option<u64> {
        match self {
            Schedule::Rate { every_ms } => {
                let k = after_ms.saturating_sub(anchor_ms).checked_div(*every_ms)? + 1;
                anchor_ms.checked_add(k.checked_mul(*every_ms)?)
            }
            Schedule::Cron(cron) => cron.next_after(after_ms),
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Rate { every_ms } => {
                let (n, unit) = if every_ms % MS_PER_DAY == 0 {
                    (every_ms / MS_PER_DAY, "day")
                } else if every_ms % MS_PER_HOUR == 0 {
                    (every_ms / MS_PER_HOUR, "hour")
                } else {
                    (every_ms / MS_PER_MINUTE, "minute")
                };
                let s = if n == 1 { "" } else { "s" };
                write!(f, "rate({n} {unit}{s})")
            }
            Schedule::Cron(cron) => write!(f, "cron({})", cron.text),
        }
    }
}

fn parse_rate(body: &str) -> Result<Schedule, ScheduleError> {
    let tokens: Vec<&str> = body.split_whitespace().collect();
    let &[value, unit] = tokens.as_slice() else {
        return Err(invalid(format!(
            "rate expression must be rate(N unit), e.g. rate(5 minutes), got \"rate({body})\""
        )));
    };
    if !value.bytes().all(|b| b.is_ascii_digit()) || value.bytes().all(|b| b == b'0') {
        return Err(invalid(format!(
            "rate value must be a whole number of at least 1, e.g. rate(5 minutes), got {value:?}"
        )));
    }
    let too_large = || {
        invalid(format!(
            "rate value {value} is too large; use a smaller one"
        ))
    };
    let n: u64 = value.parse().map_err(|_| too_large())?;
    let (singular, unit_ms) = match unit {
        "minute" | "minutes" => ("minute", MS_PER_MINUTE),
        "hour" | "hours" => ("hour", MS_PER_HOUR),
        "day" | "days" => ("day", MS_PER_DAY),
        _ => {
            return Err(invalid(format!(
                "rate unit must be minute, minutes, hour, hours, day or days, got {unit:?}"
            )));
        }
    };
    if (n == 1) != (unit == singular) {
        let form = if n == 1 { "singular" } else { "plural" };
        let s = if n == 1 { "" } else { "s" };
        return Err(invalid(format!(
            "rate({value} {unit}) must use the {form} unit: write rate({value} {singular}{s})"
        )));
    }
    let every_ms = n.checked_mul(unit_ms).ok_or_else(too_large)?;
    Ok(Schedule::Rate { every_ms })
}

/// A set of small integers; bit `i` stands for the field's minimum plus `i`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Bits<const N: usize = 1>([u64; N]);

impl<const N: usize> Bits<N> {
    fn set(&mut self, i: u32) {
        self.0[(i / 64) as usize] |= 1 << (i % 64);
    }

    fn has(&self, i: u32) -> bool {
        self.next_from(i) == Some(i)
    }

    /// The smallest member `>= i`.
    fn next_from(&self, i: u32) -> Option<u32> {
        let mut word = (i / 64) as usize;
        let mut bits = *self.0.get(word)? & (u64::MAX << (i % 64));
        loop {
            if bits != 0 {
                return Some(word as u32 * 64 + bits.trailing_zeros());
            }
            word += 1;
            bits = *self.0.get(word)?;
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DayOfMonth {
    Any,
    Days(Bits),
    Last,
    LastWeekday,
    NearestWeekday(u32),
}

/// Weekdays are numbered 1 = Sunday to 7 = Saturday.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DayOfWeek {
    Any,
    Days(Bits),
    LastOfMonth(u32),
    Nth(u32, u32),
}

struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const MINUTES: Field = Field::new("minutes", 0, 59, &[]);
const HOURS: Field = Field::new("hours", 0, 23, &[]);
const DAYS_OF_MONTH: Field = Field::new("day-of-month", 1, 31, &[]);
const MONTHS: Field = Field::new("month", 1, 12, &MONTH_NAMES);
const DAYS_OF_WEEK: Field = Field::new("day-of-week", 1, 7, &WEEKDAY_NAMES);
const YEARS: Field = Field::new("year", 1970, 2199, &[]);
const MONTH_NAMES: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

impl Field {
    const fn new(name: &'static str, min: u32, max: u32, names: &'static [&'static str]) -> Self {
        Field {
            name,
            min,
            max,
            names,
        }
    }

    fn allowed(&self) -> String {
        match (self.names.first(), self.names.last()) {
            (Some(a), Some(b)) => format!("{}-{} or {a}-{b}", self.min, self.max),
            _ => format!("{}-{}", self.min, self.max),
        }
    }

    fn value(&self, token: &str) -> Result<u32, ScheduleError> {
        let parsed = if !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit()) {
            token.parse::<u32>().ok()
        } else if let Some(i) = self
            .names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(token))
        {
            Some(self.min + i as u32)
        } else {
            return Err(invalid(format!(
                "{} field has {token:?}; use values {}, *, ranges a-b, lists a,b or increments a/n",
                self.name,
                self.allowed()
            )));
        };
        match parsed {
            Some(v) if (self.min..=self.max).contains(&v) => Ok(v),
            _ => Err(invalid(format!(
                "{} value {token} is out of range; use {}",
                self.name,
                self.allowed()
            ))),
        }
    }

    /// Parses lists of `*`, `a`, `a-b` and `x/n` items.
    fn parse<const N: usize>(&self, field: &str) -> Result<Bits<N>, ScheduleError> {
        let mut bits = Bits([0; N]);
        for item in field.split(',') {
            if item == "?" {
                return Err(invalid(format!(
                    "? is allowed only on its own in day-of-month or day-of-week, not in {} field \
                     {field:?}; use * for every value",
                    self.name
                )));
            }
            let (range, step) = match item.split_once('/') {
                Some((range, step)) => (range, Some(self.step(item, step)?)),
                None => (item, None),
            };
            let (lo, hi) = if range == "*" {
                (self.min, self.max)
            } else if let Some((a, b)) = range.split_once('-') {
                let (lo, hi) = (self.value(a)?, self.value(b)?);
                if lo > hi {
                    return Err(invalid(format!(
                        "{} range {range:?} runs backwards; write the smaller value first, e.g. \
                         {b}-{a}",
                        self.name
                    )));
                }
                (lo, hi)
            } else {
                let lo = self.value(range)?;
                (lo, if step.is_some() { self.max } else { lo })
            };
            for v in (lo..=hi).step_by(step.unwrap_or(1) as usize) {
                bits.set(v - self.min);
            }
        }
        Ok(bits)
    }

    fn step(&self, item: &str, step: &str) -> Result<u32, ScheduleError> {
        let span = self.max - self.min + 1;
        match step.parse::<u32>() {
            Ok(n) if (1..=span).contains(&n) && step.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
            _ => Err(invalid(format!(
                "{} increment in {item:?} must be a whole number from 1 to {span}, e.g. 0/15",
                self.name
            ))),
        }
    }
}

fn parse_day_of_month(field: &str) -> Result<DayOfMonth, ScheduleError> {
    Ok(match field {
        "?" => DayOfMonth::Any,
        "L" => DayOfMonth::Last,
        "LW" => DayOfMonth::LastWeekday,
        _ if field.contains(['L', 'W']) => match field.strip_suffix('W') {
            Some(day) if !day.contains(['L', 'W', ',', '-', '/', '*']) => {
                DayOfMonth::NearestWeekday(DAYS_OF_MONTH.value(day)?)
            }
            _ => {
                return Err(invalid(format!(
                    "day-of-month {field:?} misuses L or W; write L, LW or one day with W, e.g. 15W"
                )));
            }
        },
        _ => DayOfMonth::Days(DAYS_OF_MONTH.parse(field)?),
    })
}

fn parse_day_of_week(field: &str) -> Result<DayOfWeek, ScheduleError> {
    if field == "?" {
        return Ok(DayOfWeek::Any);
    }
    if field == "L" {
        return Ok(DayOfWeek::Days(Bits([1 << (SATURDAY - 1)])));
    }
    if let Some((day, nth)) = field.split_once('#') {
        let day = DAYS_OF_WEEK.value(day)?;
        return match nth.parse::<u32>() {
            Ok(n) if (1..=5).contains(&n) && nth.len() == 1 => Ok(DayOfWeek::Nth(day, n)),
            _ => Err(invalid(format!(
                "day-of-week {field:?} needs an instance 1-5 after #, e.g. 3#2 for the second Tuesday"
            ))),
        };
    }
    if let Some(day) = field.strip_suffix('L') {
        return Ok(DayOfWeek::LastOfMonth(DAYS_OF_WEEK.value(day)?));
    }
    Ok(DayOfWeek::Days(DAYS_OF_WEEK.parse(field)?))
}

fn parse_cron(body: &str) -> Result<Cron, ScheduleError> {
    let fields: Vec<&str> = body.split_whitespace().collect();
    let &[minutes, hours, day_of_month, months, day_of_week, years] = fields.as_slice() else {
        return Err(invalid(format!(
            "cron expression must have 6 fields (minutes hours day-of-month month day-of-week \
             year), e.g. cron(0 12 * * ? *), got {} in \"cron({body})\"",
            fields.len()
        )));
    };
    let cron = Cron {
        minutes: MINUTES.parse(minutes)?,
        hours: HOURS.parse(hours)?,
        day_of_month: parse_day_of_month(day_of_month)?,
        months: MONTHS.parse(months)?,
        day_of_week: parse_day_of_week(day_of_week)?,
        years: YEARS.parse(years)?,
        text: fields.join(" "),
    };
    let dom_any = cron.day_of_month == DayOfMonth::Any;
    if dom_any == (cron.day_of_week == DayOfWeek::Any) {
        return Err(invalid(format!(
            "one of day-of-month or day-of-week must be ?, and only one, got {day_of_month:?} and \
             {day_of_week:?}; e.g. cron(0 12 * * ? *) or cron(0 12 ? * MON-FRI *)"
        )));
    }
    Ok(cron)
}

impl Cron {
    fn next_after(&self, after_ms: u64) -> Option<u64> {
        let start = after_ms / MS_PER_MINUTE + 1;
        let mut day = i64::try_from(start / MINUTES_PER_DAY).ok()?;
        let mut from_minute = (start % MINUTES_PER_DAY) as u32;
        loop {
            let (y, m, d) = civil_from_days(day);
            let year_index = u32::try_from(y - i64::from(YEARS.min)).ok()?;
            let next_year = self.years.next_from(year_index)?;
            if next_year != year_index {
                day = days_from_civil(i64::from(YEARS.min + next_year), 1, 1);
                from_minute = 0;
                continue;
            }
            if !self.months.has(m - 1) {
                day = match self.months.next_from(m - 1) {
                    Some(i) => days_from_civil(y, i + 1, 1),
                    None => days_from_civil(y + 1, 1, 1),
                };
                from_minute = 0;
                continue;
            }
            if self.day_matches(y, m, d, day)
                && let Some(minute) = self.first_minute_from(from_minute)
            {
                let minutes = u64::try_from(day).ok()? * MINUTES_PER_DAY + u64::from(minute);
                return Some(minutes * MS_PER_MINUTE);
            }
            day += 1;
            from_minute = 0;
        }
    }

    /// The first allowed minute of the day at or after `from` (minutes since midnight).
    fn first_minute_from(&self, from: u32) -> Option<u32> {
        let (h0, m0) = (from / 60, from % 60);
        if let Some(minute) = self.minutes.next_from(m0).filter(|_| self.hours.has(h0)) {
            return Some(h0 * 60 + minute);
        }
        Some(self.hours.next_from(h0 + 1)? * 60 + self.minutes.next_from(0)?)
    }

    fn day_matches(&self, y: i64, m: u32, d: u32, day: i64) -> bool {
        let dim = days_in_month(y, m);
        let weekday_of = |n: u32| weekday(day + i64::from(n) - i64::from(d));
        match self.day_of_month {
            DayOfMonth::Any => {}
            DayOfMonth::Days(bits) => return bits.has(d - 1),
            DayOfMonth::Last => return d == dim,
            DayOfMonth::LastWeekday => {
                return match weekday_of(dim) {
                    SATURDAY => d == dim - 1,
                    1 => d == dim - 2,
                    _ => d == dim,
                };
            }
            DayOfMonth::NearestWeekday(n) => {
                return n <= dim
                    && match weekday_of(n) {
                        SATURDAY if n == 1 => d == 3,
                        SATURDAY => d == n - 1,
                        1 if n == dim => d == n - 2,
                        1 => d == n + 1,
                        _ => d == n,
                    };
            }
        }
        let wd = weekday(day);
        match self.day_of_week {
            DayOfWeek::Any => false,
            DayOfWeek::Days(bits) => bits.has(wd - 1),
            DayOfWeek::LastOfMonth(w) => wd == w && d + 7 > dim,
            DayOfWeek::Nth(w, n) => wd == w && (d - 1) / 7 + 1 == n,
        }
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date. A date that does not exist (or lies
/// outside the years `time` represents) counts as the end of time, past every schedule.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    clock::date(y, m, d).map_or(i64::MAX, clock::days_of_date)
}

/// The date `(year, month, day)` of days since 1970-01-01; days past the year 9999 give
/// 9999-12-31, which no schedule reaches ([`YEARS`] ends long before).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let date = clock::date_of_days(z);
    (
        i64::from(date.year()),
        u32::from(u8::from(date.month())),
        u32::from(date.day()),
    )
}

/// 1 = Sunday ... 7 = Saturday.
fn weekday(days: i64) -> u32 {
    u32::from(clock::date_of_days(days).weekday().number_from_sunday())
}

fn days_in_month(y: i64, m: u32) -> u32 {
    let month = u8::try_from(m)
        .ok()
        .and_then(|m| time::Month::try_from(m).ok())
        .unwrap_or(time::Month::January);
    let year = i32::try_from(y).unwrap_or(i32::MAX);
    u32::from(month.length(year))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Epoch seconds, each checked with `date -u -d '<date>' +%s`.
    const MAR_02_0900: u64 = 1_772_442_000; // 2026-03-02 09:00, a Monday

    fn parse(expr: &str) -> Schedule {
        Schedule::parse(expr).expect("valid expression")
    }

    /// Checks `(expression, after, expected next firing)` rows, all in epoch seconds.
    fn check(rows: &[(&str, u64, Option<u64>)]) {
        for &(expr, after, expected) in rows {
            let got = parse(expr).next_after(0, after * 1000);
            assert_eq!(got, expected.map(|s| s * 1000), "{expr} after {after}");
        }
    }

    #[test]
    fn parses_rates() {
        assert_eq!(parse("rate(1 minute)"), Schedule::Rate { every_ms: 60_000 });
        assert_eq!(
            parse(" rate(5 minutes) "),
            Schedule::Rate { every_ms: 300_000 }
        );
        assert_eq!(
            parse("rate(1 hour)"),
            Schedule::Rate {
                every_ms: MS_PER_HOUR
            }
        );
        assert_eq!(
            parse("rate(2 days)"),
            Schedule::Rate {
                every_ms: 2 * MS_PER_DAY
            }
        );
    }

    #[test]
    fn rejects_bad_expressions() {
        for (expr, message) in [
            ("foo", "must be rate(N unit) or cron(min hour"),
            ("RATE(5 minutes)", "got \"RATE(5 minutes)\""),
            ("rate(5 minutes", "must be rate(N unit) or cron("),
            ("rate(1 minutes)", "singular unit: write rate(1 minute)"),
            ("rate(5 minute)", "plural unit: write rate(5 minutes)"),
            (
                "rate(0 minutes)",
                "at least 1, e.g. rate(5 minutes), got \"0\"",
            ),
            ("rate(-5 minutes)", "whole number"),
            ("rate(1.5 hours)", "whole number"),
            ("rate(99999999999999999999 days)", "too large"),
            ("rate(9999999999999999 days)", "too large"),
            ("rate(5 seconds)", "rate unit must be minute"),
            ("rate(5)", "must be rate(N unit), e.g."),
            ("cron(0 12 * * ?)", "must have 6 fields"),
            (
                "cron(60 12 * * ? *)",
                "minutes value 60 is out of range; use 0-59",
            ),
            ("cron(0 24 * * ? *)", "use 0-23"),
            ("cron(0 12 0 * ? *)", "day-of-month value 0"),
            ("cron(0 12 * 13 ? *)", "use 1-12 or JAN-DEC"),
            ("cron(0 12 ? * 8 *)", "use 1-7 or SUN-SAT"),
            ("cron(0 12 * * ? 1969)", "use 1970-2199"),
            ("cron(0 12 * * ? 2200)", "use 1970-2199"),
            ("cron(0 12 * FOO ? *)", "month field has \"FOO\""),
            ("cron(0 L * * ? *)", "hours field has \"L\""),
            ("cron(0 12 1,,2 * ? *)", "day-of-month field has \"\""),
            (
                "cron(0 17-8 * * ? *)",
                "write the smaller value first, e.g. 8-17",
            ),
            ("cron(0 12 ? * FRI-MON *)", "runs backwards"),
            ("cron(0/0 * * * ? *)", "increment"),
            ("cron(0/61 * * * ? *)", "increment"),
            (
                "cron(? 12 * * ? *)",
                "? is allowed only on its own in day-of-month",
            ),
            (
                "cron(0 12 * * * *)",
                "one of day-of-month or day-of-week must be ?",
            ),
            (
                "cron(0 12 ? * ? *)",
                "one of day-of-month or day-of-week must be ?",
            ),
            (
                "cron(0 12 1 * MON *)",
                "one of day-of-month or day-of-week must be ?",
            ),
            ("cron(0 12 1,L * ? *)", "misuses L or W"),
            ("cron(0 12 32W * ? *)", "out of range"),
            ("cron(0 12 ? * 2#6 *)", "instance 1-5"),
            ("cron(0 12 ? * 8L *)", "out of range"),
        ] {
            match Schedule::parse(expr) {
                Err(ScheduleError::Invalid(got)) => assert!(got.contains(message), "{got}"),
                Ok(s) => panic!("{expr:?} parsed as {s:?}"),
            }
        }
    }

    #[test]
    fn display_is_canonical_and_round_trips() {
        for (input, shown) in [
            ("rate(1 minute)", "rate(1 minute)"),
            ("rate(5 minutes)", "rate(5 minutes)"),
            ("rate(60 minutes)", "rate(1 hour)"),
            ("rate(48 hours)", "rate(2 days)"),
            (" cron(0  12 * *   ? *) ", "cron(0 12 * * ? *)"),
            (
                "cron(0/5 8-17 ? * mon-fri 2026,2028)",
                "cron(0/5 8-17 ? * mon-fri 2026,2028)",
            ),
        ] {
            assert_eq!(parse(input).to_string(), shown);
            assert_eq!(parse(shown), parse(input));
        }
    }

    #[test]
    fn rate_fires_after_anchor() {
        let every5 = parse("rate(5 minutes)");
        let anchor = 1_000_000;
        assert_eq!(every5.next_after(anchor, 0), Some(1_300_000));
        assert_eq!(every5.next_after(anchor, anchor), Some(1_300_000));
        assert_eq!(every5.next_after(anchor, 1_299_999), Some(1_300_000));
        assert_eq!(every5.next_after(anchor, 1_300_000), Some(1_600_000));
        assert_eq!(every5.next_after(anchor, 1_300_001), Some(1_600_000));
        assert_eq!(every5.next_after(u64::MAX - 10, 0), None);
        assert_eq!(Schedule::Rate { every_ms: 0 }.next_after(0, 0), None);
    }

    #[test]
    fn civil_date_conversions() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2026, 3, 2), 1_772_409_600 / 86_400);
        assert_eq!(civil_from_days(1_835_395_200 / 86_400), (2028, 2, 29));
        assert_eq!(civil_from_days(7_258_032_000 / 86_400), (2199, 12, 31));
        assert_eq!(weekday(0), 5); // Thursday
        for day in [0, 59, 365, 11_016, 20_514, 83_000] {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
        }
    }

    #[test]
    fn eventbridge_doc_examples() {
        check(&[
            ("cron(0 10 * * ? *)", MAR_02_0900, Some(1_772_445_600)), // 03-02 10:00
            ("cron(15 12 * * ? *)", MAR_02_0900, Some(1_772_453_700)), // 03-02 12:15
            // Sat 02-28 19:00 -> Mon 03-02 18:00
            (
                "cron(0 18 ? * MON-FRI *)",
                1_772_305_200,
                Some(1_772_474_400),
            ),
            ("cron(0 8 1 * ? *)", MAR_02_0900, Some(1_775_030_400)), // 04-01 08:00
            // 09:07 -> 09:15, and strictly after 09:15 -> 09:30
            ("cron(0/15 * * * ? *)", 1_772_442_420, Some(1_772_442_900)),
            ("cron(0/15 * * * ? *)", 1_772_442_900, Some(1_772_443_800)),
            // Fri 03-06 23:55 -> Mon 03-09 00:00
            (
                "cron(0/10 * ? * MON-FRI *)",
                1_772_841_300,
                Some(1_773_014_400),
            ),
            // 03-02 07:59 -> 08:00; 17:55 -> Tue 03-03 08:00
            (
                "cron(0/5 8-17 ? * MON-FRI *)",
                1_772_438_340,
                Some(1_772_438_400),
            ),
            (
                "cron(0/5 8-17 ? * MON-FRI *)",
                1_772_474_100,
                Some(1_772_524_800),
            ),
            // First Monday: 03-01 -> 03-02 09:00; strictly after it -> 04-06 09:00
            ("cron(0 9 ? * 2#1 *)", 1_772_323_200, Some(MAR_02_0900)),
            ("cron(0 9 ? * 2#1 *)", MAR_02_0900, Some(1_775_466_000)),
        ]);
    }

    #[test]
    fn last_and_weekday_wildcards() {
        check(&[
            // Last day: 2026-03-31, 2026-02-28, 2028-02-29
            ("cron(0 0 L * ? *)", MAR_02_0900, Some(1_774_915_200)),
            ("cron(0 0 L * ? *)", 1_769_904_000, Some(1_772_236_800)),
            ("cron(0 0 L * ? *)", 1_832_976_000, Some(1_835_395_200)),
            // Last weekday: Sun 2026-05-31 -> Fri 05-29; Sat 2026-02-28 -> Fri 02-27
            ("cron(0 0 LW * ? *)", 1_777_593_600, Some(1_780_012_800)),
            ("cron(0 0 LW * ? *)", 1_769_904_000, Some(1_772_150_400)),
            // Nearest weekday: Sat 2026-08-15 -> Fri 08-14; Sun 2026-11-15 -> Mon 11-16
            ("cron(0 0 15W * ? *)", 1_785_542_400, Some(1_786_665_600)),
            ("cron(0 0 15W * ? *)", 1_793_491_200, Some(1_794_787_200)),
            // 1W stays in the month: Sat 2026-08-01 -> Mon 08-03 (from 07-15)
            ("cron(0 0 1W * ? *)", 1_784_073_600, Some(1_785_715_200)),
            // Last Friday: 2026-03-27; L alone is Saturday: 2026-03-07
            ("cron(0 0 ? * 6L *)", MAR_02_0900, Some(1_774_569_600)),
            ("cron(0 0 ? * L *)", MAR_02_0900, Some(1_772_841_600)),
            // Day 31 skips April: 04-01 -> 05-31
            ("cron(0 0 31 * ? *)", 1_775_001_600, Some(1_780_185_600)),
        ]);
    }

    #[test]
    fn years_leap_days_and_bounds() {
        check(&[
            // Feb 29 from 2026-01-01 -> 2028-02-29
            ("cron(0 0 29 2 ? *)", 1_767_225_600, Some(1_835_395_200)),
            // Jump to an allowed year: 2030-01-01 06:30
            (
                "cron(30 6 * * ? 2030-2031)",
                MAR_02_0900,
                Some(1_893_479_400),
            ),
            ("cron(0 0 1 1 ? 2020)", MAR_02_0900, None),
            ("cron(0 0 30 2 ? *)", MAR_02_0900, None),
            // 2199 is the last year: 2199-01-01; 2199-12-30 12:00 -> 12-31; then nothing
            ("cron(0 0 1 1 ? 2199)", MAR_02_0900, Some(7_226_582_400)),
            ("cron(0 0 * * ? *)", 7_257_988_800, Some(7_258_032_000)),
            ("cron(0 0 * * ? *)", 7_258_032_000, None),
            ("cron(59 23 * * ? *)", u64::MAX / 1000, None),
        ]);
    }
}

/// Property tests: the parser takes expressions from callers of the API, so it must never panic,
/// and must accept every expression of the documented grammar.
#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    /// A field of the documented grammar, within `min..=max`: `*`, a value, a range, a step or a
    /// list of values.
    fn field(min: u32, max: u32) -> impl Strategy<Value = String> {
        let value = min..=max;
        prop_oneof![
            Just("*".to_owned()),
            value.clone().prop_map(|v| v.to_string()),
            (value.clone(), value.clone()).prop_map(|(a, b)| format!("{}-{}", a.min(b), a.max(b))),
            (value.clone(), 1..=(max - min + 1)).prop_map(|(a, k)| format!("{a}/{k}")),
            (1..=(max - min + 1)).prop_map(|k| format!("*/{k}")),
            proptest::collection::vec(value, 1..4)
                .prop_map(|vs| { vs.iter().map(u32::to_string).collect::<Vec<_>>().join(",") }),
        ]
    }

    /// Day-of-month and day-of-week: exactly one of them is `?`.
    fn days() -> impl Strategy<Value = (String, String)> {
        let dom = prop_oneof![
            field(1, 31),
            Just("L".to_owned()),
            Just("LW".to_owned()),
            (1u32..=31).prop_map(|d| format!("{d}W")),
        ];
        let dow = prop_oneof![
            field(1, 7),
            (0usize..7).prop_map(|i| WEEKDAY_NAMES[i].to_owned()),
            (1u32..=7, 1u32..=5).prop_map(|(d, n)| format!("{d}#{n}")),
            (1u32..=7).prop_map(|d| format!("{d}L")),
        ];
        prop_oneof![
            dom.prop_map(|d| (d, "?".to_owned())),
            dow.prop_map(|d| ("?".to_owned(), d)),
        ]
    }

    fn cron() -> impl Strategy<Value = String> {
        (
            field(0, 59),
            field(0, 23),
            days(),
            prop_oneof![
                field(1, 12),
                (0usize..12).prop_map(|i| MONTH_NAMES[i].to_owned())
            ],
            field(1970, 2199),
        )
            .prop_map(|(min, hour, (dom, dow), month, year)| {
                format!("cron({min} {hour} {dom} {month} {dow} {year})")
            })
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(expr in ".{0,64}", after in any::<u64>(), anchor in any::<u64>()) {
            if let Ok(s) = Schedule::parse(&expr) {
                let _ = s.next_after(anchor, after);
                prop_assert_eq!(Schedule::parse(&s.to_string()), Ok(s));
            }
        }

        #[test]
        fn near_misses_never_panic(
            kind in prop_oneof![Just("rate("), Just("cron(")],
            inner in "[0-9A-Za-z*?/,#LW -]{0,40}",
            after in any::<u64>(),
        ) {
            if let Ok(s) = Schedule::parse(&format!("{kind}{inner})")) {
                let _ = s.next_after(0, after);
            }
        }

        #[test]
        fn every_rate_of_the_grammar_is_accepted(n in 1u64..100_000, unit in 0usize..3) {
            let (name, ms) = [("minute", MS_PER_MINUTE), ("hour", MS_PER_HOUR), ("day", MS_PER_DAY)][unit];
            let s = if n == 1 { "" } else { "s" };
            let parsed = Schedule::parse(&format!("rate({n} {name}{s})"));
            prop_assert_eq!(parsed, Ok(Schedule::Rate { every_ms: n * ms }));
        }

        #[test]
        fn every_cron_of_the_grammar_is_accepted(expr in cron(), after_s in 0u64..7_258_118_400) {
            let parsed = Schedule::parse(&expr);
            prop_assert!(parsed.is_ok(), "{} refused: {:?}", expr, parsed);
            let Ok(s) = parsed else { unreachable!() };
            if let Some(next) = s.next_after(0, after_s * 1000) {
                prop_assert!(next > after_s * 1000 && next % MS_PER_MINUTE == 0, "{} after {}: {}", expr, after_s, next);
            }
            prop_assert_eq!(Schedule::parse(&s.to_string()), Ok(s));
        }
    }
}

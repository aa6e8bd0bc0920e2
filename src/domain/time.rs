//! Calendar arithmetic and the date formats Countersign writes: pure functions of Unix seconds
//! (the clock itself is `clock::Clock`), and the one calendar [`Date`] every module parses,
//! converts and prints with.

use serde::Serialize;

const DAY: u64 = 86_400;

/// `2026-11-28T00:12:05Z`
pub fn rfc3339(secs: u64) -> String {
    let rem = secs % DAY;
    let date = Date::from_unix(secs);
    format!("{date}T{:02}:{:02}:{:02}Z", rem / 3600, (rem / 60) % 60, rem % 60)
}

/// `Sat, 28 Nov 2026 00:12:05 +0000` (RFC 5322 Date header).
pub fn rfc5322(secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let days = secs / DAY;
    let rem = secs % DAY;
    let Date { year, month, day } = Date::from_unix(secs);
    format!(
        "{}, {day:02} {} {year:04} {:02}:{:02}:{:02} +0000",
        DAYS[(days % 7) as usize],
        MONTHS[usize::from(month - 1)],
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// `November 28, 2026`
pub fn long_date(secs: u64) -> String {
    Date::from_unix(secs).long()
}

/// A real calendar date (proleptic Gregorian). Intake dates are years 1900–2999 ([`Date::parse`]);
/// [`Date::parse_any_year`] takes any four-digit year (search filters, reference data).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(into = "String")]
pub struct Date {
    pub year: u16,
    pub month: u8,
    pub day: u8,
}

/// Why a text is not a [`Date`]; the messages are the ones users see after the field's pointer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DateError {
    /// Not ten characters `DDDD-DD-DD`.
    #[error("not a date in the form YYYY-MM-DD")]
    Form,
    /// A year outside 1900–2999 (intake dates only).
    #[error("year out of range 1900–2999")]
    YearOutOfRange,
    /// A month or day the calendar does not have (2026-02-29, 2026-13-01).
    #[error("no such date")]
    NoSuchDate,
}

impl From<DateError> for String {
    fn from(e: DateError) -> String {
        e.to_string()
    }
}

impl From<Date> for String {
    fn from(d: Date) -> String {
        d.to_string()
    }
}

impl Date {
    /// Parses `YYYY-MM-DD`, a year 1900–2999, and rejects dates that do not exist (2027-02-30).
    pub fn parse(s: &str) -> Result<Date, DateError> {
        let (year, month, day) = fields(s)?;
        if !(1900..=2999).contains(&year) {
            return Err(DateError::YearOutOfRange);
        }
        Date::from_ymd(year, month, day)
    }

    /// Parses `YYYY-MM-DD` with any four-digit year, and rejects dates that do not exist.
    pub fn parse_any_year(s: &str) -> Result<Date, DateError> {
        let (year, month, day) = fields(s)?;
        Date::from_ymd(year, month, day)
    }

    /// The date of a year, month (1–12) and day, if the calendar has it.
    pub fn from_ymd(year: u16, month: u16, day: u16) -> Result<Date, DateError> {
        if !(1..=12).contains(&month) || day == 0 || day > u16::from(days_in_month(year, month as u8)) {
            return Err(DateError::NoSuchDate);
        }
        Ok(Date { year, month: month as u8, day: day as u8 })
    }

    /// The UTC date of an instant in Unix seconds.
    pub fn from_unix(secs: u64) -> Date {
        Date::from_days((secs / DAY) as i64)
    }

    /// The date `days` days after 1970-01-01 (Howard Hinnant's civil_from_days). Years outside
    /// 0–65535 do not fit a `Date`; every instant Countersign handles is far inside.
    pub fn from_days(days: i64) -> Date {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let y = yoe + era * 400;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
        let year = if month <= 2 { y + 1 } else { y };
        Date { year: year as u16, month, day }
    }

    /// Days since 1970-01-01 (negative before; Howard Hinnant's days_from_civil).
    pub fn days_since_epoch(&self) -> i64 {
        let y = i64::from(self.year) - i64::from(self.month <= 2);
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let m = i64::from(self.month);
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(self.day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    /// Unix seconds at 00:00 UTC of this date (0 for dates before 1970).
    pub fn to_unix(&self) -> u64 {
        u64::try_from(self.days_since_epoch()).unwrap_or(0) * DAY
    }

    /// The date as the number YYYYMMDD (sorts as the dates do).
    pub fn number(&self) -> u32 {
        u32::from(self.year) * 10_000 + u32::from(self.month) * 100 + u32::from(self.day)
    }

    /// The date [`Date::number`] gave, if `n` is one.
    pub fn from_number(n: u64) -> Option<Date> {
        let year = u16::try_from(n / 10_000).ok()?;
        Date::from_ymd(year, (n / 100 % 100) as u16, (n % 100) as u16).ok()
    }

    /// `January 1, 2027`
    pub fn long(&self) -> String {
        const MONTHS: [&str; 12] = [
            "January",
            "February",
            "March",
            "April",
            "May",
            "June",
            "July",
            "August",
            "September",
            "October",
            "November",
            "December",
        ];
        format!("{} {}, {}", MONTHS[usize::from(self.month - 1)], self.day, self.year)
    }

    /// This date plus `months` calendar months, clamped to the month's last day.
    pub fn add_months(&self, months: u32) -> Date {
        let total = u32::from(self.month) - 1 + months;
        let year = self.year + (total / 12) as u16;
        let month = (total % 12 + 1) as u8;
        let day = self.day.min(days_in_month(year, month));
        Date { year, month, day }
    }
}

impl std::fmt::Display for Date {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// Year, month and day of `YYYY-MM-DD`, checked for form only.
fn fields(s: &str) -> Result<(u16, u16, u16), DateError> {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' || !digits(0..4) || !digits(5..7) || !digits(8..10) {
        return Err(DateError::Form);
    }
    let num = |r: std::ops::Range<usize>| b[r].iter().fold(0u16, |n, &c| n * 10 + u16::from(c - b'0'));
    Ok((num(0..4), num(5..7), num(8..10)))
}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => 29,
        _ => 28,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_date_number_reads_back_and_a_number_that_is_no_date_does_not() {
        for d in ["2024-02-29", "1970-01-01", "2026-12-31"] {
            let date = Date::parse_any_year(d).expect("a date");
            assert_eq!(Date::from_number(u64::from(date.number())), Some(date));
        }
        for n in [20230229, 20261301, 20261200, 0, u64::MAX] {
            assert_eq!(Date::from_number(n), None, "{n}");
        }
    }

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_798_416_000), "2026-12-28T00:00:00Z");
        assert_eq!(rfc5322(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(long_date(1_798_416_000), "December 28, 2026");
    }

    #[test]
    fn every_day_from_1970_to_2400_round_trips_through_days_and_text() {
        let end = Date { year: 2400, month: 12, day: 31 }.days_since_epoch();
        let mut prev: Option<Date> = None;
        for days in 0..=end {
            let date = Date::from_days(days);
            assert_eq!(date.days_since_epoch(), days, "{date}");
            assert_eq!(Date::from_unix(date.to_unix()), date);
            assert_eq!(Date::from_unix(date.to_unix() + DAY - 1), date);
            assert_eq!(Date::parse_any_year(&date.to_string()), Ok(date));
            if let Some(p) = prev {
                assert!(p < date && p.number() < date.number(), "{p} then {date}");
            }
            prev = Some(date);
        }
        assert_eq!(prev, Some(Date { year: 2400, month: 12, day: 31 }));
        assert_eq!(Date::from_days(0).to_string(), "1970-01-01");
    }

    #[test]
    fn leap_days_follow_the_gregorian_rule() {
        for (text, ok) in [
            ("2000-02-29", true),
            ("2024-02-29", true),
            ("2400-02-29", true),
            ("2026-02-29", false),
            ("2100-02-29", false),
            ("2200-02-29", false),
        ] {
            assert_eq!(Date::parse(text).is_ok(), ok, "{text}");
        }
        let after = |text: &str| Date::from_days(Date::parse(text).expect("date").days_since_epoch() + 1).to_string();
        assert_eq!(after("2100-02-28"), "2100-03-01");
        assert_eq!(after("2000-02-28"), "2000-02-29");
        assert_eq!(after("2024-12-31"), "2025-01-01");
        assert_eq!(Date::parse("2000-03-01").map(|d| d.to_unix()), Ok(951_868_800));
    }

    #[test]
    fn invalid_dates_are_refused_with_the_messages_users_see() {
        for (text, why) in [
            ("2026-02-29", "no such date"),
            ("2026-13-01", "no such date"),
            ("2026-00-10", "no such date"),
            ("2026-04-31", "no such date"),
            ("2026-1-1", "not a date in the form YYYY-MM-DD"),
            ("2026-01-01 ", "not a date in the form YYYY-MM-DD"),
            ("2026/01/01", "not a date in the form YYYY-MM-DD"),
            ("2026-+1-01", "not a date in the form YYYY-MM-DD"),
            ("", "not a date in the form YYYY-MM-DD"),
            ("1899-12-31", "year out of range 1900–2999"),
            ("3000-02-30", "year out of range 1900–2999"),
        ] {
            assert_eq!(Date::parse(text).map_err(|e| e.to_string()), Err(why.to_string()), "{text:?}");
        }
        assert_eq!(Date::parse_any_year("1899-12-31").map(|d| d.number()), Ok(18_991_231));
        assert_eq!(Date::parse_any_year("1899-02-29"), Err(DateError::NoSuchDate));
    }
}

//! Date and time arithmetic, `EXTRACT` and `date_trunc`, with PostgreSQL's rules: adding
//! months clamps to the month's last day, `timestamp - timestamp` is an interval of days and
//! time, `interval * x` carries fractional months into days (30 each) and fractional days into
//! time. `timestamptz` values compute in UTC.

use chrono::{DateTime, Datelike, Duration, Months, NaiveDate, NaiveDateTime, Timelike};
use serde::{Deserialize, Serialize};

use crate::types::{Datum, Decimal};
use crate::{Error, Result};

const MICROS_PER_DAY: i64 = 86_400_000_000;
/// The first and last timestamps (microseconds) the calendar holds.
const MIN_MICROS: i64 = DateTime::<chrono::Utc>::MIN_UTC.timestamp_micros();
const MAX_MICROS: i64 = DateTime::<chrono::Utc>::MAX_UTC.timestamp_micros();
const NANOS_PER_DAY: i64 = 86_400_000_000_000;
/// Days since 0001-01-01 (CE) of 1970-01-01.
const UNIX_EPOCH_DAYS_FROM_CE: i32 = 719_163;

/// A field of `EXTRACT(field FROM x)` and a unit of `date_trunc`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DateField {
    /// `millennium`
    Millennium,
    /// `century`
    Century,
    /// `decade`
    Decade,
    /// `year`
    Year,
    /// `quarter`
    Quarter,
    /// `month`
    Month,
    /// `week` (ISO week number; truncation to Monday)
    Week,
    /// `day`
    Day,
    /// `hour`
    Hour,
    /// `minute`
    Minute,
    /// `second` (with its fraction when extracted)
    Second,
    /// `milliseconds`
    Millisecond,
    /// `microseconds`
    Microsecond,
    /// `dow`: day of the week, Sunday 0
    Dow,
    /// `isodow`: day of the week, Monday 1 to Sunday 7
    IsoDow,
    /// `doy`: day of the year
    Doy,
    /// `epoch`: seconds since 1970-01-01 00:00 UTC (of an interval: its length)
    Epoch,
}

impl DateField {
    /// The field named `name` (PostgreSQL's spellings, case-insensitive).
    pub fn parse(name: &str) -> Option<DateField> {
        use DateField::*;
        Some(match name.to_ascii_lowercase().as_str() {
            "millennium" | "millennia" | "millenniums" => Millennium,
            "century" | "centuries" => Century,
            "decade" | "decades" => Decade,
            "year" | "years" | "y" => Year,
            "quarter" => Quarter,
            "month" | "months" | "mon" => Month,
            "week" | "weeks" | "w" => Week,
            "day" | "days" | "d" => Day,
            "hour" | "hours" | "h" => Hour,
            "minute" | "minutes" | "min" | "m" => Minute,
            "second" | "seconds" | "sec" | "s" => Second,
            "millisecond" | "milliseconds" | "ms" => Millisecond,
            "microsecond" | "microseconds" | "us" => Microsecond,
            "dow" => Dow,
            "isodow" => IsoDow,
            "doy" => Doy,
            "epoch" => Epoch,
            _ => return None,
        })
    }
}

fn out_of_range() -> Error {
    Error::OutOfRange("timestamp".into())
}

/// The date-time of microseconds since the Unix epoch.
pub(crate) fn from_micros(us: i64) -> Result<NaiveDateTime> {
    DateTime::from_timestamp_micros(us)
        .map(|d| d.naive_utc())
        .ok_or_else(out_of_range)
}

fn to_micros(t: NaiveDateTime) -> i64 {
    t.and_utc().timestamp_micros()
}

/// The date of days since the Unix epoch.
pub(crate) fn date_of(days: i32) -> Result<NaiveDate> {
    NaiveDate::from_num_days_from_ce_opt(days.saturating_add(UNIX_EPOCH_DAYS_FROM_CE))
        .ok_or_else(|| Error::OutOfRange("date".into()))
}

/// `t + interval`, months first (clamped to the month's end), then days, then time.
pub(crate) fn add_interval(us: i64, months: i32, days: i32, nanos: i64) -> Result<i64> {
    if months == 0 {
        // Days of a timestamp without time zone are 24 hours: plain arithmetic, within the
        // range the calendar path checks (the start, after the days, and the end).
        let within = |v: i128| (i128::from(MIN_MICROS)..=i128::from(MAX_MICROS)).contains(&v);
        let after_days = i128::from(us) + i128::from(days) * i128::from(MICROS_PER_DAY);
        // Sub-microsecond nanoseconds round down, as the calendar path's microseconds do.
        let moved = after_days + i128::from(nanos.div_euclid(1000));
        if !(within(i128::from(us)) && within(after_days) && within(moved)) {
            return Err(out_of_range());
        }
        return Ok(moved as i64);
    }
    let mut t = from_micros(us)?;
    t = if months >= 0 {
        t.checked_add_months(Months::new(months.unsigned_abs()))
    } else {
        t.checked_sub_months(Months::new(months.unsigned_abs()))
    }
    .ok_or_else(out_of_range)?;
    t = t
        .checked_add_signed(Duration::days(i64::from(days)))
        .and_then(|t| t.checked_add_signed(Duration::nanoseconds(nanos)))
        .ok_or_else(out_of_range)?;
    Ok(to_micros(t))
}

/// `a - b` of two timestamps: whole days and the rest as time.
pub(crate) fn timestamp_diff(a: i64, b: i64) -> Datum {
    let diff = i128::from(a) - i128::from(b);
    let day = i128::from(MICROS_PER_DAY);
    Datum::Interval {
        months: 0,
        days: (diff / day) as i32,
        nanos: ((diff % day) * 1000) as i64,
    }
}

/// `interval * factor`, carrying fractions down as PostgreSQL does.
pub(crate) fn interval_mul(months: i32, days: i32, nanos: i64, factor: f64) -> Result<Datum> {
    if !factor.is_finite() {
        return Err(Error::OutOfRange("interval".into()));
    }
    let m = f64::from(months) * factor;
    let whole_months = m.trunc();
    let d = f64::from(days) * factor + (m - whole_months) * 30.0;
    let whole_days = d.trunc();
    let n = nanos as f64 * factor + (d - whole_days) * NANOS_PER_DAY as f64;
    let fits = |v: f64, max: f64| v.abs() <= max;
    if !fits(whole_months, f64::from(i32::MAX))
        || !fits(whole_days, f64::from(i32::MAX))
        || !fits(n, i64::MAX as f64)
    {
        return Err(Error::OutOfRange("interval".into()));
    }
    Ok(Datum::Interval {
        months: whole_months as i32,
        days: whole_days as i32,
        nanos: n.round() as i64,
    })
}

/// `a + b` of two intervals (`negate`: `a - b`), field by field.
pub(crate) fn interval_add(a: (i32, i32, i64), b: (i32, i32, i64), negate: bool) -> Result<Datum> {
    let overflow = || Error::OutOfRange("interval".into());
    let sign = if negate { -1 } else { 1 };
    Ok(Datum::Interval {
        months: a.0.checked_add(sign * b.0).ok_or_else(overflow)?,
        days: a.1.checked_add(sign * b.1).ok_or_else(overflow)?,
        nanos: a
            .2
            .checked_add(i64::from(sign) * b.2)
            .ok_or_else(overflow)?,
    })
}

/// `date + days`.
pub(crate) fn add_days(date: i32, days: i32) -> Result<i32> {
    date.checked_add(days)
        .filter(|d| date_of(*d).is_ok())
        .ok_or_else(|| Error::OutOfRange("date".into()))
}

fn decimal(v: i64) -> Datum {
    Datum::Decimal(Decimal::from(v))
}

/// `v` / 10^scale as numeric (seconds with their fraction).
fn scaled(v: i64, scale: u32) -> Datum {
    Datum::Decimal(Decimal::Finite(rust_decimal::Decimal::new(v, scale)))
}

/// `EXTRACT(field FROM x)` of a date, time, timestamp(tz) or interval, as numeric.
pub(crate) fn extract(field: DateField, x: &Datum) -> Result<Datum> {
    use DateField::*;
    let unsupported = || Error::InvalidInput(format!("unit {field:?} not supported for this type"));
    let t = match x {
        // A date has no time of day: its epoch is whole seconds.
        Datum::Date(d) if field == Epoch => return Ok(decimal(i64::from(*d) * 86_400)),
        Datum::Date(d) => date_of(*d)?.and_hms_opt(0, 0, 0).expect("midnight"),
        Datum::Timestamp(us) | Datum::Timestamptz(us) => from_micros(*us)?,
        Datum::Time(us) => {
            let secs_us = us % 60_000_000;
            return Ok(match field {
                Hour => decimal(us / 3_600_000_000),
                Minute => decimal(us / 60_000_000 % 60),
                Second => scaled(secs_us, 6),
                Millisecond => scaled(secs_us, 3),
                Microsecond => decimal(secs_us),
                Epoch => scaled(*us, 6),
                _ => return Err(unsupported()),
            });
        }
        Datum::Interval {
            months,
            days,
            nanos,
        } => {
            let us = nanos / 1000;
            return Ok(match field {
                Millennium => decimal(i64::from(months / 12 / 1000)),
                Century => decimal(i64::from(months / 12 / 100)),
                Decade => decimal(i64::from(months / 12 / 10)),
                Year => decimal(i64::from(months / 12)),
                Quarter => decimal(i64::from(months % 12 / 3 + 1)),
                Month => decimal(i64::from(months % 12)),
                Day => decimal(i64::from(*days)),
                Hour => decimal(us / 3_600_000_000),
                Minute => decimal(us / 60_000_000 % 60),
                Second => scaled(us % 60_000_000, 6),
                Millisecond => scaled(us % 60_000_000, 3),
                Microsecond => decimal(us % 60_000_000),
                Epoch => {
                    // A year is 365.25 days, a month 30 days, as in PostgreSQL.
                    let years = i64::from(months / 12);
                    let rest_months = i64::from(months % 12);
                    let micros = years * 36_525 * MICROS_PER_DAY / 100
                        + rest_months * 30 * MICROS_PER_DAY
                        + i64::from(*days) * MICROS_PER_DAY
                        + us;
                    scaled(micros, 6)
                }
                _ => return Err(unsupported()),
            });
        }
        _ => return Err(unsupported()),
    };
    let year = i64::from(t.year());
    let micros_in_minute = i64::from(t.second()) * 1_000_000 + i64::from(t.nanosecond() / 1000);
    Ok(match field {
        Millennium => decimal((year + 999).div_euclid(1000)),
        Century => decimal((year + 99).div_euclid(100)),
        Decade => decimal(year.div_euclid(10)),
        Year => decimal(year),
        Quarter => decimal(i64::from(t.month0() / 3 + 1)),
        Month => decimal(i64::from(t.month())),
        Week => decimal(i64::from(t.iso_week().week())),
        Day => decimal(i64::from(t.day())),
        Hour => decimal(i64::from(t.hour())),
        Minute => decimal(i64::from(t.minute())),
        Second => scaled(micros_in_minute, 6),
        Millisecond => scaled(micros_in_minute, 3),
        Microsecond => decimal(micros_in_minute),
        Dow => decimal(i64::from(t.weekday().num_days_from_sunday())),
        IsoDow => decimal(i64::from(t.weekday().number_from_monday())),
        Doy => decimal(i64::from(t.ordinal())),
        Epoch => scaled(to_micros(t), 6),
    })
}

/// `date_trunc(unit, t)` of microseconds since the epoch.
pub(crate) fn trunc(field: DateField, us: i64) -> Result<i64> {
    use DateField::*;
    let t = from_micros(us)?;
    let date = t.date();
    let day_start = |d: NaiveDate| d.and_hms_opt(0, 0, 0).expect("midnight");
    let year_start = |y: i32| {
        NaiveDate::from_ymd_opt(y, 1, 1)
            .map(day_start)
            .ok_or_else(out_of_range)
    };
    let truncated = match field {
        Microsecond => return Ok(us),
        Millisecond => return Ok(us.div_euclid(1000) * 1000),
        Second => return Ok(us.div_euclid(1_000_000) * 1_000_000),
        Minute => return Ok(us.div_euclid(60_000_000) * 60_000_000),
        Hour => return Ok(us.div_euclid(3_600_000_000) * 3_600_000_000),
        Day => day_start(date),
        Week => day_start(date - Duration::days(i64::from(date.weekday().num_days_from_monday()))),
        Month => day_start(date.with_day(1).expect("day 1")),
        Quarter => day_start(
            NaiveDate::from_ymd_opt(date.year(), date.month0() / 3 * 3 + 1, 1)
                .expect("quarter start"),
        ),
        Year => year_start(date.year())?,
        Decade => year_start(date.year().div_euclid(10) * 10)?,
        Century => year_start((date.year() - 1).div_euclid(100) * 100 + 1)?,
        Millennium => year_start((date.year() - 1).div_euclid(1000) * 1000 + 1)?,
        Dow | IsoDow | Doy | Epoch => {
            return Err(Error::InvalidInput(format!(
                "unit {field:?} not supported by date_trunc"
            )));
        }
    };
    Ok(to_micros(truncated))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> i64 {
        to_micros(NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap())
    }

    /// Adding days and time is plain arithmetic; it agrees with the calendar's, also at the
    /// ends of the range and with sub-microsecond nanoseconds.
    #[test]
    fn adding_days_and_time_agrees_with_the_calendar() {
        let calendar = |us: i64, days: i32, nanos: i64| -> Result<i64> {
            let t = from_micros(us)?
                .checked_add_signed(Duration::days(i64::from(days)))
                .and_then(|t| t.checked_add_signed(Duration::nanoseconds(nanos)))
                .ok_or_else(out_of_range)?;
            Ok(to_micros(t))
        };
        let (min, max) = (MIN_MICROS, MAX_MICROS);
        let times = [
            0,
            1,
            -1,
            ts("2020-03-01 00:00:00"),
            max,
            min,
            max - 5,
            min + 5,
        ];
        let days = [0, 1, -1, 365, -40_000, i32::MAX, i32::MIN];
        let nanos = [
            0,
            1,
            -1,
            999,
            -999,
            1_500,
            -1_500,
            3_600_000_000_000,
            i64::MAX,
            i64::MIN,
        ];
        for us in times {
            for d in days {
                for n in nanos {
                    assert_eq!(
                        add_interval(us, 0, d, n).ok(),
                        calendar(us, d, n).ok(),
                        "{us} + {d} days + {n} ns"
                    );
                }
            }
        }
    }

    #[test]
    fn arithmetic_follows_postgres() {
        // Month arithmetic clamps to the month's end.
        assert_eq!(
            add_interval(ts("2020-01-31 10:00:00"), 1, 0, 0).unwrap(),
            ts("2020-02-29 10:00:00")
        );
        assert_eq!(
            add_interval(ts("2020-03-01 00:00:00"), 0, -1, -3_600_000_000_000).unwrap(),
            ts("2020-02-28 23:00:00")
        );
        assert_eq!(
            timestamp_diff(ts("2020-01-02 03:00:00"), ts("2020-01-01 00:00:00")),
            Datum::Interval {
                months: 0,
                days: 1,
                nanos: 3 * 3_600_000_000_000
            }
        );
        // 1 month * 1.5 = 1 month 15 days.
        assert_eq!(
            interval_mul(1, 0, 0, 1.5).unwrap(),
            Datum::Interval {
                months: 1,
                days: 15,
                nanos: 0
            }
        );
        assert!(add_days(i32::MAX - 1, 5).is_err());
    }

    #[test]
    fn extract_and_trunc() {
        let t = Datum::Timestamp(ts("2024-02-29 13:45:30") + 250_000);
        let get = |f| extract(f, &t).unwrap().to_string_for_test();
        assert_eq!(get(DateField::Year), "2024");
        assert_eq!(get(DateField::Quarter), "1");
        assert_eq!(get(DateField::Second), "30.250000");
        assert_eq!(get(DateField::Dow), "4");
        assert_eq!(get(DateField::Doy), "60");
        assert_eq!(get(DateField::Century), "21");
        assert_eq!(
            extract(DateField::Epoch, &Datum::Date(1))
                .unwrap()
                .to_string_for_test(),
            "86400"
        );
        assert_eq!(
            trunc(DateField::Month, ts("2024-02-29 13:45:30")).unwrap(),
            ts("2024-02-01 00:00:00")
        );
        assert_eq!(
            trunc(DateField::Week, ts("2024-02-29 13:45:30")).unwrap(),
            ts("2024-02-26 00:00:00")
        );
        assert_eq!(
            trunc(DateField::Hour, ts("2024-02-29 13:45:30")).unwrap(),
            ts("2024-02-29 13:00:00")
        );
    }

    trait TestText {
        fn to_string_for_test(&self) -> String;
    }

    impl TestText for Datum {
        fn to_string_for_test(&self) -> String {
            match self {
                Datum::Decimal(d) => d.to_string(),
                other => format!("{other:?}"),
            }
        }
    }
}

//! String functions that need more than a kernel: `to_char` of dates and times, `split_part`,
//! `replace` and `regexp_match`, as PostgreSQL defines them.

use std::cell::RefCell;
use std::collections::HashMap;

use chrono::{DateTime, Datelike, NaiveDateTime, Timelike};
use regex::Regex;

use crate::{Error, Result};

/// `to_char` of one time (see [`ToCharFormat`]), for the tests.
#[cfg(test)]
pub(crate) fn to_char(micros: i64, format: &str, zone: &str) -> Result<String> {
    let mut out = String::new();
    ToCharFormat::parse(format).write(&mut out, micros, zone)?;
    Ok(out)
}

/// A template of PostgreSQL's `to_char(timestamp, format)`, parsed once to format a column's
/// rows: the template patterns of PostgreSQL's formatting functions (YYYY, MM, DD, HH24, MI,
/// SS, Month, Dy, AM, ...; `FM` suppresses padding, `"..."` is literal text, `\"` a double
/// quote), applied to a time in UTC; `zone` is what `TZ`/`tz` print.
#[derive(Debug)]
pub struct ToCharFormat {
    pieces: Vec<Piece>,
}

#[derive(Debug)]
enum Piece {
    /// Text copied as it is.
    Text(String),
    /// A template pattern, resolved when the template is parsed.
    Pattern {
        field: Field,
        case: Case,
        /// `FM`: no padding.
        fill_mode: bool,
    },
}

/// What a template pattern prints.
#[derive(Clone, Copy, Debug)]
enum Field {
    Hour24,
    Hour12,
    Minute,
    SecondOfDay,
    Second,
    Millisecond,
    Microsecond,
    /// AM/PM, with dots (`A.M.`) or without.
    Meridiem {
        dots: bool,
    },
    YearWithComma,
    Year4,
    Year3,
    Year2,
    Year1,
    IsoYear,
    IsoWeek,
    IsoWeekday,
    MonthName,
    MonthAbbrev,
    Month,
    DayName,
    DayAbbrev,
    DayOfYear,
    DayOfMonth,
    Weekday,
    WeekOfYear,
    WeekOfMonth,
    Quarter,
    Century,
    JulianDay,
    Zone,
}

/// The capitalization a name pattern asks for: `MONTH`, `Month` or `month`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Case {
    Upper,
    Capitalized,
    Lower,
}

impl Case {
    fn of(pattern: &str) -> Case {
        let second_upper = pattern
            .chars()
            .nth(1)
            .is_some_and(|c| c.is_ascii_uppercase());
        if second_upper {
            Case::Upper
        } else if pattern.starts_with(|c: char| c.is_ascii_lowercase()) {
            Case::Lower
        } else {
            Case::Capitalized
        }
    }
}

impl ToCharFormat {
    /// The pieces of `format`.
    pub fn parse(format: &str) -> ToCharFormat {
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut rest = format;
        let mut fill_mode = false;
        while let Some(c) = rest.chars().next() {
            if let Some(r) = rest.strip_prefix("FM").or_else(|| rest.strip_prefix("fm")) {
                fill_mode = true;
                rest = r;
                continue;
            }
            if c == '"' {
                let body = &rest[1..];
                let end = body.find('"').unwrap_or(body.len());
                text.push_str(&body[..end]);
                rest = body.get(end + 1..).unwrap_or("");
                continue;
            }
            if let Some(r) = rest.strip_prefix("\\\"") {
                text.push('"');
                rest = r;
                continue;
            }
            match PATTERNS.iter().find(|(p, _)| rest.starts_with(*p)) {
                Some((pattern, field)) => {
                    if !text.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    pieces.push(Piece::Pattern {
                        field: *field,
                        case: Case::of(pattern),
                        fill_mode,
                    });
                    rest = &rest[pattern.len()..];
                }
                None => {
                    text.push(c);
                    rest = &rest[c.len_utf8()..];
                }
            }
            fill_mode = false;
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        ToCharFormat { pieces }
    }

    /// Appends the time `micros` (UTC) formatted to `out`.
    pub fn write(&self, out: &mut String, micros: i64, zone: &str) -> Result<()> {
        let t: NaiveDateTime = DateTime::from_timestamp_micros(micros)
            .ok_or_else(|| Error::InvalidInput("timestamp out of range".into()))?
            .naive_utc();
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Pattern {
                    field,
                    case,
                    fill_mode,
                } => format_field(out, *field, *case, *fill_mode, &t, zone),
            }
        }
        Ok(())
    }
}

/// Template patterns, longest first where one is a prefix of another.
const PATTERNS: &[(&str, Field)] = {
    use Field::*;
    &[
        ("HH24", Hour24),
        ("hh24", Hour24),
        ("HH12", Hour12),
        ("hh12", Hour12),
        ("HH", Hour12),
        ("hh", Hour12),
        ("MI", Minute),
        ("mi", Minute),
        ("SSSS", SecondOfDay),
        ("ssss", SecondOfDay),
        ("SS", Second),
        ("ss", Second),
        ("MS", Millisecond),
        ("ms", Millisecond),
        ("US", Microsecond),
        ("us", Microsecond),
        ("A.M.", Meridiem { dots: true }),
        ("a.m.", Meridiem { dots: true }),
        ("P.M.", Meridiem { dots: true }),
        ("p.m.", Meridiem { dots: true }),
        ("AM", Meridiem { dots: false }),
        ("am", Meridiem { dots: false }),
        ("PM", Meridiem { dots: false }),
        ("pm", Meridiem { dots: false }),
        ("Y,YYY", YearWithComma),
        ("y,yyy", YearWithComma),
        ("YYYY", Year4),
        ("yyyy", Year4),
        ("YYY", Year3),
        ("yyy", Year3),
        ("YY", Year2),
        ("yy", Year2),
        ("IYYY", IsoYear),
        ("iyyy", IsoYear),
        ("IW", IsoWeek),
        ("iw", IsoWeek),
        ("ID", IsoWeekday),
        ("id", IsoWeekday),
        ("Y", Year1),
        ("y", Year1),
        ("MONTH", MonthName),
        ("Month", MonthName),
        ("month", MonthName),
        ("MON", MonthAbbrev),
        ("Mon", MonthAbbrev),
        ("mon", MonthAbbrev),
        ("MM", Month),
        ("mm", Month),
        ("DAY", DayName),
        ("Day", DayName),
        ("day", DayName),
        ("DY", DayAbbrev),
        ("Dy", DayAbbrev),
        ("dy", DayAbbrev),
        ("DDD", DayOfYear),
        ("ddd", DayOfYear),
        ("DD", DayOfMonth),
        ("dd", DayOfMonth),
        ("D", Weekday),
        ("d", Weekday),
        ("WW", WeekOfYear),
        ("ww", WeekOfYear),
        ("W", WeekOfMonth),
        ("w", WeekOfMonth),
        ("Q", Quarter),
        ("q", Quarter),
        ("CC", Century),
        ("cc", Century),
        ("J", JulianDay),
        ("j", JulianDay),
        ("TZ", Zone),
        ("tz", Zone),
    ]
};

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

const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// `text` (ASCII) in `case`, blank-padded to `width` unless in fill mode.
fn push_name(out: &mut String, text: &str, case: Case, width: usize, fill_mode: bool) {
    match case {
        Case::Capitalized => out.push_str(text),
        Case::Upper => out.extend(text.chars().map(|c| c.to_ascii_uppercase())),
        Case::Lower => out.extend(text.chars().map(|c| c.to_ascii_lowercase())),
    }
    if !fill_mode {
        out.extend(std::iter::repeat_n(' ', width.saturating_sub(text.len())));
    }
}

/// `value` in decimal, zero-padded to `width` characters (the sign included) unless in fill
/// mode; without the formatting machinery, as it runs for every row of a column.
fn push_number(out: &mut String, value: i64, width: usize, fill_mode: bool) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    let mut rest = value.unsigned_abs();
    loop {
        start -= 1;
        digits[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    let len = digits.len() - start + usize::from(value < 0);
    if value < 0 {
        out.push('-');
    }
    if !fill_mode {
        out.extend(std::iter::repeat_n('0', width.saturating_sub(len)));
    }
    out.extend(digits[start..].iter().map(|d| char::from(*d)));
}

fn format_field(
    out: &mut String,
    field: Field,
    case: Case,
    fm: bool,
    t: &NaiveDateTime,
    zone: &str,
) {
    let year = || i64::from(t.year());
    let weekday = || t.weekday().num_days_from_sunday() as usize;
    match field {
        Field::Hour24 => push_number(out, i64::from(t.hour()), 2, fm),
        Field::Hour12 => push_number(out, i64::from((t.hour() + 11) % 12 + 1), 2, fm),
        Field::Minute => push_number(out, i64::from(t.minute()), 2, fm),
        Field::SecondOfDay => push_number(out, i64::from(t.num_seconds_from_midnight()), 1, fm),
        Field::Second => push_number(out, i64::from(t.second()), 2, fm),
        Field::Millisecond => push_number(out, i64::from(t.nanosecond() / 1_000_000), 3, fm),
        Field::Microsecond => push_number(out, i64::from(t.nanosecond() / 1_000), 6, fm),
        Field::Meridiem { dots } => {
            let text = match (t.hour() >= 12, dots) {
                (false, false) => "AM",
                (true, false) => "PM",
                (false, true) => "A.M.",
                (true, true) => "P.M.",
            };
            let case = if case == Case::Lower {
                Case::Lower
            } else {
                Case::Upper
            };
            push_name(out, text, case, 0, true);
        }
        Field::YearWithComma => {
            push_number(out, year() / 1000, 1, true);
            out.push(',');
            push_number(out, year() % 1000, 3, false);
        }
        Field::Year4 => push_number(out, year(), 4, fm),
        Field::Year3 => push_number(out, year() % 1000, 3, fm),
        Field::Year2 => push_number(out, year() % 100, 2, fm),
        Field::Year1 => push_number(out, year() % 10, 1, fm),
        Field::IsoYear => push_number(out, i64::from(t.iso_week().year()), 4, fm),
        Field::IsoWeek => push_number(out, i64::from(t.iso_week().week()), 2, fm),
        Field::IsoWeekday => push_number(out, i64::from(t.weekday().number_from_monday()), 1, fm),
        Field::MonthName => push_name(out, MONTHS[t.month0() as usize], case, 9, fm),
        Field::MonthAbbrev => push_name(out, &MONTHS[t.month0() as usize][..3], case, 3, fm),
        Field::Month => push_number(out, i64::from(t.month()), 2, fm),
        Field::DayName => push_name(out, DAYS[weekday()], case, 9, fm),
        Field::DayAbbrev => push_name(out, &DAYS[weekday()][..3], case, 3, fm),
        Field::DayOfYear => push_number(out, i64::from(t.ordinal()), 3, fm),
        Field::DayOfMonth => push_number(out, i64::from(t.day()), 2, fm),
        Field::Weekday => push_number(out, weekday() as i64 + 1, 1, fm),
        Field::WeekOfYear => push_number(out, i64::from(t.ordinal0() / 7 + 1), 2, fm),
        Field::WeekOfMonth => push_number(out, i64::from(t.day0() / 7 + 1), 1, fm),
        Field::Quarter => push_number(out, i64::from(t.month0() / 3 + 1), 1, fm),
        Field::Century => {
            let year = year();
            let century = if year > 0 {
                (year - 1) / 100 + 1
            } else {
                year / 100 - 1
            };
            push_number(out, century, 2, fm);
        }
        // Days since November 24, 4714 BC (the Julian Day of PostgreSQL's calendar).
        Field::JulianDay => push_number(
            out,
            i64::from(t.date().num_days_from_ce()) + 1_721_425,
            1,
            fm,
        ),
        Field::Zone if case == Case::Lower => out.push_str(&zone.to_lowercase()),
        Field::Zone => out.push_str(&zone.to_uppercase()),
    }
}

/// PostgreSQL's `split_part(s, delimiter, n)`: the `n`th field (from 1; negative counts from
/// the end), or an empty string past the last.
pub fn split_part<'a>(s: &'a str, delimiter: &str, n: i32) -> Result<&'a str> {
    if n == 0 {
        return Err(Error::InvalidInput(
            "field position must not be zero".into(),
        ));
    }
    let field = match delimiter.as_bytes() {
        [] => nth_field(std::iter::once(s), n),
        // One ASCII byte: split at it with memchr.
        [b] if b.is_ascii() => nth_field(s.split(char::from(*b)), n),
        _ => nth_field(s.split(delimiter), n),
    };
    Ok(field.unwrap_or(""))
}

/// The `n`th of `fields` (from 1; negative counts from the end), without collecting them.
fn nth_field<'a>(mut fields: impl Iterator<Item = &'a str> + Clone, n: i32) -> Option<&'a str> {
    let from_start = match usize::try_from(n) {
        Ok(n) => n - 1,
        Err(_) => fields
            .clone()
            .count()
            .checked_sub(n.unsigned_abs() as usize)?,
    };
    fields.nth(from_start)
}

/// PostgreSQL's `replace(s, from, to)`: every occurrence of `from` replaced (none when empty).
pub fn replace(s: &str, from: &str, to: &str) -> String {
    if from.is_empty() {
        s.to_string()
    } else {
        s.replace(from, to)
    }
}

/// Texts longer than this (in bytes) are refused, as PostgreSQL refuses values over 1 GB.
const MAX_TEXT_BYTES: usize = 1 << 30;

fn too_long() -> Error {
    Error::FunctionArgument {
        sqlstate: "54000",
        message: "requested length too large".into(),
    }
}

/// `strpos(s, sub)`: the character position of the first `sub` in `s`, from 1; 0 if none.
pub fn strpos(s: &str, sub: &str) -> i32 {
    s.find(sub)
        .map_or(0, |at| s[..at].chars().count() as i32 + 1)
}

/// `s` without the characters of `set` at its start (`leading`) and end (`trailing`).
pub fn trim<'a>(s: &'a str, set: &str, leading: bool, trailing: bool) -> &'a str {
    let strip = |c: char| set.contains(c);
    match (leading, trailing) {
        (true, true) => s.trim_matches(strip),
        (true, false) => s.trim_start_matches(strip),
        (false, true) => s.trim_end_matches(strip),
        (false, false) => s,
    }
}

/// `left(s, n)` (`from_end` false) or `right(s, n)`: `n` characters from that end, or all
/// but `-n` from the other end when `n` is negative.
pub fn take_chars(s: &str, n: i32, from_end: bool) -> String {
    let len = s.chars().count() as i64;
    let n = i64::from(n);
    let keep = if n >= 0 { n.min(len) } else { (len + n).max(0) } as usize;
    if from_end {
        s.chars().skip(len as usize - keep).collect()
    } else {
        s.chars().take(keep).collect()
    }
}

/// `repeat(s, n)`: nothing when `n` is not positive.
pub fn repeat(s: &str, n: i32) -> Result<String> {
    let n = usize::try_from(n).unwrap_or(0);
    if s.len().saturating_mul(n) > MAX_TEXT_BYTES {
        return Err(too_long());
    }
    Ok(s.repeat(n))
}

/// `lpad`/`rpad(s, length, fill)`: `s` cut to `length` characters, or filled to it with
/// repetitions of `fill` on the left (`left`) or right (unchanged when `fill` is empty).
pub fn pad(s: &str, length: i32, fill: &str, left: bool) -> Result<String> {
    let length = usize::try_from(length).unwrap_or(0);
    if length.saturating_mul(4) > MAX_TEXT_BYTES {
        return Err(too_long());
    }
    let len = s.chars().count();
    if len >= length {
        return Ok(s.chars().take(length).collect());
    }
    if fill.is_empty() {
        return Ok(s.to_string());
    }
    let filling: String = fill.chars().cycle().take(length - len).collect();
    Ok(if left {
        filling + s
    } else {
        format!("{s}{filling}")
    })
}

/// `initcap(s)`: the first letter of each run of letters and digits in upper case, the
/// others in lower case.
pub fn initcap(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_word = false;
    for c in s.chars() {
        if in_word {
            out.extend(c.to_lowercase());
        } else {
            out.extend(c.to_uppercase());
        }
        in_word = c.is_alphanumeric();
    }
    out
}

/// `translate(s, from, to)`: each character of `from` replaced by the one at the same
/// position of `to`, or removed when `to` has none there; the first occurrence in `from`
/// counts.
pub fn translate(s: &str, from: &str, to: &str) -> String {
    let to: Vec<char> = to.chars().collect();
    s.chars()
        .filter_map(|c| match from.chars().position(|f| f == c) {
            Some(i) => to.get(i).copied(),
            None => Some(c),
        })
        .collect()
}

/// `chr(n)`: the character of code point `n`.
pub fn chr(n: i32) -> Result<String> {
    let invalid =
        || Error::InvalidValue(format!("requested character not valid for encoding: {n}"));
    if n == 0 {
        return Err(Error::InvalidValue("null character not permitted".into()));
    }
    let c = u32::try_from(n)
        .ok()
        .and_then(char::from_u32)
        .ok_or_else(invalid)?;
    Ok(c.to_string())
}

/// `string_to_array(s, delimiter)`: the pieces of `s` between delimiters (its characters
/// when the delimiter is empty; none for an empty `s`).
pub fn string_to_array(s: &str, delimiter: &str) -> Vec<String> {
    if s.is_empty() {
        return Vec::new();
    }
    if delimiter.is_empty() {
        return vec![s.to_string()];
    }
    s.split(delimiter).map(str::to_string).collect()
}

/// A PostgreSQL replacement text (`\1`..`\9` groups, `\&` the whole match, `\\` a
/// backslash) in the `regex` crate's syntax.
fn replacement_template(replacement: &str) -> String {
    let mut out = String::with_capacity(replacement.len());
    let mut chars = replacement.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '$' => out.push_str("$$"),
            '\\' => match chars.peek().copied() {
                Some(d @ '1'..='9') => {
                    chars.next();
                    out.push_str(&format!("${{{d}}}"));
                }
                Some('&') => {
                    chars.next();
                    out.push_str("${0}");
                }
                Some('\\') => {
                    chars.next();
                    out.push('\\');
                }
                _ => out.push('\\'),
            },
            other => out.push(other),
        }
    }
    out
}

/// Compiled regular expressions by pattern and flags, reused across the rows of one call.
#[derive(Default)]
pub struct RegexCache {
    last: RefCell<Option<(String, String, Regex)>>,
}

impl RegexCache {
    /// `regexp_match(s, pattern [, flags])`: the first match's capture groups (or the whole
    /// match when the pattern has none), `None` without a match.
    pub fn regexp_match<'a>(
        &self,
        s: &'a str,
        pattern: &str,
        flags: &str,
    ) -> Result<Option<Vec<Option<&'a str>>>> {
        let mut last = self.last.borrow_mut();
        let cached = last
            .as_ref()
            .is_some_and(|(p, f, _)| p == pattern && f == flags);
        if !cached {
            *last = Some((pattern.into(), flags.into(), compile(pattern, flags)?));
        }
        let (_, _, regex) = last.as_ref().expect("compiled above");
        let Some(captures) = regex.captures(s) else {
            return Ok(None);
        };
        let group = |i| captures.get(i).map(|m| m.as_str());
        Ok(Some(if captures.len() == 1 {
            vec![group(0)]
        } else {
            (1..captures.len()).map(group).collect()
        }))
    }
}

impl RegexCache {
    /// `regexp_replace(s, pattern, replacement [, flags])`: the first match replaced, or
    /// every one with flag `g`.
    pub fn regexp_replace(
        &self,
        s: &str,
        pattern: &str,
        replacement: &str,
        flags: &str,
    ) -> Result<String> {
        let global = flags.contains('g');
        let flags: String = flags.chars().filter(|f| *f != 'g').collect();
        let mut last = self.last.borrow_mut();
        let cached = last
            .as_ref()
            .is_some_and(|(p, f, _)| p == pattern && *f == flags);
        if !cached {
            *last = Some((pattern.into(), flags.clone(), compile(pattern, &flags)?));
        }
        let (_, _, regex) = last.as_ref().expect("compiled above");
        let template = replacement_template(replacement);
        Ok(if global {
            regex.replace_all(s, template.as_str()).into_owned()
        } else {
            regex.replace(s, template.as_str()).into_owned()
        })
    }
}

/// Compiled regexes a thread keeps before starting over.
const COMPILED_PER_THREAD: usize = 256;

thread_local! {
    /// Regexes compiled on this thread, by pattern and flags: a call's pattern is most often
    /// a constant, which each chunk's evaluation would otherwise compile again (compiling
    /// took as long as matching a chunk's rows).
    static COMPILED: RefCell<HashMap<(String, String), Regex>> = RefCell::default();
}

/// A pattern with PostgreSQL's flags (see [`compile_new`]), compiled once per thread.
fn compile(pattern: &str, flags: &str) -> Result<Regex> {
    let key = (pattern.to_owned(), flags.to_owned());
    if let Some(regex) = COMPILED.with_borrow(|c| c.get(&key).cloned()) {
        return Ok(regex);
    }
    let regex = compile_new(pattern, flags)?;
    COMPILED.with_borrow_mut(|c| {
        if c.len() >= COMPILED_PER_THREAD {
            c.clear();
        }
        c.insert(key, regex.clone());
    });
    Ok(regex)
}

/// A pattern with PostgreSQL's flags: `i` (case-insensitive), `c` (case-sensitive, the
/// default), `n`/`m` (newline-sensitive), `s` (dot matches newline); `g` is refused.
fn compile_new(pattern: &str, flags: &str) -> Result<Regex> {
    let mut builder = regex::RegexBuilder::new(pattern);
    for flag in flags.chars() {
        match flag {
            'i' => builder.case_insensitive(true),
            'c' => builder.case_insensitive(false),
            'n' | 'm' => builder.multi_line(true),
            's' => builder.dot_matches_new_line(true),
            'g' => {
                return Err(Error::InvalidInput(
                    "regexp_match() does not support the \"global\" option".into(),
                ));
            }
            other => {
                return Err(Error::InvalidRegex(format!(
                    "invalid regular expression option: \"{other}\""
                )));
            }
        };
    }
    builder
        .build()
        .map_err(|e| Error::InvalidRegex(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> i64 {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
            .unwrap()
            .and_utc()
            .timestamp_micros()
    }

    #[test]
    fn to_char_follows_postgres_patterns() {
        let t = at("2015-07-05 15:04:09.123456");
        let f = |fmt: &str| to_char(t, fmt, "UTC").unwrap();
        assert_eq!(f("YYYY-MM-DD"), "2015-07-05");
        assert_eq!(f("HH:MI"), "03:04");
        assert_eq!(f("HH24:MI:SS.MS US"), "15:04:09.123 123456");
        assert_eq!(f("HH:mm"), "03:07");
        assert_eq!(
            f("Month|FMMonth|MON|Dy|FMDay|day"),
            "July     |July|JUL|Sun|Sunday|sunday   "
        );
        assert_eq!(f("AM a.m. DDD D ID Q WW IW"), "PM p.m. 186 1 7 3 27 27");
        assert_eq!(
            f("\"YYYY\" \\MM \\\" FMDD CC J"),
            "YYYY \\07 \" 5 21 2457209"
        );
        assert_eq!(f("Y,YYY YY TZ"), "2,015 15 UTC");
        assert_eq!(
            to_char(at("2000-01-01 00:00:00"), "HH12 am", "").unwrap(),
            "12 am"
        );
        assert_eq!(
            to_char(at("2000-01-01 12:30:00"), "HH12 A.M. tz FMHH SSSS", "Utc").unwrap(),
            "12 P.M. utc 12 45000"
        );
    }

    #[test]
    fn split_part_counts_from_either_end() {
        let url = "https://www.nexmark.com/abc/def/item.htm";
        assert_eq!(split_part(url, "/", 4).unwrap(), "abc");
        assert_eq!(split_part(url, "/", -1).unwrap(), "item.htm");
        assert_eq!(split_part(url, "/", 9).unwrap(), "");
        assert_eq!(split_part("abc", "", 1).unwrap(), "abc");
        assert_eq!(split_part("abc", "", -1).unwrap(), "abc");
        assert_eq!(split_part("abc", "", 2).unwrap(), "");
        assert_eq!(split_part("a::b::c", "::", 2).unwrap(), "b");
        assert_eq!(split_part("a::b::c", "::", -3).unwrap(), "a");
        assert_eq!(split_part("a::b::c", "::", -4).unwrap(), "");
        assert_eq!(split_part("é/ü", "/", 2).unwrap(), "ü");
        assert!(split_part(url, "/", 0).is_err());
    }

    #[test]
    fn regexp_match_returns_groups_or_the_match() {
        let cache = RegexCache::default();
        let groups = cache
            .regexp_match("a=1&channel_id=9z&b", "(&|^)channel_id=([^&]*)", "")
            .unwrap();
        assert_eq!(groups, Some(vec![Some("&"), Some("9z")]));
        assert_eq!(
            cache.regexp_match("foobar", "O+", "i").unwrap(),
            Some(vec![Some("oo")])
        );
        assert_eq!(cache.regexp_match("foobar", "x", "").unwrap(), None);
        assert!(cache.regexp_match("a", "(", "").is_err());
        assert!(cache.regexp_match("a", "a", "g").is_err());
        assert_eq!(replace("abcabc", "b", "XY"), "aXYcaXYc");
        assert_eq!(replace("abc", "", "X"), "abc");
    }

    #[test]
    fn text_functions_follow_postgres() {
        assert_eq!(strpos("héllo", "llo"), 3);
        assert_eq!(strpos("abc", "x"), 0);
        assert_eq!(trim("xxaxx", "x", true, false), "axx");
        assert_eq!(trim("  a  ", " ", true, true), "a");
        assert_eq!(take_chars("abcde", 2, false), "ab");
        assert_eq!(take_chars("abcde", -2, false), "abc");
        assert_eq!(take_chars("abcde", 2, true), "de");
        assert_eq!(take_chars("abcde", -2, true), "cde");
        assert_eq!(take_chars("ab", 9, true), "ab");
        assert_eq!(repeat("ab", 3).unwrap(), "ababab");
        assert_eq!(repeat("ab", -1).unwrap(), "");
        assert!(repeat("ab", i32::MAX).is_err());
        assert_eq!(pad("hi", 5, "xy", true).unwrap(), "xyxhi");
        assert_eq!(pad("hi", 5, "xy", false).unwrap(), "hixyx");
        assert_eq!(pad("hello", 2, " ", true).unwrap(), "he");
        assert_eq!(initcap("hi THOMAS o'neil2x"), "Hi Thomas O'Neil2x");
        assert_eq!(translate("12345", "143", "ax"), "a2x5");
        assert_eq!(chr(65).unwrap(), "A");
        assert!(chr(0).is_err());
        assert_eq!(string_to_array("a,b,,c", ","), vec!["a", "b", "", "c"]);
        assert!(string_to_array("", ",").is_empty());
        let cache = RegexCache::default();
        let r = |s, p, t, f| cache.regexp_replace(s, p, t, f).unwrap();
        assert_eq!(r("foobarbaz", "b(..)", "X\\1Y", "g"), "fooXarYXazY");
        assert_eq!(r("foobarbaz", "b(..)", "[\\&]$", ""), "foo[bar]$baz");
        assert_eq!(r("ABC", "b", "x", "i"), "AxC");
    }
}

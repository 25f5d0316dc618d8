//! String functions that need more than a kernel: `to_char` of dates and times, `split_part`,
//! `replace` and `regexp_match`, as PostgreSQL defines them.

use std::cell::RefCell;
use std::fmt::Write;

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
    /// A template pattern (one of [`PATTERNS`]), in fill mode (`FM`) or padded.
    Pattern(&'static str, bool),
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
            match PATTERNS.iter().find(|p| rest.starts_with(**p)) {
                Some(pattern) => {
                    if !text.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    pieces.push(Piece::Pattern(pattern, fill_mode));
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
                Piece::Pattern(pattern, fill_mode) => {
                    format_pattern(out, pattern, &t, *fill_mode, zone);
                }
            }
        }
        Ok(())
    }
}

/// Template patterns, longest first where one is a prefix of another.
const PATTERNS: &[&str] = &[
    "HH24", "hh24", "HH12", "hh12", "HH", "hh", "MI", "mi", "SSSS", "ssss", "SS", "ss", "MS", "ms",
    "US", "us", "A.M.", "a.m.", "P.M.", "p.m.", "AM", "am", "PM", "pm", "Y,YYY", "y,yyy", "YYYY",
    "yyyy", "YYY", "yyy", "YY", "yy", "IYYY", "iyyy", "IW", "iw", "ID", "id", "Y", "y", "MONTH",
    "Month", "month", "MON", "Mon", "mon", "MM", "mm", "DAY", "Day", "day", "DY", "Dy", "dy",
    "DDD", "ddd", "DD", "dd", "D", "d", "WW", "ww", "W", "w", "Q", "q", "CC", "cc", "J", "j", "TZ",
    "tz",
];

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

/// `name` in the capitalization of `pattern` (`MONTH`, `Month` or `month`), blank-padded to
/// `width` unless in fill mode.
fn push_name(out: &mut String, pattern: &str, name: &str, width: usize, fill_mode: bool) {
    let upper = pattern
        .chars()
        .nth(1)
        .is_some_and(|c| c.is_ascii_uppercase());
    let lower = pattern.starts_with(|c: char| c.is_ascii_lowercase());
    let text = if upper {
        name.to_uppercase()
    } else if lower {
        name.to_lowercase()
    } else {
        name.to_string()
    };
    // Writing to a String cannot fail.
    let _ = if fill_mode {
        write!(out, "{text}")
    } else {
        write!(out, "{text:<width$}")
    };
}

fn push_number(out: &mut String, value: i64, width: usize, fill_mode: bool) {
    // Writing to a String cannot fail.
    let _ = if fill_mode {
        write!(out, "{value}")
    } else {
        write!(out, "{value:0width$}")
    };
}

fn format_pattern(out: &mut String, pattern: &str, t: &NaiveDateTime, fm: bool, zone: &str) {
    let hour12 = match t.hour() % 12 {
        0 => 12,
        h => h,
    };
    let pm = t.hour() >= 12;
    let year = i64::from(t.year());
    let weekday = t.weekday().num_days_from_sunday() as usize;
    let month = t.month0() as usize;
    match pattern {
        "HH24" | "hh24" => push_number(out, i64::from(t.hour()), 2, fm),
        "HH12" | "hh12" | "HH" | "hh" => push_number(out, i64::from(hour12), 2, fm),
        "MI" | "mi" => push_number(out, i64::from(t.minute()), 2, fm),
        "SSSS" | "ssss" => push_number(out, i64::from(t.num_seconds_from_midnight()), 1, fm),
        "SS" | "ss" => push_number(out, i64::from(t.second()), 2, fm),
        "MS" | "ms" => push_number(out, i64::from(t.nanosecond() / 1_000_000), 3, fm),
        "US" | "us" => push_number(out, i64::from(t.nanosecond() / 1_000), 6, fm),
        "AM" | "PM" => out.push_str(if pm { "PM" } else { "AM" }),
        "am" | "pm" => out.push_str(if pm { "pm" } else { "am" }),
        "A.M." | "P.M." => out.push_str(if pm { "P.M." } else { "A.M." }),
        "a.m." | "p.m." => out.push_str(if pm { "p.m." } else { "a.m." }),
        "Y,YYY" | "y,yyy" => {
            let _ = write!(out, "{},{:03}", year / 1000, year % 1000);
        }
        "YYYY" | "yyyy" => push_number(out, year, 4, fm),
        "YYY" | "yyy" => push_number(out, year % 1000, 3, fm),
        "YY" | "yy" => push_number(out, year % 100, 2, fm),
        "Y" | "y" => push_number(out, year % 10, 1, fm),
        "IYYY" | "iyyy" => push_number(out, i64::from(t.iso_week().year()), 4, fm),
        "IW" | "iw" => push_number(out, i64::from(t.iso_week().week()), 2, fm),
        "ID" | "id" => push_number(out, i64::from(t.weekday().number_from_monday()), 1, fm),
        "MONTH" | "Month" | "month" => push_name(out, pattern, MONTHS[month], 9, fm),
        "MON" | "Mon" | "mon" => push_name(out, pattern, &MONTHS[month][..3], 3, fm),
        "MM" | "mm" => push_number(out, i64::from(t.month()), 2, fm),
        "DAY" | "Day" | "day" => push_name(out, pattern, DAYS[weekday], 9, fm),
        "DY" | "Dy" | "dy" => push_name(out, pattern, &DAYS[weekday][..3], 3, fm),
        "DDD" | "ddd" => push_number(out, i64::from(t.ordinal()), 3, fm),
        "DD" | "dd" => push_number(out, i64::from(t.day()), 2, fm),
        "D" | "d" => push_number(out, weekday as i64 + 1, 1, fm),
        "WW" | "ww" => push_number(out, i64::from(t.ordinal0() / 7 + 1), 2, fm),
        "W" | "w" => push_number(out, i64::from(t.day0() / 7 + 1), 1, fm),
        "Q" | "q" => push_number(out, i64::from(t.month0() / 3 + 1), 1, fm),
        "CC" | "cc" => {
            let century = if year > 0 {
                (year - 1) / 100 + 1
            } else {
                year / 100 - 1
            };
            push_number(out, century, 2, fm);
        }
        // Days since November 24, 4714 BC (the Julian Day of PostgreSQL's calendar).
        "J" | "j" => push_number(
            out,
            i64::from(t.date().num_days_from_ce()) + 1_721_425,
            1,
            fm,
        ),
        "TZ" => out.push_str(&zone.to_uppercase()),
        "tz" => out.push_str(&zone.to_lowercase()),
        other => out.push_str(other),
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

/// A pattern with PostgreSQL's flags: `i` (case-insensitive), `c` (case-sensitive, the
/// default), `n`/`m` (newline-sensitive), `s` (dot matches newline); `g` is refused.
fn compile(pattern: &str, flags: &str) -> Result<Regex> {
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

//! PostgreSQL's text forms of values: what results print and casts to text produce, and
//! array literals (`{1,2,NULL}`) read back.

use std::fmt::Write;

use chrono::{DateTime, NaiveDate};

use crate::types::{DataType, Datum};
use crate::{Error, Result};

/// `interval` in PostgreSQL's default output style, e.g. `1 mon 2 days 03:04:05`.
pub fn format_interval(months: i32, days: i32, nanos: i64) -> String {
    let mut parts = Vec::new();
    let (years, months) = (months / 12, months % 12);
    // Only exactly one is singular: PostgreSQL prints "-1 days".
    let plural = |n: i64, unit: &str| {
        if n == 1 {
            format!("{n} {unit}")
        } else {
            format!("{n} {unit}s")
        }
    };
    if years != 0 {
        parts.push(plural(i64::from(years), "year"));
    }
    if months != 0 {
        parts.push(if months == 1 {
            format!("{months} mon")
        } else {
            format!("{months} mons")
        });
    }
    if days != 0 {
        parts.push(plural(i64::from(days), "day"));
    }
    if nanos != 0 || parts.is_empty() {
        let sign = if nanos < 0 { "-" } else { "" };
        let micros = (nanos / 1000).unsigned_abs();
        let (h, m, s, us) = (
            micros / 3_600_000_000,
            micros / 60_000_000 % 60,
            micros / 1_000_000 % 60,
            micros % 1_000_000,
        );
        let frac = if us == 0 {
            String::new()
        } else {
            format!(".{us:06}").trim_end_matches('0').to_string()
        };
        parts.push(format!("{sign}{h:02}:{m:02}:{s:02}{frac}"));
    }
    parts.join(" ")
}

/// Fractional seconds of a time or timestamp as RisingWave prints them: milliseconds
/// (`.210`) when they are exact, else microseconds, and nothing for whole seconds.
/// PostgreSQL trims every trailing zero (`.21`); both read back the same.
fn fraction(micros: i64) -> String {
    if micros == 0 {
        String::new()
    } else if micros % 1000 == 0 {
        format!(".{:03}", micros / 1000)
    } else {
        format!(".{micros:06}")
    }
}

/// PostgreSQL's text form of a time of day.
pub fn format_time(us: i64) -> String {
    let secs = us.div_euclid(1_000_000);
    format!(
        "{:02}:{:02}:{:02}{}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        fraction(us.rem_euclid(1_000_000))
    )
}

/// PostgreSQL's text form of a timestamp (with the `+00` offset of UTC for timestamptz).
pub fn format_timestamp(us: i64, with_zone: bool) -> String {
    let Some(t) = DateTime::from_timestamp_micros(us) else {
        return us.to_string();
    };
    format!(
        "{}{}{}",
        t.format("%Y-%m-%d %H:%M:%S"),
        fraction(us.rem_euclid(1_000_000)),
        if with_zone { "+00:00" } else { "" }
    )
}

/// A float as PostgreSQL prints it: the shortest text that reads back exactly, in exponent
/// form when the decimal exponent is below -4 or at least `digits` (15 for double precision,
/// 6 for real).
pub fn format_float(v: f64, digits: i32) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    let sci = format!("{v:e}");
    let (mantissa, exp) = sci.split_once('e').expect("exponent form");
    let exp: i32 = exp.parse().expect("integer exponent");
    if exp < -4 || exp >= digits {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    } else {
        format!("{v}")
    }
}

/// `bytea` in PostgreSQL's default hex output: `\x` and two lower-case digits a byte.
pub fn format_bytea(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(2 + 2 * bytes.len());
    out.push_str("\\x");
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Reads `bytea` input: hex (`\x3132`, spaces between bytes allowed) or the escape form,
/// where `\\` is a backslash, `\ooo` an octal byte, and every other character its own
/// UTF-8 bytes.
pub fn parse_bytea(s: &str) -> Result<Vec<u8>> {
    let bad = || Error::InvalidText {
        ty: "bytea".into(),
        value: s.into(),
    };
    if let Some(hex) = s.strip_prefix("\\x").or_else(|| s.strip_prefix("\\X")) {
        let digits: Vec<u8> = hex.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        return digits
            .chunks(2)
            .map(|pair| {
                std::str::from_utf8(pair)
                    .ok()
                    .filter(|p| p.len() == 2)
                    .and_then(|p| u8::from_str_radix(p, 16).ok())
                    .ok_or_else(bad)
            })
            .collect();
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            out.push(bytes[i]);
            i += 1;
        } else if bytes.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
        } else {
            let octal = bytes.get(i + 1..i + 4).ok_or_else(bad)?;
            if !octal.iter().all(|b| (b'0'..=b'7').contains(b)) || octal[0] > b'3' {
                return Err(bad());
            }
            out.push(octal.iter().fold(0u8, |v, b| v * 8 + (b - b'0')));
            i += 4;
        }
    }
    Ok(out)
}

/// `date` as `YYYY-MM-DD`.
pub fn format_date(days: i32) -> String {
    NaiveDate::from_num_days_from_ce_opt(days + 719_163)
        .map_or_else(|| days.to_string(), |d| d.format("%Y-%m-%d").to_string())
}

impl Datum {
    /// The value's text form (`None` for NULL), as PostgreSQL prints it.
    pub fn to_text(&self) -> Option<String> {
        Some(match self {
            Datum::Null => return None,
            Datum::Bool(v) => if *v { "t" } else { "f" }.to_string(),
            Datum::Int16(v) => v.to_string(),
            Datum::Int32(v) => v.to_string(),
            Datum::Int64(v) => v.to_string(),
            Datum::Float32(v) => format_float(f64::from(*v), 6),
            Datum::Float64(v) => format_float(*v, 15),
            Datum::Decimal(v) => v.to_string(),
            Datum::Varchar(v) | Datum::Jsonb(v) => v.clone(),
            Datum::Bytea(v) => format_bytea(v),
            Datum::Date(v) => format_date(*v),
            Datum::Time(v) => format_time(*v),
            Datum::Timestamp(v) => format_timestamp(*v, false),
            Datum::Timestamptz(v) => format_timestamp(*v, true),
            Datum::Interval {
                months,
                days,
                nanos,
            } => format_interval(*months, *days, *nanos),
            Datum::List(items) => {
                let items: Vec<String> = items
                    .iter()
                    .map(|d| match d {
                        Datum::Null => "NULL".to_string(),
                        Datum::List(_) => d.to_text().expect("not NULL"),
                        _ => quote_element(&d.to_text().expect("not NULL")),
                    })
                    .collect();
                format!("{{{}}}", items.join(","))
            }
            // PostgreSQL's record form: `(1,,"a b")`, NULL fields empty.
            Datum::Struct(fields) => {
                let fields: Vec<String> = fields
                    .iter()
                    .map(|d| d.to_text().map_or_else(String::new, |t| quote_field(&t)))
                    .collect();
                format!("({})", fields.join(","))
            }
        })
    }
}

/// A record field as PostgreSQL writes it: double-quoted (with `"` and `\` doubled) when it
/// is empty or holds a comma, parenthesis, quote, backslash or space.
fn quote_field(s: &str) -> String {
    quoted(s, &[',', '(', ')'], s.is_empty(), None)
}

/// An array element as PostgreSQL writes it: double-quoted (with `"` and `\` escaped) when
/// it is empty, `NULL`, or holds a delimiter, brace, quote, backslash or space.
fn quote_element(s: &str) -> String {
    let bare_null = s.is_empty() || s.eq_ignore_ascii_case("null");
    quoted(s, &['{', '}', ','], bare_null, Some('\\'))
}

/// `s` double-quoted when `always` or when it holds one of `specials`, a quote, a backslash
/// or a space; inside the quotes, a quote or backslash is preceded by `escape` (doubled when
/// `None`).
fn quoted(s: &str, specials: &[char], always: bool, escape: Option<char>) -> String {
    let special = |c: char| specials.contains(&c) || matches!(c, '"' | '\\') || c.is_whitespace();
    if !always && !s.chars().any(special) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if matches!(c, '"' | '\\') {
            out.push(escape.unwrap_or(c));
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// One element of an array literal: its text (`None` for an unquoted NULL) or a nested array.
enum Element {
    Text(Option<String>),
    Nested(Vec<Element>),
}

/// Reads an array literal (`{1,2}`, `{"a b",NULL}`, `{{1},{2}}`) into its elements' texts.
fn parse_elements(s: &str) -> Result<Vec<Element>> {
    let bad = || Error::InvalidInput(format!("malformed array literal: \"{s}\""));
    let chars: Vec<char> = s.trim().chars().collect();
    let mut pos = 0;
    let elements = parse_braced(&chars, &mut pos).ok_or_else(bad)?;
    if pos != chars.len() {
        return Err(bad());
    }
    Ok(elements)
}

fn parse_braced(c: &[char], pos: &mut usize) -> Option<Vec<Element>> {
    let skip_space = |pos: &mut usize| {
        while c.get(*pos).is_some_and(|c| c.is_whitespace()) {
            *pos += 1;
        }
    };
    if c.get(*pos) != Some(&'{') {
        return None;
    }
    *pos += 1;
    let mut out = Vec::new();
    skip_space(pos);
    if c.get(*pos) == Some(&'}') {
        *pos += 1;
        return Some(out);
    }
    loop {
        skip_space(pos);
        match c.get(*pos)? {
            '{' => out.push(Element::Nested(parse_braced(c, pos)?)),
            '"' => {
                *pos += 1;
                let mut text = String::new();
                loop {
                    match c.get(*pos)? {
                        '"' => break,
                        '\\' => {
                            *pos += 1;
                            text.push(*c.get(*pos)?);
                        }
                        ch => text.push(*ch),
                    }
                    *pos += 1;
                }
                *pos += 1;
                out.push(Element::Text(Some(text)));
            }
            _ => {
                let mut text = String::new();
                while let Some(ch) = c.get(*pos).filter(|ch| !matches!(ch, ',' | '}')) {
                    if *ch == '\\' {
                        *pos += 1;
                        text.push(*c.get(*pos)?);
                    } else {
                        text.push(*ch);
                    }
                    *pos += 1;
                }
                let text = text.trim_end().to_string();
                if text.is_empty() || matches!(text.as_str(), "{" | "\"") {
                    return None;
                }
                out.push(Element::Text(
                    (!text.eq_ignore_ascii_case("null")).then_some(text),
                ));
            }
        }
        skip_space(pos);
        match c.get(*pos)? {
            ',' => *pos += 1,
            '}' => {
                *pos += 1;
                return Some(out);
            }
            _ => return None,
        }
    }
}

/// The array of element type `elem` an array literal denotes; each element is read as a cast
/// from text to `elem` reads it.
pub fn parse_array(s: &str, elem: DataType) -> Result<Datum> {
    let elements = parse_elements(s)?;
    to_datum(elements, elem, s)
}

fn to_datum(elements: Vec<Element>, elem: DataType, literal: &str) -> Result<Datum> {
    let items = elements
        .into_iter()
        .map(|e| match (e, elem) {
            (Element::Text(None), _) => Ok(Datum::Null),
            (Element::Nested(inner), DataType::List(e)) => to_datum(inner, e.get(), literal),
            (Element::Text(Some(t)), DataType::List(e)) => parse_array(&t, e.get()),
            (Element::Text(Some(t)), _) => {
                let text: arrow::array::ArrayRef =
                    std::sync::Arc::new(arrow::array::StringArray::from(vec![t]));
                let cast = crate::expr::cast(&text, DataType::Varchar, elem)?;
                Ok(Datum::from_array(cast.as_ref(), 0))
            }
            (Element::Nested(_), _) => Err(Error::InvalidInput(format!(
                "malformed array literal: \"{literal}\""
            ))),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Datum::List(items))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_and_floats_print_as_postgres_does() {
        assert_eq!(
            format_interval(14, 3, 3_723_500_000_000),
            "1 year 2 mons 3 days 01:02:03.5"
        );
        assert_eq!(format_interval(0, 0, 0), "00:00:00");
        assert_eq!(format_interval(0, -1, -1_000_000_000), "-1 days -00:00:01");
        let f = |v: f64| format_float(v, 15);
        assert_eq!(
            (
                f(3.0),
                f(1.5),
                f(-0.25),
                f(1e20),
                f(1.5e-5),
                f(123456789012345.0)
            ),
            (
                "3".into(),
                "1.5".into(),
                "-0.25".into(),
                "1e+20".into(),
                "1.5e-05".into(),
                "123456789012345".into()
            )
        );
        assert_eq!(
            (
                format_float(1e6, 6),
                format_float(f64::NAN, 15),
                format_float(f64::NEG_INFINITY, 15)
            ),
            ("1e+06".into(), "NaN".into(), "-Infinity".into())
        );
    }

    #[test]
    fn bytea_reads_hex_and_escapes_and_prints_hex() {
        assert_eq!(parse_bytea("\\x31 32").unwrap(), b"12");
        assert_eq!(parse_bytea("a\\\\b\\061").unwrap(), b"a\\b1");
        assert_eq!(parse_bytea("").unwrap(), b"");
        assert_eq!(format_bytea(b"1a\xff"), "\\x3161ff");
        for bad in ["\\x1", "\\xzz", "a\\", "\\9aa", "\\400"] {
            assert!(parse_bytea(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn arrays_print_and_read_back() {
        let ty = DataType::list(DataType::Varchar);
        let d = parse_array(r#"{a, "b c" ,NULL,"",\"q\","{x}"}"#, DataType::Varchar).unwrap();
        assert_eq!(d.to_text().unwrap(), r#"{a,"b c",NULL,"","\"q\"","{x}"}"#);
        assert_eq!(
            parse_array(&d.to_text().unwrap(), DataType::Varchar).unwrap(),
            d
        );
        let nested = parse_array("{{1,2},{}}", DataType::list(DataType::Int32)).unwrap();
        assert_eq!(nested.to_text().unwrap(), "{{1,2},{}}");
        assert_eq!(ty.to_string(), "character varying[]");
        for bad in ["{1,2", "1,2}", "{1,,2}", "{a}b"] {
            assert!(parse_array(bad, DataType::Varchar).is_err(), "{bad}");
        }
        assert!(parse_array("{x}", DataType::Int32).is_err());
    }
}

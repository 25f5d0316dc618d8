//! Scalar functions (`abs`, `round`, `upper`, ...), evaluated a column at a time.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int32Array, StringArray, TimestampMicrosecondArray,
};
use arrow::buffer::NullBuffer;
use arrow::compute::kernels::arity::{binary, try_unary, unary};
use arrow::datatypes::{
    Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, IntervalMonthDayNanoType,
    TimestampMicrosecondType,
};
use serde::{Deserialize, Serialize};

use crate::batch::agg::cmp_datums;
use crate::datetime::{self, DateField};
use crate::expr::{decimal_array, decimals};
use crate::types::{DataType, Datum, array_from_datums};
use crate::{Error, Result};

/// A scalar function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Func {
    /// `abs(x)`: same numeric type.
    Abs,
    /// `round(x)` / `round(x, digits)` over double precision or numeric, halves away from
    /// zero.
    Round,
    /// `ceil(x)` over double precision or numeric.
    Ceil,
    /// `floor(x)` over double precision or numeric.
    Floor,
    /// `upper(s)`
    Upper,
    /// `lower(s)`
    Lower,
    /// `char_length(s)` / `length(s)`: characters, as int.
    CharLength,
    /// `random()`: a double in [0, 1), a new one per row.
    Random,
    /// `substring(s FROM start [FOR count])`: characters, counted from 1.
    Substring,
    /// `now()`: the current time, as timestamptz.
    Now,
    /// `t + interval` of a date (giving a timestamp), time, timestamp or timestamptz.
    AddInterval,
    /// `date + integer` days.
    AddDays,
    /// `date - date`: days, as int.
    DaysBetween,
    /// `timestamp - timestamp` (or timestamptz): an interval of days and time.
    TimestampDiff,
    /// `interval + interval`.
    IntervalAdd,
    /// `interval * double precision`.
    IntervalMul,
    /// `EXTRACT(field FROM x)`, as numeric.
    Extract(DateField),
    /// `date_trunc(unit, t)` of a timestamp or timestamptz.
    DateTrunc(DateField),
    /// The start of the window of fixed size (microseconds, the second argument) holding a
    /// timestamp(tz): windows start at 1970-01-01 00:00 plus the offset (microseconds, the
    /// third argument) plus whole sizes.
    WindowStart,
    /// `ARRAY[a, b, ...]`.
    ArrayConstruct,
    /// `a[i]` (from 1; NULL outside the array).
    ArrayAccess,
    /// `a || b` of two arrays.
    ArrayCat,
    /// `a || x`: `x` appended.
    ArrayAppend,
    /// `x || a`: `x` prepended.
    ArrayPrepend,
    /// `array_length(a, dim)`.
    ArrayLength,
    /// `array_upper(a, dim)`.
    ArrayUpper,
    /// `array_lower(a, dim)`.
    ArrayLower,
    /// `cardinality(a)`: elements of every dimension.
    Cardinality,
    /// `array_to_string(a, sep [, null_text])`.
    ArrayToString,
    /// `x op ANY (a)`.
    ArrayAny(crate::expr::BinaryOp),
    /// `x op ALL (a)`.
    ArrayAll(crate::expr::BinaryOp),
    /// `generate_series(start, stop [, step])` of integers as an array (stop included).
    SeriesArray,
    /// `format_type(oid, typmod)`: the SQL name of the type with PostgreSQL oid `oid`.
    FormatType,
    /// `pg_size_pretty(bytes)`: `123 bytes`, `45 kB`, `6789 MB`, ...
    SizePretty,
    /// `quote_ident(s)`: `s` double-quoted unless it is a plain lower-case identifier.
    QuoteIdent,
    /// `to_char(t, format)` of a timestamp or timestamptz (see [`crate::string::ToCharFormat`]).
    ToChar,
    /// `split_part(s, delimiter, n)`.
    SplitPart,
    /// `replace(s, from, to)`.
    Replace,
    /// `regexp_match(s, pattern [, flags])`: text[] of the first match's groups.
    RegexpMatch,
    /// `j -> key` / `j -> index` (jsonb), or `->>` when `text` (the value as text).
    JsonbAccess {
        /// `->>`: the value's text rather than the value.
        text: bool,
    },
    /// `jsonb_typeof(j)`.
    JsonbTypeof,
    /// `(a, b, ...)` / `ROW(a, b, ...)`: a struct of the arguments.
    RowConstruct,
    /// `(s).field`: field `index` of a struct.
    FieldAccess {
        /// The field's position.
        index: usize,
    },
    /// `trunc(x)` / `trunc(x, digits)` over double precision or numeric: toward zero.
    Trunc,
    /// A function of double precision numbers (see [`MathFunc`]).
    Math(MathFunc),
    /// `greatest(a, b, ...)`: the largest argument that is not NULL (NULL if all are).
    Greatest,
    /// `least(a, b, ...)`: the smallest argument that is not NULL.
    Least,
    /// `strpos(s, sub)` / `position(sub IN s)`: the character position of the first `sub`,
    /// from 1 (0 when there is none).
    Strpos,
    /// `btrim`, `ltrim`, `rtrim(s [, characters])` and `trim(...)`: `s` without the given
    /// characters (spaces by default) at its chosen ends.
    Trim {
        /// From the start.
        leading: bool,
        /// From the end.
        trailing: bool,
    },
    /// `left(s, n)`: the first `n` characters (all but the last `-n` when `n` is negative).
    Left,
    /// `right(s, n)`: the last `n` characters (all but the first `-n`).
    Right,
    /// `repeat(s, n)`.
    Repeat,
    /// `reverse(s)`.
    Reverse,
    /// `lpad(s, length [, fill])` / `rpad`: `s` filled (with spaces by default) or cut to
    /// `length` characters.
    Pad {
        /// Fill on the left (`lpad`).
        left: bool,
    },
    /// `initcap(s)`: each word's first letter in upper case, the others in lower case.
    Initcap,
    /// `octet_length(s)`: bytes of the text (UTF-8).
    OctetLength,
    /// `starts_with(s, prefix)`.
    StartsWith,
    /// `ascii(s)`: the code point of the first character (0 for the empty text).
    Ascii,
    /// `chr(n)`: the character of code point `n`.
    Chr,
    /// `translate(s, from, to)`: each character of `from` in `s` replaced by the one at its
    /// position in `to`, or removed when `to` is shorter.
    Translate,
    /// `regexp_replace(s, pattern, replacement [, flags])`: the first match (every one with
    /// flag `g`) replaced; `\1`..`\9` in the replacement are groups, `\&` the match.
    RegexpReplace,
    /// `string_to_array(s, delimiter)`: the pieces between delimiters, as text[].
    StringToArray,
    /// `md5(s)`: the MD5 digest of the text, in hex.
    Md5,
    /// `concat_ws(separator, a, b, ...)`: the arguments that are not NULL, as text, joined by
    /// the separator (NULL when it is).
    ConcatWs,
    /// `to_timestamp(seconds)`: a Unix time as timestamptz.
    ToTimestamp,
}

/// Functions of double precision numbers, evaluated as PostgreSQL does for `float8`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MathFunc {
    /// `sqrt(x)`; an error for negative `x`.
    Sqrt,
    /// `cbrt(x)`.
    Cbrt,
    /// `exp(x)`.
    Exp,
    /// `ln(x)`; an error for `x <= 0`.
    Ln,
    /// `log(x)` / `log10(x)`: base 10.
    Log10,
    /// `log(b, x)`: base `b`.
    Log,
    /// `power(x, y)` / `x ^ y`.
    Power,
    /// `sign(x)`: -1, 0 or 1.
    Sign,
    /// `degrees(radians)`.
    Degrees,
    /// `radians(degrees)`.
    Radians,
    /// `sin(x)`.
    Sin,
    /// `cos(x)`.
    Cos,
    /// `tan(x)`.
    Tan,
    /// `cot(x)`.
    Cot,
    /// `asin(x)`; an error outside [-1, 1].
    Asin,
    /// `acos(x)`; an error outside [-1, 1].
    Acos,
    /// `atan(x)`.
    Atan,
    /// `atan2(y, x)`.
    Atan2,
    /// `pi()`.
    Pi,
}

impl MathFunc {
    /// The function's name and arity, for binding.
    pub fn by_name(name: &str) -> Option<(MathFunc, usize)> {
        use MathFunc::*;
        Some(match name {
            "sqrt" => (Sqrt, 1),
            "cbrt" => (Cbrt, 1),
            "exp" => (Exp, 1),
            "ln" => (Ln, 1),
            "log10" => (Log10, 1),
            "power" | "pow" => (Power, 2),
            "sign" => (Sign, 1),
            "degrees" => (Degrees, 1),
            "radians" => (Radians, 1),
            "sin" => (Sin, 1),
            "cos" => (Cos, 1),
            "tan" => (Tan, 1),
            "cot" => (Cot, 1),
            "asin" => (Asin, 1),
            "acos" => (Acos, 1),
            "atan" => (Atan, 1),
            "atan2" => (Atan2, 2),
            "pi" => (Pi, 0),
            _ => return None,
        })
    }

    /// The function of `x` (and `y`, the second argument, for two-argument ones).
    fn apply(self, x: f64, y: f64) -> Result<f64> {
        use MathFunc::*;
        let domain = |sqlstate: &'static str, message: &str| Error::FunctionArgument {
            sqlstate,
            message: message.into(),
        };
        Ok(match self {
            Sqrt if x < 0.0 => Err(domain(
                "2201F",
                "cannot take square root of a negative number",
            ))?,
            Sqrt => x.sqrt(),
            Cbrt => x.cbrt(),
            Exp => x.exp(),
            Ln | Log10 if x == 0.0 => Err(domain("2201E", "cannot take logarithm of zero"))?,
            Ln | Log10 if x < 0.0 => Err(domain(
                "2201E",
                "cannot take logarithm of a negative number",
            ))?,
            Ln => x.ln(),
            Log10 => x.log10(),
            // log(base, value)
            Log if x <= 0.0 || y <= 0.0 => Err(domain(
                "2201E",
                "cannot take logarithm of zero or a negative number",
            ))?,
            Log if x == 1.0 => Err(Error::DivisionByZero)?,
            Log => y.ln() / x.ln(),
            Power if x == 0.0 && y < 0.0 => Err(domain(
                "2201F",
                "zero raised to a negative power is undefined",
            ))?,
            Power if x < 0.0 && y.fract() != 0.0 => Err(domain(
                "2201F",
                "a negative number raised to a non-integer power yields a complex result",
            ))?,
            Power => x.powf(y),
            Sign if x.is_nan() => x,
            Sign if x == 0.0 => 0.0,
            Sign => x.signum(),
            Degrees => x.to_degrees(),
            Radians => x.to_radians(),
            Sin => x.sin(),
            Cos => x.cos(),
            Tan => x.tan(),
            Cot => 1.0 / x.tan(),
            Asin | Acos if !(-1.0..=1.0).contains(&x) => Err(Error::OutOfRange("input is".into()))?,
            Asin => x.asin(),
            Acos => x.acos(),
            Atan => x.atan(),
            Atan2 => x.atan2(y),
            Pi => std::f64::consts::PI,
        })
    }
}

/// PostgreSQL's `substring`: characters `start .. start + count` (1-based; positions before
/// the first character count against `count`).
fn substring(s: &str, start: i32, count: Option<&Datum>) -> Result<String> {
    let start = i64::from(start);
    let end = match count {
        Some(Datum::Int32(n)) if *n < 0 => {
            return Err(Error::InvalidInput(
                "negative substring length not allowed".into(),
            ));
        }
        Some(Datum::Int32(n)) => Some(start + i64::from(*n)),
        _ => None,
    };
    let from = (start.max(1) - 1) as usize;
    Ok(match end {
        Some(end) if end <= 1 => String::new(),
        Some(end) => s
            .chars()
            .skip(from)
            .take((end - 1) as usize - from)
            .collect(),
        None => s.chars().skip(from).collect(),
    })
}

/// PostgreSQL's `pg_size_pretty`: the largest unit that keeps the number at 10240 or more
/// of the next smaller one, rounded half up.
fn size_pretty(bytes: i64) -> String {
    let mut value = bytes;
    for unit in ["bytes", "kB", "MB", "GB", "TB"] {
        if value.abs() < 10 * 1024 || unit == "TB" {
            return format!("{value} {unit}");
        }
        value = (value + value.signum() * 512) / 1024;
    }
    unreachable!("TB ends the loop")
}

/// Applies `f` to each row whose arguments are all non-NULL (NULL otherwise).
pub(crate) fn each_row(
    args: &[ArrayRef],
    ty: DataType,
    f: impl Fn(&[Datum]) -> Result<Datum>,
) -> Result<ArrayRef> {
    let rows = args.first().map_or(0, |a| a.len());
    let mut out = Vec::with_capacity(rows);
    let mut row = Vec::with_capacity(args.len());
    for r in 0..rows {
        row.clear();
        row.extend(args.iter().map(|a| Datum::from_array(a.as_ref(), r)));
        out.push(if row.iter().any(Datum::is_null) {
            Datum::Null
        } else {
            f(&row)?
        });
    }
    Ok(array_from_datums(ty, out.iter()))
}

pub(crate) fn interval_parts(d: &Datum) -> (i32, i32, i64) {
    match d {
        Datum::Interval {
            months,
            days,
            nanos,
        } => (*months, *days, *nanos),
        _ => (0, 0, 0),
    }
}

/// Date and time functions, a row at a time.
fn eval_datetime(func: Func, args: &[ArrayRef], ty: DataType) -> Result<ArrayRef> {
    if let Some(moved) = move_timestamps(func, args)? {
        return Ok(moved);
    }
    each_row(args, ty, |row| {
        Ok(match (func, &row[0], row.get(1)) {
            (Func::AddInterval, t, Some(i)) => {
                let (m, d, n) = interval_parts(i);
                // Timestamps are moved a column at a time (`move_timestamps`).
                match t {
                    Datum::Date(days) => Datum::Timestamp(datetime::add_interval(
                        i64::from(*days) * 86_400_000_000,
                        m,
                        d,
                        n,
                    )?),
                    // A time of day wraps around midnight; months and days do not move it.
                    Datum::Time(us) => Datum::Time((us + n / 1000).rem_euclid(86_400_000_000)),
                    other => return Err(Error::Internal(format!("{other:?} + interval"))),
                }
            }
            (Func::AddDays, Datum::Date(d), Some(Datum::Int32(n))) => {
                Datum::Date(datetime::add_days(*d, *n)?)
            }
            (Func::DaysBetween, Datum::Date(a), Some(Datum::Date(b))) => Datum::Int32(a - b),
            (
                Func::TimestampDiff,
                Datum::Timestamp(a) | Datum::Timestamptz(a),
                Some(Datum::Timestamp(b) | Datum::Timestamptz(b)),
            ) => datetime::timestamp_diff(*a, *b),
            (Func::IntervalAdd, a, Some(b)) => {
                datetime::interval_add(interval_parts(a), interval_parts(b), false)?
            }
            (Func::IntervalMul, i, Some(Datum::Float64(f))) => {
                let (m, d, n) = interval_parts(i);
                datetime::interval_mul(m, d, n, *f)?
            }
            (Func::Extract(field), x, None) => datetime::extract(field, x)?,
            (Func::DateTrunc(field), Datum::Timestamp(us), None) => {
                Datum::Timestamp(datetime::trunc(field, *us)?)
            }
            (Func::DateTrunc(field), Datum::Timestamptz(us), None) => {
                Datum::Timestamptz(datetime::trunc(field, *us)?)
            }
            (func, a, b) => {
                return Err(Error::Internal(format!("{func:?} of {a:?}, {b:?}")));
            }
        })
    })
}

/// A timestamp (or timestamptz) column moved by an interval (`AddInterval`) or to its
/// windows' start (`WindowStart`), a column at a time on the arrays' values: the functions
/// that place every row of a time window (HOP and TUMBLE) and interval joins. `None` for
/// other functions and arguments, which [`each_row`] evaluates.
fn move_timestamps(func: Func, args: &[ArrayRef]) -> Result<Option<ArrayRef>> {
    let Some(times) = args
        .first()
        .and_then(|a| a.as_primitive_opt::<TimestampMicrosecondType>())
    else {
        return Ok(None);
    };
    let int64 = |i: usize| args.get(i).and_then(|a| a.as_primitive_opt::<Int64Type>());
    let moved = match (func, args.len()) {
        (Func::AddInterval, 2) => {
            let Some(intervals) = args[1].as_primitive_opt::<IntervalMonthDayNanoType>() else {
                return Ok(None);
            };
            map_times(times, args, |us, r| {
                let i = intervals.value(r);
                datetime::add_interval(us, i.months, i.days, i.nanoseconds)
            })?
        }
        (Func::WindowStart, 2 | 3) => {
            let Some(sizes) = int64(1) else {
                return Ok(None);
            };
            let offsets = int64(2);
            map_times(times, args, |us, r| {
                let size = sizes.value(r);
                if size <= 0 {
                    return Err(Error::Internal(format!("window of size {size}")));
                }
                let offset = offsets.map_or(0, |o| o.value(r));
                Ok((us - offset).div_euclid(size) * size + offset)
            })?
        }
        _ => return Ok(None),
    };
    Ok(Some(Arc::new(
        moved.with_data_type(args[0].data_type().clone()),
    )))
}

/// `to_char` of a timestamp (or timestamptz) column, a column at a time: each row's template
/// is parsed only where it differs from the previous row's (a view's is a constant), and the
/// text is written straight into the output.
fn to_char_column(args: &[ArrayRef]) -> Result<ArrayRef> {
    let (Some(times), Some(formats)) = (
        args[0].as_primitive_opt::<TimestampMicrosecondType>(),
        args.get(1).and_then(|a| a.as_string_opt::<i32>()),
    ) else {
        return Err(arguments_error(Func::ToChar, args));
    };
    let zone = match args[0].data_type() {
        arrow::datatypes::DataType::Timestamp(_, Some(_)) => "UTC",
        _ => "",
    };
    let mut out = arrow::array::StringBuilder::with_capacity(times.len(), times.len() * 16);
    let mut parsed: Option<(&str, crate::string::ToCharFormat)> = None;
    let mut text = String::new();
    for r in 0..times.len() {
        if times.is_null(r) || formats.is_null(r) {
            out.append_null();
            continue;
        }
        let format = formats.value(r);
        let template = match &parsed {
            Some((last, template)) if *last == format => template,
            _ => {
                let template = crate::string::ToCharFormat::parse(format);
                &parsed.insert((format, template)).1
            }
        };
        text.clear();
        template.write(&mut text, times.value(r), zone)?;
        out.append_value(&text);
    }
    Ok(Arc::new(out.finish()))
}

/// `split_part` of a text column, a column at a time: each field is found without
/// collecting the others and copied straight into the output.
fn split_part_column(args: &[ArrayRef]) -> Result<ArrayRef> {
    let (Some(texts), Some(delimiters), Some(positions)) = (
        args[0].as_string_opt::<i32>(),
        args.get(1).and_then(|a| a.as_string_opt::<i32>()),
        args.get(2).and_then(|a| a.as_primitive_opt::<Int32Type>()),
    ) else {
        return Err(arguments_error(Func::SplitPart, args));
    };
    let mut out = arrow::array::StringBuilder::with_capacity(texts.len(), texts.len() * 8);
    for r in 0..texts.len() {
        if texts.is_null(r) || delimiters.is_null(r) || positions.is_null(r) {
            out.append_null();
            continue;
        }
        let field =
            crate::string::split_part(texts.value(r), delimiters.value(r), positions.value(r))?;
        out.append_value(field);
    }
    Ok(Arc::new(out.finish()))
}

/// `regexp_match` of a text column, a column at a time: each row's groups go straight into
/// the output list's values.
fn regexp_match_column(args: &[ArrayRef], ty: DataType) -> Result<ArrayRef> {
    let (Some(texts), Some(patterns), arrow::datatypes::DataType::List(field)) = (
        args[0].as_string_opt::<i32>(),
        args.get(1).and_then(|a| a.as_string_opt::<i32>()),
        ty.to_arrow(),
    ) else {
        return Err(arguments_error(Func::RegexpMatch, args));
    };
    let flags = match args.get(2).map(|a| a.as_string_opt::<i32>()) {
        None => None,
        Some(Some(flags)) => Some(flags),
        Some(None) => return Err(arguments_error(Func::RegexpMatch, args)),
    };
    let regexes = crate::string::RegexCache::default();
    let mut out =
        arrow::array::ListBuilder::new(arrow::array::StringBuilder::new()).with_field(field);
    for r in 0..texts.len() {
        if texts.is_null(r) || patterns.is_null(r) || flags.is_some_and(|f| f.is_null(r)) {
            out.append_null();
            continue;
        }
        let flags = flags.map_or("", |f| f.value(r));
        match regexes.regexp_match(texts.value(r), patterns.value(r), flags)? {
            Some(groups) => {
                for group in groups {
                    out.values().append_option(group);
                }
                out.append(true);
            }
            None => out.append_null(),
        }
    }
    Ok(Arc::new(out.finish()))
}

/// The error of a function given arrays of types the planner never gives it.
fn arguments_error(func: Func, args: &[ArrayRef]) -> Error {
    let types: Vec<_> = args.iter().map(|a| a.data_type().to_string()).collect();
    Error::Internal(format!("{func:?} of {}", types.join(", ")))
}

/// `f` of each row's time (microseconds) and index, NULL where any of `args` is.
fn map_times(
    times: &TimestampMicrosecondArray,
    args: &[ArrayRef],
    f: impl Fn(i64, usize) -> Result<i64>,
) -> Result<TimestampMicrosecondArray> {
    let nulls = args.iter().fold(None, |nulls, a| {
        NullBuffer::union(nulls.as_ref(), a.logical_nulls().as_ref())
    });
    let mut values = Vec::with_capacity(times.len());
    for (r, us) in times.values().iter().enumerate() {
        let null = nulls.as_ref().is_some_and(|n| n.is_null(r));
        values.push(if null { 0 } else { f(*us, r)? });
    }
    Ok(TimestampMicrosecondArray::new(values.into(), nulls))
}

/// The functions of [`crate::string`], a row at a time.
fn eval_string(func: Func, args: &[ArrayRef], ty: DataType) -> Result<ArrayRef> {
    use crate::string;
    // These work a column at a time; the rest a row at a time.
    match func {
        Func::ToChar => return to_char_column(args),
        Func::SplitPart => return split_part_column(args),
        Func::RegexpMatch => return regexp_match_column(args, ty),
        _ => {}
    }
    let regexes = string::RegexCache::default();
    each_row(args, ty, |row| {
        let text = |i: usize| match row.get(i) {
            Some(Datum::Varchar(s)) => Ok(s.as_str()),
            other => Err(Error::Internal(format!("{func:?} argument {other:?}"))),
        };
        let int = |i: usize| match row.get(i) {
            Some(Datum::Int32(n)) => Ok(*n),
            other => Err(Error::Internal(format!("{func:?} argument {other:?}"))),
        };
        // An optional text argument `i`, `default` when not given.
        let text_or = |i: usize, default: &'static str| {
            if row.len() > i { text(i) } else { Ok(default) }
        };
        let varchar = |s: &str| Datum::Varchar(s.to_string());
        Ok(match func {
            Func::Strpos => Datum::Int32(string::strpos(text(0)?, text(1)?)),
            Func::Trim { leading, trailing } => {
                varchar(string::trim(text(0)?, text_or(1, " ")?, leading, trailing))
            }
            Func::Left | Func::Right => {
                Datum::Varchar(string::take_chars(text(0)?, int(1)?, func == Func::Right))
            }
            Func::Repeat => Datum::Varchar(string::repeat(text(0)?, int(1)?)?),
            Func::Reverse => Datum::Varchar(text(0)?.chars().rev().collect()),
            Func::Pad { left } => {
                Datum::Varchar(string::pad(text(0)?, int(1)?, text_or(2, " ")?, left)?)
            }
            Func::Initcap => Datum::Varchar(string::initcap(text(0)?)),
            Func::OctetLength => Datum::Int32(
                i32::try_from(text(0)?.len()).map_err(|_| Error::OutOfRange("integer".into()))?,
            ),
            Func::StartsWith => Datum::Bool(text(0)?.starts_with(text(1)?)),
            Func::Ascii => Datum::Int32(text(0)?.chars().next().map_or(0, |c| c as i32)),
            Func::Chr => Datum::Varchar(string::chr(int(0)?)?),
            Func::Translate => Datum::Varchar(string::translate(text(0)?, text(1)?, text(2)?)),
            Func::RegexpReplace => Datum::Varchar(regexes.regexp_replace(
                text(0)?,
                text(1)?,
                text(2)?,
                text_or(3, "")?,
            )?),
            Func::StringToArray => Datum::List(
                string::string_to_array(text(0)?, text(1)?)
                    .into_iter()
                    .map(Datum::Varchar)
                    .collect(),
            ),
            Func::Md5 => Datum::Varchar(format!("{:x}", md5::compute(text(0)?.as_bytes()))),
            Func::Replace => Datum::Varchar(string::replace(text(0)?, text(1)?, text(2)?)),
            other => {
                return Err(Error::Internal(format!(
                    "{other:?} is not a string function"
                )));
            }
        })
    })
}

/// A math function of double precision columns (`args` has its arity), NULL where an
/// argument is.
fn eval_math(math: MathFunc, args: &[ArrayRef], rows: usize) -> Result<ArrayRef> {
    let columns: Vec<&Float64Array> = args.iter().map(|a| a.as_primitive()).collect();
    let values = (0..rows)
        .map(|r| {
            if columns.iter().any(|c| c.is_null(r)) {
                return Ok(None);
            }
            let arg = |i: usize| columns.get(i).map_or(0.0, |c| c.value(r));
            let (x, y) = (arg(0), arg(1));
            let v = math.apply(x, y)?;
            let overflow = v.is_infinite() && x.is_finite() && y.is_finite();
            if overflow && matches!(math, MathFunc::Power | MathFunc::Exp) {
                return Err(Error::OutOfRange("value".into()));
            }
            Ok(Some(v))
        })
        .collect::<Result<Float64Array>>()?;
    Ok(Arc::new(values))
}

/// Applies `func` to argument arrays of length `rows`.
pub(crate) fn eval(func: Func, args: &[ArrayRef], ty: DataType, rows: usize) -> Result<ArrayRef> {
    if func == Func::Now {
        let now = chrono::Utc::now().timestamp_micros();
        return Ok(Datum::Timestamptz(now).to_array(DataType::Timestamptz, rows));
    }
    if matches!(
        func,
        Func::AddInterval
            | Func::AddDays
            | Func::DaysBetween
            | Func::TimestampDiff
            | Func::IntervalAdd
            | Func::IntervalMul
            | Func::Extract(_)
            | Func::DateTrunc(_)
            | Func::WindowStart
    ) {
        return eval_datetime(func, args, ty);
    }
    if matches!(
        func,
        Func::ArrayConstruct
            | Func::ArrayAccess
            | Func::ArrayCat
            | Func::ArrayAppend
            | Func::ArrayPrepend
            | Func::ArrayLength
            | Func::ArrayUpper
            | Func::ArrayLower
            | Func::Cardinality
            | Func::ArrayToString
            | Func::ArrayAny(_)
            | Func::ArrayAll(_)
            | Func::SeriesArray
    ) {
        return crate::array::eval(func, args, ty, rows);
    }
    if matches!(
        func,
        Func::ToChar
            | Func::SplitPart
            | Func::Replace
            | Func::RegexpMatch
            | Func::Strpos
            | Func::Trim { .. }
            | Func::Left
            | Func::Right
            | Func::Repeat
            | Func::Reverse
            | Func::Pad { .. }
            | Func::Initcap
            | Func::OctetLength
            | Func::StartsWith
            | Func::Ascii
            | Func::Chr
            | Func::Translate
            | Func::RegexpReplace
            | Func::StringToArray
            | Func::Md5
    ) {
        return eval_string(func, args, ty);
    }
    if func == Func::RowConstruct {
        let arrow::datatypes::DataType::Struct(fields) = ty.to_arrow() else {
            return Err(Error::Internal(format!("a row of type {ty}")));
        };
        return Ok(Arc::new(arrow::array::StructArray::try_new(
            fields,
            args.to_vec(),
            None,
        )?));
    }
    if let Func::FieldAccess { index } = func {
        // A NULL struct has NULL fields, whatever its children hold there.
        let parent = args[0].as_struct();
        let field = parent.column(index);
        let nulls = arrow::buffer::NullBuffer::union(parent.nulls(), field.nulls());
        let data = field.to_data().into_builder().nulls(nulls).build()?;
        return Ok(arrow::array::make_array(data));
    }
    if matches!(func, Func::JsonbAccess { .. } | Func::JsonbTypeof) {
        return crate::json::eval(func, args, ty);
    }
    if func == Func::SizePretty {
        return each_row(args, ty, |row| {
            let Datum::Int64(bytes) = row[0] else {
                return Err(Error::Internal("pg_size_pretty argument".into()));
            };
            Ok(Datum::Varchar(size_pretty(bytes)))
        });
    }
    if func == Func::QuoteIdent {
        return each_row(args, ty, |row| {
            let Datum::Varchar(s) = &row[0] else {
                return Err(Error::Internal("quote_ident argument".into()));
            };
            let plain = s
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            Ok(Datum::Varchar(if plain {
                s.clone()
            } else {
                format!("\"{}\"", s.replace('"', "\"\""))
            }))
        });
    }
    if func == Func::FormatType {
        return each_row(&args[..1], ty, |row| {
            let Datum::Int32(oid) = row[0] else {
                return Err(Error::Internal("format_type argument".into()));
            };
            Ok(Datum::Varchar(DataType::from_pg_oid(oid).map_or_else(
                || "???".to_string(),
                |t| {
                    if oid == 25 {
                        "text".to_string()
                    } else {
                        t.pg_name()
                    }
                },
            )))
        });
    }
    if func == Func::Substring {
        return each_row(args, ty, |row| {
            let (Datum::Varchar(s), Datum::Int32(start)) = (&row[0], &row[1]) else {
                return Err(Error::Internal("substring arguments".into()));
            };
            Ok(Datum::Varchar(substring(s, *start, row.get(2))?))
        });
    }
    if let Func::Math(math) = func {
        return eval_math(math, args, rows);
    }
    if matches!(func, Func::Greatest | Func::Least) {
        let greatest = func == Func::Greatest;
        let values: Vec<Datum> = (0..rows)
            .map(|r| {
                args.iter()
                    .map(|a| Datum::from_array(a.as_ref(), r))
                    .filter(|d| !d.is_null())
                    .reduce(|a, b| {
                        let order = cmp_datums(&a, &b);
                        if (greatest && order.is_ge()) || (!greatest && order.is_le()) {
                            a
                        } else {
                            b
                        }
                    })
                    .unwrap_or(Datum::Null)
            })
            .collect();
        return Ok(array_from_datums(ty, values.iter()));
    }
    if func == Func::ConcatWs {
        let strings: Vec<&StringArray> = args.iter().map(|a| a.as_string::<i32>()).collect();
        let (separator, parts) = strings
            .split_first()
            .ok_or_else(|| Error::Internal("concat_ws without a separator".into()))?;
        let out: StringArray = (0..rows)
            .map(|r| {
                let present = parts.iter().filter(|p| !p.is_null(r)).map(|p| p.value(r));
                (!separator.is_null(r))
                    .then(|| present.collect::<Vec<_>>().join(separator.value(r)))
            })
            .collect();
        return Ok(Arc::new(out));
    }
    if func == Func::ToTimestamp {
        return each_row(args, ty, |row| {
            let Datum::Float64(seconds) = row[0] else {
                return Err(Error::Internal("to_timestamp argument".into()));
            };
            let micros = (seconds * 1e6).round();
            if !micros.is_finite() || micros.abs() >= 9.2e18 {
                return Err(Error::OutOfRange("timestamp".into()));
            }
            Ok(Datum::Timestamptz(micros as i64))
        });
    }
    if func == Func::Random {
        let values: arrow::array::Float64Array =
            (0..rows).map(|_| Some(rand::random::<f64>())).collect();
        return Ok(Arc::new(values));
    }
    let arg = &args[0];
    Ok(match (func, ty) {
        (Func::Abs, DataType::Int16) => Arc::new(try_unary::<Int16Type, _, Int16Type>(
            arg.as_primitive(),
            |v| {
                v.checked_abs().ok_or_else(|| {
                    arrow::error::ArrowError::ArithmeticOverflow("smallint out of range".into())
                })
            },
        )?),
        (Func::Abs, DataType::Int32) => Arc::new(try_unary::<Int32Type, _, Int32Type>(
            arg.as_primitive(),
            |v| {
                v.checked_abs().ok_or_else(|| {
                    arrow::error::ArrowError::ArithmeticOverflow("integer out of range".into())
                })
            },
        )?),
        (Func::Abs, DataType::Int64) => Arc::new(try_unary::<Int64Type, _, Int64Type>(
            arg.as_primitive(),
            |v| {
                v.checked_abs().ok_or_else(|| {
                    arrow::error::ArrowError::ArithmeticOverflow("bigint out of range".into())
                })
            },
        )?),
        (Func::Abs, DataType::Float32) => Arc::new(unary::<Float32Type, _, Float32Type>(
            arg.as_primitive(),
            f32::abs,
        )),
        (Func::Abs, DataType::Float64) => Arc::new(unary::<Float64Type, _, Float64Type>(
            arg.as_primitive(),
            f64::abs,
        )),
        (Func::Round | Func::Trunc, DataType::Float64) => {
            let to_integer = if func == Func::Round {
                f64::round
            } else {
                f64::trunc
            };
            match args.get(1) {
                Some(digits) => Arc::new(binary::<Float64Type, Int32Type, _, Float64Type>(
                    arg.as_primitive(),
                    digits.as_primitive(),
                    |x, digits| {
                        let scale = 10f64.powi(digits);
                        to_integer(x * scale) / scale
                    },
                )?),
                None => Arc::new(unary::<Float64Type, _, Float64Type>(
                    arg.as_primitive(),
                    to_integer,
                )),
            }
        }
        (Func::Ceil, DataType::Float64) => Arc::new(unary::<Float64Type, _, Float64Type>(
            arg.as_primitive(),
            f64::ceil,
        )),
        (Func::Floor, DataType::Float64) => Arc::new(unary::<Float64Type, _, Float64Type>(
            arg.as_primitive(),
            f64::floor,
        )),
        (Func::Abs | Func::Round | Func::Trunc | Func::Ceil | Func::Floor, DataType::Decimal) => {
            let digits: Box<dyn Iterator<Item = Option<i32>>> = match args.get(1) {
                Some(d) => Box::new(d.as_primitive::<Int32Type>().iter()),
                None => Box::new(std::iter::repeat(Some(0))),
            };
            let values = decimals(arg)
                .zip(digits)
                .map(|(v, digits)| {
                    let (Some(v), Some(digits)) = (v, digits) else {
                        return Ok(None);
                    };
                    Ok(Some(match func {
                        Func::Abs => v.abs(),
                        Func::Round => v.round(digits)?,
                        Func::Trunc => v.trunc(digits)?,
                        Func::Ceil => v.ceil(),
                        _ => v.floor(),
                    }))
                })
                .collect::<Result<Vec<_>>>()?;
            decimal_array(values.into_iter())
        }
        (Func::Upper | Func::Lower, DataType::Varchar) => {
            let strings = arg.as_string::<i32>();
            let mut out = arrow::array::StringBuilder::with_capacity(
                strings.len(),
                strings.value_data().len(),
            );
            // ASCII text (most) changes case in one reused buffer, byte by byte.
            let mut buffer = String::new();
            for s in strings.iter() {
                match s {
                    None => out.append_null(),
                    Some(s) if s.is_ascii() => {
                        buffer.clear();
                        buffer.push_str(s);
                        if func == Func::Upper {
                            buffer.make_ascii_uppercase();
                        } else {
                            buffer.make_ascii_lowercase();
                        }
                        out.append_value(&buffer);
                    }
                    Some(s) if func == Func::Upper => out.append_value(s.to_uppercase()),
                    Some(s) => out.append_value(s.to_lowercase()),
                }
            }
            Arc::new(out.finish())
        }
        (Func::CharLength, DataType::Int32) => {
            let strings = arg.as_string::<i32>();
            let out: Int32Array = strings
                .iter()
                .map(|s| s.map(|s| s.chars().count() as i32))
                .collect();
            Arc::new(out)
        }
        (func, ty) => {
            return Err(Error::Internal(format!(
                "{func:?} is not defined for {ty} ({} arguments of {:?})",
                args.len(),
                arg.data_type()
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_abs_and_strings() {
        let x: ArrayRef = Arc::new(Float64Array::from(vec![Some(1.25), Some(-2.5), None]));
        let digits: ArrayRef = Arc::new(Int32Array::from(vec![1, 0, 1]));
        let r = eval(Func::Round, &[x, digits], DataType::Float64, 3).unwrap();
        let r = r.as_primitive::<Float64Type>();
        assert_eq!((r.value(0), r.value(1), r.is_null(2)), (1.3, -3.0, true));
        let big: ArrayRef = Arc::new(arrow::array::Int32Array::from(vec![i32::MIN]));
        assert!(matches!(
            eval(Func::Abs, &[big], DataType::Int32, 1),
            Err(Error::OutOfRange(_))
        ));
        let s: ArrayRef = Arc::new(StringArray::from(vec![Some("Grüße"), None]));
        let n = eval(
            Func::CharLength,
            std::slice::from_ref(&s),
            DataType::Int32,
            2,
        )
        .unwrap();
        assert_eq!(n.as_primitive::<Int32Type>().value(0), 5);
        let u = eval(Func::Upper, &[s], DataType::Varchar, 2).unwrap();
        assert_eq!(u.as_string::<i32>().value(0), "GRÜSSE");
        assert!(u.is_null(1));
        let s: ArrayRef = Arc::new(StringArray::from(vec![Some("Apple"), Some("ÉCOLE"), None]));
        let l = eval(Func::Lower, &[s], DataType::Varchar, 3).unwrap();
        let l: Vec<Option<&str>> = l.as_string::<i32>().iter().collect();
        assert_eq!(l, [Some("apple"), Some("école"), None]);
    }

    /// `regexp_match(...)[i]` a column at a time: groups of each row's first match, NULL
    /// without a match, for a NULL text, or past the groups.
    #[test]
    fn regexp_groups_of_a_column_are_each_rows() {
        let urls: ArrayRef = Arc::new(StringArray::from(vec![
            Some("https://x.com/?a=1&channel_id=9z&b"),
            Some("https://x.com/?channel_id=ab"),
            Some("https://x.com/"),
            None,
        ]));
        let pattern: ArrayRef = Arc::new(StringArray::from(vec!["(&|^)channel_id=([^&]*)"; 4]));
        let ty = DataType::list(DataType::Varchar);
        let groups = eval(Func::RegexpMatch, &[urls, pattern], ty, 4).unwrap();
        assert_eq!(groups.data_type(), &ty.to_arrow());
        let rows: Vec<Datum> = (0..4)
            .map(|r| Datum::from_array(groups.as_ref(), r))
            .collect();
        let text = |s: &str| Datum::Varchar(s.into());
        assert_eq!(
            rows,
            [
                Datum::List(vec![text("&"), text("9z")]),
                Datum::Null,
                Datum::Null,
                Datum::Null
            ]
        );
        let at = |i: i32| -> ArrayRef { Arc::new(Int32Array::from(vec![i; 4])) };
        let second = crate::array::eval(
            Func::ArrayAccess,
            &[Arc::clone(&groups), at(2)],
            DataType::Varchar,
            4,
        )
        .unwrap();
        let second: Vec<Option<&str>> = second.as_string::<i32>().iter().collect();
        assert_eq!(second, [Some("9z"), None, None, None]);
        for outside in [0, 3] {
            let none = crate::array::eval(
                Func::ArrayAccess,
                &[Arc::clone(&groups), at(outside)],
                DataType::Varchar,
                4,
            )
            .unwrap();
            assert_eq!(none.null_count(), 4);
        }
        // With flags: case-insensitive.
        let one = |s: &str| -> ArrayRef { Arc::new(StringArray::from(vec![s])) };
        let groups = eval(
            Func::RegexpMatch,
            &[one("FooBar"), one("o+b"), one("i")],
            ty,
            1,
        )
        .unwrap();
        assert_eq!(
            Datum::from_array(groups.as_ref(), 0),
            Datum::List(vec![text("ooB")])
        );
    }

    #[test]
    fn split_part_takes_each_rows_field() {
        let texts: ArrayRef = Arc::new(arrow::array::StringArray::from(vec![
            Some("https://x.com/a/b/c"),
            Some("a::b::c"),
            None,
            Some("a/b"),
        ]));
        let delimiters: ArrayRef = Arc::new(arrow::array::StringArray::from(vec![
            Some("/"),
            Some("::"),
            Some("/"),
            Some("/"),
        ]));
        let positions: ArrayRef =
            Arc::new(Int32Array::from(vec![Some(4), Some(-1), Some(1), None]));
        let fields = eval(
            Func::SplitPart,
            &[texts, delimiters, Arc::clone(&positions)],
            DataType::Varchar,
            4,
        )
        .unwrap();
        let fields: Vec<Option<&str>> = fields.as_string::<i32>().iter().collect();
        assert_eq!(fields, [Some("a"), Some("c"), None, None]);
        let zero: ArrayRef = Arc::new(Int32Array::from(vec![0]));
        let one = |s: &str| -> ArrayRef { Arc::new(arrow::array::StringArray::from(vec![s])) };
        assert!(
            eval(
                Func::SplitPart,
                &[one("a"), one("/"), zero],
                DataType::Varchar,
                1
            )
            .is_err()
        );
    }

    #[test]
    fn to_char_formats_a_column_as_each_row() {
        let day = 86_400_000_000_i64;
        let times = TimestampMicrosecondArray::from(vec![
            Some(19_753 * day + 3_600_000_000),
            Some(-1),
            None,
            Some(0),
            Some(19_753 * day),
        ]);
        let formats: ArrayRef = Arc::new(arrow::array::StringArray::from(vec![
            Some("yyyy-MM-dd HH24 TZ"),
            Some("yyyy-MM-dd HH24 TZ"),
            Some("yyyy"),
            None,
            Some("FMMonth \"at\" HH12 am"),
        ]));
        for (times, zone, ty) in [
            (times.clone(), "", DataType::Timestamp),
            (times.with_timezone("UTC"), "UTC", DataType::Timestamptz),
        ] {
            let expected: Vec<Option<String>> = (0..times.len())
                .map(|r| {
                    let format = formats.as_string::<i32>();
                    (times.is_valid(r) && format.is_valid(r))
                        .then(|| crate::string::to_char(times.value(r), format.value(r), zone))
                        .transpose()
                        .unwrap()
                })
                .collect();
            let times: ArrayRef = Arc::new(times);
            let column = eval(Func::ToChar, &[times, Arc::clone(&formats)], ty, 5).unwrap();
            let column: Vec<Option<String>> = column
                .as_string::<i32>()
                .iter()
                .map(|v| v.map(str::to_string))
                .collect();
            assert_eq!(column, expected);
        }
        assert_eq!(
            crate::string::to_char(19_753 * day + 3_600_000_000, "yyyy-MM-dd HH24 TZ", "UTC")
                .unwrap(),
            "2024-01-31 01 UTC"
        );
        assert_eq!(
            crate::string::to_char(-1, "yyyy-MM-dd HH24 TZ", "").unwrap(),
            "1969-12-31 23 "
        );
    }

    #[test]
    fn timestamps_move_by_intervals_and_to_window_starts() {
        use arrow::datatypes::IntervalMonthDayNano;
        let day = 86_400_000_000_i64;
        // 2024-01-31 00:00, 1969-12-31 23:59:59.999999 (before the epoch), NULL; as timestamptz.
        let times: ArrayRef = Arc::new(
            TimestampMicrosecondArray::from(vec![Some(19_753 * day), Some(-1), None])
                .with_timezone("UTC"),
        );
        let month_and_a_bit = IntervalMonthDayNano::new(1, 1, 1_500);
        let intervals: ArrayRef = Arc::new(arrow::array::IntervalMonthDayNanoArray::from(vec![
            month_and_a_bit;
            3
        ]));
        let moved = eval(
            Func::AddInterval,
            &[Arc::clone(&times), intervals],
            DataType::Timestamptz,
            3,
        )
        .unwrap();
        assert_eq!(moved.data_type(), times.data_type());
        let moved = moved.as_primitive::<TimestampMicrosecondType>();
        // January 31st plus a month is February 29th (2024), plus a day: March 1st; the
        // nanoseconds past a microsecond are dropped.
        assert_eq!(moved.value(0), (19_753 + 29 + 1) * day + 1);
        // December 31st 1969 23:59:59.999999 plus a month and a day, then 1.5 µs: February
        // 2nd 1970, midnight.
        assert_eq!(moved.value(1), 32 * day);
        assert!(moved.is_null(2));
        // Windows of 10 s from an offset of 3 s: the start is at or below the time.
        let second = 1_000_000_i64;
        let sizes: ArrayRef = Arc::new(arrow::array::Int64Array::from(vec![10 * second; 3]));
        let offsets: ArrayRef = Arc::new(arrow::array::Int64Array::from(vec![3 * second; 3]));
        let starts = eval(
            Func::WindowStart,
            &[times, sizes, offsets],
            DataType::Timestamptz,
            3,
        )
        .unwrap();
        let starts = starts.as_primitive::<TimestampMicrosecondType>();
        assert_eq!(starts.value(0), 19_753 * day - 7 * second);
        assert_eq!(starts.value(1), -7 * second);
        assert!(starts.is_null(2));
    }
}

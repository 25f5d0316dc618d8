//! Scalar functions (`abs`, `round`, `upper`, ...), evaluated a column at a time.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int32Array, StringArray};
use arrow::compute::kernels::arity::{binary, try_unary, unary};
use arrow::datatypes::{Float32Type, Float64Type, Int16Type, Int32Type, Int64Type};
use serde::{Deserialize, Serialize};

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
    /// `to_char(t, format)` of a timestamp or timestamptz (see [`crate::string::to_char`]).
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
    each_row(args, ty, |row| {
        Ok(match (func, &row[0], row.get(1)) {
            (Func::AddInterval, t, Some(i)) => {
                let (m, d, n) = interval_parts(i);
                match t {
                    Datum::Date(days) => Datum::Timestamp(datetime::add_interval(
                        i64::from(*days) * 86_400_000_000,
                        m,
                        d,
                        n,
                    )?),
                    Datum::Timestamp(us) => Datum::Timestamp(datetime::add_interval(*us, m, d, n)?),
                    Datum::Timestamptz(us) => {
                        Datum::Timestamptz(datetime::add_interval(*us, m, d, n)?)
                    }
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
            (Func::WindowStart, t, Some(Datum::Int64(size))) if *size > 0 => {
                let offset = match row.get(2) {
                    Some(Datum::Int64(o)) => *o,
                    _ => 0,
                };
                let start = |us: i64| (us - offset).div_euclid(*size) * size + offset;
                match t {
                    Datum::Timestamp(us) => Datum::Timestamp(start(*us)),
                    Datum::Timestamptz(us) => Datum::Timestamptz(start(*us)),
                    other => return Err(Error::Internal(format!("window of {other:?}"))),
                }
            }
            (func, a, b) => {
                return Err(Error::Internal(format!("{func:?} of {a:?}, {b:?}")));
            }
        })
    })
}

/// The functions of [`crate::string`], a row at a time.
fn eval_string(func: Func, args: &[ArrayRef], ty: DataType) -> Result<ArrayRef> {
    use crate::string;
    let regexes = string::RegexCache::default();
    each_row(args, ty, |row| {
        let text = |i: usize| match row.get(i) {
            Some(Datum::Varchar(s)) => Ok(s.as_str()),
            other => Err(Error::Internal(format!("{func:?} argument {other:?}"))),
        };
        Ok(match func {
            Func::ToChar => match &row[0] {
                Datum::Timestamp(us) => Datum::Varchar(string::to_char(*us, text(1)?, "")?),
                Datum::Timestamptz(us) => Datum::Varchar(string::to_char(*us, text(1)?, "UTC")?),
                other => return Err(Error::Internal(format!("to_char of {other:?}"))),
            },
            Func::SplitPart => {
                let Datum::Int32(n) = row[2] else {
                    return Err(Error::Internal("split_part position".into()));
                };
                Datum::Varchar(string::split_part(text(0)?, text(1)?, n)?)
            }
            Func::Replace => Datum::Varchar(string::replace(text(0)?, text(1)?, text(2)?)),
            Func::RegexpMatch => {
                let flags = if row.len() > 2 { text(2)? } else { "" };
                match regexes.regexp_match(text(0)?, text(1)?, flags)? {
                    Some(groups) => Datum::List(
                        groups
                            .into_iter()
                            .map(|g| g.map_or(Datum::Null, Datum::Varchar))
                            .collect(),
                    ),
                    None => Datum::Null,
                }
            }
            other => {
                return Err(Error::Internal(format!(
                    "{other:?} is not a string function"
                )));
            }
        })
    })
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
        Func::ToChar | Func::SplitPart | Func::Replace | Func::RegexpMatch
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
        (Func::Round, DataType::Float64) if args.len() == 2 => {
            Arc::new(binary::<Float64Type, Int32Type, _, Float64Type>(
                arg.as_primitive(),
                args[1].as_primitive(),
                |x, digits| {
                    let scale = 10f64.powi(digits);
                    (x * scale).round() / scale
                },
            )?)
        }
        (Func::Round, DataType::Float64) => Arc::new(unary::<Float64Type, _, Float64Type>(
            arg.as_primitive(),
            f64::round,
        )),
        (Func::Ceil, DataType::Float64) => Arc::new(unary::<Float64Type, _, Float64Type>(
            arg.as_primitive(),
            f64::ceil,
        )),
        (Func::Floor, DataType::Float64) => Arc::new(unary::<Float64Type, _, Float64Type>(
            arg.as_primitive(),
            f64::floor,
        )),
        (Func::Abs | Func::Round | Func::Ceil | Func::Floor, DataType::Decimal) => {
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
                        Func::Ceil => v.ceil(),
                        _ => v.floor(),
                    }))
                })
                .collect::<Result<Vec<_>>>()?;
            decimal_array(values.into_iter())
        }
        (Func::Upper | Func::Lower, DataType::Varchar) => {
            let strings = arg.as_string::<i32>();
            let out: StringArray = strings
                .iter()
                .map(|s| {
                    s.map(|s| {
                        if func == Func::Upper {
                            s.to_uppercase()
                        } else {
                            s.to_lowercase()
                        }
                    })
                })
                .collect();
            Arc::new(out)
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
    use arrow::array::Float64Array;

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
    }
}

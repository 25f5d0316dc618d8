//! Array functions and operators, a row at a time: arrays are rare in hot paths, and their
//! elements vary in number per row. The exceptions work a column at a time: `ARRAY[...]` of
//! columns, which a hopping window builds for every row (the starts of its windows), and
//! `list[i]`, which takes from a list column's values (`regexp_match(...)[i]`).

use std::cmp::Ordering;
use std::sync::Arc;

use arrow::array::ArrayRef;
use epoch_mvcc::memcomparable::{self, OrderType};

use crate::expr::BinaryOp;
use crate::func::Func;
use crate::types::{DataType, Datum, array_from_datums};
use crate::{Error, Result};

/// The most values one row's `generate_series` may produce.
const MAX_SERIES: i128 = 10_000_000;

/// SQL's order of two non-NULL values of one type (that of their key bytes).
fn compare(a: &Datum, b: &Datum) -> Ordering {
    let key = |d: &Datum| memcomparable::encode_row(&[d.to_key()], &[OrderType::ASC]);
    key(a).cmp(&key(b))
}

/// `x op y` of two values of one type (NULL if either is).
fn holds(op: BinaryOp, x: &Datum, y: &Datum) -> Option<bool> {
    if x.is_null() || y.is_null() {
        return None;
    }
    let o = compare(x, y);
    Some(match op {
        BinaryOp::Eq => o == Ordering::Equal,
        BinaryOp::NotEq => o != Ordering::Equal,
        BinaryOp::Lt => o == Ordering::Less,
        BinaryOp::LtEq => o != Ordering::Greater,
        BinaryOp::Gt => o == Ordering::Greater,
        BinaryOp::GtEq => o != Ordering::Less,
        _ => return None,
    })
}

fn items(d: &Datum) -> Option<&[Datum]> {
    match d {
        Datum::List(items) => Some(items),
        _ => None,
    }
}

/// Elements of every dimension (nested arrays flattened).
fn cardinality(items: &[Datum]) -> usize {
    items
        .iter()
        .map(|d| match d {
            Datum::List(inner) => cardinality(inner),
            _ => 1,
        })
        .sum()
}

/// The length of dimension `dim` (1 is the outer one) of a non-empty array.
fn dimension_length(items: &[Datum], dim: i32) -> Option<i32> {
    if items.is_empty() {
        return None;
    }
    match dim {
        1 => Some(items.len() as i32),
        d if d > 1 => match items.first()? {
            Datum::List(inner) => dimension_length(inner, d - 1),
            _ => None,
        },
        _ => None,
    }
}

/// The text of each element (of every dimension), in order; NULL elements are skipped, or
/// written as `null_text` when given.
fn element_texts(items: &[Datum], null_text: Option<&str>, out: &mut Vec<String>) {
    for d in items {
        match d {
            Datum::List(inner) => element_texts(inner, null_text, out),
            Datum::Null => out.extend(null_text.map(str::to_string)),
            other => out.extend(other.to_text()),
        }
    }
}

/// Evaluates array function `func` over `args` (rows in step), giving values of type `ty`.
pub(crate) fn eval(func: Func, args: &[ArrayRef], ty: DataType, rows: usize) -> Result<ArrayRef> {
    if func == Func::ArrayConstruct
        && let Some(list) = construct_columns(args, ty, rows)?
    {
        return Ok(list);
    }
    if func == Func::ArrayAccess
        && let Some(elements) = access_columns(args)?
    {
        return Ok(elements);
    }
    let mut out = Vec::with_capacity(rows);
    let mut row = Vec::with_capacity(args.len());
    for r in 0..rows {
        row.clear();
        row.extend(args.iter().map(|a| Datum::from_array(a.as_ref(), r)));
        out.push(eval_row(func, &row)?);
    }
    Ok(array_from_datums(ty, out.iter()))
}

/// `ARRAY[a, b, ...]` of columns of the element type, a column at a time: every row's list
/// holds one element of each column, so the values are the columns interleaved. `None`
/// where the columns' type is not the element's.
fn construct_columns(args: &[ArrayRef], ty: DataType, rows: usize) -> Result<Option<ArrayRef>> {
    let arrow::datatypes::DataType::List(field) = ty.to_arrow() else {
        return Ok(None);
    };
    if args.is_empty() || args.iter().any(|a| a.data_type() != field.data_type()) {
        return Ok(None);
    }
    let columns: Vec<&dyn arrow::array::Array> = args.iter().map(AsRef::as_ref).collect();
    let at: Vec<(usize, usize)> = (0..rows)
        .flat_map(|r| (0..args.len()).map(move |c| (c, r)))
        .collect();
    let values = arrow::compute::interleave(&columns, &at)?;
    let offsets = arrow::buffer::OffsetBuffer::from_lengths(std::iter::repeat_n(args.len(), rows));
    Ok(Some(Arc::new(arrow::array::ListArray::try_new(
        field, offsets, values, None,
    )?)))
}

/// `list[i]` of a list column, a column at a time: the elements are taken from the lists'
/// values (NULL where the list or index is, or the index is outside the list). `None` for
/// arguments of other types.
fn access_columns(args: &[ArrayRef]) -> Result<Option<ArrayRef>> {
    use arrow::array::{Array, AsArray};
    let (Some(lists), Some(at)) = (
        args[0].as_list_opt::<i32>(),
        args.get(1)
            .and_then(|a| a.as_primitive_opt::<arrow::datatypes::Int32Type>()),
    ) else {
        return Ok(None);
    };
    let offsets = lists.value_offsets();
    let elements: arrow::array::UInt32Array = (0..lists.len())
        .map(|r| {
            if lists.is_null(r) || at.is_null(r) {
                return None;
            }
            let (i, start, len) = (at.value(r), offsets[r], offsets[r + 1] - offsets[r]);
            (i >= 1 && i <= len).then(|| (start + i - 1) as u32)
        })
        .collect();
    Ok(Some(arrow::compute::take(
        lists.values().as_ref(),
        &elements,
        None,
    )?))
}

fn eval_row(func: Func, row: &[Datum]) -> Result<Datum> {
    let int = |d: &Datum| match d {
        Datum::Int32(v) => Some(*v),
        _ => None,
    };
    Ok(match func {
        Func::ArrayConstruct => Datum::List(row.to_vec()),
        Func::ArrayAccess => match (items(&row[0]), int(&row[1])) {
            (Some(items), Some(i)) if i >= 1 => {
                items.get(i as usize - 1).cloned().unwrap_or(Datum::Null)
            }
            _ => Datum::Null,
        },
        Func::ArrayCat => match (&row[0], &row[1]) {
            (Datum::Null, b) => b.clone(),
            (a, Datum::Null) => a.clone(),
            (Datum::List(a), Datum::List(b)) => Datum::List(a.iter().chain(b).cloned().collect()),
            _ => return Err(Error::Internal("array_cat arguments".into())),
        },
        Func::ArrayAppend => match &row[0] {
            Datum::List(a) => Datum::List(a.iter().chain([&row[1]]).cloned().collect()),
            _ => Datum::List(vec![row[1].clone()]),
        },
        Func::ArrayPrepend => match &row[1] {
            Datum::List(a) => Datum::List([&row[0]].into_iter().chain(a).cloned().collect()),
            _ => Datum::List(vec![row[0].clone()]),
        },
        Func::ArrayLength | Func::ArrayUpper => match (items(&row[0]), int(&row[1])) {
            (Some(items), Some(dim)) => {
                dimension_length(items, dim).map_or(Datum::Null, Datum::Int32)
            }
            _ => Datum::Null,
        },
        Func::ArrayLower => match (items(&row[0]), int(&row[1])) {
            (Some(items), Some(dim)) => {
                dimension_length(items, dim).map_or(Datum::Null, |_| Datum::Int32(1))
            }
            _ => Datum::Null,
        },
        Func::Cardinality => {
            items(&row[0]).map_or(Datum::Null, |i| Datum::Int32(cardinality(i) as i32))
        }
        Func::ArrayToString => match (items(&row[0]), &row[1]) {
            (Some(items), Datum::Varchar(sep)) => {
                let null_text = match row.get(2) {
                    Some(Datum::Varchar(s)) => Some(s.as_str()),
                    _ => None,
                };
                let mut parts = Vec::new();
                element_texts(items, null_text, &mut parts);
                Datum::Varchar(parts.join(sep))
            }
            _ => Datum::Null,
        },
        // `x op ANY (a)`: true if it holds for some element; else NULL if it was unknown for
        // some (a NULL), else false. `ALL` is the dual.
        Func::ArrayAny(op) | Func::ArrayAll(op) => {
            let Some(items) = items(&row[1]) else {
                return Ok(Datum::Null);
            };
            let any = matches!(func, Func::ArrayAny(_));
            let mut unknown = false;
            for item in items {
                match holds(op, &row[0], item) {
                    Some(v) if v == any => return Ok(Datum::Bool(any)),
                    Some(_) => {}
                    None => unknown = true,
                }
            }
            if unknown {
                Datum::Null
            } else {
                Datum::Bool(!any)
            }
        }
        Func::SeriesArray => {
            let int = |d: &Datum| match d {
                Datum::Int32(v) => Some(i64::from(*v)),
                Datum::Int64(v) => Some(*v),
                _ => None,
            };
            let (Some(start), Some(stop)) = (int(&row[0]), int(&row[1])) else {
                return Ok(Datum::Null);
            };
            let step = match row.get(2) {
                None => 1,
                Some(d) => match int(d) {
                    Some(0) => {
                        return Err(Error::InvalidInput("step size cannot equal zero".into()));
                    }
                    Some(s) => s,
                    None => return Ok(Datum::Null),
                },
            };
            let count = ((i128::from(stop) - i128::from(start)) / i128::from(step) + 1).max(0);
            if count > MAX_SERIES {
                return Err(Error::OutOfRange(format!(
                    "a series of more than {MAX_SERIES} values"
                )));
            }
            let small = matches!(row[0], Datum::Int32(_)) && matches!(row[1], Datum::Int32(_));
            Datum::List(
                (0..count as i64)
                    .map(|i| {
                        let v = start + i * step;
                        if small {
                            Datum::Int32(v as i32)
                        } else {
                            Datum::Int64(v)
                        }
                    })
                    .collect(),
            )
        }
        other => {
            return Err(Error::Internal(format!(
                "{other:?} is not an array function"
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(v: &[Option<i32>]) -> Datum {
        Datum::List(
            v.iter()
                .map(|x| x.map_or(Datum::Null, Datum::Int32))
                .collect(),
        )
    }

    /// `ARRAY[...]` of columns is each row's list of their values, NULL elements kept.
    #[test]
    fn arrays_of_columns_are_each_rows_values() {
        let a: ArrayRef = Arc::new(arrow::array::Int64Array::from(vec![Some(1), None, Some(3)]));
        let b: ArrayRef = Arc::new(arrow::array::Int64Array::from(vec![Some(4), Some(5), None]));
        let ty = DataType::list(DataType::Int64);
        let lists = eval(Func::ArrayConstruct, &[a, b], ty, 3).unwrap();
        assert_eq!(lists.data_type(), &ty.to_arrow());
        let rows: Vec<Datum> = (0..3)
            .map(|r| Datum::from_array(lists.as_ref(), r))
            .collect();
        let int = |v: Option<i64>| v.map_or(Datum::Null, Datum::Int64);
        assert_eq!(
            rows,
            [
                Datum::List(vec![int(Some(1)), int(Some(4))]),
                Datum::List(vec![int(None), int(Some(5))]),
                Datum::List(vec![int(Some(3)), int(None)]),
            ]
        );
    }

    #[test]
    fn any_all_and_dimensions_follow_postgres() {
        let a = list(&[Some(1), None, Some(3)]);
        let any = |x: i32, a: &Datum| {
            eval_row(Func::ArrayAny(BinaryOp::Eq), &[Datum::Int32(x), a.clone()]).unwrap()
        };
        assert_eq!(any(3, &a), Datum::Bool(true));
        assert_eq!(any(2, &a), Datum::Null);
        assert_eq!(any(2, &list(&[Some(1)])), Datum::Bool(false));
        assert_eq!(any(2, &list(&[])), Datum::Bool(false));
        let all = eval_row(
            Func::ArrayAll(BinaryOp::Lt),
            &[Datum::Int32(0), list(&[Some(1), Some(2)])],
        )
        .unwrap();
        assert_eq!(all, Datum::Bool(true));
        let upper = |a: &Datum| eval_row(Func::ArrayUpper, &[a.clone(), Datum::Int32(1)]).unwrap();
        assert_eq!(upper(&a), Datum::Int32(3));
        assert_eq!(upper(&list(&[])), Datum::Null);
        let joined = eval_row(
            Func::ArrayToString,
            &[
                a.clone(),
                Datum::Varchar(",".into()),
                Datum::Varchar("*".into()),
            ],
        )
        .unwrap();
        assert_eq!(joined, Datum::Varchar("1,*,3".into()));
        let at = |i: i32| eval_row(Func::ArrayAccess, &[a.clone(), Datum::Int32(i)]).unwrap();
        assert_eq!(
            (at(1), at(2), at(0), at(9)),
            (Datum::Int32(1), Datum::Null, Datum::Null, Datum::Null)
        );
    }
}

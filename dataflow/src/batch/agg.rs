//! Hash aggregation.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

use arrow::array::{ArrayRef, RecordBatch};
use epoch_mvcc::memcomparable::{KeyDatum, OrderType};

use super::plan::{AggCall, AggKind};
use crate::chunk::{batch_of, schema_of};
use crate::row_codec::{encode_key_column, encode_keys};
use crate::types::{DataType, Datum, Decimal, array_from_datums};
use crate::{Error, Result};

/// The running state of one aggregate for one group.
#[derive(Clone, Debug)]
enum Acc {
    Count(i64),
    /// The running sum (NULL before the first value), in the accumulator type.
    Sum(Datum),
    Avg {
        sum: Datum,
        count: i64,
    },
    Extreme(Datum),
    First(Option<Datum>),
    /// Every value so far (`None` before the first row).
    List(Option<Vec<Datum>>),
    /// The value of the one row so far.
    Single(Option<Datum>),
    /// The values of an aggregate with `ORDER BY`, each with its encoded sort key: they are
    /// aggregated in key order (input order among equal keys) when the result is asked for.
    Ordered(Vec<(Vec<u8>, Datum)>),
}

/// One aggregate's running state outside a hash aggregation (a window frame's).
pub(crate) struct Accumulator {
    acc: Acc,
    kind: AggKind,
    ret: DataType,
}

impl Accumulator {
    /// An empty `kind` aggregate returning `ret`.
    pub(crate) fn new(kind: AggKind, ret: DataType) -> Self {
        Accumulator {
            acc: new_acc(kind, false),
            kind,
            ret,
        }
    }

    /// Adds one input value (count(*) takes any).
    pub(crate) fn update(&mut self, value: &Datum) -> Result<()> {
        self.acc.update(self.kind, self.ret, value)
    }

    /// The aggregate of the values so far.
    pub(crate) fn finish(&self) -> Result<Datum> {
        self.acc.finish(self.kind, self.ret)
    }
}

/// The empty state of a `kind` aggregate; `ordered` when its values are sorted first.
fn new_acc(kind: AggKind, ordered: bool) -> Acc {
    if ordered {
        return Acc::Ordered(Vec::new());
    }
    match kind {
        AggKind::CountStar | AggKind::Count => Acc::Count(0),
        AggKind::Sum => Acc::Sum(Datum::Null),
        AggKind::Avg => Acc::Avg {
            sum: Datum::Null,
            count: 0,
        },
        AggKind::Min | AggKind::Max => Acc::Extreme(Datum::Null),
        AggKind::FirstValue => Acc::First(None),
        AggKind::ArrayAgg => Acc::List(None),
        AggKind::SingleValue => Acc::Single(None),
    }
}

/// Orders two non-NULL values of the same type (floats: NaN greatest, as PostgreSQL).
pub(crate) fn cmp_datums(a: &Datum, b: &Datum) -> Ordering {
    use Datum::*;
    match (a, b) {
        (Bool(x), Bool(y)) => x.cmp(y),
        (Int16(x), Int16(y)) => x.cmp(y),
        (Int32(x), Int32(y)) | (Date(x), Date(y)) => x.cmp(y),
        (Int64(x), Int64(y))
        | (Time(x), Time(y))
        | (Timestamp(x), Timestamp(y))
        | (Timestamptz(x), Timestamptz(y)) => x.cmp(y),
        (Float32(x), Float32(y)) => x.total_cmp(y),
        (Float64(x), Float64(y)) => x.total_cmp(y),
        (Varchar(x), Varchar(y)) | (Jsonb(x), Jsonb(y)) => x.cmp(y),
        (Bytea(x), Bytea(y)) => x.cmp(y),
        // Element by element (field by field), as their key bytes order them.
        (List(_), List(_)) | (Struct(_), Struct(_)) => match (a.to_key(), b.to_key()) {
            (KeyDatum::Bytes(x), KeyDatum::Bytes(y)) => x.cmp(&y),
            _ => Ordering::Equal,
        },
        (Decimal(x), Decimal(y)) => x.cmp(y),
        // PostgreSQL compares intervals by length, a month counting 30 days.
        (
            Interval {
                months: m1,
                days: d1,
                nanos: n1,
            },
            Interval {
                months: m2,
                days: d2,
                nanos: n2,
            },
        ) => {
            let len = |m: i32, d: i32, n: i64| {
                (i128::from(m) * 30 + i128::from(d)) * 86_400_000_000_000 + i128::from(n)
            };
            len(*m1, *d1, *n1).cmp(&len(*m2, *d2, *n2))
        }
        _ => Ordering::Equal,
    }
}

/// The type in which sums and averages returning `ret` accumulate: doubles for floating point,
/// else the result type itself (bigint, numeric, interval).
pub(crate) fn accumulator_type(ret: DataType) -> DataType {
    match ret {
        DataType::Float32 => DataType::Float64,
        other => other,
    }
}

/// `acc + value` (or `acc - value` when `negate`), where `acc` is NULL before the first value
/// and has the accumulator type `ty`.
pub(crate) fn accumulate(acc: &Datum, value: &Datum, negate: bool, ty: DataType) -> Result<Datum> {
    Ok(match ty {
        DataType::Float64 => {
            let v = as_f64(value);
            Datum::Float64(as_f64(acc) + if negate { -v } else { v })
        }
        DataType::Decimal => {
            let zero = Datum::Decimal(Decimal::ZERO);
            let (a, v) = (
                as_decimal(if acc.is_null() { &zero } else { acc }),
                as_decimal(value),
            );
            Datum::Decimal(if negate {
                a.checked_sub(v)?
            } else {
                a.checked_add(v)?
            })
        }
        DataType::Interval => crate::datetime::interval_add(
            crate::func::interval_parts(acc),
            crate::func::interval_parts(value),
            negate,
        )?,
        _ => {
            let v = as_i64(value);
            Datum::Int64(
                as_i64(acc)
                    .checked_add(if negate { -v } else { v })
                    .ok_or_else(|| Error::OutOfRange("bigint".into()))?,
            )
        }
    })
}

/// The result of a sum kept in the accumulator type, as type `ret`.
pub(crate) fn sum_result(sum: &Datum, ret: DataType) -> Datum {
    match (sum, ret) {
        (Datum::Float64(v), DataType::Float32) => Datum::Float32(*v as f32),
        (other, _) => other.clone(),
    }
}

/// `sum / count` as type `ret` (NULL for no values).
pub(crate) fn avg_result(sum: &Datum, count: i64, ret: DataType) -> Result<Datum> {
    if count == 0 {
        return Ok(Datum::Null);
    }
    Ok(match ret {
        DataType::Decimal => Datum::Decimal(as_decimal(sum).checked_div(Decimal::from(count))?),
        _ => Datum::Float64(as_f64(sum) / count as f64),
    })
}

pub(crate) fn as_decimal(d: &Datum) -> Decimal {
    match d {
        Datum::Decimal(v) => *v,
        other => Decimal::from(as_i64(other)),
    }
}

pub(crate) fn as_f64(d: &Datum) -> f64 {
    match d {
        Datum::Int16(v) => f64::from(*v),
        Datum::Int32(v) => f64::from(*v),
        Datum::Int64(v) => *v as f64,
        Datum::Float32(v) => f64::from(*v),
        Datum::Float64(v) => *v,
        _ => 0.0,
    }
}

pub(crate) fn as_i64(d: &Datum) -> i64 {
    match d {
        Datum::Int16(v) => i64::from(*v),
        Datum::Int32(v) => i64::from(*v),
        Datum::Int64(v) => *v,
        _ => 0,
    }
}

impl Acc {
    fn update(&mut self, kind: AggKind, ret: DataType, value: &Datum) -> Result<()> {
        match self {
            // The first row's value, NULL or not; count(*) counts NULLs too.
            Acc::First(first) => {
                first.get_or_insert_with(|| value.clone());
            }
            Acc::List(values) => values.get_or_insert_with(Vec::new).push(value.clone()),
            Acc::Ordered(_) => {
                return Err(Error::Internal(
                    "an ordered aggregate takes values with their sort keys".into(),
                ));
            }
            Acc::Single(one) => {
                if one.replace(value.clone()).is_some() {
                    return Err(Error::CardinalityViolation(
                        "Scalar subquery produced more than one row".into(),
                    ));
                }
            }
            Acc::Count(n) if kind == AggKind::CountStar => *n += 1,
            // Every other aggregate ignores NULLs.
            _ if value.is_null() => {}
            Acc::Count(n) => *n += 1,
            Acc::Sum(s) => *s = accumulate(s, value, false, accumulator_type(ret))?,
            Acc::Avg { sum, count } => {
                *sum = accumulate(sum, value, false, accumulator_type(ret))?;
                *count += 1;
            }
            Acc::Extreme(cur) => {
                let better = cur.is_null() || {
                    let ord = cmp_datums(value, cur);
                    if kind == AggKind::Min {
                        ord == Ordering::Less
                    } else {
                        ord == Ordering::Greater
                    }
                };
                if better {
                    *cur = value.clone();
                }
            }
        }
        Ok(())
    }

    fn finish(&self, kind: AggKind, ret: DataType) -> Result<Datum> {
        Ok(match self {
            Acc::Ordered(values) => {
                let mut sorted: Vec<&(Vec<u8>, Datum)> = values.iter().collect();
                sorted.sort_by(|a, b| a.0.cmp(&b.0));
                let mut acc = new_acc(kind, false);
                for (_, value) in sorted {
                    acc.update(kind, ret, value)?;
                }
                acc.finish(kind, ret)?
            }
            Acc::Count(n) => Datum::Int64(*n),
            Acc::Sum(s) => sum_result(s, ret),
            Acc::Avg { sum, count } => avg_result(sum, *count, ret)?,
            Acc::Extreme(d) => d.clone(),
            Acc::First(d) => d.clone().unwrap_or(Datum::Null),
            Acc::List(values) => values.clone().map_or(Datum::Null, Datum::List),
            Acc::Single(one) => one.clone().unwrap_or(Datum::Null),
        })
    }
}

fn new_accs(aggs: &[AggCall]) -> Vec<Acc> {
    aggs.iter()
        .map(|a| new_acc(a.kind, !a.order_by.is_empty()))
        .collect()
}

/// Groups every input row and computes the aggregates.
pub(crate) fn hash_agg(
    batches: &[RecordBatch],
    input_types: &[DataType],
    group_keys: &[usize],
    aggs: &[AggCall],
) -> Result<RecordBatch> {
    let mut groups: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut key_rows: Vec<Vec<Datum>> = Vec::new();
    let mut accs: Vec<Vec<Acc>> = Vec::new();
    let mut seen: Vec<Vec<HashSet<Vec<u8>>>> = Vec::new();
    if group_keys.is_empty() {
        groups.insert(Vec::new(), 0);
        key_rows.push(Vec::new());
        accs.push(new_accs(aggs));
        seen.push(vec![HashSet::new(); aggs.len()]);
    }
    for batch in batches {
        let keys = encode_keys(batch, group_keys, &vec![OrderType::ASC; group_keys.len()]);
        // Distinct aggregates compare encoded values.
        let distinct_values: Vec<Option<Vec<Vec<u8>>>> = aggs
            .iter()
            .map(|a| {
                a.distinct.then(|| {
                    let mut v = vec![Vec::new(); batch.num_rows()];
                    encode_key_column(
                        batch.column(a.arg.expect("distinct has an argument")),
                        OrderType::ASC,
                        &mut v,
                    );
                    v
                })
            })
            .collect();
        // The sort keys of ordered aggregates' values.
        let mut sort_keys: Vec<Option<Vec<Vec<u8>>>> = aggs
            .iter()
            .map(|a| {
                (!a.order_by.is_empty()).then(|| {
                    let columns: Vec<usize> = a.order_by.iter().map(|k| k.column).collect();
                    let orders: Vec<OrderType> = a.order_by.iter().map(|k| k.order).collect();
                    encode_keys(batch, &columns, &orders)
                })
            })
            .collect();
        // Accumulating is a per-row loop: each row updates the state of its own group.
        for (row, key) in keys.into_iter().enumerate() {
            let next = key_rows.len();
            let g = *groups.entry(key).or_insert_with(|| {
                key_rows.push(
                    group_keys
                        .iter()
                        .map(|k| Datum::from_array(batch.column(*k).as_ref(), row).into_group_key())
                        .collect(),
                );
                accs.push(new_accs(aggs));
                seen.push(vec![HashSet::new(); aggs.len()]);
                next
            });
            for (a, call) in aggs.iter().enumerate() {
                if let Some(f) = call.filter
                    && Datum::from_array(batch.column(f).as_ref(), row) != Datum::Bool(true)
                {
                    continue;
                }
                let value = call.arg.map_or(Datum::Null, |c| {
                    Datum::from_array(batch.column(c).as_ref(), row)
                });
                if let Some(values) = &distinct_values[a]
                    && (value.is_null() || !seen[g][a].insert(values[row].clone()))
                {
                    continue;
                }
                match (&mut accs[g][a], &mut sort_keys[a]) {
                    (Acc::Ordered(values), Some(keys)) => {
                        values.push((std::mem::take(&mut keys[row]), value));
                    }
                    (acc, _) => acc.update(call.kind, call.ret, &value)?,
                }
            }
        }
    }
    let mut columns: Vec<ArrayRef> = group_keys
        .iter()
        .enumerate()
        .map(|(i, k)| array_from_datums(input_types[*k], key_rows.iter().map(|r| &r[i])))
        .collect();
    for (a, call) in aggs.iter().enumerate() {
        let values = accs
            .iter()
            .map(|g| g[a].finish(call.kind, call.ret))
            .collect::<Result<Vec<_>>>()?;
        columns.push(array_from_datums(call.ret, values.iter()));
    }
    let types: Vec<DataType> = group_keys
        .iter()
        .map(|k| input_types[*k])
        .chain(aggs.iter().map(|a| a.ret))
        .collect();
    batch_of(schema_of(&types), columns, key_rows.len())
}
